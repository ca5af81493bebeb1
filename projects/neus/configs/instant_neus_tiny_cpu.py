# A tiny configuration for tests and CPU smoke runs: a small hash grid and occupancy grid, few steps, a coarse
# mesh. It still exercises every mechanism (visual hull, progressive levels, pruning, post decoding, curvature).
_base_ = 'instant_neus_base.py'

exp_name = 'tiny_cpu'
device = 'cpu'
dataset = dict(root='data/bunny', downscale=2, mask_dilation=4)
auto_bbox_resolution = 32
model = dict(sdf_network=dict(
    encoding=dict(n_levels=8, log2_hashmap_size=15, base_resolution=16, finest_resolution=256, start_level=4),
    feature_dim=8, warmup_steps=100, level_steps=50))
occupancy = dict(resolution=48)
occupancy_schedule = dict(prune_start=200, prune_every=200)
renderer = dict(step_size=2.0 / 128, max_steps=256, anneal_end=200)
loss = dict(curvature_warmup_steps=100, curvature_level_steps=50, curvature_decay=1.44, curvature_decay_levels=3)
scheduler = dict(total_steps=400, warmup_steps=50)
train = dict(total_steps=400, n_rays=256, target_samples=1 << 14, min_rays=128, max_rays=1024,
             log_every=50, val_every=300, save_every=300)
val = dict(downscale=2, chunk=4096)
mesh = dict(resolution=96, chunk=1 << 16)
render = dict(n_frames=4, downscale=4)
