# The bundled demo: the Stanford bunny rendered by tools/make_scene.py (data/bunny, ground truth included).
# The README's main command trains on it; --task eval scores the mesh against data/bunny/gt_mesh.ply.
# On a GPU: a short schedule (3000 steps, all 16 hash levels on by step 2100). Without a GPU the on_cpu settings
# below apply: a smaller model and 800 small steps (about 3 minutes on 2 cores).
_base_ = 'instant_neus_base.py'

exp_name = 'bunny_demo'
dataset = dict(root='data/bunny')
model = dict(sdf_network=dict(warmup_steps=300, level_steps=150))
occupancy = dict(update_start=500, update_every=100)
renderer = dict(anneal_end=1000)
scheduler = dict(warmup_steps=200)
train = dict(total_steps=3000, val_every=1000, save_every=1000)

on_cpu = dict(
    dataset=dict(downscale=2, mask_dilation=4),          # 160x160 images
    bbox=dict(hull_resolution=32),
    model=dict(sdf_network=dict(                          # 8 levels up to 256^3, a 2^15 table
        encoding=dict(n_levels=8, log2_hashmap_size=15, base_resolution=16, finest_resolution=256),
        feature_dim=8, warmup_steps=200, level_steps=100)),
    occupancy=dict(resolution=48, update_start=200, update_every=100),
    # Many small steps: on the CPU zoo, 800 steps of 2^13 samples end 15-40% closer to the ground truth than 400
    # of 2^14 in about the same time (bench/RESULTS.md, "Steps against samples per step").
    renderer=dict(step_size=2.0 / 128, max_steps=256, anneal_end=400, free_points=1024,
                  n_rays=128, target_samples=1 << 13, min_rays=64, max_rays=512),
    scheduler=dict(warmup_steps=100),
    train=dict(total_steps=800, log_every=100, val_every=400, save_every=400),
    val=dict(downscale=2, chunk=4096),
    mesh=dict(resolution=128, chunk=1 << 16),
    turntable=dict(n_frames=12, downscale=2),
)
