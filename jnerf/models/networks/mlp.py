"""Plain multilayer perceptron shared by the SDF and colour networks.

Parameters live in ``self.linears`` (``linears.0.weight``, ``linears.0.bias``, ...) and the activations in
``hidden_activation``/``output_activation``, so a fused implementation can subclass MLP, keep its state dict and
reuse the activations.
"""
from jittor import nn

from jnerf.ops.cublas import linear
from jnerf.ops.fused_mlp.reference import (HIDDEN_ACTIVATIONS, OUTPUT_ACTIVATIONS, hidden_activation,
                                          output_activation, softplus)
from jnerf.utils.checks import require_int
from jnerf.utils.registry import NETWORKS

__all__ = ["MLP", "softplus", "HIDDEN_ACTIVATIONS", "OUTPUT_ACTIVATIONS"]


def _check_choice(name, value, choices):
    if value not in choices:
        raise ValueError(f"MLP: {name} must be one of {choices}, got {value!r}")


@NETWORKS.register_module()
class MLP(nn.Module):
    """[N, in_dim] -> [N, out_dim]: n_hidden_layers hidden layers of hidden_dim units, then a linear output layer."""

    def __init__(self, in_dim, out_dim, hidden_dim=64, n_hidden_layers=1, activation="relu", softplus_beta=100,
                 output_activation="none", bias=True):
        super().__init__()
        _check_choice("activation", activation, HIDDEN_ACTIVATIONS)
        _check_choice("output_activation", output_activation, OUTPUT_ACTIVATIONS)
        if not softplus_beta > 0:
            raise ValueError(f"MLP: softplus_beta must be > 0, got {softplus_beta}")
        self.in_dim = require_int("MLP", "in_dim", in_dim, 1)
        self.out_dim = require_int("MLP", "out_dim", out_dim, 1)
        self.hidden_dim = require_int("MLP", "hidden_dim", hidden_dim, 1)
        self.n_hidden_layers = require_int("MLP", "n_hidden_layers", n_hidden_layers, 0)
        self.activation = activation
        self.softplus_beta = float(softplus_beta)
        self.output_activation_name = output_activation
        dims = [self.in_dim] + [self.hidden_dim] * self.n_hidden_layers + [self.out_dim]
        self.linears = nn.ModuleList([nn.Linear(a, b, bias=bias) for a, b in zip(dims[:-1], dims[1:])])

    def hidden_activation(self, x):
        return hidden_activation(x, self.activation, self.softplus_beta)

    def output_activation(self, x):
        return output_activation(x, self.output_activation_name)

    def execute(self, x):
        return self.output(self.hidden(x))

    def hidden(self, x):
        """[N, in_dim] -> the last hidden layer's activations [N, hidden_dim] (x itself without hidden layers)."""
        if x.ndim != 2 or x.shape[1] != self.in_dim:
            raise ValueError(f"MLP: input must have shape [N, {self.in_dim}], got {x.shape}")
        for layer in self.linears[:-1]:
            x = self.hidden_activation(linear(x, layer.weight, layer.bias))
        return x

    def output(self, h, begin=0, end=None):
        """The output layer on hidden activations h [N, hidden_dim]: its outputs begin..end-1 only ([N, end-begin];
        all by default), so that rows which need few outputs do not pay for the rest."""
        last = self.linears[-1]
        weight, bias = last.weight, last.bias
        if (begin, end) != (0, None):
            weight, bias = weight[begin:end], None if bias is None else bias[begin:end]
        return self.output_activation(linear(h, weight, bias))
