"""CP factor coordinates: gradient flow on the factor matrices of a CP factorization.

The tensor analogue of Eq. (4) for Eq. (11)'s parameterization ``W = sum_r w_r^(1) (x)
... (x) w_r^(N)`` (Section 4.2, Eq. 12): with ``G = grad l(W) = mask * (W - B)``,

    d W^(n) / dt = -dphi/dW^(n) = -G_(n) (W^(N) kr ... kr W^(n+1) kr W^(n-1) kr ... kr W^(1)),

i.e. entry ``(i, r)`` is ``-sum over the other indices of G[..., i, ...] * prod_{m != n}
W^(m)[i_m, r]`` (``G_(n)`` the mode-n unfolding, ``kr`` the Khatri-Rao product). The
state is the factors, flattened in order. A tensor has no determinant: ``slogdet`` is NaN.
"""

from __future__ import annotations

from dataclasses import dataclass

import jax.numpy as jnp
import numpy as np

from ..tensor.cp import CPFactorization, Factors, cp_product, cp_subscripts
from ._base import Coordinates


def cp_factor_gradients(factors: Factors, grad_w) -> tuple:
    """``dphi/dW^(n)`` for every factor, given ``grad_w = grad l(W)`` (Eq. 12's right side)."""
    subs = cp_subscripts(len(factors))
    tensor = "".join(s[0] for s in subs)
    out = []
    for n in range(len(factors)):
        others = subs[:n] + subs[n + 1:]
        spec = ",".join((tensor, *others)) + "->" + subs[n]
        out.append(jnp.einsum(spec, grad_w, *factors[:n], *factors[n + 1:]))
    return tuple(out)


@dataclass(frozen=True)
class CPFactorCoordinates(Coordinates):
    """Gradient flow on the CP factors ``(W^(1), ..., W^(N))``, each ``(d_n, R)``."""

    model: CPFactorization
    name = "factors"

    def _split(self, y) -> Factors:
        out, start = [], 0
        for rows, cols in self.model.factor_shapes:
            out.append(y[start:start + rows * cols].reshape(rows, cols))
            start += rows * cols
        return tuple(out)

    def from_factors(self, params: Factors) -> np.ndarray:
        return np.concatenate([np.asarray(w, dtype=np.float64).ravel() for w in params])

    def product(self, y):
        return cp_product(self._split(y))

    def factors(self, y) -> Factors:
        return self._split(y)

    def vector_field(self, y, mask, target):
        factors = self._split(y)
        grads = cp_factor_gradients(factors, mask * (cp_product(factors) - target))
        return -jnp.concatenate([g.ravel() for g in grads])

    def slogdet(self, y):
        return jnp.nan, jnp.nan
