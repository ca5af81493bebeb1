"""Instant-NeuS model: the SDF, colour and variance networks the renderer queries, and their step schedule."""
from jittor import nn

from jnerf.models.networks.build import build_module
from jnerf.utils.registry import NETWORKS

__all__ = ["InstantNeuS"]


@NETWORKS.register_module()
class InstantNeuS(nn.Module):
    """Holds ``sdf_network``, ``color_network`` and ``variance_network`` (config dicts or built modules).

    A colour-network dict without ``feature_dim`` gets the SDF network's. ``post_decoding`` tells the renderer to
    composite features and normals per ray and decode colour once per ray instead of per sample.
    """

    def __init__(self, sdf_network, color_network, variance_network, post_decoding=True):
        super().__init__()
        self.sdf_network = build_module(sdf_network, NETWORKS)
        self.color_network = build_module(color_network, NETWORKS, feature_dim=self.sdf_network.feature_dim)
        self.variance_network = build_module(variance_network, NETWORKS)
        if self.color_network.feature_dim != self.sdf_network.feature_dim:
            raise ValueError(f"InstantNeuS: color_network.feature_dim ({self.color_network.feature_dim}) must equal "
                             f"sdf_network.feature_dim ({self.sdf_network.feature_dim})")
        self.post_decoding = bool(post_decoding)

    def update_step(self, step):
        """Advance the step-driven schedules (the SDF network's active hash levels)."""
        self.sdf_network.update_step(step)
