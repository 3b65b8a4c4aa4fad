"""Singular-value coordinates for 2x2 products: Lemmas 4 and 5 with ``log det W`` as a
coordinate, so the sign of ``det W`` is preserved by construction.

Write ``W = E W~`` with ``E = diag(1, eps)``, ``eps = sign det W`` (constant along the
flow: Lemma 5 / (D1) in docs/derivations.md), so that ``det W~ > 0``, and take the SVD
``W~ = R(theta) diag(s1, s2) R(phi)^T`` with rotations ``R`` and ``s1 >= s2 > 0``. Splitting
``W~`` into its conformal and anticonformal parts,

    W~ = p R(alpha) + Z,   Z = [[z1, z2], [z2, -z1]],
    alpha = theta - phi,   p = (s1 + s2)/2,   z = q (cos beta, sin beta),
    beta = theta + phi,    q = |z| = (s1 - s2)/2,   p^2 - q^2 = s1 s2 = det W~,

the state is ``y = (alpha, z1, z2, delta, eps)`` with ``delta = log det W~ = log s1 + log s2``.
Everything is recovered without cancellation: ``p = sqrt(q^2 + e^delta)``,
``s1 = p + q``, ``log s2 = delta - log s1``, so ``s2`` (the distance to rank 1, Eq. 10) can
go to ``exp(-1000)`` and below while ``W``'s entries stay O(1). The usual SVD angles
``(theta, phi, log s1, log s2)`` are singular where ``s1 = s2`` (the angle ``beta`` is then
undefined and ``theta' ~ 1/(s1^(2/L) - s2^(2/L))``: the stall at ``W(0) = 0.1 I`` reported
in docs/numerics.md); ``z`` is ``(q, beta)`` in Cartesian form, which is regular there.

Dynamics. Lemma 4 in the singular bases is ``U^T W~' V = -K o (U^T G~ V)`` with
``G~ = E grad l(W)`` and ``K_rk = sum_j s_r^{2(j-1)/L} s_k^{2(L-j)/L}``. With
``P_U = U D U^T = R(alpha) Z / q`` and ``P_V = V D V^T = R(-alpha) Z / q``
(``D = diag(1, -1)``) this is

    W~' = -[ (k12 + q^2 c) G~ + c R(alpha) Z G~ R(-alpha) Z
             + (L/2) D_{g'} (R(alpha) Z G~ + G~ R(-alpha) Z) ],

with ``k12 = K_12``, ``g' = 2 - 2/L``, ``D_g = (s1^g - s2^g)/(s1 - s2)`` (divided differences,
:mod:`._linalg`) and ``c = sum_j D_{2(j-1)/L} D_{2(L-j)/L}``: every ``1/q`` has cancelled.
``alpha'`` and ``z'`` are the conformal and anticonformal parts of ``W~'`` (``alpha'`` has
``p >= sqrt(det) > 0`` in its denominator), and ``delta'`` is Lemma 5 summed over ``r``:
``delta' = sum_r s_r'/s_r = -L <G~, U S^(1 - 2/L) V^T>``.

Two charts. The conformal chart above is regular at ``s1 = s2`` but poorly scaled deep in
Theorem 1's regime: there ``z ~ |W11|/2 ~ 3e5`` while ``alpha ~ 1e-12`` carries the
``1e-6`` residuals, and its field is a cancellation of ``O(q^2)`` terms; the solve stalled
between loss 1e-11 and 1.5e-12 at depth 3 (20k steps). So once ``log(s1/s2) > 1`` the
state moves to the *polar* chart ``y = (theta, phi, log s1, log s2, eps)``,
``W~ = R(theta) diag(s1, s2) R(phi)^T``, where Lemma 5 moves the log-singular values and
the off-diagonal part of Lemma 4 the angles:

    (log s_r)' = -L s_r^(1 - 2/L) g_rr,   g = U^T G~ V,
    theta' = -K_12 (s2 g12 + s1 g21) / (s1^2 - s2^2),
    phi'   = -K_12 (s1 g12 + s2 g21) / (s1^2 - s2^2),

(regular away from ``s1 = s2``; below ``log(s1/s2) = 0.5`` the state goes back). Every
entry of ``W~`` is then a sum of products of accurate numbers, and depth 2 and 3 reach loss
1e-12 in 800-900 steps. The state carries its chart as a sixth entry and an overall sign
``sigma`` (``W = sigma E W~``) as a seventh, which takes up half turns of the polar
angles so that both stay in ``[-pi/2, pi/2)``; the integrators
change chart after any accepted step that crosses a threshold, inside the compiled step
loop (:meth:`SVDCoordinates.rechart`).

Only 2x2 products: that is Theorem 1's setting, and the conformal/anticonformal split
that keeps the equal-singular-value start regular is special to 2x2 (for ``d > 2`` the
singular vectors' ODE has ``1/(s_i^2 - s_k^2)`` couplings that need another treatment).
Other shapes raise ``ValueError``; use ``"product"`` or ``"factors"`` there. Only valid
from balanced factors (Lemmas 4-5): :meth:`SVDCoordinates.from_factors` checks.
"""

from __future__ import annotations

from dataclasses import dataclass

import jax
import jax.numpy as jnp
import numpy as np

from ..parameterization import Params, product
from ..problem import loss_gradient
from ._base import Coordinates
from ._linalg import power_ratio
from .product import require_balanced

_ATANH_BELOW = 0.5  # q/p below which log(s1/s2) = 2 atanh(q/p) (no cancellation)



def _rotation(angle):
    c, s = jnp.cos(angle), jnp.sin(angle)
    return jnp.array([[c, -s], [s, c]])


@dataclass(frozen=True)
class _Chart:
    """Quantities of one state shared by the map to ``W`` and by the vector field."""

    alpha: object
    z: object  # Z = [[z1, z2], [z2, -z1]]
    q2: object
    p: object
    log_s1: object
    log_s2: object
    ell: object  # log(s1 / s2) >= 0, accurate also when s1 ~ s2
    eps: object

    @classmethod
    def of(cls, y):
        alpha, z1, z2, delta, eps = y[0], y[1], y[2], y[3], y[4]
        q2 = z1 * z1 + z2 * z2
        positive = q2 > 0
        q = jnp.where(positive, jnp.sqrt(jnp.where(positive, q2, 1.0)), 0.0)  # finite d/dz at 0
        p = jnp.sqrt(q2 + jnp.exp(delta))
        log_s1 = jnp.log(p + q)
        near = q < _ATANH_BELOW * p
        ell = jnp.where(near, 2.0 * jnp.arctanh(jnp.where(near, q / p, 0.0)),
                        2.0 * log_s1 - delta)
        return cls(alpha, jnp.array([[z1, z2], [z2, -z1]]), q2, p, log_s1, delta - log_s1,
                   ell, eps)

    def power(self, g):
        """``(s1^g, s2^g)``."""
        return jnp.exp(g * self.log_s1), jnp.exp(g * self.log_s2)

    def divided(self, g):
        """``D_g = (s1^g - s2^g) / (s1 - s2)`` (``g s^(g-1)`` at ``s1 = s2``), for an array of
        exponents ``g`` at once (one vectorized expression keeps the compile small)."""
        return jnp.exp((g - 1.0) * self.log_s1) * power_ratio(self.ell, g)

    def internal(self):
        """``W~ = E W`` (``det W~ > 0``). Near rank 1 its small entries (e.g. ``W22 ~ 1/W11``
        late in Theorem 1's regime) are differences of ``O(|W|)`` terms in ``p R(alpha) + Z``;
        there it is built as ``s1 u1 v1^T + s2 u2 v2^T`` from ``theta = (alpha + beta)/2``,
        ``phi = (beta - alpha)/2``, products of accurate numbers (``beta`` exists since
        ``q > 0`` there)."""
        conformal = self.p * _rotation(self.alpha) + self.z
        near_rank1 = self.q2 >= (_ATANH_BELOW * self.p) ** 2
        z1, z2 = self.z[0, 0], self.z[0, 1]
        beta = jnp.arctan2(jnp.where(near_rank1, z2, 0.0), jnp.where(near_rank1, z1, 1.0))
        u, v = _rotation(0.5 * (self.alpha + beta)), _rotation(0.5 * (beta - self.alpha))
        s1, s2 = jnp.exp(self.log_s1), jnp.exp(self.log_s2)
        rank1 = s1 * jnp.outer(u[:, 0], v[:, 0]) + s2 * jnp.outer(u[:, 1], v[:, 1])
        return jnp.where(near_rank1, rank1, conformal)

    def reflection(self):
        return jnp.array([1.0, self.eps])[:, None]  # E as a row scaling


#: Chart thresholds on ``ell = log(s1/s2)``: conformal -> polar above ``_TO_POLAR``, back
#: below ``_TO_CONFORMAL`` (hysteresis, so a state never flips back and forth).
_TO_POLAR, _TO_CONFORMAL = 1.0, 0.5
_SAFE_CONFORMAL = np.array([0.0, 0.5, 0.0, 0.0, 1.0])  # regular stand-ins for the chart
_SAFE_POLAR = np.array([0.0, 0.0, 1.0, 0.0, 1.0])  # not in use (keeps its branch finite)
_SAFE_CONFORMAL_STATE = np.append(_SAFE_CONFORMAL, [0.0, 1.0])
_SAFE_POLAR_STATE = np.append(_SAFE_POLAR, [1.0, 1.0])


def _conformal_field(depth, y, sigma, mask, target):
    """``dy/dt`` in the conformal chart ``(alpha, z1, z2, delta, eps)``; ``W = sigma E W~``."""
    chart = _Chart.of(y)
    e = sigma * chart.reflection()
    g = e * loss_gradient(e * chart.internal(), mask, target)  # G~ = E grad l(E W~)
    rot = _rotation(chart.alpha)
    z = chart.z
    gamma = 1.0 - 2.0 / depth
    # exponents 2(j-1)/L for j = 1..L, then g' = 2 - 2/L and gamma = 1 - 2/L (Lemma 5)
    powers = np.concatenate([2.0 * np.arange(depth) / depth, [2.0 - 2.0 / depth, gamma]])
    divided = chart.divided(jnp.asarray(powers))
    left, right = powers[:depth], powers[:depth][::-1]
    k12 = jnp.sum(jnp.exp(left * chart.log_s1 + right * chart.log_s2))
    c = jnp.sum(divided[:depth] * divided[:depth][::-1])
    c_half = 0.5 * depth * divided[depth]
    dw = -((k12 + chart.q2 * c) * g + c * (rot @ z @ g @ rot.T @ z)
           + c_half * (rot @ z @ g + g @ rot.T @ z))
    conf_x, conf_y = 0.5 * (dw[0, 0] + dw[1, 1]), 0.5 * (dw[1, 0] - dw[0, 1])
    d_alpha = (jnp.cos(chart.alpha) * conf_y - jnp.sin(chart.alpha) * conf_x) / chart.p
    d_z1, d_z2 = 0.5 * (dw[0, 0] - dw[1, 1]), 0.5 * (dw[0, 1] + dw[1, 0])
    pow1, pow2 = chart.power(gamma)
    u_s_vt = 0.5 * (pow1 + pow2) * rot + divided[depth + 1] * z  # U S^gamma V^T
    d_delta = -depth * jnp.sum(g * u_s_vt)
    return jnp.stack([d_alpha, d_z1, d_z2, d_delta, jnp.zeros_like(d_delta)])


def _polar_internal(y):
    """``W~ = R(theta) diag(s1, s2) R(phi)^T`` of a polar-chart state."""
    s = jnp.exp(y[2:4])
    return (_rotation(y[0]) * s) @ _rotation(y[1]).T


def _polar_field(depth, y, sigma, mask, target):
    """``dy/dt`` in the polar chart ``(theta, phi, log s1, log s2, eps)``: Lemma 5 for the
    log-singular values, and Lemma 4's off-diagonal part for the angles,
    ``theta' = -K_12 (s2 g12 + s1 g21) / (s1^2 - s2^2)``,
    ``phi' = -K_12 (s1 g12 + s2 g21) / (s1^2 - s2^2)`` with ``g = U^T G~ V``; the ratio
    ``K_12 / (s1^2 - s2^2)`` is formed from logarithms (no overflow, no cancellation)."""
    theta, phi, log_s1, log_s2, eps = y[0], y[1], y[2], y[3], y[4]
    e = sigma * jnp.array([1.0, eps])[:, None]
    u, v = _rotation(theta), _rotation(phi)
    g = e * loss_gradient(e * _polar_internal(y), mask, target)
    gh = u.T @ g @ v
    gamma = 1.0 - 2.0 / depth
    d_log_s1 = -depth * jnp.exp(gamma * log_s1) * gh[0, 0]  # Lemma 5 divided by s_r
    d_log_s2 = -depth * jnp.exp(gamma * log_s2) * gh[1, 1]
    j = np.arange(depth)
    log_k12 = jax.scipy.special.logsumexp(2.0 * j / depth * log_s1
                                          + 2.0 * (depth - 1 - j) / depth * log_s2)
    ell = log_s1 - log_s2
    rate = jnp.exp(log_k12 - log_s1) / -jnp.expm1(-2.0 * ell)  # s1 K_12 / (s1^2 - s2^2)
    ratio = jnp.exp(-ell)  # s2 / s1
    d_theta = -rate * (ratio * gh[0, 1] + gh[1, 0])
    d_phi = -rate * (gh[0, 1] + ratio * gh[1, 0])
    return jnp.stack([d_theta, d_phi, d_log_s1, d_log_s2, jnp.zeros_like(d_theta)])


def _conformal_log_s1(y):
    """``log s1 = log(p + q)`` of a conformal-chart state ``(alpha, z1, z2, delta, ...)``."""
    q = jnp.hypot(y[1], y[2])
    return jnp.log(jnp.sqrt(q * q + jnp.exp(y[3])) + q)


def polar_from_conformal(y):
    """Change of chart, conformal -> polar (one state of 6 entries)."""
    alpha, z1, z2, delta = y[0], y[1], y[2], y[3]
    log_s1 = _conformal_log_s1(y)
    beta = jnp.arctan2(z2, z1)
    return jnp.stack([0.5 * (alpha + beta), 0.5 * (beta - alpha), log_s1, delta - log_s1,
                      y[4], jnp.ones_like(alpha), y[6]])


def conformal_from_polar(y):
    """Change of chart, polar -> conformal."""
    theta, phi, log_s1, log_s2 = y[0], y[1], y[2], y[3]
    q = 0.5 * (jnp.exp(log_s1) - jnp.exp(log_s2))
    beta = theta + phi
    return jnp.stack([theta - phi, q * jnp.cos(beta), q * jnp.sin(beta), log_s1 + log_s2,
                      y[4], jnp.zeros_like(theta), y[6]])


def _half_turns(angle):
    """``(angle - k pi, (-1)^k)`` with ``angle - k pi`` in ``[-pi/2, pi/2)``."""
    k = jnp.floor(angle / jnp.pi + 0.5)
    return angle - k * jnp.pi, 1.0 - 2.0 * jnp.mod(k, 2.0)


def _recentred_polar(y):
    """The polar state with both angles in ``[-pi/2, pi/2)``: ``R(a - pi) = -R(a)``, so a
    half turn of either angle flips the sign of ``W~``, which ``sigma`` takes up. Near the
    solutions ``u_1, v_1 ~ +-e_1``: without it an angle sits near ``pi`` with absolute
    precision ``eps pi`` while its distance to ``pi`` (``~ 1/|W11|``) carries the residuals
    (measured: depth 3, loss 1.4e-14, seeds 1-3 lost the flow; seed 0, angles near 0, did
    not)."""
    theta, flip_theta = _half_turns(y[0])
    phi, flip_phi = _half_turns(y[1])
    return y.at[0].set(theta).at[1].set(phi).at[6].set(y[6] * flip_theta * flip_phi)


@dataclass(frozen=True)
class SVDCoordinates(Coordinates):
    """Lemma 4-5 flow on the 2x2 product's SVD with the sign of ``det W`` as a constant;
    two charts (module docstring): state ``(c0, c1, c2, c3, eps, chart, sigma)`` with
    ``W = sigma E W~`` (``sigma = +-1`` takes up half turns of the polar angles). Balanced
    inits."""

    name = "svd"
    needs_balanced = True
    sign_exact = True
    has_charts = True

    def __post_init__(self):
        if tuple(self.model.shape) != (2, 2) or not hasattr(self.model, "depth"):
            raise ValueError(
                f"coordinates='svd' supports 2x2 deep matrix factorizations only (Theorem "
                f"1's setting), got a {type(self.model).__name__} of shape "
                f"{self.model.shape}; use coordinates='product' or 'factors'")
        if self.model.depth < 2:
            raise ValueError(
                "coordinates='svd' needs depth >= 2: at depth 1 (W' = -grad l(W)) det W "
                "can change sign in the exact flow, which these coordinates hold constant "
                "(Lemma 5 needs depth >= 2); use coordinates='factors'")

    def from_factors(self, params: Params) -> np.ndarray:
        require_balanced(self.model, params, self.name)
        w = np.asarray(product(params), dtype=np.float64)
        if all(a.shape[0] == a.shape[1] for a in params):
            # from the layers: keeps digits of a tiny det that W's entries have lost
            signs, logs = zip(*(np.linalg.slogdet(a) for a in params))
            sign, logabs = float(np.prod(signs)), float(np.sum(logs))
        else:
            sign, logabs = (float(v) for v in np.linalg.slogdet(w))
        if sign == 0 or not np.isfinite(logabs):
            raise ValueError("params: the product W is singular; coordinates='svd' needs "
                             "det W != 0 (a singular W stays singular under the flow)")
        wt = np.array([1.0, sign])[:, None] * w
        alpha = np.arctan2(0.5 * (wt[1, 0] - wt[0, 1]), 0.5 * (wt[0, 0] + wt[1, 1]))
        z1, z2 = 0.5 * (wt[0, 0] - wt[1, 1]), 0.5 * (wt[0, 1] + wt[1, 0])
        y = jnp.array([alpha, z1, z2, logabs, sign, 0.0, 1.0])
        return np.asarray(_rechart_jit(self, y))

    def rechart(self, y):
        """The same point in the chart suited to it: polar once ``log(s1/s2) > 1``,
        conformal again below ``0.5`` (hysteresis). Called by the integrators after every
        accepted step, inside the compiled loop (jax-traceable)."""
        polar = y[5] > 0.5
        ell = jnp.where(polar, y[2] - y[3], 2.0 * _conformal_log_s1(y) - y[3])
        to_polar = ~polar & (ell > _TO_POLAR)
        to_conformal = polar & (ell < _TO_CONFORMAL)
        # each map only sees states of its own chart (regular stand-ins otherwise)
        as_conformal = jnp.where(polar, jnp.asarray(_SAFE_CONFORMAL_STATE), y)
        as_polar = jnp.where(polar, y, jnp.asarray(_SAFE_POLAR_STATE))
        new = jnp.where(to_polar, polar_from_conformal(as_conformal),
                        jnp.where(to_conformal, conformal_from_polar(as_polar), y))
        return jnp.where(new[5] > 0.5, _recentred_polar(new), new)

    def _by_chart(self, y, conformal, polar):
        """``polar(y)`` or ``conformal(y)`` by the chart flag; the branch not in use gets a
        regular stand-in state, so neither it nor its derivatives produce NaN."""
        is_polar = y[5] > 0.5
        base = y[:5]
        # both branches, then a select (not lax.cond): the arithmetic is then the same
        # whether a solve runs alone or vmapped over lanes (vmap turns a cond into this
        # select anyway), so a batched member takes its single run's steps exactly
        as_polar = polar(jnp.where(is_polar, base, jnp.asarray(_SAFE_POLAR)))
        as_conformal = conformal(jnp.where(is_polar, jnp.asarray(_SAFE_CONFORMAL), base))
        return jax.tree.map(lambda a, b: jnp.where(is_polar, a, b), as_polar, as_conformal)

    def product(self, y):
        e = y[6] * jnp.array([1.0, y[4]])[:, None]
        return e * self._by_chart(y, lambda v: _Chart.of(v).internal(), _polar_internal)

    def slogdet(self, y):
        return y[4], jnp.where(y[5] > 0.5, y[2] + y[3], y[3])

    def exact_observables(self, y) -> dict:
        sign, logabs = self.slogdet(y)
        return {"det_sign": sign, "log_abs_det": logabs,
                "log_singular_values": self.log_singular_values(y)}

    def log_singular_values(self, y):
        """``[log s1, log s2]``, ``s1 >= s2``, from the coordinates (exact even when ``s2``
        is far below float64's resolution of ``W``'s entries)."""
        def conformal(v):
            chart = _Chart.of(v)
            return jnp.stack([chart.log_s1, chart.log_s2])

        logs = self._by_chart(y, conformal, lambda v: v[2:4])
        return jnp.stack([jnp.max(logs), jnp.min(logs)])

    def vector_field(self, y, mask, target):
        depth = self.model.depth
        sigma = y[6]
        f = self._by_chart(y, lambda v: _conformal_field(depth, v, sigma, mask, target),
                           lambda v: _polar_field(depth, v, sigma, mask, target))
        return jnp.concatenate([f, jnp.zeros(2)])


_rechart_jit = jax.jit(SVDCoordinates.rechart, static_argnums=0)
