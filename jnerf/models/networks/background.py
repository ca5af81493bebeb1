"""The background outside the object's unit sphere, for scenes without masks: a small hash-grid NeRF on contracted
coordinates (NeRF++'s idea of rendering the outside separately, with mip-NeRF 360's contraction).

Each ray is sampled from where it leaves the unit sphere to infinity, uniformly in inverse distance; a point x with
|x| > 1 is contracted to c(x) = (2 - 1/|x|) x / |x|, which maps all of outer space into the shell 1 < |c| < 2, where
a hash grid and two small MLPs give density and colour. Alpha uses the spacing of the contracted points, and the last
sample takes what remains, so the background is opaque. It runs on the same ops as the foreground (hash encoding,
packed compositing): CUDA kernels on a GPU, their references on the CPU.
"""
from typing import Optional

import numpy as np
import jittor as jt
from jittor import nn

from jnerf.models.encoders.sh import SHEncoder
from jnerf.models.networks.build import build_module
from jnerf.ops.volume_render import accumulate, render_weights
from jnerf.utils.checks import require_int
from jnerf.utils.registry import ENCODERS, NETWORKS, build_from_cfg

__all__ = ["BackgroundNeRF", "contract", "sphere_exit"]

_NEAR_MISS = 1e-2     # rays that miss the sphere are background from (almost) the camera on


def contract(x: jt.Var) -> jt.Var:
    """[N,3] -> [N,3]: identity inside the unit ball, (2 - 1/|x|) x/|x| outside (all of space into |c| < 2)."""
    norm = jt.sqrt((x * x).sum(dim=-1, keepdims=True) + 1e-12)
    return jt.where(norm <= 1.0, x, (2.0 - 1.0 / norm) * x / norm)


def sphere_exit(rays_o: jt.Var, rays_d: jt.Var) -> jt.Var:
    """[R]: the t at which a ray leaves the unit sphere (the larger root of |o + t d| = 1, d unit); a small positive
    t for rays that miss it."""
    b = (rays_o * rays_d).sum(dim=-1)
    c = (rays_o * rays_o).sum(dim=-1) - 1.0
    disc = b * b - c
    exit_t = -b + jt.sqrt(jt.maximum(disc, jt.zeros_like(disc)))
    return jt.where(disc > 0, jt.maximum(exit_t, jt.full_like(exit_t, _NEAR_MISS)), jt.full_like(exit_t, _NEAR_MISS))


@NETWORKS.register_module()
class BackgroundNeRF(nn.Module):
    """rays -> background colour [R,3]. ``encoding``: the hash grid over the contracted cube [-2,2]^3 (config dict or
    module); ``n_samples`` per ray; ``hidden_dim``, ``feature_dim``: the density MLP's width and the features it
    hands the colour MLP (which also sees SH(view direction) of ``sh_degree``)."""

    def __init__(self, encoding, n_samples: int = 32, hidden_dim: int = 64, feature_dim: int = 15,
                 sh_degree: int = 4):
        super().__init__()
        self.n_samples = require_int("background_network", "n_samples", n_samples, 2)
        self.encoding = build_module(encoding, ENCODERS)
        self.feature_dim = require_int("background_network", "feature_dim", feature_dim, 1)
        self.density_mlp = build_from_cfg("MLP", NETWORKS, in_dim=self.encoding.out_dim, out_dim=1 + feature_dim,
                                          hidden_dim=hidden_dim, n_hidden_layers=1, activation="relu")
        self.dir_encoding = SHEncoder(sh_degree)
        self.color_mlp = build_from_cfg("MLP", NETWORKS, in_dim=feature_dim + self.dir_encoding.out_dim, out_dim=3,
                                        hidden_dim=hidden_dim, n_hidden_layers=1, activation="relu",
                                        output_activation="sigmoid")

    def sample_t(self, rays_o: jt.Var, rays_d: jt.Var, jitter: Optional[jt.Var]) -> jt.Var:
        """[R,K] distances from the sphere's exit towards infinity, uniform in 1/t (stratified; ``jitter`` [R] in
        [0,1) or None for bin centres)."""
        n_rays, k = rays_o.shape[0], self.n_samples
        offset = jt.full((n_rays, 1), 0.5) if jitter is None else jitter.reshape((-1, 1))
        u = (jt.arange(k).float32().reshape((1, -1)) + offset) / k                    # [R,K] in (0,1]
        # CUDA's uniform draws include 1.0 (curand's (0,1]), which would put the last sample at t = inf and make
        # the contraction NaN; a quarter bin short of infinity is as far as any sample needs to go.
        u = jt.minimum(u, jt.full_like(u, 1.0 - 0.25 / k))
        return sphere_exit(rays_o, rays_d).reshape((-1, 1)) / (1.0 - u)              # [R,K]

    def execute(self, rays_o: jt.Var, rays_d: jt.Var, jitter: Optional[jt.Var] = None) -> jt.Var:
        """rays_o, rays_d [R,3] (unit directions) -> colour [R,3] of what lies beyond the unit sphere."""
        n_rays, k = rays_o.shape[0], self.n_samples
        t = self.sample_t(rays_o.stop_grad(), rays_d.stop_grad(), jitter).stop_grad()  # [R,K]
        points = contract(rays_o.reshape((-1, 1, 3)) + rays_d.reshape((-1, 1, 3)) * t.unsqueeze(-1))  # [R,K,3]
        points = points.stop_grad()
        spacing = jt.sqrt(((points[:, 1:] - points[:, :-1]) ** 2).sum(dim=-1) + 1e-12)  # [R,K-1]
        flat = points.reshape((-1, 3))
        # Detached: Jittor does not carry stop_grad to derived vars, and the CUDA backward would add d/dx atomics
        out = self.density_mlp(self.encoding((flat * 0.25 + 0.5).stop_grad()))         # [R*K, 1+F]
        sigma = jt.nn.softplus(out[:, 0] - 1.0).reshape((n_rays, k))                    # [R,K] >= 0
        alpha = 1.0 - jt.exp(-sigma[:, :-1] * spacing)                                  # [R,K-1]
        alpha = jt.concat([alpha, jt.ones((n_rays, 1))], dim=1).reshape(-1)            # the last one: opaque
        ray_indices = jt.arange(n_rays).int32().reshape((-1, 1)).repeat(1, k).reshape(-1)  # [R*K]
        packed_info = jt.stack([jt.arange(n_rays).int32() * k, jt.full((n_rays,), k).int32()], dim=1)
        weights = render_weights(alpha, packed_info, ray_indices)                       # [R*K]
        dirs = rays_d.reshape((-1, 1, 3)).repeat(1, k, 1).reshape((-1, 3))
        colours = self.color_mlp(jt.concat([out[:, 1:], self.dir_encoding(dirs)], dim=1))  # [R*K,3]
        return accumulate(weights, colours, ray_indices, n_rays)                        # [R,3]
