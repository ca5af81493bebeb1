"""Instant-NeuS model: the SDF, colour and variance networks the renderer queries, their step schedule, their
optimiser groups, and the no-gradient queries that the occupancy grid and the mesh exporter make."""
from typing import List, Optional, Sequence

import numpy as np
import jittor as jt
from jittor import nn

from jnerf.models.networks.build import build_module
from jnerf.utils.registry import NETWORKS

__all__ = ["InstantNeuS"]


@NETWORKS.register_module()
class InstantNeuS(nn.Module):
    """Holds ``sdf_network``, ``color_network`` and ``variance_network`` (config dicts or built modules).

    A colour-network dict without ``feature_dim`` gets the SDF network's; an SDF-network dict without a box gets
    ``bbox_min``/``bbox_max`` (the scene box, a run-time value). ``post_decoding`` tells the renderer to composite
    features and normals per ray and decode colour once per ray instead of per sample. ``background_network``
    (None, or e.g. a ``BackgroundNeRF`` config) models what lies outside the unit sphere, for scenes without masks.
    """

    def __init__(self, sdf_network, color_network, variance_network, post_decoding: bool = True,
                 background_network=None, bbox_min: Optional[Sequence[float]] = None,
                 bbox_max: Optional[Sequence[float]] = None):
        super().__init__()
        box = {} if bbox_min is None else dict(bbox_min=list(bbox_min), bbox_max=list(bbox_max))
        self.sdf_network = build_module(sdf_network, NETWORKS, **box)
        self.color_network = build_module(color_network, NETWORKS, feature_dim=self.sdf_network.feature_dim)
        self.variance_network = build_module(variance_network, NETWORKS)
        if self.color_network.feature_dim != self.sdf_network.feature_dim:
            raise ValueError(f"InstantNeuS: color_network.feature_dim ({self.color_network.feature_dim}) must equal "
                             f"sdf_network.feature_dim ({self.sdf_network.feature_dim})")
        self.post_decoding = bool(post_decoding)
        self.background_network = (None if background_network is None
                                   else build_module(background_network, NETWORKS))

    def update_step(self, step: int):
        """Advance the step-driven schedules (the SDF network's active hash levels)."""
        self.sdf_network.update_step(step)

    def param_groups(self) -> List[dict]:
        """Optimiser groups by role, so the config can give each its own lr: the hash tables ('encoding'), NeuS'
        sharpness ('variance') and every MLP weight ('mlp')."""
        encoding = list(self.sdf_network.encoding.parameters())
        if self.background_network is not None:
            encoding += list(self.background_network.encoding.parameters())
        variance = list(self.variance_network.parameters())
        taken = {id(p) for p in encoding + variance}
        mlp = [p for p in self.parameters() if id(p) not in taken]
        return [dict(name=name, params=params)
                for name, params in (("encoding", encoding), ("mlp", mlp), ("variance", variance)) if params]

    # ------------------------------------------------------------------------------ queries without gradients
    def inv_s_value(self) -> float:
        """NeuS' current sharpness as a float (reading it waits for the device)."""
        return float(self.variance_network.inv_s().numpy().reshape(-1)[0])

    def sdf_numpy(self, points: np.ndarray) -> np.ndarray:
        """SDF [N] float32 at numpy points [N,3] (normalised frame)."""
        with jt.no_grad():
            sdf, _ = self.sdf_network(jt.array(np.asarray(points, np.float32)))
            return sdf.numpy().reshape(-1)

    def surface_colors(self, points: np.ndarray, chunk: int = 1 << 18) -> np.ndarray:
        """Colour [N,3] float32 of surface points [N,3] seen head-on (view direction = -normal), the usual choice
        for an albedo-like export; evaluated in chunks of ``chunk`` points."""
        colors = []
        with jt.no_grad():
            for start in range(0, len(points), chunk):
                geo = self.sdf_network.gradient(jt.array(np.asarray(points[start:start + chunk], np.float32)),
                                                laplacian=False)
                normal = geo["gradient"] / (jt.norm(geo["gradient"], dim=-1, keepdim=True) + 1e-8)
                colors.append(self.color_network(geo["feature"], -normal, normal).numpy())
        return np.concatenate(colors, 0) if colors else np.zeros((0, 3), np.float32)
