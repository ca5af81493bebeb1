# Instant-NeuS defaults: the one place that states them. Per-object configs set `_base_ = 'instant_neus_base.py'`
# and override a few keys; setting a key this file does not have is an error (typo guard). Each group is read by
# one constructor, named in its heading, which checks it. Units are the scene's normalised frame (cameras_sphere.npz's
# scale_mat maps the object into the unit sphere) unless a comment says otherwise. Values derived from others
# (the lr schedule's length, the curvature schedule) are not keys: the components compute them.

# --------------------------------------------------------------------------------------- run (the runner)
exp_name = 'instant_neus'          # outputs go to <log_dir>/<exp_name>/
log_dir = 'logs'
seed = 0
device = 'auto'                    # 'auto' (CUDA when usable), 'cpu' or 'cuda'
on_cpu = None                      # dict of overrides merged in when the run ends up on the CPU (before --opts)

# --------------------------------------------------------------------------------- scene (NeuSDataset)
dataset = dict(
    type='NeuSDataset',
    root='data/bunny',             # folder with cameras_sphere.npz, image/, mask/
    downscale=1,                   # integer image downscale factor
    mask_dilation=8,               # disc radius (px) of the dilated mask that training rays are drawn from
    use_masks=True,
    ray_sampling='mask',           # 'mask': draw rays inside the dilated masks; 'all': from every pixel;
                                   #   'sphere': from pixels whose rays meet the unit sphere (no masks)
    skip_unpaired_views=False,     # images pair with cameras by number (010.png <-> world_mat_10); True drops
                                   #   unpaired views with a warning instead of stopping
    min_views=3,                   # fewer views is an error (warned below 20)
)
bbox = dict(                       # SceneBox: the box the hash grid, occupancy grid and marching cubes share
    mode='auto',                   # 'auto': the visual hull's box (logged; written back into the run's config.py),
                                   #   the unit sphere's box without masks; 'sphere': always [-1, 1]^3;
                                   # 'config': corner and size below
    corner=None,                   # box corner [x, y, z] ('config')
    size=None,                     # box edge lengths [x, y, z] ('config')
    margin=0.05,                   # 'auto': grown by this much on each side
    hull_resolution=64,            # 'auto': cells per axis of the coarse hull over [-1, 1]^3
)

# ------------------------------------------------------------------------------------ model (InstantNeuS)
model = dict(
    type='InstantNeuS',
    post_decoding=True,            # composite geometry features per ray, decode colour once per ray
    sdf_network=dict(
        type='SDFNetwork',         # box: the scene box, given at run time
        encoding=dict(
            type='HashGridEncoder',
            n_levels=16, n_features_per_level=2, log2_hashmap_size=19,
            base_resolution=32, finest_resolution=2048,
            start_level=4,         # levels active at the start (progressive: coarse to fine)
            dtype='float32',
        ),
        hidden_dim=64, n_hidden_layers=1,
        feature_dim=16,            # geometry feature channels (after the SDF channel)
        sphere_init_radius=0.5,    # initial surface: sphere of this radius around the box centre
        warmup_steps=1000,         # keep start_level levels until then ...
        level_steps=500,           # ... then switch on one more level every level_steps
        mlp_type='MLP',            # fp32: the fused fp16 MLP quantises the SDF below the finite-difference step
        grad_mode='central',       # numerical gradient's stencil: 'central' (7 points) or 'tetrahedral' (5)
    ),
    color_network=dict(type='ColorNetwork', hidden_dim=64, n_hidden_layers=2, sh_degree=4,
                       use_normal=True, activation='sigmoid',
                       # fp16 tensor-core MLP on CUDA >= sm_75, the same nn.Linear maths elsewhere
                       mlp_type='FullyFusedMLP'),
    variance_network=dict(type='VarianceNetwork', init_val=0.3, scale=10.0),  # inv_s = exp(scale * init_val)
    background_network=None,       # scenes without masks: e.g. dict(type='BackgroundNeRF', ...), what lies beyond
                                   #   the unit sphere (instant_neus_womask.py)
)

# ----------------------------------------------------------------------- occupancy (OccupancyGrid)
occupancy = dict(
    type='OccupancyGrid',          # box: the scene box, given at run time
    resolution=128,
    use_visual_hull=True,          # the masks' visual hull bounds the grid (cells outside: known empty space)
    hull_min_background_views=1,   # a cell is carved once this many views see it as background
    update_start=2000,             # sample every hull cell until then; then classify each cell by the SDF at its
    update_every=200,              #   centre as outside / near-surface / inside, every update_every steps
    band_cells=2.0,                # near-surface: |sdf| <= band_cells cell half-diagonals + band_softness / inv_s
    band_softness=5.0,
)

# ------------------------------------------------------------------------------ rendering (NeuSRenderer)
renderer = dict(
    type='NeuSRenderer',
    step_size=2.0 / 512,           # marching step inside marched cells (normalised units)
    max_steps=1024,                # per ray
    background='random',           # 'black' | 'white' | 'random' (composited into the target too)
    anneal_end=2000,               # cos-annealing of NeuS' alpha ends here
    free_points=4096,              # points uniform over the box per step for the free_* losses
    n_rays=1024,                   # rays in the first step; then, with dynamic_rays, ...
    dynamic_rays=True,
    target_samples=1 << 18,        # ... aimed at this many samples per step
    min_rays=256, max_rays=8192,
)

# ------------------------------------------------------------------------------------- losses (NeuSLoss)
loss = dict(
    type='NeuSLoss',
    color_l1=1.0, color_mse=0.0,
    eikonal=0.1,
    mask=0.1,                      # BCE of opacity vs mask
    curvature=5e-4,                # |Laplacian| weight: ramps up over the SDF's level warm-up, then divides by the
                                   #   grid's per-level growth for each level switched on, then stays constant
    free_eikonal=0.1,              # eikonal on the renderer's free points (the SDF stays an SDF off the rays)
    free_space=1.0,                # relu(-sdf) on free points the visual hull carved away (no surface there)
    opaque=0.0,                    # binary entropy of each ray's opacity (rays all object or all background)
    mask_clamp=1e-3,               # opacity clamp inside the mask BCE
    curvature_warmup_steps=None,   # None: derived from model.sdf_network (warmup_steps, level_steps, the grid's
    curvature_level_steps=None,    #   growth factor, the levels after the warm-up); a number overrides
    curvature_decay=None,
    curvature_decay_levels=None,
)

# ---------------------------------------------------------------------- optimiser (Adam, WarmupCosineLR)
optim = dict(type='Adam', lr=1e-2, betas=(0.9, 0.99), eps=1e-15,
             group_lr=dict(variance=1e-3))            # groups: encoding, mlp, variance
scheduler = dict(type='WarmupCosineLR', warmup_steps=500, min_factor=0.05)  # over train.total_steps

# ------------------------------------------------------------------------- training loop (TrainSettings)
train = dict(
    total_steps=20000,
    log_every=100,                 # a log line (every loss term, inv_s, levels, rays, samples, cells, lr)
    val_every=2500,                # validation images (RGB | GT | normal | depth) under validation/
    save_every=5000,               # checkpoints (atomic) under checkpoints/
    keep_checkpoints=3,
    mesh_every=0,                  # preview meshes during training (0: only at the end)
)
val = dict(views=[0], downscale=2, chunk=8192)       # ValidationSettings

# ---------------------------------------------------------------------------------------------- outputs
mesh = dict(
    type='MeshExporter',
    resolution=512,                # marching cubes lattice over the box
    preview_resolution=128,
    chunk=1 << 18,                 # points per network call (bounds memory)
    level=0.0,                     # SDF iso-level
    mask_with_occupancy=True,      # evaluate only near the surface the grid knows (faster; same mesh)
    clean='largest',               # 'largest' component, 'small' (drop < min_component_fraction), 'none'
    min_component_fraction=0.01,
    vertex_colors=True,
    formats=['ply'],               # add 'obj' for OBJ as well
    save_normalized=False,         # also save the mesh in the normalised frame
    cull_to_unit_sphere=False,     # drop faces outside the unit sphere (scenes without masks), before clean-up
    postprocess=None,              # final meshes only, with pymeshlab (pip install 'jnerf[mesh]'), e.g.
                                   #   dict(min_component_faces=100, max_hole_edges=30, smooth_iterations=5,
                                   #        target_faces=200000)
    texture=None,                  # final meshes also as OBJ+MTL+PNG and GLB with a baked colour texture
                                   #   (TextureSettings; xatlas: pip install 'jnerf[texture]'): True for the
                                   #   defaults, or e.g. dict(size=2048,      # texture edge, texels
                                   #                          target_faces=0, # decimate first (pymeshlab); 0: no
                                   #                          padding=2,      # texels between atlas charts
                                   #                          dilation=16,    # texels of colour spread into gutters
                                   #                          formats=['obj', 'glb'],
                                   #                          turntable=True) # render it around the object too
)
turntable = dict(n_frames=60, downscale=2, fps=30, elevation_deg=None)   # --task render (None: cameras' mean)
eval = dict(gt_mesh=None,          # EvalSettings; default: <dataset root>/gt_mesh.ply when present
            cull_with_masks=True,  # drop predicted surface that no training mask covers (DTU-style)
            after_training=True)   # evaluate the final mesh at the end of --task train when GT exists
