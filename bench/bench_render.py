"""Ray marching and compositing throughput: CUDA kernels vs the Jittor-ops references (CPU, small size).

Scene: a 128^3 occupancy grid over [-1,1]^3 whose occupied cells form a shell 0.45 < |x| < 0.6 (a surface-like
band, as after pruning), rays from a sphere of radius 3 towards random points of the unit ball, step 2*sqrt(3)/1024,
max 1024 steps. Marching time includes its one host sync (the sample count). Compositing is render_weights +
accumulate of [S,3] values + accumulate of the weights (opacity), forward and forward+backward.

    python bench/bench_render.py [--rays 16,18,20] [--repeat 20]
"""
import argparse
import datetime
import math

import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))  # run from a checkout
import jnerf  # noqa: F401,E402  (prepares Jittor's environment before jittor is imported)
import jittor as jt

from bench_hashgrid import device_name, timed

RES, STEP, MAX_STEPS = 128, 2 * math.sqrt(3) / 1024, 1024
LO, HI = np.array([-1, -1, -1], np.float32), np.array([1, 1, 1], np.float32)


def scene(n_rays, seed=0):
    rng = np.random.default_rng(seed)
    c = (np.arange(RES) + 0.5) / RES * 2 - 1
    gx, gy, gz = np.meshgrid(c, c, c, indexing="ij")
    r = np.sqrt(gx ** 2 + gy ** 2 + gz ** 2).reshape(-1)
    occ = (r > 0.45) & (r < 0.6)
    o = rng.normal(size=(n_rays, 3))
    o = 3 * o / np.linalg.norm(o, axis=1, keepdims=True)
    tgt = rng.normal(size=(n_rays, 3)) * 0.4
    d = tgt - o
    d /= np.linalg.norm(d, axis=1, keepdims=True)
    jitter = rng.uniform(size=n_rays)
    return o.astype(np.float32), d.astype(np.float32), occ, jitter.astype(np.float32)


def run_case(n_rays, use_cuda, repeat):
    if use_cuda:
        from jnerf.ops.occupancy.occupancy import ray_march_cuda as march
        from jnerf.ops.volume_render.volume_render import accumulate_cuda as acc, render_weights_cuda as rw
    else:
        from jnerf.ops.occupancy.reference import ray_march_reference as march
        from jnerf.ops.volume_render.reference import accumulate_reference as acc, render_weights_reference as rw
    o, d, occ, jit = scene(n_rays)
    with jt.flag_scope(use_cuda=use_cuda):
        ov, dv, occv, jv = jt.array(o), jt.array(d), jt.array(occ), jt.array(jit)
        jt.sync([ov, dv, occv, jv])

        def do_march():
            out = march(ov, dv, occv, LO, HI, RES, STEP, MAX_STEPS, jv)
            jt.sync(list(out))
            return out

        ri, ts, te, pi = do_march()
        n_samples = int(ri.shape[0])
        rng = np.random.default_rng(1)
        alpha = jt.array(rng.uniform(0, 0.2, size=n_samples).astype(np.float32))
        rgb = jt.array(rng.uniform(size=(n_samples, 3)).astype(np.float32))
        jt.sync([alpha, rgb])

        def composite(backward):
            w = rw(alpha, pi, ri)
            color = acc(w, rgb, ri, n_rays)
            opacity = acc(w, None, ri, n_rays)
            if backward:
                grads = jt.grad(color.sum() + opacity.sum(), [alpha, rgb])
                jt.sync(grads)
            else:
                jt.sync([color, opacity])

        t_march = timed(do_march, repeat)
        t_fwd = timed(lambda: composite(False), repeat)
        t_fb = timed(lambda: composite(True), repeat)
    return n_samples, t_march, t_fwd, t_fb


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--rays", default="16,18,20")
    ap.add_argument("--repeat", type=int, default=20)
    ap.add_argument("--cpu-rays", type=int, default=12)
    args = ap.parse_args()
    print(f"ray marching + compositing, {device_name() if args.rays else 'CPU'}, {datetime.date.today()}; grid {RES}^3 shell, "
          f"step {STEP:.5f}, max {MAX_STEPS} steps")
    print("| impl | rays | samples | march ms | march Mrays/s | composite fwd ms | fwd Msamples/s | "
          "fwd+bwd ms | fwd+bwd Msamples/s |")
    print("|---|---|---|---|---|---|---|---|---|")
    cases = [(1, int(s)) for s in args.rays.split(",") if s] + [(0, args.cpu_rays)]  # --rays '': CPU only
    for use_cuda, log2_r in cases:
        n_rays = 1 << log2_r
        s, t_m, t_f, t_fb = run_case(n_rays, use_cuda, args.repeat if use_cuda else 3)
        print(f"| {'CUDA' if use_cuda else 'CPU ref'} | 2^{log2_r} | {s} | {t_m * 1e3:.3f} | "
              f"{n_rays / t_m / 1e6:.2f} | {t_f * 1e3:.3f} | {s / t_f / 1e6:.1f} | {t_fb * 1e3:.3f} | "
              f"{s / t_fb / 1e6:.1f} |", flush=True)


if __name__ == "__main__":
    main()
