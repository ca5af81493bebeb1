"""Throughput of the fully fused MLP against Jittor's nn.Linear MLP (fp32, and fp16 where Jittor runs it), same card,
same run: training (forward + backward to input, weights and biases) and inference, in elements (rows) per second.

    source bench/device_env.sh && python bench/bench_fused_mlp.py [--budget-s 120] [--out bench/out/fused_mlp.md]

Timing: warm-up first (Jittor compiles every op on first use), then `iters` steps between two jt.sync_all(True);
each step builds and runs the graph (y.sync() / jt.sync(grads)), so Jittor's per-step overhead is included for every
method alike. The table is printed (and written to --out) as rows complete; --budget-s stops before the device
time runs out.

Reference (anchors.md §3, read off the tiny-cuda-nn README plot, RTX 3090, 64 wide, 5 hidden layers): training
~1.2e8 elem/s at 2^14 rising to ~2e8 at 2^18-2^21; inference ~0.54e9 at 2^14 rising to ~1e9.
"""
import argparse
import datetime
import os
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
import jnerf  # noqa: E402,F401  (prepares Jittor's environment before jittor loads)
import jittor as jt  # noqa: E402

from jnerf.models.networks.mlp import MLP  # noqa: E402
from jnerf.models.networks.fully_fused_mlp import FullyFusedMLP  # noqa: E402

CONFIGS = [  # name, in, out, width, n_hidden, act, out_act, bias
    ("64x5 relu 35->3 sigmoid", 35, 3, 64, 5, "relu", "sigmoid", True),
    ("SDF 35->64->17 softplus", 35, 17, 64, 1, "softplus", "none", True),
    ("128x5 relu 32->16", 32, 16, 128, 5, "relu", "none", False),
]


def step_fn(model, x, g, train):
    params = [p for _, p in model.named_parameters()]

    def infer():
        with jt.no_grad():
            y = model(x)
        y.sync()

    def trainstep():
        y = model(x)
        grads = jt.grad((y.float32() * g).sum(), params + [x])
        jt.sync([v for v in grads if v is not None])
    return trainstep if train else infer


def bench(fn, batch, deadline):
    fn()
    fn()
    jt.sync_all(True)
    t0 = time.perf_counter()
    fn()
    jt.sync_all(True)
    one = time.perf_counter() - t0
    iters = int(max(3, min(30, 0.4 / max(one, 1e-6))))
    if time.perf_counter() + one * iters > deadline:
        iters = 2
    t0 = time.perf_counter()
    for _ in range(iters):
        fn()
    jt.sync_all(True)
    return batch * iters / (time.perf_counter() - t0)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--budget-s", type=float, default=150.0)
    ap.add_argument("--log2-batches", default="14,16,18,20,21")
    ap.add_argument("--configs", default="0,1,2")
    ap.add_argument("--cpu-smoke", action="store_true", help="run the script's logic on the CPU (plain path)")
    ap.add_argument("--out", default=os.path.join(os.environ.get("OUT", "bench/out"), "fused_mlp.md"))
    args = ap.parse_args()
    deadline = time.perf_counter() + args.budget_s
    jt.flags.use_cuda = 0 if args.cpu_smoke else 1
    card = os.popen("nvidia-smi --query-gpu=name --format=csv,noheader").read().strip().splitlines()
    header = (f"card: {card[0] if card else '?'}; cuda_archs {list(getattr(jt.flags, 'cuda_archs', []))}; "
              f"date {datetime.date.today().isoformat()}; Jittor {jt.__version__}\n\n"
              "| network | batch | fused train | fp32 train | fp16 train | fused infer | fp32 infer | fp16 infer |\n"
              "|---|---|---|---|---|---|---|---|\n")
    os.makedirs(os.path.dirname(args.out) or ".", exist_ok=True)
    rows = []

    def flush():
        with open(args.out, "w") as f:
            f.write(header + "".join(rows))

    print(header, end="", flush=True)
    rng = np.random.default_rng(0)
    for ci in [int(c) for c in args.configs.split(",")]:
        name, in_dim, out_dim, width, n_hidden, act, out_act, bias = CONFIGS[ci]
        fused_m = FullyFusedMLP(in_dim, out_dim, width, n_hidden, activation=act, output_activation=out_act,
                                bias=bias, fused=True)
        plain = MLP(in_dim, out_dim, width, n_hidden, activation=act, output_activation=out_act, bias=bias)
        plain.load_state_dict(fused_m.state_dict())
        half = MLP(in_dim, out_dim, width, n_hidden, activation=act, output_activation=out_act, bias=bias)
        half.load_state_dict(fused_m.state_dict())
        half.float16()
        for lb in [int(b) for b in args.log2_batches.split(",")]:
            if time.perf_counter() > deadline:
                print(f"(budget spent: skipped {name} from 2^{lb})", flush=True)
                break
            n = 1 << lb
            x = jt.array((0.5 * rng.standard_normal((n, in_dim))).astype(np.float32))
            g = jt.array((1e-4 * rng.standard_normal((n, out_dim))).astype(np.float32))
            cells = []
            for train in (True, False):
                for model, xin in ((fused_m, x), (plain, x), (half, x.float16())):
                    if time.perf_counter() > deadline:
                        cells.append("-")
                        continue
                    try:
                        cells.append(f"{bench(step_fn(model, xin, g, train), n, deadline):.3g}")
                    except Exception as e:  # e.g. a dtype Jittor's fp16 path does not take
                        cells.append("err")
                        print(f"  {name} 2^{lb} {'train' if train else 'infer'}: {type(e).__name__}: "
                              f"{str(e).splitlines()[0][:200] if str(e) else ''}", flush=True)
            row = f"| {name} | 2^{lb} | " + " | ".join(cells) + " |\n"
            rows.append(row)
            print(row, end="", flush=True)
            flush()
            del x, g
            jt.gc()
    flush()
    print("\nelements/s; tiny-cuda-nn anchors (RTX 3090, 64x5): training ~1.2e8 (2^14) to ~2e8 (2^18-2^21), "
          "inference ~0.54e9 to ~1e9", flush=True)


if __name__ == "__main__":
    main()
