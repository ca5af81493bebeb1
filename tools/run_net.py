#!/usr/bin/env python
"""jnerf command line: train Instant-NeuS on a NeuS-format scene, or export a mesh (plain or textured), render views,
evaluate.

    python tools/run_net.py --config-file projects/neus/configs/instant_neus_demo.py --task train
"""
import argparse
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

TASKS = ("train", "mesh", "texture", "render", "eval")


def build_parser():
    parser = argparse.ArgumentParser(
        prog="run_net.py", allow_abbrev=False,
        description="jnerf: Instant-NeuS surface reconstruction (train / mesh / texture / render / eval)")
    parser.add_argument("--config-file", required=True, metavar="FILE", help="Python config file")
    parser.add_argument("--task", default="train", choices=TASKS, help="what to do (default: train)")
    parser.add_argument("--resume", action="store_true", help="continue training from the latest checkpoint")
    parser.add_argument("--ckpt", metavar="PATH", help="checkpoint for mesh/texture/render/eval (default: the latest)")
    parser.add_argument("--device", choices=("auto", "cpu", "cuda"), help="override the config's device")
    parser.add_argument("--opts", nargs="*", default=[], metavar="KEY=VALUE",
                        help="config overrides, e.g. --opts train.total_steps=2000 model.post_decoding=False")
    return parser


EXIT_ERROR, EXIT_INTERRUPTED = 2, 130  # 130: stopped by Ctrl-C (128 + SIGINT), as shells report it


def main(argv=None):
    """Exit status: 0 done, 2 a one-line error about the input (JNERF_DEBUG=1 shows the traceback), 130 stopped by
    Ctrl-C with a checkpoint saved (continue with --resume)."""
    args = build_parser().parse_args(argv)
    if not os.path.isfile(args.config_file):
        print(f"error: config file not found: {args.config_file}", file=sys.stderr)
        return EXIT_ERROR
    import logging
    from jnerf.utils.errors import user_errors
    from jnerf.utils.logger import get_logger, log_to_files
    from jnerf.runner import build_runner, load_run_config
    get_logger()
    try:
        cfg = load_run_config(args.config_file, args.opts, device=args.device)
        runner = build_runner(cfg, task=args.task, resume=args.resume, ckpt=args.ckpt)
        finished = getattr(runner, args.task)()
    except user_errors() as err:
        if os.environ.get("JNERF_DEBUG"):
            raise
        message = str(err).strip() or type(err).__name__
        log_to_files(logging.ERROR, f"{args.task} failed: {message}")  # the run's log says why it stopped
        print(f"error: {message}", file=sys.stderr)
        return EXIT_ERROR
    return EXIT_INTERRUPTED if finished is False else 0


if __name__ == "__main__":
    sys.exit(main())
