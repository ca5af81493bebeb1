"""Where one training step's time goes: a per-stage table (ms and % of the step) at a config's settings, after a
warm-up so that the occupancy grid has pruned and the hash levels have switched on, plus Jittor's per-kernel
profile of plain steps.

    python bench/profile_step.py [--config projects/neus/configs/instant_neus_demo.py] [--warmup-steps 2000]
                                 [--steps 30] [--device cuda] [--markdown OUT.md]

Four measurements, each over the same number of steps:
- **plain**: the runner's own training loop (`NeuSRunner.step_until`: the step, its log lines and the periodic
  work), synchronised only at the end: the real cost.
- **staged**: the same step cut into stages with a device sync after each (ray generation, marching, the background,
  the SDF with its numerical-gradient stencil, compositing, the colour MLP, losses, backward, the optimiser update).
  Syncs serialise what Jittor would overlap and fuse, so the stages add up to more than the plain step; the shares
  say where the work is. The SDF stage's pieces are timed alone on the step's points, forward and backward: the hash
  grid's K-point stencil (7 central, 5 tetrahedral: the config's ``grad_mode``), the SDF MLP on the KN stencil rows,
  and the centre points alone through both (the difference is what the numerical gradient's K-1 extra evaluations
  cost).
- **host split**: plain steps again, timing the host in the marching call (which waits for the device at its
  sample-count sync), in the optimiser's pre_step (Jittor runs the previous step's graph, builds the backward)
  and elsewhere: whether the step is bound by the device or by the host.
- **kernels**: Jittor's profiler over plain steps: the top kernels by total time; what the kernels do not cover of
  the plain step is host work: graph building, launches and host syncs.
"""
import argparse
import os
import sys
import tempfile
import time

import numpy as np

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
sys.path.insert(0, ROOT)
DEMO = os.path.join(ROOT, "projects", "neus", "configs", "instant_neus_demo.py")


class StageClock:
    """Wall-clock per named stage, each closed by a full device sync (so a stage owns the kernels it launched)."""

    def __init__(self, jt):
        self.jt = jt
        self.totals = {}
        self.tick = None

    def start(self):
        self.jt.sync_all(True)
        self.tick = time.perf_counter()

    def lap(self, name, *outputs):
        for out in outputs:
            if out is not None:
                out.sync() if hasattr(out, "sync") else None
        self.jt.sync_all(True)
        now = time.perf_counter()
        self.totals[name] = self.totals.get(name, 0.0) + now - self.tick
        self.tick = now


def staged_step(runner, clock):
    """One training step of ``runner`` (as NeuSRunner._train_step does it), cut into synchronised stages; returns
    the number of samples (the stencil size for the component timings)."""
    import jittor as jt
    from jnerf.models.renderers.neus_renderer import cos_anneal_ratio, neus_alpha, safe_normalize
    from jnerf.ops.volume_render import accumulate, render_weights
    renderer, model, step = runner.renderer, runner.model, runner.step
    clock.start()
    model.update_step(step)
    runner.scheduler.step(step)
    batch = runner.dataset.sample_rays(renderer.n_rays)
    clock.lap("ray generation", batch["rays_o"], batch["rays_d"], batch["rgb"])
    rays_o, rays_d = batch["rays_o"].stop_grad(), batch["rays_d"].stop_grad()
    n_rays = rays_o.shape[0]
    jitter = jt.rand((n_rays,), dtype=jt.float32)
    samples = renderer.occupancy_grid.ray_march(rays_o, rays_d, renderer.step_size, renderer.max_steps, jitter,
                                                renderer.near_min)
    clock.lap("marching (incl. its sample-count sync)", samples.ray_indices, samples.packed_info)
    background = renderer.background_colours(rays_o, rays_d, True)
    clock.lap("background", background)
    ray_indices, n = samples.ray_indices, samples.n_samples
    dirs = rays_d[ray_indices]
    t_mid = samples.midpoints()
    points = rays_o[ray_indices] + dirs * t_mid.reshape((-1, 1))
    free_points, free_empty = renderer.occupancy_grid.free_points(renderer.free_points)
    geometry = model.sdf_network.gradient(jt.concat([points, free_points], dim=0), laplacian=True)
    clock.lap("SDF + numerical gradient, forward (all stencil points)", *geometry.values())
    free = {"sdf": geometry["sdf"][n:], "gradient": geometry["gradient"][n:], "known_empty": free_empty}
    geometry = {k: v[:n] for k, v in geometry.items()}
    alpha = neus_alpha(geometry["sdf"], geometry["gradient"], dirs, samples.lengths(),
                       model.variance_network.inv_s(), cos_anneal_ratio(step, renderer.anneal_end))
    weights = render_weights(alpha, samples.packed_info, ray_indices)
    opacity = accumulate(weights, None, ray_indices, n_rays)
    normal = safe_normalize(accumulate(weights, safe_normalize(geometry["gradient"]), ray_indices, n_rays),
                            fallback=-rays_d)
    feature = accumulate(weights, geometry["feature"], ray_indices, n_rays)
    feature = feature / jt.maximum(opacity, jt.full_like(opacity, 1e-6))
    clock.lap("alpha, weights, compositing", feature, normal, opacity)
    if not getattr(model, "post_decoding", False):
        raise SystemExit("profile_step.py follows the post-decoding path; this config turns post decoding off")
    rgb = opacity * model.color_network(feature, rays_d, normal)
    clock.lap("colour MLP (post decoding, per ray)", rgb)
    out = {"rgb": rgb + (1.0 - opacity) * background, "opacity": opacity, "normal": normal, "background": background,
           "gradient": geometry["gradient"], "laplacian": geometry["laplacian"], "weights": weights,
           "points": points.detach(), "n_samples": n, "depth": opacity, "free_sdf": free["sdf"],
           "free_gradient": free["gradient"], "free_known_empty": free["known_empty"]}
    losses = runner.loss_fn(out, batch["rgb"], batch["mask"], step=step)
    clock.lap("losses", *losses.values())
    runner.optimizer.backward(losses["total"])
    grads = [g for pg in runner.optimizer.param_groups for g in pg["grads"]]
    clock.lap("backward", *grads)
    runner.optimizer.step()
    clock.lap("optimiser update (Adam)", *[p for pg in runner.optimizer.param_groups for p in pg["params"]])
    renderer.update_ray_budget(n)
    runner.step += 1
    runner._periodic()
    clock.lap("occupancy update and other periodic work (amortised)")
    return n + renderer.free_points


def _ms_per_call(fn, repeats, jt):
    """Mean ms of ``fn()`` (which returns the Vars it computes) over ``repeats`` calls, after one untimed call."""
    jt.sync(fn())
    jt.sync_all(True)
    t0 = time.perf_counter()
    for _ in range(repeats):
        jt.sync(fn())
    jt.sync_all(True)
    return (time.perf_counter() - t0) / repeats * 1e3


def component_times(runner, n_points, repeats):
    """Forward and backward ms of the SDF stage's pieces on ``n_points`` centres, each timed alone: the hash grid's
    K-point stencil (the network's ``grad_mode``, as SDFNetwork.gradient calls it; backward: the table's gradient),
    the SDF MLP on the KN stencil rows (backward: its weights' and its input's gradients), and the centre points
    alone through both (what the step would cost without the numerical gradient's extra evaluations). Returns
    {piece: (forward, backward)}."""
    import jittor as jt
    import numpy as np
    from jnerf.ops.hashgrid import STENCILS, stencil_points
    sdf = runner.model.sdf_network
    enc, mlp_params = sdf.encoding, sdf.mlp.parameters()
    stencil, k = sdf.grad_mode, len(STENCILS[sdf.grad_mode])
    x = (jt.rand((n_points, 3)) * 0.5 + 0.25).stop_grad()       # encoder units [0,1], detached as in the step
    cell = sdf.encoding.cell_size(sdf.encoding.n_active - 1)
    pts = stencil_points(x * 2 - 1, 2 * cell, stencil).stop_grad()  # the KN rows' xyz inputs
    with jt.no_grad():
        feats_np = enc.encode_stencil(x, cell, stencil).numpy()
    feats = jt.array(feats_np)                                   # a leaf: the MLP's input gradient is timed too
    up_feats = jt.array(np.random.rand(*feats_np.shape).astype(np.float32))  # dense upstream gradients

    def hash_fwd():
        with jt.no_grad():
            return [enc.encode_stencil(x, cell, stencil)]

    # the backward rows sync the outputs too: Jittor would otherwise skip a forward whose values the gradient
    # does not need (the encoder's output, for a loss linear in it)
    def hash_fwd_bwd():
        out = enc.encode_stencil(x, cell, stencil)
        return [out] + jt.grad((out * up_feats).sum(), enc.parameters())

    def mlp_fwd():
        with jt.no_grad():
            return list(sdf._decode_stencil(pts, feats, n_points))

    def mlp_fwd_bwd():
        sdf_out, feature = sdf._decode_stencil(pts, feats, n_points)
        return [sdf_out, feature] + jt.grad(sdf_out.sum() + feature.sum(), mlp_params + [feats])

    def centre_fwd():
        with jt.no_grad():
            return list(sdf._decode(x * 2 - 1, enc(x)))

    def centre_fwd_bwd():
        sdf_out, feature = sdf._decode(x * 2 - 1, enc(x))
        return [sdf_out, feature] + jt.grad(sdf_out.sum() + feature.sum(), enc.parameters() + mlp_params)

    times = {}
    for name, fwd, both in ((f"hash grid ({k}-point stencil)", hash_fwd, hash_fwd_bwd),
                            (f"SDF MLP ({k}N stencil rows)", mlp_fwd, mlp_fwd_bwd),
                            ("centre points alone: hash grid + SDF MLP (N rows)", centre_fwd, centre_fwd_bwd)):
        forward = _ms_per_call(fwd, repeats, jt)
        times[name] = (forward, max(0.0, _ms_per_call(both, repeats, jt) - forward))
    return times


def run_steps(runner, steps):
    """``steps`` more steps of the runner's own training loop (``step_until``: its log lines, which read the
    losses, and the periodic work included); the mean number of samples per step. (A bare loop over
    ``_train_step`` that kept every step's detached losses without reading them ran at 525 ms per step on the
    H200 against the loop's ~22 ms.)"""
    renderer, counts = runner.renderer, []
    budget = renderer.update_ray_budget
    renderer.update_ray_budget = lambda n: (counts.append(n), budget(n))  # shadows the method for these steps
    try:
        runner.step_until(runner.step + steps)
    finally:
        del renderer.update_ray_budget
    return float(np.mean(counts)) if counts else 0.0


def plain_steps(runner, steps, jt, settle=10):
    """(mean ms per step of the training loop over ``steps`` steps after ``settle`` untimed ones, mean samples)."""
    run_steps(runner, settle)
    jt.sync_all(True)
    t0 = time.perf_counter()
    mean_samples = run_steps(runner, steps)
    jt.sync_all(True)
    return (time.perf_counter() - t0) / steps * 1e3, mean_samples


HOST_ROWS = {"march": "marching call (incl. waiting for the device)",
             "pre_step": "optimiser pre_step (run previous graph, build backward)",
             "rest": "everything else on the host (forward graph, losses, update, periodic work)"}


def host_split(runner, steps, jt):
    """Where the host's time goes in plain steps (ms per step, keyed by HOST_ROWS' labels): the marching call,
    which ends by reading the sample count and so waits there for everything queued on the device before it; the
    optimiser's ``pre_step``, in which Jittor runs the previous step's graph (its parameters are synced) and builds
    the backward graph; and the rest (Python building the forward graph, the losses and the update). Little time in
    the marching call means the device runs dry: the step is bound by the host."""
    spent = {"march": 0.0, "pre_step": 0.0}

    def timed(key, fn):
        def wrapper(*args, **kwargs):
            t0 = time.perf_counter()
            out = fn(*args, **kwargs)
            spent[key] += time.perf_counter() - t0
            return out
        return wrapper

    grid, optimizer = runner.renderer.occupancy_grid, runner.optimizer
    grid.ray_march = timed("march", grid.ray_march)  # instance attributes shadow the methods for these steps
    optimizer.pre_step = timed("pre_step", optimizer.pre_step)
    try:
        jt.sync_all(True)
        t0 = time.perf_counter()
        run_steps(runner, steps)
        jt.sync_all(True)
        wall = time.perf_counter() - t0
    finally:
        del grid.ray_march, optimizer.pre_step
    spent["rest"] = wall - sum(spent.values())
    return wall / steps * 1e3, {HOST_ROWS[k]: v / steps * 1e3 for k, v in spent.items()}


def kernel_profile(runner, steps, jt, top):
    """(rows of (name, ms per step, calls per step), total kernel ms per step) from Jittor's profiler."""
    with jt.profile_scope() as report:
        for _ in range(steps):
            runner._train_step()
            runner.step += 1
        jt.sync_all(True)
    header, rows = report[0], report[1:]
    col = {name: i for i, name in enumerate(header)}
    parsed = []
    for r in rows:
        name = str(r[col["Name"]]).replace("\n", " ")
        parsed.append((name, float(r[col["TotalTime"]]) / 1e6 / steps, int(float(r[col["Count"]])) / steps))
    parsed.sort(key=lambda r: -r[1])
    return parsed[:top], sum(r[1] for r in parsed)


def say(message):
    """A progress line (the device tool keeps what a timed-out run printed)."""
    print(f"[profile] {time.strftime('%H:%M:%S')} {message}", flush=True)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", default=DEMO)
    parser.add_argument("--scene", default=None, help="dataset.root (default: the config's)")
    parser.add_argument("--warmup-steps", type=int, default=2000)
    parser.add_argument("--steps", type=int, default=60, help="plain steps; staged and profiled: a third")
    parser.add_argument("--device", default=None)
    parser.add_argument("--top", type=int, default=15)
    parser.add_argument("--opts", nargs="*", default=[])
    parser.add_argument("--markdown", default=None)
    args = parser.parse_args(argv)

    import jnerf  # noqa: F401  (sets Jittor's environment before it loads)
    from jnerf.runner import build_runner, load_run_config
    import jittor as jt
    opts = [f"log_dir={tempfile.mkdtemp(prefix='profile_')!r}", "exp_name='profile'", "train.val_every=0",
            "train.save_every=0", "train.mesh_every=0", "eval.after_training=False"] + list(args.opts)
    if args.scene:
        opts.append(f"dataset.root={args.scene!r}")
    runner = build_runner(load_run_config(args.config, opts, device=args.device))
    t0 = time.time()
    runner.step_until(args.warmup_steps)
    say(f"warm-up: {args.warmup_steps} steps in {time.time() - t0:.1f} s; {runner.renderer.n_rays} rays per step")
    plain_ms, mean_samples = plain_steps(runner, args.steps, jt)
    say(f"plain: {plain_ms:.2f} ms per step, {mean_samples:.0f} samples")
    few = max(2, args.steps // 3)
    staged_step(runner, StageClock(jt))       # compiles the kernels that the syncs' cuts make
    clock = StageClock(jt)
    n_points = 0
    for _ in range(few):
        n_points = staged_step(runner, clock)
    staged = {k: v / few * 1e3 for k, v in clock.totals.items()}
    say("staged: " + ", ".join(f"{k.split(' (')[0]} {v:.2f}" for k, v in staged.items()))
    parts = component_times(runner, n_points, few)
    say("pieces (forward / backward ms): " + ", ".join(f"{k} {f:.2f} / {b:.2f}" for k, (f, b) in parts.items()))
    host_ms, host_rows = host_split(runner, args.steps, jt)
    say(f"host split: {host_ms:.2f} ms per step: " + ", ".join(f"{k.split(' (')[0]} {v:.2f}"
                                                                for k, v in host_rows.items()))
    kernel_profile(runner, 1, jt, args.top)   # the profiler's first pass compiles again
    kernels, kernel_ms = kernel_profile(runner, few, jt, args.top)
    say(f"kernels: {kernel_ms:.2f} ms per step")

    staged_total = sum(staged.values())
    lines = [f"## One training step: {os.path.relpath(args.config, ROOT)} at step {args.warmup_steps}, "
             f"{runner.renderer.n_rays} rays, {mean_samples:.0f} samples per step",
             "", f"plain step: **{plain_ms:.2f} ms** ({1e3 / plain_ms:.1f} it/s, "
             f"{mean_samples / plain_ms / 1e3:.2f} M samples/s); staged steps add up to {staged_total:.2f} ms",
             "", "| stage (synchronised) | ms | % of staged |", "|---|---|---|"]
    lines += [f"| {k} | {v:.2f} | {100 * v / staged_total:.1f} |" for k, v in staged.items()]
    from jnerf.ops.hashgrid import STENCILS
    k = len(STENCILS[runner.model.sdf_network.grad_mode])
    lines += ["", f"Pieces of the SDF stage, each timed alone on the step's {n_points} points ({k * n_points} "
              f"stencil rows, {runner.model.sdf_network.grad_mode}); the stencil rows less the centre-points row is "
              f"what the numerical gradient's {k - 1} extra evaluations cost:", "",
              "| piece | forward ms | backward ms |", "|---|---|---|"]
    lines += [f"| {k} | {f:.2f} | {b:.2f} |" for k, (f, b) in parts.items()]
    lines += ["", f"The host's time in {args.steps} plain steps ({host_ms:.2f} ms per step):", "",
              "| where | ms per step | % of step |", "|---|---|---|"]
    lines += [f"| {k} | {v:.2f} | {100 * v / host_ms:.1f} |" for k, v in host_rows.items()]
    lines += ["", f"Kernels (Jittor profiler): {kernel_ms:.2f} ms per step of the {plain_ms:.2f} ms plain step; the "
              f"other {max(0.0, plain_ms - kernel_ms):.2f} ms ({100 * max(0.0, plain_ms - kernel_ms) / plain_ms:.0f}%)"
              f" are host work (graph building, launches, syncs). Top {len(kernels)}:", "",
              "| kernel | ms per step | calls per step | % of step |", "|---|---|---|---|"]
    lines += [f"| `{name[:90]}` | {ms:.3f} | {calls:.1f} | {100 * ms / plain_ms:.1f} |" for name, ms, calls in kernels]
    text = "\n".join(lines)
    print(text)
    if args.markdown:
        with open(args.markdown, "w") as f:
            f.write(text + "\n")
    runner.lock.release()
    return 0


if __name__ == "__main__":
    sys.exit(main())
