"""Textured meshes: how close each export comes to the training images, and what a bake costs.

quality: train a run (or reuse one with --run-dir), then render from every training camera (1 in --view-stride) the
  network (volume rendering), the vertex-coloured mesh and the textured mesh (both rasterised, unlit: their colours
  are the network's head-on colours), and, with --decimate N ..., both meshes decimated to N faces (pymeshlab). Prints
  PSNR against the training image over the object's mask.
bake: time one bake (atlas, texel points, colour network, gutters, writing OBJ+MTL+PNG and GLB) of a --faces mesh
  into a --size texture on --device, with peak host memory and, on CUDA, peak device memory. The colour work does
  not depend on the weights, so the model is the config's freshly initialised one and the mesh the sphere it
  starts as (marching cubes of that sphere, then pymeshlab's decimation to exactly --faces where pymeshlab imports).

    python bench/bench_texture.py quality --config projects/neus/configs/instant_neus_demo.py --device cpu
    python tools/make_scene.py cow.obj data/zoo_tex/cow --n-views 32 --resolution 320 --texture rich
    python bench/bench_texture.py quality --scene data/zoo_tex/cow --device cpu --decimate 5000 1500
    python bench/bench_texture.py bake --size 2048 --faces 500000 --device cuda      # on a GPU machine
    python bench/bench_texture.py bake --size 2048 --faces 500000 --device cpu
"""
import argparse
import os
import sys
import threading
import time

import numpy as np

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
sys.path.insert(0, ROOT)
DEMO = os.path.join(ROOT, "projects", "neus", "configs", "instant_neus_demo.py")


# ------------------------------------------------------------------------------------------------------ quality
def train_or_load(args):
    from jnerf.runner import build_runner, load_run_config
    name = args.name or os.path.basename(os.path.normpath(args.scene or "bunny")) + "_texture_bench"
    opts = [f"log_dir={args.log_dir!r}", f"exp_name={name!r}", "train.val_every=0", "eval.after_training=False",
            "mesh.texture=None", *args.opts]
    if args.scene:
        opts.append(f"dataset.root={os.path.abspath(args.scene)!r}")
    if args.steps:
        opts.append(f"train.total_steps={args.steps}")
    cfg = load_run_config(args.config, opts, device=args.device)
    ckpt_dir = os.path.join(args.log_dir, name, "checkpoints")
    trained = os.path.isdir(ckpt_dir) and os.listdir(ckpt_dir)
    runner = build_runner(cfg, task="mesh" if trained else "train")
    if not trained:
        t0 = time.time()
        runner.step_until(runner.train_cfg.total_steps)
        runner.save()
        print(f"trained {runner.step} steps in {time.time() - t0:.0f} s")
    else:
        print(f"reusing {ckpt_dir} (step {runner.step})")
    return runner


def quality(args):
    from jnerf.dataset.cameras import downscale_intrinsics
    from jnerf.export.postprocess import MeshPostprocess
    from jnerf.export.texture import bake_texture, render_mesh
    from jnerf.runner.visualize import masked_psnr
    runner = train_or_load(args)
    model, chunk = runner.model, runner.exporter.chunk
    verts, faces = runner.exporter.extract(model, runner.grid, runner.exporter.resolution)
    meshes = {"full": (verts, faces)}
    for target in sorted(args.decimate, reverse=True):
        if target < len(faces):
            meshes[f"decimated to {target}"] = MeshPostprocess(target_faces=target)(verts, faces)
    exports = {}
    for key, (v, f) in meshes.items():
        exports[f"vertex colours, {key} ({len(f)} faces)"] = (v, f, model.surface_colors(v, chunk), None)
        textured = bake_texture(lambda p: model.surface_colors(p, chunk), v, f, args.size, dilation=args.dilation)
        exports[f"texture {args.size}^2, {key} ({len(f)} faces)"] = (textured.vertices, textured.faces, None, textured)
    scores = {"network (volume rendering)": []}
    scores.update({name: [] for name in exports})
    dataset, views = runner.dataset, range(0, runner.dataset.n_images, args.view_stride)
    if dataset.masks is None:
        raise SystemExit("quality needs a scene with masks (PSNR over the object)")
    t0 = time.time()
    for i, idx in enumerate(views):
        rays = dataset.image_rays(idx, downscale=args.downscale)
        h, w = rays["H"], rays["W"]
        gt = rays["rgb"].numpy().reshape(h, w, 3)
        mask = rays["mask"].numpy().reshape(h, w) > 0.5
        K = downscale_intrinsics(dataset.intrinsics[idx], args.downscale)
        scores["network (volume rendering)"].append(masked_psnr(runner.render_image(rays)[0], gt, mask))
        for name, (v, f, colours, textured) in exports.items():
            image, _ = render_mesh(v, f, K, dataset.c2w[idx], h, w, vertex_colors=colours, mesh=textured)
            scores[name].append(masked_psnr(image, gt, mask))
        print(f"\rview {i + 1}/{len(views)} ({time.time() - t0:.0f} s)", end="", flush=True)
    print(f"\n\n{dataset.root}: {len(views)} training views at {w}x{h}, step {runner.step}, marching cubes "
          f"{runner.exporter.resolution}^3; PSNR (dB) against the training images over the object's mask\n")
    print("| export | mean PSNR | min | max |\n|---|---|---|---|")
    for name, values in scores.items():
        print(f"| {name} | {np.mean(values):.2f} | {np.min(values):.2f} | {np.max(values):.2f} |")


# --------------------------------------------------------------------------------------------------------- bake
class PeakMemory:
    """Peak resident memory of the process (polled every 10 ms in a thread: a /proc read, no Jittor call) and, on
    CUDA, the peak of what Jittor's allocators hold on the device (read in the calling thread by ``sample()``, e.g.
    after each network call, since Jittor is not called from two threads)."""

    def __init__(self, cuda):
        self.cuda, self.stop, self.peak_device = cuda, threading.Event(), 0

    @staticmethod
    def rss():
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")

    def device_held(self):
        import jittor as jt
        return int(jt.get_mem_info().total_cuda_used) if self.cuda else 0

    def sample(self):
        self.peak_device = max(self.peak_device, self.device_held())

    def poll(self):
        while not self.stop.wait(0.01):
            self.peak_rss = max(self.peak_rss, self.rss())

    def __enter__(self):
        self.base_rss, self.base_device = self.rss(), self.device_held()
        self.peak_rss, self.peak_device = self.base_rss, self.base_device
        self.thread = threading.Thread(target=self.poll, daemon=True)
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.stop.set()
        self.thread.join()
        self.peak_rss = max(self.peak_rss, self.rss())
        self.sample()


def sphere_mesh(radius, faces_wanted):
    """Marching cubes of a sphere of ``radius`` over [-1,1]^3 at the lattice that gives about ``faces_wanted``
    faces (faces grow with the square of the lattice), then, where pymeshlab imports, made a little finer and
    decimated to exactly that many."""
    from jnerf.export import mesh as mesh_ops
    try:
        from jnerf.export.postprocess import MeshPostprocess
        import pymeshlab  # noqa: F401
    except Exception as err:  # noqa: BLE001  (a missing or broken pymeshlab: bake the marching-cubes mesh as it is)
        print(f"(no decimation: {type(err).__name__}: {err})")
        MeshPostprocess = None
    sdf = lambda p: np.linalg.norm(p, axis=1) - radius  # noqa: E731

    def at(res):
        volume = mesh_ops.evaluate_sdf_volume(sdf, [-1.0] * 3, [1.0] * 3, res, progress=False)
        return mesh_ops.marching_cubes(volume, [-1.0] * 3, [1.0] * 3)
    probe = len(at(64)[1])
    margin = 1.0 if MeshPostprocess is None else 1.03
    verts, faces = at(int(round(64 * np.sqrt(faces_wanted / probe) * margin)))
    if MeshPostprocess is not None:
        verts, faces = MeshPostprocess(target_faces=faces_wanted)(verts, faces)
    return verts, faces


def bake(args):
    import tempfile
    import jnerf
    import jittor as jt
    from jnerf.export.texture import bake_texture, save_glb, save_textured_obj
    from jnerf.runner import load_run_config
    from jnerf.utils.device import set_device
    from jnerf.utils.registry import NETWORKS, build_from_cfg
    cfg = load_run_config(args.config, args.opts, device=args.device)
    set_device(cfg.device)
    jnerf.register_all()
    model = build_from_cfg(cfg.model, NETWORKS, bbox_min=[-1.0] * 3, bbox_max=[1.0] * 3)
    radius = float(cfg.model.sdf_network.sphere_init_radius or 0.5)
    chunk = args.chunk or cfg.mesh.chunk
    verts, faces = sphere_mesh(radius, args.faces)
    memory = PeakMemory(jt.flags.use_cuda)

    def colour(points):
        colours = model.surface_colors(points, chunk)
        memory.sample()
        return colours
    bake_texture(colour, verts, faces[:1000], 64, progress=False)       # compile the kernels first
    device = "CUDA" if jt.flags.use_cuda else "CPU"
    print(f"bake of a {len(faces)}-face mesh ({len(verts)} vertices) into {args.size}^2 on {device}, "
          f"{chunk} points per network call")
    timings = {}
    with tempfile.TemporaryDirectory() as out, memory:
        t0 = time.perf_counter()
        mesh = bake_texture(colour, verts, faces, args.size, dilation=16, chunk=chunk, timings=timings)
        t1 = time.perf_counter()
        save_textured_obj(os.path.join(out, "bench.obj"), mesh.vertices, mesh.faces, mesh.uv, mesh.texture)
        save_glb(os.path.join(out, "bench.glb"), mesh.vertices, mesh.faces, mesh.uv, mesh.texture, mesh.normals)
        timings["write"] = time.perf_counter() - t1
        total = time.perf_counter() - t0
    texels = int(mesh.filled.sum())
    print(f"\n| device | faces | texture | texels baked | atlas s | texels s | colour s | gutters s | write s | "
          f"total s | colour Mtexel/s | peak host MiB (+ over start) | peak Jittor device MiB (+ over start) |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|---|")
    device_mem = (f"{memory.peak_device / 2**20:.0f} (+{(memory.peak_device - memory.base_device) / 2**20:.0f})"
                  if jt.flags.use_cuda else "-")
    print(f"| {device} | {len(faces)} | {args.size}^2 | {texels} | {timings['atlas']:.1f} | {timings['texels']:.1f} | "
          f"{timings['colour']:.1f} | {timings['gutters']:.2f} | {timings['write']:.1f} | {total:.1f} | "
          f"{texels / timings['colour'] / 1e6:.3f} | {memory.peak_rss / 2**20:.0f} "
          f"(+{(memory.peak_rss - memory.base_rss) / 2**20:.0f}) | {device_mem} |")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="mode", required=True)
    q = sub.add_parser("quality", help="PSNR of network / vertex-coloured / textured renders vs training images")
    q.add_argument("--config", default=DEMO)
    q.add_argument("--scene", help="scene folder (default: the config's dataset.root)")
    q.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda"))
    q.add_argument("--steps", type=int, help="training steps (default: the config's)")
    q.add_argument("--log-dir", default=os.path.join(ROOT, "bench", "out"), help="runs go (and are reused) here")
    q.add_argument("--name", help="run name (default: <scene>_texture_bench)")
    q.add_argument("--size", type=int, default=1024, help="texture edge in texels")
    q.add_argument("--dilation", type=int, default=16)
    q.add_argument("--decimate", type=int, nargs="*", default=[],
                   help="also compare both exports decimated to these face counts (pymeshlab)")
    q.add_argument("--view-stride", type=int, default=1, help="every n-th training view")
    q.add_argument("--downscale", type=int, default=1, help="render at 1/n of the training images' size")
    q.add_argument("--opts", nargs="*", default=[], help="config overrides, as for tools/run_net.py")
    b = sub.add_parser("bake", help="time and memory of one bake")
    b.add_argument("--size", type=int, default=2048, help="texture edge in texels")
    b.add_argument("--faces", type=int, default=500000, help="faces of the mesh to bake")
    b.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda"))
    b.add_argument("--config", default=DEMO, help="the model (its on_cpu settings apply on the CPU)")
    b.add_argument("--chunk", type=int, help="points per network call (default: the config's mesh.chunk)")
    b.add_argument("--opts", nargs="*", default=[], help="config overrides, as for tools/run_net.py")
    args = parser.parse_args()
    (quality if args.mode == "quality" else bake)(args)


if __name__ == "__main__":
    main()
