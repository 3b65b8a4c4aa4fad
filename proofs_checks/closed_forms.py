"""Closed forms on the solution set S (Eq. 7) and the exact/numeric test for "even in w,
monotone in |w|" shared by Propositions 1 and 2.

On ``S = {[[w, 1], [1, 0]]}`` (docs/derivations.md, S) the singular values are
``sigma_{1,2} = (sqrt(w^2 + 4) +- |w|) / 2``. Every quantity here is a sympy expression in
the real symbol :data:`W` so a check can take a (possibly wrong) closed form as input.
"""

from __future__ import annotations

import math

import mpmath
import numpy as np
import sympy as sp

from .result import CheckResult

#: the free entry W11 of a matrix in S
W = sp.Symbol("w", real=True)
#: the same entry restricted to w > 0 (where "increasing in |w|" is decided)
W_POS = sp.Symbol("w_pos", positive=True)

#: grid of w > 0 on which derivative signs are also evaluated (40-digit mpmath)
SIGN_GRID = np.geomspace(1e-6, 1e6, 241)
#: grid of real w on which sympy closed forms are compared with flowsim.metrics
NUMERIC_GRID = np.concatenate([-np.geomspace(1e4, 1e-4, 60), [0.0], np.geomspace(1e-4, 1e4, 60)])


def solution_matrix(w) -> sp.Matrix:
    """``[[w, 1], [1, 0]]``, the point of S with ``W11 = w``."""
    return sp.Matrix([[w, 1], [1, 0]])


def solution_matrices(ws) -> np.ndarray:
    """Numeric points of S, shape ``(len(ws), 2, 2)``."""
    ws = np.asarray(ws, dtype=np.float64)
    out = np.zeros(ws.shape + (2, 2))
    out[..., 0, 0] = ws
    out[..., 0, 1] = out[..., 1, 0] = 1.0
    return out


def singular_values_on_s(w=W) -> tuple[sp.Expr, sp.Expr]:
    """docs/derivations.md, S: ``sigma_{1,2} = (sqrt(w^2 + 4) +- |w|) / 2``."""
    root = sp.sqrt(w**2 + 4)
    return (root + sp.Abs(w)) / 2, (root - sp.Abs(w)) / 2


def schatten_expr(sigma1: sp.Expr, sigma2: sp.Expr, p) -> sp.Expr:
    """Schatten-p (quasi-)norm from ordered singular values ``sigma1 >= sigma2``."""
    p = sp.sympify(p)
    if p is sp.oo:
        return sigma1
    return (sigma1**p + sigma2**p) ** (sp.Integer(1) / p)


def effective_rank_expr(sigma1: sp.Expr, sigma2: sp.Expr) -> sp.Expr:
    """Definition 1: ``exp(-sum rho_r ln rho_r)``, ``rho_r = sigma_r / (sigma1 + sigma2)``."""
    total = sigma1 + sigma2
    rho1, rho2 = sigma1 / total, sigma2 / total
    return sp.exp(-rho1 * sp.log(rho1) - rho2 * sp.log(rho2))


def _is_zero(expr: sp.Expr) -> bool:
    return sp.simplify(expr) == 0


def _grid_values(expr: sp.Expr, var: sp.Symbol, grid) -> np.ndarray:
    with mpmath.workdps(40):
        f = sp.lambdify(var, expr, "mpmath")
        return np.array([float(f(mpmath.mpf(float(x)))) for x in grid])


def derivative_sign(expr: sp.Expr, sign: int) -> tuple[bool, str, float]:
    """Is ``sign * d expr / dw > 0`` for every ``w > 0``?

    Decided exactly by sympy's assumptions when it can; otherwise by 40-digit evaluation
    on :data:`SIGN_GRID`. Returns ``(holds, how, smallest sign * derivative on the grid)``.
    """
    deriv = sp.simplify(sp.diff(expr.subs(W, W_POS), W_POS))
    signed = sign * deriv
    on_grid = float(np.min(_grid_values(signed, W_POS, SIGN_GRID)))
    if signed.is_positive:
        return True, "exact (sympy)", on_grid
    if signed.is_nonpositive:
        return False, "exact (sympy)", on_grid
    return on_grid > 0, f"40-digit grid of {len(SIGN_GRID)} points in [1e-6, 1e6]", on_grid


def even_monotone_result(claim: str, check: str, expr: sp.Expr, *, sign: int,
                         value_at_zero, limit_at_inf, numeric, tol: float = 1e-12,
                         source: str = "paper") -> CheckResult:
    """Check that ``expr(w)`` (a function on S) is even, equals ``value_at_zero`` at 0,
    is strictly monotone in ``|w|`` in direction ``sign`` (+1 increasing), tends to
    ``limit_at_inf``, and agrees with ``numeric(points of S)`` to relative ``tol``.

    Margin: the smallest ``sign * expr'(w)`` on the sign grid when everything exact holds,
    else minus the largest residual of the failed identity on :data:`NUMERIC_GRID`.
    """
    parts, failures, residuals = [], [], []
    even = expr.subs(W, -W) - expr
    if _is_zero(even):
        parts.append("even")
    else:
        failures.append("not even in w")
        residuals.append(even)
    at_zero = expr.subs(W, 0) - sp.sympify(value_at_zero)
    if _is_zero(at_zero):
        parts.append(f"value {sp.sympify(value_at_zero)} at w=0")
    else:
        failures.append(f"value at w=0 is {sp.nsimplify(sp.simplify(expr.subs(W, 0)))}, "
                        f"not {value_at_zero}")
        residuals.append(sp.Abs(at_zero))
    holds, how, slope = derivative_sign(expr, sign)
    word = "increasing" if sign > 0 else "decreasing"
    if holds:
        parts.append(f"strictly {word} in |w| ({how})")
    else:
        failures.append(f"not strictly {word} in |w| ({how}, min signed slope {slope:.3g})")
    limit = sp.limit(expr.subs(W, W_POS), W_POS, sp.oo)
    target = sp.sympify(limit_at_inf)
    if limit == target or (target.is_finite and sp.simplify(limit - target) == 0):
        parts.append(f"-> {limit_at_inf} as |w| -> oo")
    else:
        failures.append(f"limit {limit}, not {limit_at_inf}")
    closed = np.array(_grid_values(expr, W, NUMERIC_GRID))
    measured = np.asarray(numeric(solution_matrices(NUMERIC_GRID)), dtype=np.float64)
    rel = float(np.max(np.abs(measured - closed) / np.maximum(np.abs(closed), 1e-300)))
    if rel <= tol:
        parts.append(f"flowsim.metrics agrees to {rel:.1e}")
    else:
        failures.append(f"flowsim.metrics differs by {rel:.2e} (> {tol:g})")
    if failures:
        bad = [float(np.max(np.abs(_grid_values(r, W, NUMERIC_GRID)))) for r in residuals]
        margin = -max(bad + [abs(slope) if not holds else 0.0, rel if rel > tol else 0.0])
        margin = margin if margin < 0 else -math.inf
        evidence = "; ".join(failures)
        return CheckResult(claim, check, evidence, margin, False, source,
                           {"min_signed_slope": slope, "metrics_rel_error": rel})
    return CheckResult(claim, check, ", ".join(parts), slope, True, source,
                       {"min_signed_slope": slope, "metrics_rel_error": rel,
                        "sign_method": how})
