"""Hash-encoding throughput: the CUDA kernel (forward, backward) at 2^18..2^22 points, fp32 and fp16 tables, and
the Jittor-ops reference on the CPU at one small size.

Config: 16 levels x 2 features x 2^19 table, base resolution 32, finest 2048 (the design's defaults).
"effective GB/s" counts x read (12 B), the output written (L*F*4 B) and the 8 gathered corners per active level
(8*L*F*sizeof(table)) for forward; backward adds dout read and the 8 atomic corner updates (fp32) instead of the
output. Compare with the device-to-device copy bandwidth measured here (bytes read + written).

The stencil table: the SDF's numerical gradient encodes 7 points per sample (x, x +- h e_a, h one finest cell).
"7N plain" encodes the concatenated 7N points with the plain kernels; "fused" is hash_encode_stencil's kernel,
which gathers and scatters the corners the 7 points share once.

    python bench/bench_hashgrid.py [--sizes 18,20,22] [--stencil-sizes 16,18] [--repeat 20] [--no-cpu]
    (--sizes '' --stencil-sizes '' on a CPU machine)
"""
import argparse
import datetime
import math
import statistics
import time

import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))  # run from a checkout
import jnerf  # noqa: F401,E402  (prepares Jittor's environment before jittor is imported)
import jittor as jt

L, F, LOG2_T, BASE, FINEST = 16, 2, 19, 32, 2048


def level_scales(n_levels=L, base=BASE, finest=FINEST):
    b = math.exp(math.log(finest / base) / (n_levels - 1))
    return [base * b ** l - 1.0 for l in range(n_levels)]


def timed(fn, repeat, warmup=3):
    """Median wall time of fn() (which must leave its results synced) over ``repeat`` runs, in seconds."""
    for _ in range(warmup):
        fn()
    jt.sync_all(True)
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        jt.sync_all(True)
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def copy_bandwidth(n_bytes=1 << 30, repeat=10):
    """Device-to-device copy bandwidth in GB/s (bytes read + written), through cudaMemcpyAsync in a jt.code op."""
    with jt.flag_scope(use_cuda=1):
        src = jt.ones((n_bytes // 4,), dtype="float32")
        src.sync()

        def run():
            jt.code(src.shape, "float32", [src],
                    cuda_src="cudaMemcpyAsync(out0_p, in0_p, sizeof(float) * out0->num, "
                             "cudaMemcpyDeviceToDevice, 0);").sync()
        t = timed(run, repeat)
    return 2 * n_bytes / t / 1e9


def device_name():
    try:
        import subprocess
        out = subprocess.run(["nvidia-smi", "--query-gpu=name", "--format=csv,noheader"], capture_output=True,
                             text=True, timeout=20).stdout.strip()
        return out.splitlines()[0] if out else "unknown GPU"
    except (OSError, IndexError):
        return "unknown GPU"


def bench_cuda(log2_n, dtype, repeat):
    from jnerf.ops.hashgrid.hashgrid import HashEncodeFunction, _scales_var
    n = 1 << log2_n
    rng = np.random.default_rng(0)
    scales = np.asarray(level_scales(), dtype=np.float32)
    with jt.flag_scope(use_cuda=1):
        x = jt.array(rng.uniform(size=(n, 3)).astype(np.float32)).stop_grad()
        table = jt.array(rng.uniform(-1e-4, 1e-4, size=(L, 1 << LOG2_T, F)).astype(dtype))
        dout = jt.array(rng.normal(size=(n, L * F)).astype(np.float32))
        sv = _scales_var(scales)
        jt.sync([x, table, dout, sv])

        def fwd():
            HashEncodeFunction.apply(x, table, sv, L).sync()

        func = HashEncodeFunction()
        func.execute(x, table, sv, L).sync()

        def bwd():
            func.grad(dout)[1].sync()  # the backward kernel alone (grad to the table; x has stop_grad)

        t_f = timed(fwd, repeat)
        t_b = timed(bwd, repeat)
    esize = np.dtype(dtype).itemsize
    bytes_f = n * (12 + L * F * 4 + 8 * L * F * esize)
    bytes_b = n * (12 + L * F * 4 + 8 * L * F * 4) + L * (1 << LOG2_T) * F * 4  # + zeroing the fp32 grad
    return t_f, t_b, bytes_f, bytes_b


def bench_stencil(log2_n, repeat):
    """(plain fwd, plain bwd, fused fwd, fused bwd) seconds for 2^log2_n centre points, fp32 table."""
    from jnerf.ops.hashgrid.hashgrid import (HashEncodeFunction, HashEncodeStencilFunction, _scales_var)
    from jnerf.ops.hashgrid.reference import stencil_points
    n = 1 << log2_n
    rng = np.random.default_rng(0)
    scales = np.asarray(level_scales(), dtype=np.float32)
    h = float(np.float32(1.0 / scales[-1]))
    with jt.flag_scope(use_cuda=1):
        x = jt.array(rng.uniform(0.05, 0.95, size=(n, 3)).astype(np.float32)).stop_grad()
        points = stencil_points(x, h).stop_grad()
        table = jt.array(rng.uniform(-1e-4, 1e-4, size=(L, 1 << LOG2_T, F)).astype(np.float32))
        dout = jt.array(rng.normal(size=(7 * n, L * F)).astype(np.float32))
        sv = _scales_var(scales)
        jt.sync([x, points, table, dout, sv])
        plain, fused = HashEncodeFunction(), HashEncodeStencilFunction()
        plain.execute(points, table, sv, L).sync()
        fused.execute(x, table, sv, L, h).sync()
        times = (timed(lambda: HashEncodeFunction.apply(points, table, sv, L).sync(), repeat),
                 timed(lambda: plain.grad(dout)[1].sync(), repeat),
                 timed(lambda: HashEncodeStencilFunction.apply(x, table, sv, L, h).sync(), repeat),
                 timed(lambda: fused.grad(dout)[1].sync(), repeat))
    return times


def bench_cpu_reference(log2_n=14, repeat=3):
    from jnerf.ops.hashgrid.reference import hash_encode_reference
    n = 1 << log2_n
    rng = np.random.default_rng(0)
    with jt.flag_scope(use_cuda=0):
        x = jt.array(rng.uniform(size=(n, 3)).astype(np.float32)).stop_grad()
        table = jt.array(rng.uniform(-1e-4, 1e-4, size=(L, 1 << LOG2_T, F)).astype(np.float32))

        def fwd():
            hash_encode_reference(x, table, level_scales(), L).sync()

        def fwd_bwd():
            jt.grad(hash_encode_reference(x, table, level_scales(), L).sum(), table).sync()

        return n, timed(fwd, repeat, warmup=1), timed(fwd_bwd, repeat, warmup=1)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--sizes", default="18,19,20,21,22")
    ap.add_argument("--stencil-sizes", default="16,18")
    ap.add_argument("--repeat", type=int, default=20)
    ap.add_argument("--no-cpu", action="store_true")
    args = ap.parse_args()
    sizes = [int(s) for s in args.sizes.split(",") if s]   # --sizes '' : the CPU row alone
    bw = copy_bandwidth() if sizes else float("nan")
    print(f"hash encoding, {device_name() if sizes else 'CPU'}, {datetime.date.today()}, L={L} F={F} "
          f"T=2^{LOG2_T}; device copy bandwidth {bw:.0f} GB/s (read+write)")
    print("| points | table | fwd ms | fwd Mpts/s | fwd eff. GB/s (% copy) | bwd ms | bwd Mpts/s | "
          "bwd eff. GB/s (% copy) |")
    print("|---|---|---|---|---|---|---|---|")
    for log2_n in sizes:
        for dtype in (np.float32, np.float16):
            t_f, t_b, b_f, b_b = bench_cuda(log2_n, dtype, args.repeat)
            n = 1 << log2_n
            print(f"| 2^{log2_n} | {np.dtype(dtype).name} | {t_f * 1e3:.3f} | {n / t_f / 1e6:.0f} | "
                  f"{b_f / t_f / 1e9:.0f} ({100 * b_f / t_f / 1e9 / bw:.0f}%) | {t_b * 1e3:.3f} | "
                  f"{n / t_b / 1e6:.0f} | {b_b / t_b / 1e9:.0f} ({100 * b_b / t_b / 1e9 / bw:.0f}%) |", flush=True)
    stencil_sizes = [int(s) for s in args.stencil_sizes.split(",") if s]
    if stencil_sizes:
        print("\n| centres (x7 points) | 7N plain fwd ms | fused fwd ms | speed-up | 7N plain bwd ms | fused bwd ms | "
              "speed-up |")
        print("|---|---|---|---|---|---|---|")
    for log2_n in stencil_sizes:
        p_f, p_b, f_f, f_b = bench_stencil(log2_n, args.repeat)
        print(f"| 2^{log2_n} | {p_f * 1e3:.3f} | {f_f * 1e3:.3f} | {p_f / f_f:.2f}x | {p_b * 1e3:.3f} | "
              f"{f_b * 1e3:.3f} | {p_b / f_b:.2f}x |", flush=True)
    if not args.no_cpu:
        n, t_f, t_fb = bench_cpu_reference()
        print(f"\nCPU reference (Jittor ops), {n} points fp32: forward {t_f * 1e3:.1f} ms "
              f"({n / t_f / 1e6:.3f} Mpts/s), forward+backward {t_fb * 1e3:.1f} ms ({n / t_fb / 1e6:.3f} Mpts/s)")


if __name__ == "__main__":
    main()
