"""Proposition 1: minimizing a norm or quasi-norm along S confines W11 to a bounded
interval; for Schatten-p (quasi-)norms the minimizer is exactly W11 = 0.

Checks (each a pure function of its inputs):

- :func:`check_singular_values`: the closed forms ``sigma_{1,2}`` are the singular values
  of ``[[w, 1], [1, 0]]`` (sympy: ``sigma1^2 + sigma2^2 = ||W||_F^2``, ``sigma1 sigma2 =
  |det W|``, ``sigma1 >= sigma2 >= 0``; numeric: ``flowsim.singular_values``).
- :func:`check_power_sum_derivative`: for symbolic ``p > 0``,
  ``d/dw (sigma1^p + sigma2^p) = p (sigma1^p - sigma2^p) / sqrt(w^2 + 4)`` (> 0 for w > 0
  since ``sigma1 - sigma2 = w``): every Schatten-p is increasing in |w|.
- :func:`check_schatten_minimizer`: one p at a time, even, increasing in |w|, minimum
  ``2^{1/p}`` at w = 0 (1 for p = inf), agreeing with ``flowsim.schatten_norm``.
- :func:`check_epsilon_minimizers`: for any (quasi-)norm with constant c, the
  eps-minimizers on S have ``|w| <= c (2 ||e12 + e21|| + eps) / ||e11||``
  (docs/derivations.md, S), evaluated numerically for non-Schatten norms.
"""

from __future__ import annotations

import numpy as np
import scipy.optimize
import sympy as sp

from flowsim.metrics import schatten_norm, singular_values

from .closed_forms import (
    NUMERIC_GRID,
    W_POS,
    W,
    even_monotone_result,
    schatten_expr,
    solution_matrices,
    solution_matrix,
)
from .norms import Norm
from .result import CheckResult

CLAIM = "Proposition 1"


def check_singular_values(sigma1: sp.Expr, sigma2: sp.Expr, tol: float = 1e-12) -> CheckResult:
    """``(sigma1, sigma2)`` (sympy in :data:`W`) are the singular values of W in S."""
    m = solution_matrix(W)
    identities = {
        "sigma1^2 + sigma2^2 = ||W||_F^2": sigma1**2 + sigma2**2 - (m.T * m).trace(),
        "sigma1 sigma2 = |det W|": sigma1 * sigma2 - sp.Abs(m.det()),
        "sigma1 - sigma2 = |w|": sigma1 - sigma2 - sp.Abs(W),
    }
    failed = [name for name, expr in identities.items() if sp.simplify(expr) != 0]
    lower = sp.simplify(sigma2.subs(W, W_POS))
    nonneg = bool(lower.is_nonnegative) or bool(sp.simplify(sigma1 * sigma2 - 1) == 0
                                                 and sigma1.subs(W, W_POS).is_positive)
    if not nonneg:
        failed.append("sigma2 >= 0")
    closed = np.stack([np.array([float(s.subs(W, x)) for x in NUMERIC_GRID])
                       for s in (sigma1, sigma2)], axis=-1)
    measured = singular_values(solution_matrices(NUMERIC_GRID))
    rel = float(np.max(np.abs(measured - closed) / measured[..., :1]))
    if rel > tol:
        failed.append(f"flowsim.singular_values differs by {rel:.2e}")
    check = "sigma_{1,2} = (sqrt(w^2+4) +- |w|)/2 on S"
    if failed:
        return CheckResult(CLAIM, check, "fails: " + "; ".join(failed), -max(rel, tol), False,
                           "derived", {"metrics_rel_error": rel})
    return CheckResult(CLAIM, check, "sympy: sum of squares, product (= |det| = 1), "
                       f"difference |w| exact; numeric SVD agrees to {rel:.1e}",
                       tol - rel, True, "derived", {"metrics_rel_error": rel})


def check_power_sum_derivative(sigma1: sp.Expr, sigma2: sp.Expr) -> CheckResult:
    """For symbolic p > 0 and w > 0: ``d/dw sum sigma_r^p = p (sigma1^p - sigma2^p) /
    sqrt(w^2 + 4)`` with ``sigma1 - sigma2 = w > 0``, hence every Schatten-p is strictly
    increasing in |w| and minimized only at w = 0."""
    p = sp.Symbol("p", positive=True)
    s1, s2 = sigma1.subs(W, W_POS), sigma2.subs(W, W_POS)
    deriv = sp.diff(s1**p + s2**p, W_POS)
    identity = sp.simplify(deriv - p * (s1**p - s2**p) / sp.sqrt(W_POS**2 + 4))
    gap = sp.simplify(s1 - s2)
    check = "d/dw sum_r sigma_r^p > 0 for all p > 0, w > 0"
    ok = identity == 0 and gap == W_POS
    evidence = ("sympy: derivative = p (sigma1^p - sigma2^p)/sqrt(w^2+4), sigma1 - sigma2 = w"
                if ok else f"identity residual {identity}, sigma1 - sigma2 = {gap}")
    margin = 0.0 if ok else -1.0
    return CheckResult(CLAIM, check, evidence, margin, ok, "derived")


def check_schatten_minimizer(sigma1: sp.Expr, sigma2: sp.Expr, p) -> CheckResult:
    """Schatten-p along S: even, strictly increasing in |w|, minimum at w = 0 (value
    ``2^{1/p}``, 1 for p = inf), unbounded, and equal to ``flowsim.schatten_norm``."""
    p = sp.sympify(p)
    expr = schatten_expr(sigma1, sigma2, p)
    at_zero = sp.Integer(1) if p is sp.oo else 2 ** (sp.Integer(1) / p)
    p_num = float(p)
    return even_monotone_result(
        CLAIM, f"Schatten-{p} minimized exactly at W11 = 0, increasing in |W11|", expr,
        sign=+1, value_at_zero=at_zero, limit_at_inf=sp.oo,
        numeric=lambda ws: schatten_norm(ws, p_num))


def check_epsilon_minimizers(norm: Norm, eps: float, w_max: float = 1e4) -> CheckResult:
    """eps-minimizers of ``norm`` along S lie in the bounded interval
    ``|w| <= c (2 ||e12 + e21|| + eps) / ||e11||`` (quasi-triangle inequality with
    constant ``norm.c``; docs/derivations.md, S). Fails if the set reaches the edge of
    the searched range ``[-w_max, w_max]`` (unbounded) or leaves the interval (wrong c)."""
    grid = np.unique(np.concatenate([-np.geomspace(w_max, 1e-6, 4000), [0.0],
                                     np.geomspace(1e-6, w_max, 4000), np.linspace(-50, 50, 2001)]))
    values = np.asarray(norm(solution_matrices(grid)), dtype=np.float64)
    k = int(np.argmin(values))
    lo, hi = grid[max(k - 1, 0)], grid[min(k + 1, len(grid) - 1)]
    best = float(scipy.optimize.minimize_scalar(
        lambda x: float(norm(solution_matrices([x]))[0]), bounds=(lo, hi), method="bounded",
        options={"xatol": 1e-12}).fun)
    best = min(best, float(values[k]))
    inside = np.flatnonzero(values <= best + eps)
    level = lambda x: float(norm(solution_matrices([x]))[0]) - best - eps  # noqa: E731
    ends = []
    # refine each end of the sublevel set between its last grid point in and first out
    for i, step in ((inside[0], -1), (inside[-1], +1)):
        j = i + step
        ends.append(grid[i] if not 0 <= j < len(grid) else
                    scipy.optimize.brentq(level, *sorted((grid[i], grid[j])), xtol=1e-12))
    reach = float(max(abs(ends[0]), abs(ends[1])))
    n11, noff = norm.basis_norm(0, 0), float(norm(solution_matrices([0.0]))[0])
    name, c = norm.name, norm.c
    bound = c * (2 * noff + eps) / n11 if n11 > 0 else np.inf  # a seminorm blind to W11
    at_edge = reach >= 0.999 * w_max
    check = f"{name}: eps={eps:g}-minimizers on S have |W11| <= c(2||e12+e21||+eps)/||e11||"
    evidence = (f"inf ~ {best:.6g}; eps-minimizers span |W11| <= {reach:.4g}; interval bound "
                f"{bound:.4g} (c={c:g})" + ("; set reaches the search edge" if at_edge else ""))
    margin = bound - reach if not at_edge else -np.inf
    return CheckResult(CLAIM, check, evidence, float(margin), bool(margin >= 0), "derived",
                       {"inf": best, "reach": reach, "bound": bound, "c": c, "eps": eps})
