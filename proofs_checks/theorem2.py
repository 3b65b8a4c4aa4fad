"""Theorem 2 (App. C): perturbed observations b12, b21 != 0, any b22, balanced init with
det W(0) of the sign of b12 b21. docs/derivations.md, T2 (derived constants), with
s = sqrt(2 l) < min(|b12|, |b21|):

- ``|W11| >= (|b12| - s)(|b21| - s) / (|b22| + s)``, and ``sign(W11 W22) = sign(b12 b21)``;
- det W keeps the sign of b12 b21 (Lemma 5, as in Theorem 1);
- the limit, two outcomes (docs/derivations.md): (a) W22 ends on b22's side: l -> 0 and
  W11 -> beyond the rank-1 solution ``w* = b12 b21 / b22`` (``|W11| -> >= |w*|``);
  (b) W22 ends on the other side: l stays >= b22^2 / 2 and |W11| keeps growing.
  For b22 = 0 both give ``|W11| -> inf``.
"""

from __future__ import annotations

import numpy as np

from .result import CheckResult, slack_result

CLAIM = "Theorem 2"


def _s(loss) -> np.ndarray:
    return np.sqrt(2.0 * np.asarray(loss, dtype=np.float64))


def entry_bound(loss, b) -> np.ndarray:
    """``(|b12| - s)(|b21| - s) / (|b22| + s)``; NaN where s >= min(|b12|, |b21|)."""
    b12, b21, b22 = (abs(float(x)) for x in b)
    s = _s(loss)
    with np.errstate(divide="ignore"):
        bound = (b12 - s) * (b21 - s) / (b22 + s)
    return np.where(s < min(b12, b21), bound, np.nan)


def check_entry_bound(loss, product, b, label: str = "") -> CheckResult:
    bound = entry_bound(loss, b)
    where = np.isfinite(bound)
    slack = np.abs(np.asarray(product)[where, 0, 0]) - bound[where]
    return slack_result(CLAIM, f"|W11| >= (|b12|-s)(|b21|-s)/(|b22|+s) (b22={b[2]:g})", slack,
                        f"{label}{int(where.sum())} points with s < min(|b12|,|b21|)",
                        source="derived")


def check_sign_pattern(loss, product, det_sign, b, label: str = "") -> CheckResult:
    """det W keeps the sign of b12 b21 at every point, and ``sign(W11 W22) = sign(b12
    b21)`` once s < min(|b12|, |b21|). Slack: ``+1`` per agreeing point, ``-1`` else."""
    want = np.sign(b[0] * b[1])
    product = np.asarray(product)
    det_ok = np.asarray(det_sign) == want
    where = np.isfinite(entry_bound(loss, b))
    entries_ok = np.sign(product[where, 0, 0] * product[where, 1, 1]) == want
    slack = np.concatenate([np.where(det_ok, 1.0, -1.0), np.where(entries_ok, 1.0, -1.0)])
    return slack_result(CLAIM, f"sign det W = sign(W11 W22) = sign(b12 b21) (b22={b[2]:g})",
                        slack, f"{label}det sign kept at {int(det_ok.sum())}/{det_ok.size}, "
                        f"W11 W22 sign at {int(entries_ok.sum())}/{entries_ok.size} points",
                        source="derived")


def outcome(product, b) -> str:
    """``"a"`` (W22 ends on b22's side), ``"b"`` (other side) or ``"b22=0"``."""
    b22 = float(b[2])
    if b22 == 0:
        return "b22=0"
    return "a" if np.sign(np.asarray(product)[-1, 1, 1]) == np.sign(b22) else "b"


def check_limit(loss, product, b, tail: float = 0.2, label: str = "") -> CheckResult:
    """The outcome-specific limit statement, at the end of a finite run:
    (a) and b22 = 0: ``|W11| >= (|b12|-s)(|b21|-s)/(|b22|+s)`` at the final point (which
    tends to ``|w*| = |b12 b21 / b22|``, or to infinity for b22 = 0);
    (b) the loss is still ``>= b22^2 / 2`` and |W11| grew over the last ``tail`` of points.
    """
    loss, product = np.asarray(loss), np.asarray(product)
    kind = outcome(product, b)
    w11 = product[-1, 0, 0]
    b22 = float(b[2])
    w_star = b[0] * b[1] / b22 if b22 else np.inf
    if kind == "b":
        start = product[int((1 - tail) * (len(product) - 1)), 0, 0]
        slack = [loss[-1] - b22**2 / 2, abs(w11) - (1 + 1e-9) * abs(start)]  # strictly grew
        text = (f"(b) W22 -> 0 from the wrong side: loss {loss[-1]:.3e} >= b22^2/2 = "
                f"{b22**2 / 2:.3e}, |W11| {abs(start):.4g} -> {abs(w11):.4g} (growing)")
    else:
        bound = entry_bound(loss[-1:], b)[0]
        slack = [abs(w11) - bound if np.isfinite(bound) else -np.inf]
        text = (f"({kind}) final loss {loss[-1]:.2e}, W11 = {w11:.6g} vs w* = {w_star:.6g}, "
                f"bound {bound:.6g}")
    return slack_result(CLAIM, f"limit |W11| vs 1/|b22| (b22={b22:g}): outcome {kind}", slack,
                        f"{label}{text}", source="derived", data={"outcome": kind, "W11": w11})
