"""Colour network: geometry feature + spherical-harmonics view direction (+ normal) -> colour.

With post decoding the renderer calls it once per ray on composited features and normals; otherwise per sample.
"""
from typing import Optional

import jittor as jt
from jittor import nn

from jnerf.models.encoders.sh import SHEncoder
from jnerf.utils.checks import require_int
from jnerf.utils.registry import NETWORKS, build_from_cfg

__all__ = ["ColorNetwork"]


def _check_rows(name, value, n_rows, n_cols):
    if value.ndim != 2 or value.shape[1] != n_cols or (n_rows is not None and value.shape[0] != n_rows):
        rows = "N" if n_rows is None else n_rows
        raise ValueError(f"ColorNetwork: {name} must have shape [{rows}, {n_cols}], got {value.shape}")


@NETWORKS.register_module()
class ColorNetwork(nn.Module):
    """(feature [N,F], dirs [N,3] unit, normals [N,3]) -> [N, out_dim]; hidden ReLU layers, ``activation`` on the
    output ('sigmoid' or 'none'). ``mlp_type`` is the NETWORKS name of the MLP class, or its config dict
    (e.g. ``dict(type='FullyFusedMLP', min_fused_rows=0)``)."""

    def __init__(self, feature_dim, hidden_dim=64, n_hidden_layers=2, sh_degree=4, use_normal=True,
                 activation="sigmoid", out_dim=3, mlp_type="MLP"):
        super().__init__()
        self.feature_dim = require_int("ColorNetwork", "feature_dim", feature_dim, 1)
        self.use_normal = bool(use_normal)
        self.dir_encoding = SHEncoder(sh_degree)
        in_dim = self.feature_dim + self.dir_encoding.out_dim + (3 if self.use_normal else 0)
        self.mlp = build_from_cfg(mlp_type, NETWORKS, in_dim=in_dim, out_dim=out_dim,
                                  hidden_dim=hidden_dim, n_hidden_layers=n_hidden_layers, activation="relu",
                                  output_activation=activation)

    def execute(self, feature: jt.Var, dirs: jt.Var, normals: Optional[jt.Var] = None) -> jt.Var:
        _check_rows("feature", feature, None, self.feature_dim)
        _check_rows("dirs", dirs, feature.shape[0], 3)
        inputs = [feature, self.dir_encoding(dirs)]
        if self.use_normal:
            if normals is None:
                raise ValueError("ColorNetwork: normals are required when use_normal=True")
            _check_rows("normals", normals, feature.shape[0], 3)
            inputs.append(normals)
        return self.mlp(jt.concat(inputs, dim=1))
