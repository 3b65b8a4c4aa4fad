"""Proposition 2: along S the effective rank takes values in (1, 2], is maximal (= 2) at
W11 = 0 and decreases to 1 as |W11| grows; the infimal rank of S is 1 and the distance
from it, ``D(W, M_1) = sigma2``, is maximal (= 1) at W11 = 0 and decreases to 0.

Both checks take the closed-form singular values as input (sympy expressions in
:data:`~proofs_checks.closed_forms.W`) and compare with ``flowsim.metrics`` numerically.
The range (1, 2] follows from: value 2 at w = 0, strictly decreasing in |w|, limit 1.
"""

from __future__ import annotations

import sympy as sp

from flowsim.metrics import distance_to_rank, effective_rank

from .closed_forms import effective_rank_expr, even_monotone_result
from .result import CheckResult

CLAIM = "Proposition 2"


def check_effective_rank_on_s(sigma1: sp.Expr, sigma2: sp.Expr) -> CheckResult:
    """erank along S: 2 at w = 0, strictly decreasing in |w|, -> 1 (never attained)."""
    return even_monotone_result(
        CLAIM, "erank on S in (1, 2]: max 2 at W11 = 0, decreasing to 1",
        effective_rank_expr(sigma1, sigma2), sign=-1, value_at_zero=2, limit_at_inf=1,
        numeric=effective_rank)


def check_distance_on_s(sigma1: sp.Expr, sigma2: sp.Expr) -> CheckResult:
    """``D(W, M_1) = sigma2`` along S: 1 at w = 0, strictly decreasing in |w|, -> 0."""
    return even_monotone_result(
        CLAIM, "D(W, M_1) = sigma_2 on S: max 1 at W11 = 0, decreasing to 0",
        sigma2, sign=-1, value_at_zero=1, limit_at_inf=0,
        numeric=lambda ws: distance_to_rank(ws, 1))
