"""Networks (NETWORKS registry): the MLP (plain and fully fused), the SDF/colour/variance networks and the
Instant-NeuS model holding them."""
from .mlp import MLP
from .fully_fused_mlp import FullyFusedMLP
from .sdf_network import SDFNetwork
from .color_network import ColorNetwork
from .variance_network import VarianceNetwork
from .background import BackgroundNeRF
from .instant_neus import InstantNeuS

__all__ = ["MLP", "FullyFusedMLP", "SDFNetwork", "ColorNetwork", "VarianceNetwork", "BackgroundNeRF", "InstantNeuS"]
