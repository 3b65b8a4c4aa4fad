"""Theorem 1 (Eqs. 8-10) and Corollary 1 on trajectories of the flow (paper problem,
balanced init, det W(0) > 0), with s = sqrt(2 l):

- (D1) det W(t) > 0 at every saved point (sign from the run's own coordinates).
- (D2) ``|W11| >= 1/sqrt(2 l) - 2``.
- (8) ``||W|| >= a / sqrt(l) - b`` for norms and quasi-norms, with the constants
  of the paper's main text (``a = ||e11|| / (sqrt2 c)``, ``b = max{sqrt2 a,
  8 c^2 max_ij ||e_i e_j^T||}``) and with the derived ones of docs/derivations.md D3.
- (10) ``D(W, M_1) = sigma_min <= C sqrt(l)``, derived C = sqrt2 (D4).
- (9) ``erank <= 1 + C sqrt(l)``, derived C = 4 sqrt2 (D5); the paper's constant is
  garbled in our copy, so only the derived one is checked.
- Corollary 1 (derived sharp form): ``|W11| sqrt(2 l) -> 1`` as ``l -> 0``.

Every ``*_slack`` function maps trajectory arrays (``loss (n,)``, ``product (n, 2, 2)``)
to the pointwise slack of one bound (``>= 0`` where it holds); every ``check_*`` turns one
into a :class:`~proofs_checks.result.CheckResult`.
"""

from __future__ import annotations

import math

import numpy as np

from flowsim.metrics import (
    effective_rank_minus_one,
    log_singular_values,
)

from .norms import Norm
from .result import CheckResult, slack_result

CLAIM = "Theorem 1"

#: derived constants (docs/derivations.md D4, D5)
DISTANCE_CONSTANT = math.sqrt(2.0)
ERANK_CONSTANT = 4.0 * math.sqrt(2.0)


def paper_constants(norm: Norm) -> tuple[float, float]:
    """(a, b) of Eq. (8) as printed in the main text."""
    a = norm.basis_norm(0, 0) / (math.sqrt(2.0) * norm.c)
    biggest = max(norm.basis_norm(i, j) for i in range(2) for j in range(2))
    return a, max(math.sqrt(2.0) * a, 8.0 * norm.c**2 * biggest)


def derived_constants(norm: Norm) -> tuple[float, float]:
    """(a, b) of docs/derivations.md D3: ``a = ||e11|| / (sqrt2 c)``, ``b = 2 ||e11|| / c +
    c^2 (1.5 (||e12|| + ||e21||) + 0.5 ||e22||)``."""
    c, n = norm.c, norm.basis_norm
    a = n(0, 0) / (math.sqrt(2.0) * c)
    return a, 2.0 * n(0, 0) / c + c**2 * (1.5 * (n(0, 1) + n(1, 0)) + 0.5 * n(1, 1))


def _s(loss) -> np.ndarray:
    return np.sqrt(2.0 * np.asarray(loss, dtype=np.float64))


def unobserved_entry_slack(loss, product) -> np.ndarray:
    """(D2): ``|W11| - (1/sqrt(2 l) - 2)``."""
    return np.abs(np.asarray(product)[:, 0, 0]) - (1.0 / _s(loss) - 2.0)


def norm_slack(loss, product, norm: Norm, a: float, b: float) -> np.ndarray:
    """(8): ``||W|| - (a / sqrt(l) - b)``."""
    return norm(product) - (a / np.sqrt(np.asarray(loss)) - b)


def _logs(product, log_sv):
    """Log singular values: the trajectory's own (exact however small) when given, else
    from the product's entries."""
    return log_singular_values(product) if log_sv is None else np.asarray(log_sv)


def distance_slack(loss, product, constant: float = DISTANCE_CONSTANT,
                   log_sv=None) -> np.ndarray:
    """(10): ``C sqrt(l) - sigma_min(W)``."""
    return constant * np.sqrt(np.asarray(loss)) - np.exp(_logs(product, log_sv)[:, -1])


def erank_slack(loss, product, constant: float = ERANK_CONSTANT, log_sv=None) -> np.ndarray:
    """(9): ``C sqrt(l) - (erank(W) - 1)`` (inf over S of erank is 1, Proposition 2),
    with ``erank - 1`` computed without cancellation from the log singular values."""
    return constant * np.sqrt(np.asarray(loss)) - effective_rank_minus_one(
        _logs(product, log_sv))


def _where(loss, slack) -> str:
    k = int(np.argmin(slack))
    return f"tightest at loss {np.asarray(loss)[k]:.2e}"


def check_det_positive(det_sign, log_abs_det, loss, label: str = "") -> CheckResult:
    """(D1): ``det W(t) > 0`` at every saved point (``det_sign`` from the coordinates;
    ``|det|`` can be far below float64's range, so only ``log|det|`` is reported).
    Slack: +1 at a point with positive sign, -1 otherwise (zero or NaN included)."""
    det_sign, log_abs_det = np.asarray(det_sign), np.asarray(log_abs_det)
    k = int(np.argmin(log_abs_det))
    evidence = (f"{label}det > 0 at {int(np.sum(det_sign > 0))}/{len(det_sign)} points; "
                f"min log10|det| = {log_abs_det[k] / math.log(10):.4g} at loss "
                f"{np.asarray(loss)[k]:.2e}")
    return slack_result(CLAIM, "det W(t) > 0 (sign never changes)",
                        np.where(det_sign > 0, 1.0, -1.0), evidence, source="paper",
                        data={"min_log10_abs_det": log_abs_det[k] / math.log(10)})


def check_unobserved_entry(loss, product, label: str = "") -> CheckResult:
    slack = unobserved_entry_slack(loss, product)
    ratio = abs(np.asarray(product)[-1, 0, 0]) * _s(loss)[-1]
    return slack_result(CLAIM, "|W11| >= 1/sqrt(2 l) - 2", slack,
                        f"{label}{_where(loss, slack)}; final |W11| sqrt(2l) = {ratio:.6f}",
                        source="derived", data={"final_ratio": ratio})


def check_norm_bound(loss, product, norm: Norm, constants: str = "paper",
                     label: str = "") -> CheckResult:
    """(8) with ``constants`` = ``"paper"`` (main text) or ``"derived"`` (D3)."""
    a, b = (paper_constants if constants == "paper" else derived_constants)(norm)
    slack = norm_slack(loss, product, norm, a, b)
    return slack_result(f"{CLAIM} (8)",
                        f"{norm.name} >= a/sqrt(l) - b ({constants} a={a:.4g}, b={b:.4g}, "
                        f"c={norm.c:g})", slack, f"{label}{_where(loss, slack)}",
                        source="paper" if constants == "paper" else "derived",
                        data={"a": a, "b": b, "c": norm.c})


def _ratio_evidence(loss, excess) -> tuple[str, dict]:
    """Largest ``excess / sqrt(l)`` over all points and over l < 1e-2: the smallest
    constant the run supports, to hold against any reading of the paper's constant."""
    loss = np.asarray(loss)
    ratio = excess / np.sqrt(loss)
    small = loss < 1e-2
    tail = float(np.max(ratio[small])) if small.any() else math.nan
    text = f"max ratio to sqrt(l): {float(np.max(ratio)):.4g} overall, {tail:.3g} over l<1e-2"
    return text, {"max_ratio": float(np.max(ratio)), "max_ratio_small_loss": tail}


def check_distance_bound(loss, product, constant: float = DISTANCE_CONSTANT,
                         label: str = "", log_sv=None) -> CheckResult:
    """(10) at every point; ``log_sv``: the trajectory's log singular values (exact)."""
    slack = distance_slack(loss, product, constant, log_sv)
    text, data = _ratio_evidence(loss, np.exp(_logs(product, log_sv)[:, -1]))
    return slack_result(f"{CLAIM} (10)", f"D(W, M_1) <= {constant:.4g} sqrt(l)", slack,
                        f"{label}{_where(loss, slack)}; {text}", source="derived", data=data)


def check_erank_bound(loss, product, constant: float = ERANK_CONSTANT,
                      label: str = "", log_sv=None) -> CheckResult:
    """(9) at every point; ``log_sv``: the trajectory's log singular values (exact)."""
    slack = erank_slack(loss, product, constant, log_sv)
    text, data = _ratio_evidence(loss, effective_rank_minus_one(_logs(product, log_sv)))
    return slack_result(f"{CLAIM} (9)", f"erank <= 1 + {constant:.4g} sqrt(l)", slack,
                        f"{label}{_where(loss, slack)}; {text}", source="derived", data=data)


def check_sharp_asymptotics(loss, product, tol: float = 1e-3, label: str = "",
                            log_sv=None) -> CheckResult:
    """Corollary 1, derived sharp form: ``|W11| sqrt(2 l) -> 1``, so every norm -> inf,
    erank -> 1, D(W, M_1) -> 0. Checked at the final (smallest-loss) point."""
    loss, product = np.asarray(loss), np.asarray(product)
    ratio = abs(product[-1, 0, 0]) * _s(loss)[-1]
    logs = _logs(product, log_sv)[-1:]
    evidence = (f"{label}at loss {loss[-1]:.1e}: |W11| sqrt(2l) = {ratio:.8f}, "
                f"nuclear {float(np.sum(np.exp(logs))):.4g}, erank-1 = "
                f"{float(effective_rank_minus_one(logs)[0]):.2e}, sigma_min = "
                f"{float(np.exp(logs[0, -1])):.2e}")
    return slack_result("Corollary 1", f"|W11| sqrt(2l) -> 1 (within {tol:g} at the end)",
                        tol - abs(ratio - 1.0), evidence, source="derived",
                        data={"final_ratio": ratio, "final_loss": float(loss[-1])})
