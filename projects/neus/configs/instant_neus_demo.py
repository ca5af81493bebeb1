# The bundled demo: the Stanford bunny rendered by tools/make_scene.py (data/bunny, ground truth included).
# The README's main command trains on it; --task eval scores the mesh against data/bunny/gt_mesh.ply.
_base_ = 'instant_neus_base.py'

exp_name = 'bunny_demo'
dataset = dict(root='data/bunny')
train = dict(total_steps=5000, val_every=1000, save_every=1000)
scheduler = dict(total_steps=5000)
