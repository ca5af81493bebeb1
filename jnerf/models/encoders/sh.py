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


@ENCODERS.register_module()
class SHEncoder(nn.Module):
    """Unit directions [N,3] -> [N, degree^2] float32 real SH (bands 0..degree-1); inputs are not re-normalised."""

    def __init__(self, degree: int = 4):
        super().__init__()
        if int(degree) != degree or not 1 <= degree <= MAX_DEGREE:
            raise ValueError(f"SHEncoder: degree must be an integer in [1, {MAX_DEGREE}], got {degree!r}")
        self.degree = int(degree)
        self._terms = sh_coefficients(self.degree)

    @property
    def out_dim(self):
        return self.degree ** 2

    def execute(self, dirs: jt.Var) -> jt.Var:
        if dirs.ndim != 2 or dirs.shape[1] != 3:
            raise ValueError(f"SHEncoder: dirs must have shape [N, 3], got {dirs.shape}")
        x, y, z = dirs[:, 0], dirs[:, 1], dirs[:, 2]
        z_powers = [jt.ones_like(z)]
        for _ in range(1, self.degree):
            z_powers.append(z_powers[-1] * z)
        # (x + iy)^m = A_m + i B_m by the recurrence of complex multiplication.
        real, imag = [jt.ones_like(x)], [jt.zeros_like(x)]
        for _ in range(1, self.degree):
            a, b = real[-1], imag[-1]
            real.append(a * x - b * y)
            imag.append(b * x + a * y)
        columns = []
        for _, m, am, coef in self._terms:
            z_part = sum(float(c) * z_powers[k] for k, c in enumerate(coef) if c != 0)
            columns.append(z_part * (real[am] if m >= 0 else imag[am]))
        return jt.stack(columns, dim=1)
