"""The runner: builds every component from its config group, runs the training loop, writes checkpoints and hands
the trained model to the exporter, the turntable and the evaluator. The method lives in the components: the grid
owns pruning and its schedule, the renderer the ray budget, the loss the target composite and PSNR, the exporter
mesh files. All outputs go to ``logs/<exp_name>/``."""
import json
import logging
import math
import os
import signal
import time
from typing import List

import numpy as np
import jittor as jt
from tqdm import tqdm
from tqdm.contrib.logging import logging_redirect_tqdm

from jnerf.models.losses import psnr
from jnerf.models.samplers import SceneBox
from jnerf.utils.config import save_cfg
from jnerf.utils.device import set_device
from jnerf.utils.jittor_env import startup_output
from jnerf.utils.logger import get_logger, log_to_files
from jnerf.utils.registry import (DATASETS, EXPORTERS, LOSSES, NETWORKS, OPTIMS, RENDERERS, SAMPLERS, SCHEDULERS,
                                  build_from_cfg, build_settings)
from jnerf.utils.errors import TrainingDiverged, UserError
from .metrics import MetricsLog
from .checkpoint import (RunLock, check_shapes, initial_state, latest_checkpoint, load_checkpoint,
                         save_checkpoint)
from .settings import EvalSettings, TrainSettings, TurntableSettings, ValidationSettings
from .visualize import mlp_path, window_means, write_mesh_comparisons, write_validation_panels

logger = logging.getLogger("jnerf")

MAX_ROLLBACKS = 3  # NaN/inf recoveries (checkpoint + half lr) before a run is called diverged


def check_writable_dir(path, what):
    """Create ``path`` and check that a file can be written in it; a UserError naming ``what`` otherwise."""
    try:
        os.makedirs(path, exist_ok=True)
        probe = os.path.join(path, f".write_test.{os.getpid()}")
        with open(probe, "w"):
            pass
        os.remove(probe)
    except OSError as err:
        raise UserError(f"{what} {path} cannot be written: {err.strerror or err}") from err


class NeuSRunner:
    """``task`` in {'train','mesh','texture','render','eval'}; ``resume`` continues from the latest checkpoint; ``ckpt``
    names a checkpoint for the other tasks (default: the latest)."""

    def __init__(self, cfg, task: str = "train", resume: bool = False, ckpt: str = None):
        self.cfg = cfg
        self.train_cfg = build_settings(TrainSettings, cfg.train, "train")
        self.val_cfg = build_settings(ValidationSettings, cfg.val, "val")
        self.turntable_cfg = build_settings(TurntableSettings, cfg.turntable, "turntable")
        self.eval_cfg = build_settings(EvalSettings, cfg.eval, "eval")
        self.exp_dir = os.path.abspath(os.path.join(cfg.log_dir, cfg.exp_name))
        self.ckpt_dir = os.path.join(self.exp_dir, "checkpoints")
        check_writable_dir(self.exp_dir, f"the run folder (log_dir={cfg.log_dir!r}, exp_name={cfg.exp_name!r})")
        if task == "eval" and self._gt_mesh_path() is None:  # before minutes of loading, not after
            raise FileNotFoundError(f"--task eval: no ground-truth mesh (eval.gt_mesh={self.eval_cfg.gt_mesh!r}, "
                                    f"nor gt_mesh.ply in {cfg.dataset.root})")
        self.lock = RunLock(self.exp_dir).acquire() if task == "train" else None
        try:
            self._build(task, resume, ckpt)
        except BaseException:  # a run that could not start must not keep its folder locked
            if self.lock is not None:
                self.lock.release()
            raise

    def _build(self, task, resume, ckpt):
        cfg = self.cfg
        get_logger(os.path.join(self.exp_dir, "train.log" if task == "train" else f"{task}.log"))
        if startup_output().strip():  # Jittor's start-up chatter: in the log file, not on the terminal
            log_to_files(logging.INFO, "Jittor's start-up messages:\n" + startup_output().strip())
        set_device(cfg.device)
        jt.set_global_seed(cfg.seed)
        np.random.seed(cfg.seed)
        self.dataset = build_from_cfg(cfg.dataset, DATASETS)
        logger.info("dataset: %s", self.dataset)
        state, state_path = initial_state(self.ckpt_dir, task, resume, ckpt)
        lo, hi = self._scene_box(state)
        self.model = build_from_cfg(cfg.model, NETWORKS, bbox_min=lo, bbox_max=hi)
        logger.info("kernels: %s; SDF MLP: %s; colour MLP: %s", "CUDA (hash grid, ray marching, compositing, "
                    "occupancy)" if jt.flags.use_cuda else "CPU references (Jittor ops)",
                    mlp_path(self.model.sdf_network.mlp), mlp_path(self.model.color_network.mlp))
        self.grid = build_from_cfg(cfg.occupancy, SAMPLERS, bbox_min=lo, bbox_max=hi)
        self.renderer = build_from_cfg(cfg.renderer, RENDERERS, model=self.model, occupancy_grid=self.grid)
        self.loss_fn = build_from_cfg(cfg.loss, LOSSES, level_schedule=self.model.sdf_network.level_schedule())
        self.optimizer = build_from_cfg(cfg.optim, OPTIMS, params=self.model.param_groups())
        self.scheduler = build_from_cfg(cfg.scheduler, SCHEDULERS, optimizer=self.optimizer,
                                        total_steps=self.train_cfg.total_steps)
        self.exporter = build_from_cfg(cfg.mesh, EXPORTERS)
        self.metrics, self.started = MetricsLog(self.exp_dir), time.time()
        self.step, self.train_seconds, self.saved_step, self.last_mesh, self.rollbacks = 0, 0.0, None, None, 0
        if state is not None:
            self._load_state(state, state_path)
        elif self.dataset.masks_np is not None:
            if self.grid.init_from_masks(**self.dataset.hull_cameras()) == 0.0:
                raise UserError(f"{self.dataset.root}: the masks carve the whole box away (empty visual hull): check "
                                "that masks are white on the object (not inverted), belong to their images, and that "
                                "cameras_sphere.npz matches them")
        else:
            self.grid.bound_by_unit_sphere()
            logger.info("no masks: visual hull skipped; the occupancy grid is bounded by the unit sphere")
        logger.info("occupancy grid %d^3: %.1f%% of the cells marched", self.grid.resolution,
                    100 * self.grid.occupied_fraction)
        os.makedirs(self.exp_dir, exist_ok=True)
        save_cfg(cfg, os.path.join(self.exp_dir, "config.py"))

    # ----------------------------------------------------------------------------------------------- set-up
    def _scene_box(self, state):
        """The box the model, grid and exporter share: the checkpoint's, else the bbox group's (written back into
        the saved config, so a run records the box it derived)."""
        if state is not None:
            lo, hi = np.asarray(state["bbox_min"], np.float32), np.asarray(state["bbox_max"], np.float32)
        else:
            box = build_settings(SceneBox, self.cfg.bbox, "bbox")
            lo, hi = box.resolve(self.dataset.hull_cameras() if self.dataset.masks_np is not None else None,
                                 self.cfg.occupancy)
        self.cfg.bbox.corner, self.cfg.bbox.size = lo.tolist(), (hi - lo).tolist()
        return lo.tolist(), hi.tolist()

    # ------------------------------------------------------------------------------------------------ state
    def _state(self):
        return dict(step=self.step, train_seconds=self.train_seconds, bbox_min=self.grid.bbox_min,
                    bbox_max=self.grid.bbox_max, model={k: v.numpy() for k, v in self.model.state_dict().items()},
                    optimizer=self.optimizer.state_dict(), occupancy=self.grid.state_dict(),
                    renderer=self.renderer.state_dict(), rng=np.random.get_state())

    def _load_state(self, state, where="the checkpoint"):
        check_shapes(state["model"], self.model.state_dict(), where)
        self.model.load_state_dict({k: jt.array(v) for k, v in state["model"].items()})
        self.grid.load_state_dict(state["occupancy"])
        self.renderer.load_state_dict(state["renderer"])
        if "optimizer" in state:
            self.optimizer.load_state_dict(state["optimizer"])
        self.step, self.train_seconds = int(state["step"]), float(state.get("train_seconds", 0.0))
        if "rng" in state:
            np.random.set_state(state["rng"])
        jt.set_global_seed(self.cfg.seed + self.step)
        self.model.update_step(self.step)
        self.saved_step = self.step
        logger.info("restored the state of step %d", self.step)

    def save(self):
        state = self._state()
        if not all(np.all(np.isfinite(v)) for v in state["model"].values()):
            self._recover(f"non-finite weights at step {self.step}")  # never write a NaN checkpoint
            return None
        path = save_checkpoint(self.ckpt_dir, self.step, state, keep_last=self.train_cfg.keep_checkpoints)
        self.saved_step = self.step
        logger.info("checkpoint: %s", path)
        return path

    # --------------------------------------------------------------------------------------------- training
    def train(self) -> bool:
        """Train to train.total_steps, save, export the mesh and, when ground truth exists, evaluate it. Returns
        False when Ctrl-C stopped it early (a checkpoint is saved)."""
        interrupted = self.step_until(self.train_cfg.total_steps)
        if self.saved_step != self.step:
            self.save()
        if interrupted:
            logger.info("stopped at step %d; continue with --resume", self.step)
            return False
        self.metrics.plot()
        self.mesh()
        if self.eval_cfg.after_training and self._gt_mesh_path():
            self.eval()
        return True

    def _recover(self, what):
        """Roll back to the newest checkpoint with half the learning rate, at most MAX_ROLLBACKS times; else stop."""
        self.rollbacks += 1
        path = latest_checkpoint(self.ckpt_dir)
        if path is None or self.rollbacks > MAX_ROLLBACKS:
            why = "no checkpoint to roll back to" if path is None else f"{MAX_ROLLBACKS} rollbacks did not help"
            raise TrainingDiverged(f"training diverged ({what}) and {why}; lower optim.lr or check the data")
        self._load_state(load_checkpoint(path), path)
        for group in self.optimizer.param_groups:
            group["base_lr"] *= 0.5
        logger.warning("%s: rolled back to %s and halved the learning rate (rollback %d of %d)", what, path,
                       self.rollbacks, MAX_ROLLBACKS)

    def step_until(self, last_step: int) -> bool:
        """Train until ``last_step`` with the periodic work in between; Ctrl-C stops after the current step.
        Returns True when interrupted."""
        stop = {"flag": False}

        def on_interrupt(signum, frame):
            stop["flag"] = True
            logger.warning("interrupt: finishing this step and saving a checkpoint")
        previous = signal.signal(signal.SIGINT, on_interrupt)
        # One bar on a terminal (none when the output is redirected: no carriage returns in log files); log lines
        # print above it instead of through it.
        bar = tqdm(total=last_step, initial=self.step, desc="train", unit="it", dynamic_ncols=True, disable=None)
        with logging_redirect_tqdm(loggers=[logger]):
            return self._loop(last_step, bar, stop, previous)

    def _loop(self, last_step, bar, stop, previous_handler):
        t0, window = time.time(), {}
        try:
            while self.step < last_step and not stop["flag"]:
                tick = time.time()
                stats = self._train_step()
                self.train_seconds += time.time() - tick  # training only: no validation, meshes, checkpoints
                self.step += 1
                bar.update(1)
                for k, v in stats.items():
                    window.setdefault(k, []).append(v)
                if self.train_cfg.due(self.step, self.train_cfg.log_every) or self.step == last_step:
                    loss = self._log(window, bar, time.time() - t0)
                    t0, window = time.time(), {}
                    if not math.isfinite(loss):
                        self._recover(f"loss {loss} at step {self.step}")
                        bar.n = self.step
                        continue
                self._periodic()
        finally:
            bar.close()
            signal.signal(signal.SIGINT, previous_handler)
        return stop["flag"]

    def _train_step(self):
        self.model.update_step(self.step)
        self.scheduler.step(self.step)
        batch = self.dataset.sample_rays(self.renderer.n_rays)
        out = self.renderer.render(batch["rays_o"], batch["rays_d"], step=self.step, is_training=True)
        stats = dict(n_rays=batch["rays_o"].shape[0], n_samples=out["n_samples"])
        if out["n_samples"] == 0:  # no ray met an occupied cell: nothing to learn from, and no gradient
            return stats
        losses = self.loss_fn(out, batch["rgb"], batch["mask"], step=self.step)
        self.optimizer.step(losses["total"])
        self.renderer.update_ray_budget(out["n_samples"])
        stats.update({k: v.detach() for k, v in losses.items()})
        return stats

    def _log(self, window, bar, seconds):
        """One log line, the progress bar's figures and a metrics row for the steps since the last line; returns
        the mean total loss. Reading losses waits for the device: once per interval keeps the pipeline full."""
        means = window_means(window)
        if "total" not in means:
            logger.warning("step %d: no ray met an occupied cell in the last %d steps", self.step,
                           len(window["n_rays"]))
            return 0.0
        cells = self.grid.fractions()
        figures = dict(loss=means.pop("total"), psnr=psnr(max(means.pop("mse"), 1e-10)),
                       inv_s=self.model.inv_s_value(), levels=self.model.sdf_network.encoding.n_active,
                       rays=means.pop("n_rays"), samples=means.pop("n_samples"), surface=100 * cells["surface"],
                       inside=100 * cells["inside"], lr=self.optimizer.param_groups[0]["lr"],
                       it_per_s=len(window["n_rays"]) / max(seconds, 1e-9), **means)
        bar.set_postfix(loss=f"{figures['loss']:.4f}", psnr=f"{figures['psnr']:.2f}",
                        inv_s=f"{figures['inv_s']:.0f}", rays=int(figures["rays"]))
        logger.info("step %d | loss %.4f | %s | psnr %.2f | inv_s %.1f | levels %d | rays %d | samples %d | "
                    "cells: surface %.1f%% inside %.1f%% | lr %.2e | %.1f it/s", self.step, figures["loss"],
                    " ".join(f"{k}={v:.4g}" for k, v in means.items()), figures["psnr"], figures["inv_s"],
                    figures["levels"], figures["rays"], figures["samples"], figures["surface"], figures["inside"],
                    figures["lr"], figures["it_per_s"])
        self.metrics.write(self.step, self.train_seconds, time.time() - self.started, figures)
        return figures["loss"]

    def _periodic(self):
        tc = self.train_cfg
        self.grid.update_every_n_steps(self.step, self.model.sdf_numpy, self.model.inv_s_value)
        if tc.due(self.step, tc.val_every):
            self.validate()
        if tc.due(self.step, tc.save_every):
            self.save()
        if tc.due(self.step, tc.mesh_every):
            self.mesh(tag=f"step{self.step:06d}", preview=True)

    # -------------------------------------------------------------------------------------------- outputs
    def render_image(self, rays):
        """Full-image rays -> numpy rgb [H,W,3], normal [H,W,3], depth [H,W], opacity [H,W] (no gradients)."""
        return self.renderer.render_image(rays, chunk=self.val_cfg.chunk, step=self.step)

    def validate(self):
        write_validation_panels(self.render_image, self.dataset, self.val_cfg, self.step,
                                os.path.join(self.exp_dir, "validation"))

    def mesh(self, resolution: int = None, tag: str = None, preview: bool = False) -> str:
        """Export the current mesh (see MeshExporter); returns the first file written."""
        paths, n_verts, n_faces = self.exporter.export(self.model, self.grid, self.dataset.scale_mat, self.exp_dir,
                                                       tag or f"step{self.step:06d}", resolution, preview)
        logger.info("mesh at step %d (%.1f s of training): %d vertices, %d faces -> %s", self.step,
                    self.train_seconds, n_verts, n_faces, ", ".join(paths))
        self.last_mesh = paths[0]
        if not preview and self.exporter.texture is not None and self.exporter.texture.turntable:
            self._show_textured(tag or f"step{self.step:06d}")
        return paths[0]

    def texture(self) -> List[str]:
        """--task texture: the checkpoint's mesh as OBJ+MTL+PNG and GLB with a baked texture (mesh.texture's
        settings, or their defaults when it is None), then its turntable and its comparison with the validation
        views (mesh.texture.turntable). Returns the files written."""
        tag = f"step{self.step:06d}"
        paths = self.exporter.export_textured(self.model, self.grid, self.dataset.scale_mat, self.exp_dir, tag)
        if self.exporter.texture is None or self.exporter.texture.turntable:
            self._show_textured(tag)
        return paths

    def _show_textured(self, tag):
        """The last textured mesh around the object (texture_<tag>/: frames and mp4) and beside the validation
        views' training images (texture_<tag>/compare_view*.png, masked PSNR in the log)."""
        from .turntable import render_mesh_turntable
        out_dir = os.path.join(self.exp_dir, f"texture_{tag}")
        write_mesh_comparisons(self.exporter.last_textured, self.dataset, self.val_cfg.views, self.val_cfg.downscale,
                               out_dir, "compare")
        render_mesh_turntable(self.exporter.last_textured, self.dataset, self.turntable_cfg, out_dir)

    def render(self):
        """A turntable of novel views around the object: PNG frames and an mp4 (see turntable.py)."""
        from .turntable import render_turntable
        render_turntable(self, self.turntable_cfg, os.path.join(self.exp_dir, f"render_step{self.step:06d}"))

    def _gt_mesh_path(self):
        path = self.eval_cfg.gt_mesh or os.path.join(self.cfg.dataset.root, "gt_mesh.ply")
        return path if os.path.isfile(path) else None

    def eval(self):
        """Score the last mesh (exported now if none) against the ground truth; writes eval_step*.json."""
        from jnerf.evaluation import mesh_eval
        gt = self._gt_mesh_path()
        if gt is None:
            raise FileNotFoundError(f"no ground-truth mesh: set eval.gt_mesh or put gt_mesh.ply in "
                                    f"{self.dataset.root}")
        pred = self.last_mesh or self.mesh()
        broken = mesh_eval.missing_dependency()
        if broken:  # a finished run keeps its mesh; scoring can happen on another machine
            logger.warning("evaluation skipped (%s); the mesh is written: score it where scipy imports with "
                           "python tools/eval_mesh.py %s %s --scene %s", broken, pred, gt, self.dataset.root)
            return None
        scene = self.dataset.root if self.eval_cfg.cull_with_masks else None
        result = mesh_eval.evaluate_mesh(pred, gt, scene_dir=scene, seed=self.cfg.seed)
        logger.info("evaluation of %s against %s\n%s", pred, gt, mesh_eval.format_report(result))
        with open(os.path.join(self.exp_dir, f"eval_step{self.step:06d}.json"), "w") as f:
            json.dump(result, f, indent=2)
        return result
