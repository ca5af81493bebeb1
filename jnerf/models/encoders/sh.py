"""Real spherical harmonics encoding of unit directions (view directions for the colour network).

Convention (orthonormal on the unit sphere, Condon-Shortley phase as in scipy): with scipy's complex Y_l^m,
the real basis is Y_l0, sqrt(2) Re Y_l^m for m > 0 and sqrt(2) Im Y_l^|m| for m < 0; outputs are ordered by band
l = 0..degree-1, then m = -l..l (index l^2 + l + m), which is tcnn's ordering and signs.
Cartesian form for unit (x, y, z): Y_lm = K_lm (-1)^m (d^m P_l/dz^m)(z) * {Re, Im}((x + iy)^|m|).
"""
import math

import numpy as np
from numpy.polynomial import legendre

import jittor as jt
from jittor import nn

from jnerf.ops.cublas import matmul
from jnerf.utils.registry import ENCODERS

__all__ = ["SHEncoder", "sh_coefficients"]

MAX_DEGREE = 8


def sh_coefficients(degree):
    """Per output (l, m, |m|, scaled power-series coefficients of the z polynomial), in output order."""
    terms = []
    for l in range(degree):
        for m in range(-l, l + 1):
            am = abs(m)
            norm = math.sqrt((2 * l + 1) / (4 * math.pi) * math.factorial(l - am) / math.factorial(l + am))
            if m != 0:
                norm *= math.sqrt(2.0)
            z_poly = legendre.leg2poly(legendre.legder([0] * l + [1], am))
            terms.append((l, m, am, norm * (-1) ** am * np.asarray(z_poly, dtype=np.float64)))
    return terms


def monomial_levels(max_degree):
    """The monomials x^a y^b z^c of each total degree k = 0..max_degree, each from one of degree k-1 times one axis:
    per degree, (exponents [(a, b, c)], parent index in degree k-1, axis index). Degree 0 is the monomial 1."""
    levels = [([(0, 0, 0)], [], [])]
    for _ in range(max_degree):
        previous = levels[-1][0]
        exponents, parents, axes = [], [], []
        for parent, e in enumerate(previous):
            for axis in range(3):
                child = tuple(v + (1 if a == axis else 0) for a, v in enumerate(e))
                if child not in exponents:
                    exponents.append(child)
                    parents.append(parent)
                    axes.append(axis)
        levels.append((exponents, parents, axes))
    return levels


def sh_monomial_matrix(degree):
    """[n_monomials, degree^2] float64: each output of SHEncoder(degree) as a combination of the monomials of
    ``monomial_levels(degree - 1)`` (in their order, degree by degree): K_lm z_poly(z) times Re or Im of
    (x + iy)^|m| expanded by the binomial theorem."""
    index = {}
    for exponents, _, _ in monomial_levels(degree - 1):
        for e in exponents:
            index[e] = len(index)
    matrix = np.zeros((len(index), degree ** 2))
    for column, (_, m, am, coef) in enumerate(sh_coefficients(degree)):
        for j in range(am + 1):  # binom(am, j) x^(am-j) (iy)^j: i^j real for even j, imaginary for odd j
            if (j % 2 == 0) != (m >= 0):
                continue
            sign = (-1) ** (j // 2)
            for k, c in enumerate(coef):
                if c != 0:
                    matrix[index[(am - j, j, k)], column] += sign * math.comb(am, j) * float(c)
    return matrix


@ENCODERS.register_module()
class SHEncoder(nn.Module):
    """Unit directions [N,3] -> [N, degree^2] float32 real SH (bands 0..degree-1); inputs are not re-normalised.

    Computed as the monomials of x, y, z up to degree-1 (one gather-and-multiply per degree) times a constant
    matrix: at degree 4, 8 kernels after Jittor's fusion instead of the 18 of a per-column evaluation, and a third
    less host time to build (CPU, 5000 directions). The colour network runs it every training step, and what is
    built after the marching sync costs host time while the device waits (bench/RESULTS.md, sixth session).
    """

    def __init__(self, degree: int = 4):
        super().__init__()
        if int(degree) != degree or not 1 <= degree <= MAX_DEGREE:
            raise ValueError(f"SHEncoder: degree must be an integer in [1, {MAX_DEGREE}], got {degree!r}")
        self.degree = int(degree)

    @property
    def out_dim(self):
        return self.degree ** 2

    def execute(self, dirs: jt.Var) -> jt.Var:
        if dirs.ndim != 2 or dirs.shape[1] != 3:
            raise ValueError(f"SHEncoder: dirs must have shape [N, 3], got {dirs.shape}")
        levels, matrix = _constants(self.degree)
        dirs = dirs.float32()
        monomials = [jt.ones((dirs.shape[0], 1), dtype=jt.float32)]
        for parents, axes in levels:
            monomials.append(monomials[-1][:, parents] * dirs[:, axes])
        features = jt.concat(monomials, dim=1) if len(monomials) > 1 else monomials[0]
        return matmul(features, matrix)


_constants_cache = {}


def _constants(degree):
    """The gather indices of each monomial degree and the [n_monomials, degree^2] matrix, as Vars made once per
    degree (kept out of the module, whose Var attributes would count as parameters)."""
    if degree not in _constants_cache:
        constant = lambda values, dtype: jt.array(np.asarray(values, dtype)).stop_grad()  # noqa: E731
        levels = [(constant(parents, np.int32), constant(axes, np.int32))
                  for _, parents, axes in monomial_levels(degree - 1)[1:]]
        matrix = constant(sh_monomial_matrix(degree), np.float32)
        _constants_cache[degree] = (levels, matrix)
    return _constants_cache[degree]
