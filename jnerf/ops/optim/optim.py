"""CUDA optimiser updates (kernel in optim.h), same signature and semantics as ``reference.py``."""
import jittor as jt

from ..cuda_utils import cuda_header, kernel_scope

__all__ = ["adam_update_cuda"]

_ADAM_SRC = """
    // in0 param, in1 grad, in2 m, in3 v [n] f32 -> out0 param', out1 m', out2 v' [n] f32
    jnerf::AdamParams a;
    a.beta1 = data["beta1"]; a.one_minus_beta1 = data["one_minus_beta1"];
    a.beta2 = data["beta2"]; a.one_minus_beta2 = data["one_minus_beta2"];
    a.step_size = data["step_size"]; a.eps = data["eps"]; a.weight_decay = data["weight_decay"];
    const uint64_t n = in0->num;
    if (n > 0)
        jnerf::adam_update_kernel<<<jnerf::stride_blocks(n), jnerf::kThreads>>>(
            in0_p, in1_p, in2_p, in3_p, out0_p, out1_p, out2_p, n, a);
"""


def adam_update_cuda(param, grad, m, v, step_size, beta1, beta2, eps, weight_decay=0.0):
    """param, grad, m, v: float32 Vars of one shape -> (param', m', v') in one kernel launch; as
    ``reference.adam_update_reference``. The scalars travel in the data map: no recompile when they change."""
    data = dict(beta1=float(beta1), one_minus_beta1=float(1 - beta1), beta2=float(beta2),
                one_minus_beta2=float(1 - beta2), step_size=float(step_size), eps=float(eps),
                weight_decay=float(weight_decay))
    with kernel_scope():
        return jt.code([param.shape] * 3, [param.dtype] * 3, [param, grad, m, v], cuda_header=cuda_header("optim"),
                       data=data, cuda_src=_ADAM_SRC)
