# The bundled demo: the Stanford bunny rendered by tools/make_scene.py (data/bunny, ground truth included).
# The README's main command trains on it; --task eval scores the mesh against data/bunny/gt_mesh.ply.
# A short schedule (3000 steps, all 16 hash levels on by step 2100), meant for a GPU; on a CPU use
# instant_neus_tiny_cpu.py.
_base_ = 'instant_neus_base.py'

exp_name = 'bunny_demo'
dataset = dict(root='data/bunny')
model = dict(sdf_network=dict(warmup_steps=300, level_steps=150))
loss = dict(curvature_warmup_steps=300, curvature_level_steps=150)
occupancy_schedule = dict(prune_start=500, prune_every=500)
renderer = dict(anneal_end=1000)
scheduler = dict(total_steps=3000, warmup_steps=200)
train = dict(total_steps=3000, val_every=1000, save_every=1000)
