"""Factor coordinates: gradient flow Eq. (4) on the factors themselves, for any model.

``d theta / dt = -grad_theta l(model.product(theta))`` with ``theta`` the flattened
factors (:meth:`~flowsim.parameterization.Factorization.flatten`). For a deep matrix
factorization this is ``dW_l/dt = -dphi/dW_l = -A_l^T G B_l^T`` with
``G = grad l(W) = mask * (W - B)``, ``A_l = W_L ... W_{l+1}``, ``B_l = W_{l-1} ... W_1``
(:func:`factor_gradients` writes it out); for a CP factorization it is Eq. (12),
``dW^(n)/dt = -G_(n) (Khatri-Rao product of the other factors)``. Valid for any
initialization (balanced or not) and any model; the gradient comes from jax's reverse
mode, which builds the same products.

The model's conserved quantities (``W_{l+1}^T W_{l+1} - W_l W_l^T``; CP: differences of
component norms) are carried here, so the integrators watch their drift. The sign of
``det W`` is the product of the layers' signs when every layer is square: it stays
reliable longer than ``det W`` from the entries, but in float64 it is still lost once the
smallest singular value of ``W`` sinks below the rounding of its product,
``~1e-16 ||W_L|| ... ||W_1||`` (the integrators then end the run, status
``"precision_lost"``).
"""

from __future__ import annotations

from dataclasses import dataclass

import jax
import jax.numpy as jnp
import numpy as np

from ..parameterization import Params, partial_products
from ..problem import observation_loss
from ._base import EPS, Coordinates, decades


def factor_gradients(params: Params, grad_w) -> tuple:
    """``dphi/dW_l = A_l^T grad_w B_l^T`` for every layer of a deep matrix factorization,
    given ``grad_w = grad l(W)`` (the closed form of Eq. 4's right-hand side)."""
    lefts, rights = partial_products(params)
    return tuple(a.T @ grad_w @ b.T for a, b in zip(lefts, rights))


@dataclass(frozen=True)
class FactorCoordinates(Coordinates):
    """Eq. (4) on the flat factor vector of any model; any initialization."""

    name = "factors"

    def from_factors(self, params: Params) -> np.ndarray:
        return self.model.flatten(params)

    def factors(self, y) -> Params:
        return self.model.split(y)

    def product(self, y):
        return self.model.product(self.model.split(y))

    def host_factors(self, states: np.ndarray) -> Params:
        return self.model.split(states)

    def host_products(self, states: np.ndarray) -> np.ndarray | None:
        return self.model.host_products(self.model.split(states))

    def vector_field(self, y, mask, target):
        # the gradient with respect to the factors, then one concatenation: the gradient
        # of the flat vector would pad each factor's gradient to the full length and sum
        # them (docs/numerics.md, "The explicit step")
        grads = jax.grad(lambda params: observation_loss(
            self.model.product(params), mask, target))(self.model.split(y))
        return -jnp.concatenate([g.ravel() for g in grads])

    def slogdet(self, y):
        return self.model.slogdet(self.model.split(y))

    def conserved(self, y):
        return self.model.conserved(self.model.split(y))

    def conserved_scale(self, y):
        return self.model.conserved_scale(self.model.split(y))

    @property
    def watches_conserved(self) -> bool:
        return len(self.model.param_shapes) > 1

    def host_slogdet(self, states: np.ndarray, products: np.ndarray):
        """From the layers when every layer is square (numpy): ``det W = prod det W_l``."""
        model = self.model
        if not getattr(model, "square_layers", False):
            return super().host_slogdet(states, products)
        signs, logs = np.ones(len(states)), np.zeros(len(states))
        start = 0
        for rows, cols in model.param_shapes:
            layer = states[:, start:start + rows * cols].reshape(-1, rows, cols)
            sign, log = np.linalg.slogdet(layer)
            signs, logs = signs * sign, logs + log
            start += rows * cols
        return signs, logs

    def resolution(self, y, rtol: float = 0.0, atol: float = 0.0) -> float:
        """The smaller of two margins (decades): ``sigma_min(W)`` over float64's rounding
        of the product, ``eps ||W_L||_2 ... ||W_1||_2`` (the gradient, formed from ``W``,
        carries no more of ``W``'s small direction than that: what flips the sign in
        balanced flows, e.g. depth 2 near loss 1e-2), and for each square layer
        ``sigma_min(W_l)`` over its own error level ``max(eps, rtol) ||W_l||_2 + atol``
        (the integrator's per-step tolerance on the layer's entries)."""
        if len(self.model.shape) != 2:
            return np.inf
        layers = [np.asarray(w, dtype=np.float64) for w in self.model.split(jnp.asarray(y))]
        norms = [float(np.linalg.norm(w, 2)) for w in layers]
        margins = [decades(self.sigma_min(y), EPS * float(np.prod(norms)))]
        for w, norm in zip(layers, norms):
            if w.shape[0] == w.shape[1]:
                margins.append(decades(float(np.linalg.svd(w, compute_uv=False)[-1]),
                                       max(EPS, float(rtol)) * norm + float(atol)))
        return min(margins)
