# A per-object config in the style of the original Instant-NeuS handbag_019 example: point `dataset.root` at your
# NeuS-format folder (cameras_sphere.npz, image/, mask/) and keep what the base config does well.
_base_ = 'instant_neus_base.py'

exp_name = 'handbag_019'
dataset = dict(root='data/handbag_019', mask_dilation=20)
# The original needed a first run with cal_bbox=True and these numbers copied by hand; bbox mode 'auto' derives a
# box from the visual hull instead. A fixed box, as the original used:
bbox = dict(mode='config', corner=[-0.3, -0.4, -0.2], size=[0.6, 0.6, 0.6])
loss = dict(mask=1.0)                       # masks are reliable on this object
train = dict(total_steps=30000)             # the lr schedule follows
mesh = dict(formats=['ply', 'obj'])
