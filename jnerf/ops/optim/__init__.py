"""Optimiser updates: ``adam_update`` runs the fused CUDA kernel of ``optim.py`` on float32 tensors when
``jt.flags.use_cuda`` is set, otherwise the Jittor-ops reference in ``reference.py`` (jittor.nn.Adam's arithmetic)."""
from jnerf.ops import cuda_kernel

from .reference import adam_step_size, adam_update_reference

__all__ = ["adam_update", "adam_step_size"]


def adam_update(param, grad, m, v, step_size, beta1, beta2, eps, weight_decay=0.0):
    """One Adam update of one tensor: param, grad, m, v (one shape) -> (param', m', v'); ``step_size`` is
    ``adam_step_size(lr, beta1, beta2, step)``."""
    impl = None
    if all(str(x.dtype) == "float32" for x in (param, grad, m, v)):
        impl = cuda_kernel("jnerf.ops.optim.optim", "adam_update_cuda")
    return (impl or adam_update_reference)(param, grad, m, v, step_size, beta1, beta2, eps, weight_decay)
