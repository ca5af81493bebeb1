#!/usr/bin/env python
"""Compile, once, the CUDA kernels that training and export use, so that a first GPU run does not stall on them
(Jittor compiles each kernel variant the first time it runs and caches it in ~/.cache/jittor).

    python tools/precompile.py [--config-file projects/neus/configs/instant_neus_demo.py]

It runs training steps of the config on the bundled demo scene at every number of active hash levels (each is a
kernel variant), one occupancy update, a validation render and a small mesh export, with a progress bar. Without a
usable CUDA device there is nothing to do. tools/setup.sh calls it.
"""
import argparse
import os
import sys
import tempfile

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
sys.path.insert(0, ROOT)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config-file", default=os.path.join(ROOT, "projects", "neus", "configs",
                                                              "instant_neus_demo.py"))
    args = parser.parse_args(argv)
    import jnerf  # noqa: F401
    from jnerf.utils.jittor_env import cuda_device_count
    if cuda_device_count() == 0:
        print("precompile: no CUDA device here; the CPU path needs no kernels")
        return 0
    from tqdm import tqdm
    from jnerf.runner import build_runner, load_run_config
    with tempfile.TemporaryDirectory() as tmp:
        cfg = load_run_config(args.config_file, [f"log_dir={tmp!r}", "exp_name='precompile'",
                                                 f"dataset.root={os.path.join(ROOT, 'data', 'bunny')!r}",
                                                 "train.val_every=0", "train.save_every=0"], device="cuda")
        runner = build_runner(cfg)
        sdf = runner.model.sdf_network
        levels = range(sdf.encoding.start_level, sdf.encoding.n_levels + 1)
        stages = [f"{n} hash levels" for n in levels] + ["occupancy update", "validation render", "mesh export"]
        for stage in tqdm(stages, desc="precompiling CUDA kernels", unit="stage"):
            if stage.endswith("hash levels"):
                n = int(stage.split()[0])
                # the step at which the schedule switches on n levels: a training step there runs that variant
                runner.step = 0 if n == sdf.encoding.start_level else sdf.warmup_steps + (n - levels[0] - 1) * \
                    sdf.level_steps
                for _ in range(2):
                    runner._train_step()
            elif stage == "occupancy update":
                runner.grid.set_state(runner.grid.classify(runner.model.sdf_numpy, runner.model.inv_s_value()))
                runner._train_step()
            elif stage == "validation render":
                runner.validate()
            else:
                runner.mesh(resolution=64, tag="precompile")
        runner.lock.release()
    print("precompile: done; the kernels are cached in Jittor's cache folder")
    return 0


if __name__ == "__main__":
    sys.exit(main())
