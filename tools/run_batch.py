#!/usr/bin/env python
"""jnerf batches: train, export and evaluate many NeuS scenes on Dask, one task per scene (docs/batch.md).

    python tools/run_batch.py --config-file projects/neus/configs/instant_neus_demo.py --scenes data/many

Without --scheduler it starts a Dask LocalCluster here: one worker per GPU (pinned with CUDA_VISIBLE_DEVICES), or
--workers N on the CPU. With --scheduler ADDRESS it submits to that cluster. Runs go to <log_dir>/<batch>/<scene>/,
the results table to <log_dir>/<batch>/results.md and results.csv. Imports no Jittor.
"""
import argparse
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

EXIT_ERROR = 2


def build_parser():
    parser = argparse.ArgumentParser(prog="run_batch.py", allow_abbrev=False,
                                     description="train, export and evaluate many NeuS scenes on Dask")
    parser.add_argument("--config-file", required=True, metavar="FILE", help="base config of every scene")
    parser.add_argument("--scenes", required=True, metavar="DIR|LIST",
                        help="a folder of scene folders, or a list file (a scene folder and its key=value "
                             "overrides a line)")
    parser.add_argument("--name", help="the batch's name: runs go to <log_dir>/<name>/<scene> (default: the "
                                       "scenes folder's or list file's name)")
    parser.add_argument("--workers", type=int, metavar="N",
                        help="embedded cluster: worker processes, one scene each at a time (default: one per GPU; "
                             "1 without a GPU)")
    parser.add_argument("--gpus", metavar="IDS",
                        help="embedded cluster: GPUs to use, e.g. 0,1 (default: every visible one; 'none': the CPU)")
    parser.add_argument("--scheduler", metavar="ADDRESS",
                        help="submit to an existing Dask cluster (tcp://host:8786 or a scheduler file)")
    parser.add_argument("--retries", type=int, default=2, metavar="N",
                        help="runs of a scene after its training is killed (default: 2); a dead worker is retried "
                             "by Dask (distributed.scheduler.allowed-failures)")
    parser.add_argument("--opts", nargs="*", default=[], metavar="KEY=VALUE",
                        help="overrides for every scene, as for run_net.py")
    return parser


def parse_gpus(text):
    if text is None:
        return None
    if text.strip().lower() in ("", "none", "cpu"):
        return []
    return [g.strip() for g in text.split(",") if g.strip()]


def main(argv=None):
    args = build_parser().parse_args(argv)
    if not os.path.isfile(args.config_file):
        print(f"error: config file not found: {args.config_file}", file=sys.stderr)
        return EXIT_ERROR
    if args.workers is not None and args.workers < 1:
        print(f"error: --workers must be at least 1, got {args.workers}", file=sys.stderr)
        return EXIT_ERROR
    from jnerf.batch.driver import run_batch
    from jnerf.utils.errors import user_errors
    try:
        return run_batch(args.config_file, args.scenes, workers=args.workers, gpus=parse_gpus(args.gpus),
                         scheduler=args.scheduler, opts=args.opts, name=args.name, retries=args.retries)
    except user_errors() as err:
        if os.environ.get("JNERF_DEBUG"):
            raise
        print(f"error: {str(err).strip() or type(err).__name__}", file=sys.stderr)
        return EXIT_ERROR
    except KeyboardInterrupt:  # before the scenes were submitted: nothing to save
        print("stopped", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
