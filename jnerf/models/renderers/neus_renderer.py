"""NeuS volume rendering of an SDF network over packed occupancy-grid samples (Instant-NeuS).

Samples come from fixed steps through occupied cells (with per-ray jitter when training); each sample's opacity is
the NeuS discrete alpha with cos annealing, weights follow from transmittance, and colour is either composited per
sample or, with post decoding, decoded once per ray from the composited geometry feature and normal.
"""
import jittor as jt
import numpy as np

from typing import Optional

from jnerf.ops.volume_render import accumulate, render_weights
from jnerf.utils.checks import require_int
from jnerf.utils.registry import NETWORKS, RENDERERS, SAMPLERS, build_from_cfg

__all__ = ["neus_alpha", "cos_anneal_ratio", "safe_normalize", "NeuSRenderer"]

_BACKGROUNDS = ("black", "white", "random")
# Below this composite-normal length a ray saw (almost) no surface; its normal falls back to facing the camera.
_MIN_NORMAL_NORM = 1e-6
# Post decoding divides the composited feature by opacity; this keeps empty rays finite.
_MIN_OPACITY = 1e-6


def cos_anneal_ratio(step: int, anneal_end: int) -> float:
    """r = min(1, step / anneal_end); 1 at once when anneal_end <= 0."""
    return 1.0 if anneal_end <= 0 else min(1.0, float(step) / float(anneal_end))


def neus_alpha(sdf: jt.Var, gradient: jt.Var, dirs: jt.Var, dists: jt.Var, inv_s, cos_anneal_ratio: float) -> jt.Var:
    """NeuS discrete opacity per sample (NeuS eq. 13 with the annealed cosine of Instant-NeuS / NeuS code).

    sdf [S], gradient [S,3], dirs [S,3] (unit ray directions), dists [S] (interval lengths), inv_s float or Var
    [1], cos_anneal_ratio in [0,1] -> alpha [S] float32 in [0,1].
    Early in training (ratio 0) the cosine is relaxed to -relu(0.5 - cos/2) so back faces still get gradients.
    """
    true_cos = (dirs * gradient).sum(dim=-1)                                            # [S]
    ratio = float(cos_anneal_ratio)
    iter_cos = -(jt.nn.relu(-true_cos * 0.5 + 0.5) * (1.0 - ratio) + jt.nn.relu(-true_cos) * ratio)
    half_step = iter_cos * dists * 0.5                                                  # [S]
    if isinstance(inv_s, jt.Var):
        inv_s = inv_s.reshape((-1,))[:1]
    prev_cdf = jt.sigmoid((sdf - half_step) * inv_s)                                    # [S]
    next_cdf = jt.sigmoid((sdf + half_step) * inv_s)                                    # [S]
    return jt.clamp((prev_cdf - next_cdf + 1e-5) / (prev_cdf + 1e-5), 0.0, 1.0)


def safe_normalize(vectors: jt.Var, fallback: Optional[jt.Var] = None) -> jt.Var:
    """Unit vectors [N,3]; rows shorter than a tiny norm become ``fallback`` [N,3] (default: left as ~0)."""
    # the tiny term keeps the gradient finite for zero rows (d sqrt(x)/dx at 0 is inf, and inf * 0 is NaN)
    norm = jt.sqrt((vectors * vectors).sum(dim=-1, keepdims=True) + _MIN_NORMAL_NORM ** 4)  # [N,1]
    unit = vectors / jt.maximum(norm, jt.full_like(norm, _MIN_NORMAL_NORM))
    if fallback is None:
        return unit
    return jt.where(norm > _MIN_NORMAL_NORM, unit, fallback)


@RENDERERS.register_module()
class NeuSRenderer:
    """Renders rays of the normalised frame with an Instant-NeuS model and an OccupancyGrid, and owns the
    training ray budget.

    model: object or config dict of ``InstantNeuS`` (``sdf_network.gradient(x, laplacian)``,
    ``color_network(feature, dirs, normals)``, ``variance_network.inv_s()``, ``post_decoding``);
    occupancy_grid: ``OccupancyGrid`` or its config; step_size in normalised-frame units; max_steps per ray;
    background 'black' | 'white' | 'random' (random colours per ray when training, black otherwise);
    anneal_end: steps over which the NeuS cosine anneals; near_min: nearest allowed t.
    free_points: points drawn uniformly over the grid's box at each training step, on which the losses keep the SDF
    valid where no ray samples (eikonal, and positive where the visual hull carved the space away).
    Ray budget: ``n_rays`` rays in the first training step; with ``dynamic_rays`` the count then follows
    ``target_samples`` samples per step (instant-nsr-pl's rule, smoothed), within [min_rays, max_rays].
    """

    def __init__(self, model, occupancy_grid, step_size: float = 2.0 / 512, max_steps: int = 1024,
                 background: str = "random", anneal_end: int = 2000, near_min: float = 0.0,
                 free_points: int = 4096, n_rays: int = 1024, dynamic_rays: bool = True,
                 target_samples: int = 1 << 18, min_rays: int = 256, max_rays: int = 8192):
        self.model = build_from_cfg(model, NETWORKS) if isinstance(model, dict) else model
        self.occupancy_grid = (build_from_cfg(occupancy_grid, SAMPLERS) if isinstance(occupancy_grid, dict)
                               else occupancy_grid)
        if step_size <= 0:
            raise ValueError(f"step_size: expected > 0, got {step_size}")
        if int(max_steps) < 1:
            raise ValueError(f"max_steps: expected >= 1, got {max_steps}")
        if background not in _BACKGROUNDS:
            raise ValueError(f"background: expected one of {', '.join(_BACKGROUNDS)}, got {background!r}")
        self.step_size = float(step_size)
        self.max_steps = int(max_steps)
        self.background = background
        self.anneal_end = anneal_end
        self.near_min = float(near_min)
        self.free_points = require_int("renderer", "free_points", free_points, 0)
        self.min_rays = require_int("renderer", "min_rays", min_rays, 1)
        self.max_rays = require_int("renderer", "max_rays", max_rays, self.min_rays)
        self.n_rays = int(np.clip(require_int("renderer", "n_rays", n_rays, 1), self.min_rays, self.max_rays))
        self.target_samples = require_int("renderer", "target_samples", target_samples, 1)
        self.dynamic_rays = bool(dynamic_rays)
        self.last_step = 0

    def update_ray_budget(self, n_samples: int):
        """After a training step that drew ``n_samples`` samples from ``n_rays`` rays: aim the next step's ray
        count at ``target_samples`` samples (smoothed, so the count does not jitter)."""
        if self.dynamic_rays and n_samples > 0:
            wanted = self.n_rays * self.target_samples / n_samples
            self.n_rays = int(np.clip(0.9 * self.n_rays + 0.1 * wanted, self.min_rays, self.max_rays))

    def state_dict(self) -> dict:
        return {"n_rays": self.n_rays}

    def load_state_dict(self, state: dict):
        self.n_rays = int(state["n_rays"])

    def background_colours(self, rays_o: jt.Var, rays_d: jt.Var, is_training: bool) -> jt.Var:
        """[R, 3] float32 background each ray is composited over: the model's background network when it has one
        (what lies beyond the unit sphere), else the ``background`` colour."""
        n_rays = rays_o.shape[0]
        if getattr(self.model, "background_network", None) is not None:
            jitter = jt.rand((n_rays,), dtype=jt.float32) if is_training else None
            return self.model.background_network(rays_o, rays_d, jitter)
        if self.background == "white":
            return jt.ones((n_rays, 3), dtype=jt.float32)
        if self.background == "random" and is_training:
            return jt.rand((n_rays, 3), dtype=jt.float32)
        return jt.zeros((n_rays, 3), dtype=jt.float32)

    def render(self, rays_o: jt.Var, rays_d: jt.Var, step: int = 0, is_training: bool = False) -> dict:
        """rays_o, rays_d [R,3] (unit directions) -> dict (see docs/design.md): rgb, opacity, depth, normal,
        background per ray; gradient [S,3], laplacian [S], weights [S], points [S,3] (detached), n_samples."""
        if is_training:
            self.last_step = step
        n_rays = rays_o.shape[0]
        rays_o, rays_d = rays_o.stop_grad(), rays_d.stop_grad()
        jitter = jt.rand((n_rays,), dtype=jt.float32) if is_training else None
        samples = self.occupancy_grid.ray_march(rays_o, rays_d, self.step_size, self.max_steps, jitter,
                                                self.near_min)
        background = self.background_colours(rays_o, rays_d, is_training)
        if samples.n_samples == 0:
            return self._empty_outputs(rays_d, background)
        ray_indices = samples.ray_indices                                                # [S] int32
        dirs = rays_d[ray_indices]                                                       # [S,3]
        t_mid = samples.midpoints()                                                      # [S]
        points = rays_o[ray_indices] + dirs * t_mid.reshape((-1, 1))                     # [S,3]
        n_samples = samples.n_samples
        free = None
        if is_training and self.free_points > 0:
            # One network call for the ray samples and the free points: fewer launches than two.
            free_points, free_empty = self.occupancy_grid.free_points(self.free_points)
            geometry = self.model.sdf_network.gradient(jt.concat([points, free_points], dim=0), laplacian=True)
            free = {"sdf": geometry["sdf"][n_samples:], "gradient": geometry["gradient"][n_samples:],
                    "known_empty": free_empty}
            geometry = {k: v[:n_samples] for k, v in geometry.items()}
        else:
            geometry = self.model.sdf_network.gradient(points, laplacian=is_training)
        alpha = neus_alpha(geometry["sdf"], geometry["gradient"], dirs, samples.lengths(),
                           self.model.variance_network.inv_s(), cos_anneal_ratio(step, self.anneal_end))
        weights = render_weights(alpha, samples.packed_info, ray_indices)                # [S]
        normals = safe_normalize(geometry["gradient"])                                   # [S,3]
        opacity = accumulate(weights, None, ray_indices, n_rays)                         # [R,1]
        normal = safe_normalize(accumulate(weights, normals, ray_indices, n_rays), fallback=-rays_d)  # [R,3]
        if getattr(self.model, "post_decoding", False):
            feature = accumulate(weights, geometry["feature"], ray_indices, n_rays)      # [R,F]
            feature = feature / jt.maximum(opacity, jt.full_like(opacity, _MIN_OPACITY))
            rgb = opacity * self.model.color_network(feature, rays_d, normal)            # [R,3]
        else:
            colours = self.model.color_network(geometry["feature"], dirs, normals)       # [S,3]
            rgb = accumulate(weights, colours, ray_indices, n_rays)                      # [R,3]
        laplacian = geometry.get("laplacian")
        outputs = {
            "rgb": rgb + (1.0 - opacity) * background,
            "opacity": opacity,
            "depth": accumulate(weights, t_mid.reshape((-1, 1)), ray_indices, n_rays),   # [R,1]
            "normal": normal,
            "background": background,
            "gradient": geometry["gradient"],
            "laplacian": laplacian if laplacian is not None else jt.zeros((samples.n_samples,)),
            "weights": weights,
            "points": points.detach(),
            "n_samples": n_samples,
        }
        if free is not None:
            outputs.update(free_sdf=free["sdf"], free_gradient=free["gradient"], free_known_empty=free["known_empty"])
        return outputs

    def _empty_outputs(self, rays_d, background):
        """Outputs for a batch where no ray has a sample: everything is background."""
        n_rays = rays_d.shape[0]
        zeros = jt.zeros((n_rays, 1), dtype=jt.float32)
        return {"rgb": background, "opacity": zeros, "depth": zeros.clone(), "normal": -rays_d,
                "background": background, "gradient": jt.zeros((0, 3)), "laplacian": jt.zeros((0,)),
                "weights": jt.zeros((0,)), "points": jt.zeros((0, 3)), "n_samples": 0}

    def render_image(self, rays: dict, chunk: int = 4096, step: Optional[int] = None):
        """``rays``: a dataset's ``image_rays`` dict (rays_o, rays_d, H, W) -> numpy rgb [H,W,3], normal [H,W,3],
        depth [H,W], opacity [H,W]."""
        out = self.render_chunked(rays["rays_o"], rays["rays_d"], chunk=chunk, step=step)
        H, W = rays["H"], rays["W"]
        return (out["rgb"].reshape(H, W, 3), out["normal"].reshape(H, W, 3), out["depth"].reshape(H, W),
                out["opacity"].reshape(H, W))

    def render_chunked(self, rays_o, rays_d, chunk: int = 4096, step: Optional[int] = None) -> dict:
        """Inference over many rays in chunks without gradients -> dict of numpy float32 arrays
        rgb [R,3], opacity [R,1], depth [R,1], normal [R,3]. ``step`` (default: the last training step) sets the
        cos annealing."""
        if int(chunk) < 1:
            raise ValueError(f"chunk: expected >= 1, got {chunk}")
        step = self.last_step if step is None else step
        rays_o = rays_o if isinstance(rays_o, jt.Var) else jt.array(np.asarray(rays_o, dtype=np.float32))
        rays_d = rays_d if isinstance(rays_d, jt.Var) else jt.array(np.asarray(rays_d, dtype=np.float32))
        keys = ("rgb", "opacity", "depth", "normal")
        parts = {k: [] for k in keys}
        with jt.no_grad():
            for begin in range(0, rays_o.shape[0], int(chunk)):
                out = self.render(rays_o[begin:begin + chunk], rays_d[begin:begin + chunk], step, False)
                for k in keys:
                    parts[k].append(out[k].numpy().astype(np.float32))
        return {k: np.concatenate(v, axis=0) if v else np.zeros((0, 1 if k in ("opacity", "depth") else 3),
                                                                 np.float32) for k, v in parts.items()}
