# Scenes without masks: images with a real background. A small NeRF models what lies beyond the unit sphere (the
# object must lie inside it: scale_mat maps it there), the occupancy grid and the box are the unit sphere's, there is
# no mask loss, and the mesh is culled to the unit sphere. Make a scene with a textured background to try it:
#   python tools/make_scene.py my_mesh.ply data/my_scene_env --background env
#   python tools/run_net.py --config-file projects/neus/configs/instant_neus_womask.py \
#       --opts "dataset.root='data/my_scene_env'"
# (the bundled data/bunny works too: its background is black).
_base_ = 'instant_neus_demo.py'

exp_name = 'womask'
dataset = dict(use_masks=False, ray_sampling='sphere')   # rays that can meet the object
bbox = dict(mode='sphere')
model = dict(background_network=dict(
    type='BackgroundNeRF',
    encoding=dict(type='HashGridEncoder', n_levels=12, n_features_per_level=2, log2_hashmap_size=18,
                  base_resolution=16, finest_resolution=1024, start_level=12),
    n_samples=32, hidden_dim=64, feature_dim=15, sh_degree=4))
loss = dict(mask=0.0)   # loss.opaque=0.05 (ray-opacity entropy) helped one CPU scene, hurt another: see RESULTS
mesh = dict(cull_to_unit_sphere=True)

_new_keys_ = ['on_cpu.model.background_network']   # the demo's CPU settings have no background model
on_cpu = dict(
    model=dict(background_network=dict(
        encoding=dict(n_levels=8, log2_hashmap_size=16, base_resolution=8, finest_resolution=512, start_level=8),
        n_samples=16, hidden_dim=32)),
)
