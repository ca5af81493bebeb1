# The demo scene at the demo's CPU settings (its on_cpu block), forced onto the CPU: used by the tests and for
# CPU smoke runs on any machine. The tests train a few hundred steps, so this keeps the short schedule the demo's
# CPU block had before it moved to 800 small steps: every phase (levels, occupancy updates, annealing) within 400
# steps of 2^14 samples, a log line every 50.
_base_ = 'instant_neus_demo.py'

exp_name = 'tiny_cpu'
device = 'cpu'
on_cpu = dict(
    model=dict(sdf_network=dict(warmup_steps=100, level_steps=50)),
    occupancy=dict(update_start=100, update_every=50),
    renderer=dict(anneal_end=200, n_rays=256, target_samples=1 << 14, min_rays=128, max_rays=1024),
    scheduler=dict(warmup_steps=50),
    train=dict(total_steps=400, log_every=50, val_every=200, save_every=200),
)
