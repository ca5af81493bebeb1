"""SDF network of Instant-NeuS: hash grid + small MLP, sphere initialisation, numerical gradient and Laplacian,
and the progressive schedule of active hash levels.

Points come in the normalised frame. The bbox cube (centre c, half size r = max(size)/2, isotropic) maps them to
[0,1]^3 for the hash grid and to [-1,1]^3 for the xyz the MLP also sees; the MLP works in those [-1,1] units and its
SDF channel is multiplied by r so that the SDF is in normalised-frame units.
"""
import math
from typing import Dict, Optional, Tuple

import numpy as np

import jittor as jt
from jittor import nn

from jnerf.dataset.cameras import fibonacci_directions
from jnerf.models.networks.build import build_module
from jnerf.models.networks.mlp import MLP
from jnerf.ops.hashgrid import stencil_points
from jnerf.utils.checks import require_int
from jnerf.utils.registry import ENCODERS, NETWORKS, build_from_cfg

__all__ = ["SDFNetwork", "init_sphere_sdf", "spread_directions"]

GRAD_MODES = ("central", "tetrahedral")
_INIT_NOISE = 1e-4  # breaks the symmetry of the hand-set sphere weights, as SAL does
_INIT_FIT_POINTS = 4096


def _random_rotation():
    q, r = np.linalg.qr(np.random.standard_normal((3, 3)))
    q = q * np.sign(np.diag(r))
    return q if np.linalg.det(q) > 0 else -q


def spread_directions(n):
    """n unit vectors spread evenly over the sphere (Fibonacci lattice, randomly rotated) [n, 3] float64."""
    return fibonacci_directions(n) @ _random_rotation().T


def init_sphere_sdf(mlp, radius):
    """Set ``mlp`` so that output 0 is ~ |p| - radius, p = its first 3 inputs (the other inputs start ignored).

    SAL/IDR draw the first layer from a Gaussian, which gives a surface 10-20% off a sphere at 64 units. Here the
    first layer's rows point along evenly spread directions: sum_j relu(u_j . p) ~ |p| * n/4 for n spread unit
    vectors u_j, a sphere to ~1%. Deeper hidden layers start as the identity (relu/softplus of a non-negative value
    is about itself); the output bias is then fitted so that the mean error over the [-1,1] cube is zero, which
    also absorbs softplus's offset near 0.
    """
    if mlp.n_hidden_layers < 1 or mlp.activation == "none":
        raise ValueError("sphere initialisation needs at least one hidden layer with a relu/softplus activation")
    if mlp.in_dim < 3:
        raise ValueError(f"sphere initialisation needs the 3 xyz inputs first, but the MLP has {mlp.in_dim} inputs")
    if any(linear.bias is None for linear in mlp.linears):
        raise ValueError("sphere initialisation needs an MLP with biases (the output bias sets the radius)")
    width = mlp.hidden_dim
    first_scale = math.sqrt(6.0 / width)  # row norm of a He-initialised 3-input layer, about
    first = np.zeros((width, mlp.in_dim))
    first[:, :3] = first_scale * spread_directions(width)
    _assign(mlp.linears[0], first, 0.0)
    for linear in list(mlp.linears)[1:-1]:
        _assign(linear, np.eye(width) + np.random.normal(0, _INIT_NOISE, (width, width)), 0.0)
    last = mlp.linears[-1]
    weight = last.weight.numpy().astype(np.float64)  # feature rows keep the default init
    weight[0] = 4.0 / (width * first_scale) + np.random.normal(0, _INIT_NOISE, width)
    bias = last.bias.numpy().astype(np.float64)
    bias[0] = 0.0
    _assign(last, weight, bias)
    bias[0] = _fitted_output_bias(mlp, radius)
    _assign(last, weight, bias)


def _fitted_output_bias(mlp, radius):
    points = np.random.uniform(-1, 1, (_INIT_FIT_POINTS, 3))
    inputs = np.zeros((_INIT_FIT_POINTS, mlp.in_dim), np.float32)
    inputs[:, :3] = points
    with jt.no_grad():
        unbiased = mlp(jt.array(inputs))[:, 0].numpy()
    return float(np.mean(np.linalg.norm(points, axis=1) - radius - unbiased))


def _assign(linear, weight, bias):
    linear.weight.assign(jt.array(np.asarray(weight, np.float32)))
    linear.bias.assign(jt.array(np.broadcast_to(np.asarray(bias, np.float32), linear.bias.shape).copy()))


def _check_bbox(bbox_min, bbox_max):
    lo = np.asarray(bbox_min, np.float64).reshape(-1)
    hi = np.asarray(bbox_max, np.float64).reshape(-1)
    if lo.shape != (3,) or hi.shape != (3,):
        raise ValueError(f"SDFNetwork: bbox_min and bbox_max must have 3 values, got {lo.shape} and {hi.shape}")
    if not np.all(hi > lo):
        raise ValueError(f"SDFNetwork: bbox_max must exceed bbox_min on every axis, got {lo} and {hi}")
    return lo, hi


@NETWORKS.register_module()
class SDFNetwork(nn.Module):
    """Points [N,3] (normalised frame) -> (sdf [N], feature [N, feature_dim]).

    ``encoding``: the hash grid (config dict or module, with ``n_levels``, ``start_level``, ``n_active``,
    ``set_active_levels``, ``cell_size``, ``encode_stencil``). ``sphere_init_radius`` (normalised-frame units, None
    for the MLP's default init) sets the initial surface to the sphere of that radius around the bbox centre.
    ``warmup_steps`` and ``level_steps`` drive ``update_step``. ``mlp_type`` is the NETWORKS name of the MLP class,
    or its config dict (e.g. ``dict(type='FullyFusedMLP', min_fused_rows=0)``).
    """

    def __init__(self, encoding, bbox_min, bbox_max, hidden_dim=64, n_hidden_layers=1, feature_dim=16,
                 sphere_init_radius=0.5, softplus_beta=100, include_xyz=True, grad_mode="central",
                 warmup_steps=1000, level_steps=500, mlp_type="MLP"):
        super().__init__()
        if grad_mode not in GRAD_MODES:
            raise ValueError(f"SDFNetwork: grad_mode must be one of {GRAD_MODES}, got {grad_mode!r}")
        require_int("SDFNetwork", "feature_dim", feature_dim, 1)
        if warmup_steps < 0 or level_steps < 1:
            raise ValueError(f"SDFNetwork: need warmup_steps >= 0 and level_steps >= 1, got {warmup_steps} "
                             f"and {level_steps}")
        if sphere_init_radius is not None and not include_xyz:
            raise ValueError("SDFNetwork: sphere_init_radius needs include_xyz=True (the hash features start at ~0)")
        lo, hi = _check_bbox(bbox_min, bbox_max)
        self.center = (lo + hi) / 2  # np [3]
        self.half_size = float(np.max(hi - lo) / 2)  # r
        self.encoding = build_module(encoding, ENCODERS)
        self.include_xyz = bool(include_xyz)
        self.feature_dim = int(feature_dim)
        self.grad_mode = grad_mode
        self._stencil_sign = 1.0  # -1 mirrors the stencil (tetrahedral: every other training step)
        self.warmup_steps = int(warmup_steps)
        self.level_steps = int(level_steps)
        in_dim = (3 if self.include_xyz else 0) + self.encoding.out_dim
        self.mlp = build_from_cfg(mlp_type, NETWORKS, in_dim=in_dim, out_dim=1 + self.feature_dim,
                                  hidden_dim=hidden_dim, n_hidden_layers=n_hidden_layers, activation="softplus",
                                  softplus_beta=softplus_beta)
        if sphere_init_radius is not None:
            init_sphere_sdf(self.mlp, sphere_init_radius / self.half_size)

    def execute(self, x: jt.Var) -> Tuple[jt.Var, jt.Var]:
        if x.ndim != 2 or x.shape[1] != 3:
            raise ValueError(f"SDFNetwork: points must have shape [N, 3], got {x.shape}")
        local = self._local(x)
        return self._decode(local, self.encoding(local * 0.5 + 0.5))

    def _local(self, x: jt.Var) -> jt.Var:
        """Normalised-frame points -> the cube's [-1,1] units."""
        return (x - jt.array(self.center.astype(np.float32))) / self.half_size

    def _decode(self, local: jt.Var, features: jt.Var) -> Tuple[jt.Var, jt.Var]:
        """MLP on [xyz, hash features]: local [N,3], features [N, L*F] -> (sdf [N], feature [N, feature_dim])."""
        inputs = jt.concat([local, features], dim=1) if self.include_xyz else features
        out = self.mlp(inputs)  # [N, 1 + feature_dim]
        return out[:, 0] * self.half_size, out[:, 1:]

    def _decode_stencil(self, local: jt.Var, features: jt.Var, n: int) -> Tuple[jt.Var, jt.Var]:
        """``_decode`` of the KN stencil rows, where only the first n (the centres) need the geometry feature:
        -> (sdf [KN], feature [n, feature_dim]). With the plain MLP the offset rows skip the output layer's
        feature columns (16 of its 17 outputs) and their gradients."""
        if type(self.mlp) is not MLP:  # e.g. the fused MLP: one call on all rows
            sdf_all, feature_all = self._decode(local, features)
            return sdf_all, feature_all[:n]
        inputs = jt.concat([local, features], dim=1) if self.include_xyz else features
        hidden = self.mlp.hidden(inputs)  # [KN, hidden_dim]
        sdf_all = self.mlp.output(hidden, 0, 1)[:, 0] * self.half_size
        return sdf_all, self.mlp.output(hidden[:n], 1)

    def finite_difference_step(self) -> float:
        """One cell of the finest active hash level, in normalised-frame units."""
        return self.encoding.cell_size(self.encoding.n_active - 1) * 2 * self.half_size

    def gradient(self, x: jt.Var, laplacian: bool = True) -> Dict[str, Optional[jt.Var]]:
        """Numerical gradient and Laplacian with a step of one finest-active cell, from ``grad_mode``'s stencil:
        "central" (the centre and x +- h e_a: second order, 7 points) or "tetrahedral" (the centre and 4
        tetrahedron vertices x + h k_i: the gradient to first order, 5 points, so ~2/7 less SDF work; the
        stencil is mirrored every other training step so that its first-order error, h times the Hessian's
        off-diagonal, does not always point the same way). All points go through the network in one batch,
        and their hash features come from one stencil call that shares the corners the points have in common.
        The points are detached: the numerical gradient needs no d/dx, and the parameters get their gradients
        either way. Returns dict sdf [N], feature [N,F], gradient [N,3], laplacian [N] (None when not asked)."""
        if x.ndim != 2 or x.shape[1] != 3:
            raise ValueError(f"SDFNetwork.gradient: points must have shape [N, 3], got {x.shape}")
        n = x.shape[0]
        local = self._local(x.stop_grad())
        sign = self._stencil_sign
        cell = sign * self.encoding.cell_size(self.encoding.n_active - 1)  # the step in the encoder's [0,1] units
        eps = sign * self.finite_difference_step()  # the same step in normalised-frame units
        stencil = self.grad_mode
        # Detached again: Jittor does not carry stop_grad to derived vars, and the CUDA stencil kernels run only for
        # an x that needs no gradient (else the plain kernels on the KN points, with d/dx atomics nobody reads)
        features = self.encoding.encode_stencil((local * 0.5 + 0.5).stop_grad(), cell, stencil)  # [KN, L*F]
        sdf_all, feature = self._decode_stencil(stencil_points(local, 2 * cell, stencil), features, n)
        sdf_all = sdf_all.reshape(-1, n)
        centre = sdf_all[0]
        if stencil == "central":
            plus, minus = sdf_all[1::2], sdf_all[2::2]  # [3,N], [3,N]
            # [3,N] -> [N,3] as a gather: Jittor ran .transpose(1, 0) here and its gradient through a generic
            # transpose that took 0.7-1.1 ms per call on an H200 for these few MB, 7-10% of a training step
            gradient = ((plus - minus) / (2 * eps)).reindex([n, 3], ["i1", "i0"])
            second = (plus + minus - 2 * centre.unsqueeze(0)).sum(dim=0) if laplacian else None
        else:
            # sum_i k_i f(x + eps k_i) = 4 eps grad f + O(eps^2); sum_i f(x + eps k_i) - 4 f(x) = 2 eps^2 lap f +
            # O(eps^3) (sum k_i = 0, sum k_i k_i^T = 4 I); the vertices' order is TETRAHEDRON's.
            f1, f2, f3, f4 = sdf_all[1], sdf_all[2], sdf_all[3], sdf_all[4]
            gradient = jt.stack([f1 - f2 - f3 + f4, f3 + f4 - f1 - f2, f2 + f4 - f1 - f3], dim=1) / (4 * eps)
            second = 0.5 * (f1 + f2 + f3 + f4 - 4 * centre) if laplacian else None
        return {
            "sdf": centre,
            "feature": feature,
            "gradient": gradient,
            "laplacian": second / (eps * eps) if laplacian else None,
        }

    def active_levels_at(self, step: int) -> int:
        """Progressive schedule: start_level until warmup_steps, then one more level every level_steps."""
        start = self.encoding.start_level
        if step < self.warmup_steps:
            return start
        return min(start + 1 + (int(step) - self.warmup_steps) // self.level_steps, self.encoding.n_levels)

    def update_step(self, step: int):
        self.encoding.set_active_levels(self.active_levels_at(step))
        if self.grad_mode == "tetrahedral":
            self._stencil_sign = -1.0 if step % 2 else 1.0

    def level_schedule(self) -> dict:
        """The progressive schedule other schedules follow (the curvature weight): warmup_steps, level_steps, the
        grid's per-level growth factor and the number of levels switched on after the warm-up."""
        return dict(warmup_steps=self.warmup_steps, level_steps=self.level_steps,
                    growth=float(self.encoding.per_level_scale),
                    levels_after_warmup=self.encoding.n_levels - self.encoding.start_level - 1)
