"""Product coordinates: the end-to-end ODE of Lemma 4 on ``W = W_L ... W_1`` itself.

Lemma 4 (Arora, Cohen & Hazan 2018, Thm 1; docs/derivations.md, E): under gradient
flow from a *balanced* initialization (Eq. 5),

    dW/dt = - sum_{j=1}^{L} (W W^T)^{(j-1)/L} grad l(W) (W^T W)^{(L-j)/L}.

With the full SVD ``W = U Sigma V^T``, ``x_i = sigma_i^2`` (zero-padded to ``d``) and
``y_k = sigma_k^2`` (zero-padded to ``d2``), the sum acts entrywise in the singular bases:
``P_W[G] = U (K o (U^T G V)) V^T`` with ``K_ik = sum_j x_i^{(j-1)/L} y_k^{(L-j)/L}``
(``0^0 = 1``). That value is exact at repeated singular values, but jax's derivative of an
SVD is not (it divides by ``sigma_i^2 - sigma_k^2``), so :func:`end_to_end_field` carries a
``jax.custom_jvp`` whose tangent is the Daleckii-Krein form of each fractional power,
built from the safe divided differences of :mod:`._linalg`: finite and smooth at
repeated singular values (e.g. ``W(0) = 0.1 I``), for every ``d x d2`` and depth.

The state is ``vec(W)`` (row-major). Only valid for balanced factors: :meth:`from_factors`
raises ``ValueError`` otherwise. ``det W`` comes from ``slogdet`` of the entries, so its
sign is lost once ``det W`` falls below ~1e-16 of ``||W||^2`` (use ``"svd"`` there).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import partial

import jax
import jax.numpy as jnp
import numpy as np

from ..parameterization import Factorization, Params, product
from ..problem import loss_gradient
from ._base import Coordinates
from ._linalg import power_divided_difference

#: largest ``max|W_(l+1)^T W_(l+1) - W_l W_l^T| / max_l ||W_l||_F^2`` accepted as balanced
BALANCED_RTOL = 1e-8


def balance_defect(model: Factorization, params: Params) -> float:
    """``max |conserved quantities| / their scale`` of the factors (0 when balanced,
    Eq. 5); the conserved quantities are the model's
    (:meth:`~flowsim.parameterization.Factorization.conserved`)."""
    params = tuple(np.asarray(w, dtype=np.float64) for w in params)
    c = np.asarray(model.conserved(params))
    if c.size == 0:
        return 0.0
    return float(np.max(np.abs(c)) / max(float(model.conserved_scale(params)), 1e-300))


def is_balanced(model: Factorization, params: Params) -> bool:
    """Whether ``params`` is balanced (Eq. 5) to :data:`BALANCED_RTOL`."""
    return balance_defect(model, params) <= BALANCED_RTOL


def require_balanced(model: Factorization, params: Params, coordinates: str) -> None:
    """Raise ``ValueError`` unless ``params`` is balanced (Eq. 5) to :data:`BALANCED_RTOL`
    relative to the layers' scale: Lemmas 4 and 5 hold only from balanced factors."""
    defect = balance_defect(model, params)
    if not defect <= BALANCED_RTOL:
        raise ValueError(
            f"params must be balanced (Eq. 5: W_(l+1)^T W_(l+1) = W_l W_l^T) for "
            f"coordinates={coordinates!r} (Lemmas 4-5); max|W_(l+1)^T W_(l+1) - W_l W_l^T| "
            f"is {defect:.3e} of max ||W_l||_F^2, above {BALANCED_RTOL:g}. Use "
            f"coordinates='factors' (or 'auto') for unbalanced factors.")


def _exponents(depth: int):
    j = np.arange(1, depth + 1)
    return (j - 1) / depth, (depth - j) / depth


def _spectral_parts(w):
    """Full SVD and squared singular values padded to ``(d,)`` and ``(d2,)``."""
    d, d2 = w.shape
    u, s, vt = jnp.linalg.svd(w, full_matrices=True)
    x = jnp.zeros(d, w.dtype).at[: s.shape[0]].set(s * s)
    y = jnp.zeros(d2, w.dtype).at[: s.shape[0]].set(s * s)
    sigma = jnp.zeros((d, d2), w.dtype).at[jnp.arange(s.shape[0]), jnp.arange(s.shape[0])].set(s)
    return u, vt.T, x, y, sigma


def _power(v, a):
    """``v^a`` elementwise with ``0^0 = 1`` (the PSD power ``M^0 = I``)."""
    return jnp.where(a == 0, 1.0, jnp.where(v > 0, v, 1.0) ** a * (v > 0))


@partial(jax.custom_jvp, nondiff_argnums=(2,))
def end_to_end_field(w, g, depth: int):
    """``P_W[g] = sum_{j=1}^{L} (W W^T)^{(j-1)/L} g (W^T W)^{(L-j)/L}`` (Lemma 4, so that
    ``dW/dt = -P_W[grad l(W)]``), for one ``d x d2`` matrix ``w``."""
    u, v, x, y, _ = _spectral_parts(w)
    left, right = _exponents(depth)
    k = sum(_power(x, a)[:, None] * _power(y, b)[None, :] for a, b in zip(left, right))
    return u @ (k * (u.T @ g @ v)) @ v.T


@end_to_end_field.defjvp
def _end_to_end_field_jvp(depth, primals, tangents):
    w, g = primals
    dw, dg = tangents
    u, v, x, y, sigma = _spectral_parts(w)
    g_hat, dg_hat, e = u.T @ g @ v, u.T @ dg @ v, u.T @ dw @ v
    # d(W W^T) and d(W^T W) in the singular bases
    a_hat = e @ sigma.T + sigma @ e.T
    b_hat = e.T @ sigma + sigma.T @ e
    left, right = _exponents(depth)
    k = jnp.zeros_like(g_hat)
    dk = jnp.zeros_like(g_hat)
    for a, b in zip(left, right):
        xa, yb = _power(x, a), _power(y, b)
        k = k + xa[:, None] * yb[None, :]
        # Daleckii-Krein: d(M^a)[dM] = Q (Delta_a o (Q^T dM Q)) Q^T
        dxa = power_divided_difference(x[:, None], x[None, :], a) * a_hat
        dyb = power_divided_difference(y[:, None], y[None, :], b) * b_hat
        dk = dk + dxa @ (g_hat * yb[None, :]) + (xa[:, None] * g_hat) @ dyb
    out = u @ (k * g_hat) @ v.T
    tangent = u @ (dk + k * dg_hat) @ v.T
    return out, tangent


@dataclass(frozen=True)
class ProductCoordinates(Coordinates):
    """Lemma 4's end-to-end ODE on ``vec(W)``; any ``d x d2`` and depth, balanced inits only."""

    name = "product"
    needs_balanced = True

    def from_factors(self, params: Params) -> np.ndarray:
        require_balanced(self.model, params, self.name)
        return np.asarray(product(params), dtype=np.float64).ravel()

    def product(self, y):
        return y.reshape(self.model.shape)

    def vector_field(self, y, mask, target):
        w = self.product(y)
        return -end_to_end_field(w, loss_gradient(w, mask, target), self.model.depth).ravel()
