"""Factor coordinates: gradient flow Eq. (4) on ``(W_1, ..., W_L)`` themselves.

``dW_l/dt = -dphi/dW_l = -A_l^T G B_l^T`` with ``G = grad l(W) = mask * (W - B)``,
``A_l = W_L ... W_{l+1}`` and ``B_l = W_{l-1} ... W_1``. Valid for any initialization
(balanced or not). The determinant's sign is taken as the product of the layers' signs
when every layer is square, which stays reliable longer than ``det W`` itself, but in
float64 it is still lost once ``det W`` is below ~1e-16 of the matrix scale.
"""

from __future__ import annotations

from dataclasses import dataclass

import jax.numpy as jnp
import numpy as np

from ..parameterization import Params, partial_products, product
from ._base import Coordinates


def factor_gradients(params: Params, grad_w) -> tuple:
    """``dphi/dW_l = A_l^T grad_w B_l^T`` for every layer, given ``grad_w = grad l(W)``."""
    lefts, rights = partial_products(params)
    return tuple(a.T @ grad_w @ b.T for a, b in zip(lefts, rights))


@dataclass(frozen=True)
class FactorCoordinates(Coordinates):
    name = "factors"

    def _split(self, y) -> Params:
        out, start = [], 0
        for rows, cols in self.model.layer_shapes:
            out.append(y[start:start + rows * cols].reshape(rows, cols))
            start += rows * cols
        return tuple(out)

    def from_factors(self, params: Params) -> np.ndarray:
        return np.concatenate([np.asarray(w, dtype=np.float64).ravel() for w in params])

    def product(self, y):
        return product(self._split(y))

    def factors(self, y) -> Params:
        return self._split(y)

    def vector_field(self, y, mask, target):
        params = self._split(y)
        grads = factor_gradients(params, mask * (product(params) - target))
        return -jnp.concatenate([g.ravel() for g in grads])

    def slogdet(self, y):
        params = self._split(y)
        if all(r == c for r, c in self.model.layer_shapes):
            signs, logs = zip(*(jnp.linalg.slogdet(w) for w in params))
            return jnp.prod(jnp.stack(signs)), jnp.sum(jnp.stack(logs))
        return super().slogdet(y)
