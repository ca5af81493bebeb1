"""The Instant-NeuS runner: builds every component from the config, trains with progressive levels, occupancy
pruning and dynamic ray counts, and exports / renders / evaluates. All outputs go to ``logs/<exp_name>/``."""
import logging
import math
import os
import signal
import time

import numpy as np
import jittor as jt
from tqdm import tqdm

from jnerf.utils.config import save_cfg
from jnerf.utils.device import set_device
from jnerf.utils.logger import get_logger
from jnerf.utils.registry import (DATASETS, LOSSES, NETWORKS, OPTIMS, SAMPLERS, SCHEDULERS, build_from_cfg)
from jnerf.utils import mesh as mesh_utils
from .checkpoint import latest_checkpoint, load_checkpoint, save_checkpoint
from .visualize import to_uint8, validation_panel

logger = logging.getLogger("jnerf")


def _np(var):
    return var.numpy() if isinstance(var, jt.Var) else np.asarray(var)


def _window_mean(values):
    """Mean of per-step scalars (numbers or Vars); Vars are fetched in one transfer, not one sync per step."""
    if isinstance(values[0], jt.Var):
        return float(jt.concat([v.reshape((1,)) for v in values]).numpy().mean())
    return float(np.mean(values))


def _mlp_path(mlp):
    """What an MLP runs on, for the start-up log: the fused fp16 kernel or Jittor's fp32 layers."""
    use_fused = getattr(mlp, "use_fused", None)
    if use_fused is None or not use_fused():
        return f"{type(mlp).__name__} (fp32 layers)"
    if mlp.fused == "auto" and mlp.min_fused_rows > 0:
        return f"fused fp16 kernel for batches of {mlp.min_fused_rows}+ rows, fp32 layers below"
    return "fused fp16 kernel"


class NeuSRunner:
    """``task`` in {'train','mesh','render','eval'}; ``resume`` continues from the latest checkpoint;
    ``ckpt`` names a checkpoint for the other tasks (default: the latest)."""

    def __init__(self, cfg, task="train", resume=False, ckpt=None):
        self.cfg = cfg
        self.exp_dir = os.path.abspath(os.path.join(cfg.log_dir, cfg.exp_name))
        self.ckpt_dir = os.path.join(self.exp_dir, "checkpoints")
        get_logger(os.path.join(self.exp_dir, "train.log" if task == "train" else f"{task}.log"))
        self.device = set_device(cfg.device, cfg.fp16)
        jt.set_global_seed(cfg.seed)
        np.random.seed(cfg.seed)
        self.dataset = build_from_cfg(cfg.dataset, DATASETS)
        logger.info("dataset: %s", self.dataset)

        state = self._initial_state(task, resume, ckpt)
        self._set_bbox(state)
        self.model = build_from_cfg(cfg.model, NETWORKS)
        logger.info("kernels: %s; SDF MLP: %s; colour MLP: %s",
                    "CUDA (hash grid, ray marching, compositing, occupancy)" if jt.flags.use_cuda
                    else "CPU references (Jittor ops)",
                    _mlp_path(self.model.sdf_network.mlp), _mlp_path(self.model.color_network.mlp))
        self.grid = build_from_cfg(cfg.occupancy, SAMPLERS, bbox_min=self.bbox_min, bbox_max=self.bbox_max)
        self.renderer = build_from_cfg(cfg.renderer, SAMPLERS, model=self.model, occupancy_grid=self.grid)
        self.loss_fn = build_from_cfg(cfg.loss, LOSSES)
        self.optimizer = build_from_cfg(cfg.optim, OPTIMS, params=self._param_groups())
        self.scheduler = build_from_cfg(cfg.scheduler, SCHEDULERS, optimizer=self.optimizer)
        self.step = 0
        self.train_seconds = 0.0
        self.saved_step = None             # step of the last checkpoint written or loaded
        self.n_rays = cfg.train.n_rays
        if state is not None:
            self._load_state(state)
        else:
            self._init_occupancy()
        os.makedirs(self.exp_dir, exist_ok=True)
        save_cfg(cfg, os.path.join(self.exp_dir, "config.py"))

    # ----------------------------------------------------------------------------------------------- set-up
    def _initial_state(self, task, resume, ckpt):
        if ckpt:
            return load_checkpoint(ckpt)
        if task == "train" and not resume:
            return None
        path = latest_checkpoint(self.ckpt_dir)
        if path is None:
            if task == "train":
                logger.info("--resume: no checkpoint in %s, starting from scratch", self.ckpt_dir)
                return None
            raise FileNotFoundError(f"no checkpoint in {self.ckpt_dir}: train first or pass --ckpt")
        logger.info("loading %s", path)
        return load_checkpoint(path)

    def _set_bbox(self, state):
        """The box that the hash grid, occupancy grid and marching cubes share (normalised frame)."""
        cfg = self.cfg
        if state is not None:
            lo, hi = np.asarray(state["bbox_min"]), np.asarray(state["bbox_max"])
        elif cfg.bbox_mode == "config":
            lo = np.asarray(cfg.bbox_corner, np.float32)
            hi = lo + np.asarray(cfg.bbox_size, np.float32)
        elif cfg.bbox_mode == "auto":
            lo, hi = self._bbox_from_visual_hull()
        else:
            raise ValueError(f"bbox_mode must be 'auto' or 'config', got '{cfg.bbox_mode}'")
        self.bbox_min, self.bbox_max = [float(v) for v in lo], [float(v) for v in hi]
        cfg.bbox_corner = self.bbox_min
        cfg.bbox_size = [h - l for l, h in zip(self.bbox_min, self.bbox_max)]
        cfg.model.sdf_network.bbox_min = self.bbox_min
        cfg.model.sdf_network.bbox_max = self.bbox_max

    def _bbox_from_visual_hull(self):
        """Carve a coarse grid over the unit cube with the masks and take the occupied cells' box plus a margin;
        this replaces the original's separate cal_bbox run and hand-copied numbers."""
        if self.dataset.masks_np is None:
            raise ValueError("bbox_mode='auto' needs masks; set bbox_mode='config' with bbox_corner/bbox_size")
        probe = build_from_cfg(dict(self.cfg.occupancy, resolution=self.cfg.auto_bbox_resolution,
                                    use_visual_hull=True), SAMPLERS, bbox_min=[-1.0] * 3, bbox_max=[1.0] * 3)
        probe.init_from_masks(*self._hull_inputs())
        lo, hi = probe.tight_bbox(margin=self.cfg.bbox_margin)
        logger.info("automatic bbox from the visual hull: corner %s size %s",
                    np.round(lo, 4).tolist(), np.round(np.asarray(hi) - lo, 4).tolist())
        return np.asarray(lo), np.asarray(hi)

    def _hull_inputs(self):
        # Dilated masks: a mask a few pixels too tight must not carve the object away.
        cams = self.dataset.hull_cameras()
        return cams["intrinsics"], cams["c2w"], cams["masks"]

    def _init_occupancy(self):
        if self.dataset.masks_np is not None:
            self.grid.init_from_masks(*self._hull_inputs())
        logger.info("occupancy grid %d^3: %.1f%% of the cells in the visual hull",
                    self.grid.resolution, 100 * self.grid.occupied_fraction)

    def _param_groups(self):
        """Hash table, MLPs and variance as separate groups, so the config can give each its own lr."""
        groups = {"encoding": [], "mlp": [], "variance": []}
        for name, p in self.model.named_parameters():
            key = "variance" if "variance" in name else "encoding" if "encod" in name or "table" in name else "mlp"
            groups[key].append(p)
        return [dict(name=k, params=v) for k, v in groups.items() if v]

    # -------------------------------------------------------------------------------------------- state
    def _state(self):
        return dict(step=self.step, n_rays=self.n_rays, train_seconds=self.train_seconds, bbox_min=self.bbox_min, bbox_max=self.bbox_max,
                    model={k: _np(v) for k, v in self.model.state_dict().items()},
                    optimizer=self.optimizer.state_dict(), occupancy=self.grid.state_dict(),
                    rng=np.random.get_state())

    def _load_state(self, state):
        self.model.load_state_dict({k: jt.array(v) for k, v in state["model"].items()})
        self.grid.load_state_dict(state["occupancy"])
        if "optimizer" in state:
            self.optimizer.load_state_dict(state["optimizer"])
        self.step, self.n_rays = int(state["step"]), int(state["n_rays"])
        self.train_seconds = float(state.get("train_seconds", 0.0))
        if "rng" in state:
            np.random.set_state(state["rng"])
        jt.set_global_seed(self.cfg.seed + self.step)
        self.model.update_step(self.step)
        self.saved_step = self.step
        logger.info("restored the state of step %d", self.step)

    def save(self):
        path = save_checkpoint(self.ckpt_dir, self.step, self._state(), keep_last=self.cfg.train.keep_checkpoints)
        self.saved_step = self.step
        logger.info("checkpoint: %s", path)
        return path

    # -------------------------------------------------------------------------------------------- training
    def train(self):
        """Train to train.total_steps, save, export the mesh and, when ground truth exists, evaluate it."""
        interrupted = self.step_until(self.cfg.train.total_steps)
        if self.saved_step != self.step:  # not already saved by the periodic save_every
            self.save()
        if interrupted:
            logger.info("stopped at step %d; continue with --resume", self.step)
            return
        self.mesh()
        if self.cfg.eval.after_training and self._gt_mesh_path():
            from jnerf.evaluation.mesh_eval import missing_dependency
            broken = missing_dependency()
            if broken:  # a finished run keeps its mesh; scoring can happen on another machine
                logger.warning("evaluation skipped (%s); the mesh is written: score it where scipy imports with "
                               "python tools/eval_mesh.py %s %s --scene %s", broken, self.last_mesh,
                               self._gt_mesh_path(), self.dataset.root)
            else:
                self.eval()

    def step_until(self, last_step):
        """Run training steps (with logging, validation, pruning, checkpoints) until ``last_step``; Ctrl-C stops
        after the current step. Returns True when interrupted."""
        tc = self.cfg.train
        stop = {"flag": False}

        def on_interrupt(signum, frame):
            stop["flag"] = True
            logger.warning("interrupt: finishing this step and saving a checkpoint")
        previous = signal.signal(signal.SIGINT, on_interrupt)
        bar = tqdm(total=last_step, initial=self.step, desc="train", unit="it", dynamic_ncols=True)
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
                if self.step % tc.log_every == 0 or self.step == last_step:
                    self._log(window, bar, time.time() - t0)
                    t0, window = time.time(), {}
                self._periodic()
        finally:
            bar.close()
            signal.signal(signal.SIGINT, previous)
        return stop["flag"]

    def _train_step(self):
        tc = self.cfg.train
        self.model.update_step(self.step)
        self.scheduler.step(self.step)
        batch = self.dataset.sample_rays(self.n_rays)
        out = self.renderer.render(batch["rays_o"], batch["rays_d"], step=self.step, is_training=True)
        n_samples = int(out["n_samples"])
        if n_samples == 0:  # no ray met an occupied cell: nothing to learn from, and no gradient
            return dict(n_rays=batch["rays_o"].shape[0], n_samples=0)
        # The loss composites the ground truth over the same background as the rendering.
        losses = self.loss_fn(out, batch["rgb"], batch["mask"], step=self.step)
        self.optimizer.step(losses["total"])
        if tc.dynamic_rays and n_samples > 0:
            # Aim at a fixed number of samples per step (instant-nsr-pl's rule), smoothed to avoid jitter.
            wanted = self.n_rays * tc.target_samples / n_samples
            self.n_rays = int(np.clip(0.9 * self.n_rays + 0.1 * wanted, tc.min_rays, tc.max_rays))
        stats = dict(n_rays=batch["rays_o"].shape[0], n_samples=n_samples)
        stats.update({k: v.detach() for k, v in losses.items()})
        if "color_mse" not in stats:  # for the PSNR in the log
            mask = batch["mask"]
            target = batch["rgb"] * mask + out["background"] * (1 - mask)
            stats["color_mse"] = ((out["rgb"] - target) ** 2).mean().detach()
        return stats

    def _log(self, window, bar, seconds):
        # Reading losses forces a sync; doing it once per interval keeps the GPU pipeline full in between.
        means = {k: _window_mean(vs) for k, vs in window.items()}
        if "total" not in means:
            logger.warning("step %d: no ray met an occupied cell in the last %d steps", self.step, len(window))
            return
        psnr = -10 * math.log10(max(means.get("color_mse", 1.0), 1e-10))
        steps = len(next(iter(window.values())))
        bar.set_postfix(loss=f"{means['total']:.4f}", psnr=f"{psnr:.2f}")
        terms = " ".join(f"{k}={v:.4g}" for k, v in means.items() if k not in ("n_rays", "n_samples", "total"))
        logger.info("step %d | loss %.4f | %s | psnr %.2f | inv_s %.1f | levels %d | rays %d | samples %d | "
                    "cells: surface %.1f%% inside %.1f%% | lr %.2e | %.1f it/s", self.step, means["total"], terms,
                    psnr, self._inv_s(), self._active_levels(), means["n_rays"], means["n_samples"],
                    100 * self.grid.fractions()["surface"], 100 * self.grid.fractions()["inside"],
                    self.optimizer.param_groups[0]["lr"], steps / max(seconds, 1e-9))

    def _active_levels(self):
        return int(self.model.sdf_network.encoding.n_active)

    def _periodic(self):
        tc = self.cfg.train
        if self.grid.update_every_n_steps(self.step, self._sdf_numpy, self._inv_s):
            logger.debug("occupancy at step %d: %s", self.step,
                         ", ".join(f"{k} {100 * v:.1f}%" for k, v in self.grid.fractions().items()))
        if tc.val_every and self.step % tc.val_every == 0:
            self.validate()
        if tc.save_every and self.step % tc.save_every == 0:
            self.save()
        if tc.mesh_every and self.step % tc.mesh_every == 0:
            self.mesh(resolution=self.cfg.mesh.preview_resolution, tag=f"step{self.step:06d}")

    # ------------------------------------------------------------------------------------------ rendering
    def render_image(self, rays):
        """Render full-image rays (no grad); returns numpy rgb [H,W,3], normal, depth, opacity."""
        H, W = rays["H"], rays["W"]
        with jt.no_grad():
            out = self.renderer.render_chunked(rays["rays_o"], rays["rays_d"], chunk=self.cfg.val.chunk,
                                               step=self.step)
        get = lambda k, c: _np(out[k]).reshape(H, W, c)
        return get("rgb", 3), get("normal", 3), get("depth", 1)[..., 0], get("opacity", 1)[..., 0]

    def validate(self):
        vc = self.cfg.val
        out_dir = os.path.join(self.exp_dir, "validation")
        os.makedirs(out_dir, exist_ok=True)
        import imageio
        for idx in vc.views:
            rays = self.dataset.image_rays(idx, downscale=vc.downscale)
            rgb, normal, depth, opacity = self.render_image(rays)
            gt = _np(rays["rgb"]).reshape(rays["H"], rays["W"], 3)
            R = self.dataset.c2w[idx][:3, :3]
            normal_cam = normal @ R  # world -> camera: R^T n, on row vectors
            psnr = -10 * np.log10(max(np.mean((rgb - gt) ** 2), 1e-10))
            path = os.path.join(out_dir, f"step{self.step:06d}_view{idx:03d}.png")
            imageio.imwrite(path, validation_panel(rgb, gt, normal_cam, depth, opacity))
            logger.info("validation view %d: psnr %.2f -> %s", idx, psnr, path)

    # ---------------------------------------------------------------------------------------------- mesh
    def _sdf_numpy(self, pts):
        with jt.no_grad():
            sdf, _ = self.model.sdf_network(jt.array(pts))
            return _np(sdf).reshape(-1)

    def _inv_s(self):
        return float(_np(self.model.variance_network.inv_s()).reshape(-1)[0])

    def _vertex_colors(self, verts):
        """Colour each vertex as seen head-on (view direction = -normal), the usual choice for an albedo-like
        export; evaluated in chunks."""
        colors = []
        chunk = self.cfg.mesh.chunk
        with jt.no_grad():
            for s in range(0, len(verts), chunk):
                x = jt.array(verts[s:s + chunk])
                geo = self.model.sdf_network.gradient(x, laplacian=False)
                n = geo["gradient"] / (jt.norm(geo["gradient"], dim=-1, keepdim=True) + 1e-8)
                colors.append(_np(self.model.color_network(geo["feature"], -n, n)))
        return np.concatenate(colors, 0) if colors else np.zeros((0, 3), np.float32)

    def mesh(self, resolution=None, tag=None):
        mc = self.cfg.mesh
        resolution = resolution or mc.resolution
        # The grid's signs for the cells it skips come from a fresh classification of the current SDF, so a
        # preview never depends on (or changes) where the training schedule left the grid.
        prior = (self.grid.extraction_prior(self.grid.classify(self._sdf_numpy, self._inv_s()))
                 if mc.mask_with_occupancy else None)
        volume = mesh_utils.evaluate_sdf_volume(self._sdf_numpy, self.bbox_min, self.bbox_max, resolution,
                                                chunk=mc.chunk, prior_fn=prior)
        verts, faces = mesh_utils.marching_cubes(volume, self.bbox_min, self.bbox_max, level=mc.level)
        if mc.clean == "largest":
            verts, faces = mesh_utils.keep_large_components(verts, faces, largest_only=True)
        elif mc.clean == "small":
            verts, faces = mesh_utils.keep_large_components(verts, faces, min_fraction=mc.min_component_fraction,
                                                             largest_only=False)
        colors = self._vertex_colors(verts) if mc.vertex_colors else None
        tag = tag or f"step{self.step:06d}"
        paths = []
        for fmt in mc.formats:
            world = mesh_utils.to_world(verts, self.dataset.scale_mat)
            paths.append(mesh_utils.save_mesh(os.path.join(self.exp_dir, f"mesh_{tag}_res{resolution}.{fmt}"),
                                              world, faces, colors))
            if mc.save_normalized:
                paths.append(mesh_utils.save_mesh(
                    os.path.join(self.exp_dir, f"mesh_{tag}_res{resolution}_normalized.{fmt}"), verts, faces, colors))
        logger.info("mesh at step %d (%.1f s of training): %d vertices, %d faces -> %s", self.step,
                    self.train_seconds, len(verts), len(faces), ", ".join(paths))
        self.last_mesh = paths[0]
        return paths[0]

    # --------------------------------------------------------------------------------------------- render
    def render(self):
        """A turntable of novel views around the object: PNG frames and an mp4."""
        from .turntable import camera_rays, turntable_cameras
        import imageio
        rc = self.cfg.render
        out_dir = os.path.join(self.exp_dir, f"render_step{self.step:06d}")
        os.makedirs(out_dir, exist_ok=True)
        K, poses, (H, W) = turntable_cameras(self.dataset, rc.n_frames, rc.downscale, rc.elevation_deg)
        frames = []
        for i, c2w in enumerate(tqdm(poses, desc="render", unit="frame")):
            rays = camera_rays(K, c2w, H, W)
            rgb, normal, _, opacity = self.render_image(rays)
            normal_cam = normal @ c2w[:3, :3]
            from .visualize import normal_image
            frame = to_uint8(np.concatenate([rgb, normal_image(normal_cam) * (opacity[..., None] > 0.5)], 1))
            imageio.imwrite(os.path.join(out_dir, f"{i:04d}.png"), frame)
            frames.append(frame)
        video = os.path.join(out_dir, "turntable.mp4")
        try:
            imageio.mimwrite(video, frames, fps=rc.fps, macro_block_size=1)
            logger.info("render: %d frames and %s", len(frames), video)
        except Exception as e:  # no ffmpeg backend: the PNGs are still there
            logger.warning("could not write %s (%s); frames are in %s", video, e, out_dir)

    # ----------------------------------------------------------------------------------------------- eval
    def _gt_mesh_path(self):
        path = self.cfg.eval.gt_mesh or os.path.join(self.dataset.root, "gt_mesh.ply")
        return path if os.path.isfile(path) else None

    def eval(self):
        from jnerf.evaluation.mesh_eval import evaluate_mesh, format_report
        import json
        gt = self._gt_mesh_path()
        if gt is None:
            raise FileNotFoundError(f"no ground-truth mesh: set eval.gt_mesh or put gt_mesh.ply in "
                                    f"{self.dataset.root}")
        pred = getattr(self, "last_mesh", None) or self.mesh()
        result = evaluate_mesh(pred, gt, scene_dir=self.dataset.root if self.cfg.eval.cull_with_masks else None,
                               seed=self.cfg.seed)
        logger.info("evaluation of %s against %s\n%s", pred, gt, format_report(result))
        path = os.path.join(self.exp_dir, f"eval_step{self.step:06d}.json")
        with open(path, "w") as f:
            json.dump(result, f, indent=2)
        return result
