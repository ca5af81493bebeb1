# Instant-NeuS defaults. Per-object configs set `_base_ = 'instant_neus_base.py'` and override a few keys;
# setting a key this file does not have is an error (typo guard). Units are the scene's normalised frame
# (cameras_sphere.npz's scale_mat maps the object into the unit sphere) unless a comment says otherwise.

# ---------------------------------------------------------------------------------------------- experiment
exp_name = 'instant_neus'          # outputs go to <log_dir>/<exp_name>/
log_dir = 'logs'
seed = 0
device = 'auto'                    # 'auto' (CUDA when usable), 'cpu' or 'cuda'
on_cpu = None                      # dict of overrides merged in when the run ends up on the CPU (before --opts)
fp16 = False                       # fp16 MLPs/hash tables on CUDA cards >= sm_70 (fp32 accumulation)

# ------------------------------------------------------------------------------------------------- scene
dataset = dict(
    type='NeuSDataset',
    root='data/bunny',             # folder with cameras_sphere.npz, image/, mask/
    downscale=1,                   # integer image downscale factor
    mask_dilation=8,               # disc radius (px) of the dilated mask that training rays are drawn from
    use_masks=True,
    ray_sampling='mask',           # 'mask': draw rays inside the dilated masks; 'all': from every pixel
)
bbox_mode = 'auto'                 # 'auto': tight box from the visual hull (logged, saved in config.py);
                                   # 'config': use bbox_corner / bbox_size below
bbox_corner = [-1.0, -1.0, -1.0]   # box corner (bbox_mode='config'); 'auto' writes the derived box here
bbox_size = [2.0, 2.0, 2.0]        # box edge lengths
bbox_margin = 0.05                 # 'auto': margin added on each side, as a fraction of the largest edge
auto_bbox_resolution = 64          # 'auto': resolution of the coarse hull used to find the box

# ------------------------------------------------------------------------------------------------- model
model = dict(
    type='InstantNeuS',
    post_decoding=True,            # composite geometry features per ray, decode colour once per ray
    sdf_network=dict(
        type='SDFNetwork',
        encoding=dict(
            type='HashGridEncoder',
            n_levels=16, n_features_per_level=2, log2_hashmap_size=19,
            base_resolution=32, finest_resolution=2048,
            start_level=4,         # levels active at the start (progressive: coarse to fine)
        ),
        hidden_dim=64, n_hidden_layers=1,
        feature_dim=16,            # geometry feature channels (after the SDF channel)
        sphere_init_radius=0.5,    # initial surface: sphere of this radius around the box centre
        warmup_steps=1000,         # keep start_level levels until then ...
        level_steps=500,           # ... then switch on one more level every level_steps
        mlp_type='MLP',            # fp32: the fused fp16 MLP quantises the SDF below the finite-difference step
    ),
    color_network=dict(type='ColorNetwork', hidden_dim=64, n_hidden_layers=2, sh_degree=4,
                       use_normal=True, activation='sigmoid',
                       # fp16 tensor-core MLP on CUDA >= sm_75, the same nn.Linear maths elsewhere
                       mlp_type='FullyFusedMLP'),
    variance_network=dict(type='VarianceNetwork', init_val=0.3),  # inv_s = exp(10 * init_val) at start
)

# ------------------------------------------------------------------------------- occupancy and rendering
occupancy = dict(
    type='OccupancyGrid',          # box filled in by the runner
    resolution=128,
    use_visual_hull=True,          # the masks' visual hull bounds the grid (cells outside: known empty space)
    hull_min_background_views=1,   # a cell is carved once this many views see it as background
    update_start=2000,             # sample every hull cell until then; then classify each cell by the SDF at its
    update_every=200,              #   centre as outside / near-surface / inside, every update_every steps
    band_cells=2.0,                # near-surface: |sdf| <= band_cells cell half-diagonals + band_softness / inv_s
    band_softness=5.0,
)
renderer = dict(
    type='NeuSRenderer',
    step_size=2.0 / 512,           # marching step inside occupied cells (normalised units)
    max_steps=1024,                # per ray
    background='random',           # 'black' | 'white' | 'random' (composited into the target too)
    anneal_end=2000,               # cos-annealing of NeuS' alpha ends here
    free_points=4096,              # points uniform over the box per step for the free_* losses
)

# ----------------------------------------------------------------------------------------------- losses
loss = dict(
    type='NeuSLoss',
    color_l1=1.0, color_mse=0.0,
    eikonal=0.1,
    mask=0.1,                      # BCE of opacity vs mask
    curvature=5e-4,                # |Laplacian| weight: ramps up linearly over curvature_warmup_steps, ...
    curvature_warmup_steps=1000,   #   (= sdf_network.warmup_steps, when levels start to grow)
    curvature_level_steps=500,     # ... then divides by curvature_decay every level step (= level_steps) ...
    curvature_decay=1.3195,        #   (the hash grid's per-level scale: (2048/32)^(1/15))
    curvature_decay_levels=11,     # ... until all levels are on (16 - start_level - 1), then stays constant
    free_eikonal=0.1,              # eikonal on the renderer's free points (the SDF stays an SDF off the rays)
    free_space=1.0,                # relu(-sdf) on free points the visual hull carved away (no surface there)
)

# ---------------------------------------------------------------------------------------------- optimiser
optim = dict(type='Adam', lr=1e-2, betas=(0.9, 0.99), eps=1e-15,
             group_lr=dict(variance=1e-3))            # groups: encoding, mlp, variance
scheduler = dict(type='WarmupCosineLR', total_steps=20000, warmup_steps=500, min_factor=0.05)

# ------------------------------------------------------------------------------------------------ training
train = dict(
    total_steps=20000,
    n_rays=1024,                   # rays in the first step; then adjusted toward target_samples
    dynamic_rays=True,
    target_samples=1 << 18,        # samples per step the ray count aims at
    min_rays=256, max_rays=8192,
    log_every=100,                 # a log line (every loss term, inv_s, levels, rays, samples, occupancy)
    val_every=2500,                # validation images (RGB | GT | normal | depth) under validation/
    save_every=5000,               # checkpoints (atomic) under checkpoints/
    keep_checkpoints=3,
    mesh_every=0,                  # preview meshes during training (0: only at the end)
)
val = dict(views=[0], downscale=2, chunk=8192)

# -------------------------------------------------------------------------------------------------- outputs
mesh = dict(
    resolution=512,                # marching cubes lattice over the box
    preview_resolution=128,
    chunk=1 << 18,                 # points per network call (bounds memory)
    level=0.0,                     # SDF iso-level
    mask_with_occupancy=True,      # evaluate only points in occupied cells (faster, no floaters outside)
    clean='largest',               # 'largest' component, 'small' (drop < min_component_fraction), 'none'
    min_component_fraction=0.01,
    vertex_colors=True,
    formats=['ply'],               # add 'obj' for OBJ as well
    save_normalized=False,         # also save the mesh in the normalised frame
)
render = dict(n_frames=60, downscale=2, fps=30, elevation_deg=None)   # turntable (None: cameras' mean)
eval = dict(gt_mesh=None,          # default: <dataset root>/gt_mesh.ply when present
            cull_with_masks=True,  # drop predicted surface that no training mask covers (DTU-style)
            after_training=True)   # evaluate the final mesh at the end of --task train when GT exists
