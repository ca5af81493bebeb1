"""The fully fused MLP's function with plain Jittor ops in fp32: the CPU path, the path for batches too small to
pay for the kernel, and the semantics the CUDA kernel (fused_mlp.h, fp16 weights and activations, fp32
accumulation) approximates. jnerf's ``MLP`` runs exactly this, so the two paths share one definition of the layers
and activations."""
import jittor as jt
from jittor import nn

__all__ = ["softplus", "hidden_activation", "output_activation", "fused_mlp_reference", "HIDDEN_ACTIVATIONS",
           "OUTPUT_ACTIVATIONS"]

HIDDEN_ACTIVATIONS = ("relu", "softplus", "none")
OUTPUT_ACTIVATIONS = ("none", "sigmoid")


def softplus(x, beta):
    """log(1 + exp(beta*x)) / beta, written so that large |beta*x| neither overflows nor loses the linear part."""
    return jt.nn.relu(x) + jt.log(1.0 + jt.exp(-beta * jt.abs(x))) / beta


def hidden_activation(x, act, beta):
    """``act`` in HIDDEN_ACTIVATIONS applied to x (``beta``: softplus sharpness)."""
    if act == "relu":
        return jt.nn.relu(x)
    if act == "softplus":
        return softplus(x, beta)
    return x


def output_activation(x, out_act):
    return jt.sigmoid(x) if out_act == "sigmoid" else x


def fused_mlp_reference(x, weights, biases, spec):
    """x [N, in_dim] -> [N, out_dim] float32: L linear layers (weights [out_l, in_l], biases [out_l] or None),
    ``spec.act`` between them and ``spec.out_act`` after the last, as nn.Linear computes them."""
    for l, w in enumerate(weights):
        x = nn.matmul_transpose(x, w)
        if biases is not None:
            x = x + biases[l]
        x = hidden_activation(x, spec.act, spec.beta) if l < len(weights) - 1 else output_activation(x, spec.out_act)
    return x
