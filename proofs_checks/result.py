"""The one result type of every check: claim, check, evidence, margin, passed.

A check is a pure function of its inputs (closed forms, trajectory arrays, constants)
that returns a :class:`CheckResult`; generating those inputs is someone else's job
(:mod:`proofs_checks.trajectories`). ``margin`` is the smallest slack of the checked
statement, in the statement's own units: ``>= 0`` exactly when it holds. A NaN or
infinite slack never passes.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

#: where a checked constant or statement comes from
SOURCES = ("paper", "derived", "numeric")


@dataclass(frozen=True)
class CheckResult:
    """Outcome of one check.

    **Attributes:**

    - `claim`: the paper's statement it belongs to, e.g. ``"Theorem 1 (8)"``.
    - `check`: what was checked, one line.
    - `evidence`: the numbers behind the verdict, one line.
    - `margin`: the smallest slack (``>= 0`` iff the check holds).
    - `passed`: the verdict.
    - `source`: ``"paper"`` (statement or constant as the paper gives it), ``"derived"``
      (docs/derivations.md, paper's own constant unknown) or ``"numeric"``.
    - `data`: JSON-able numbers for the report.
    """

    claim: str
    check: str
    evidence: str
    margin: float
    passed: bool
    source: str = "paper"
    data: dict = field(default_factory=dict)

    def __post_init__(self):
        if self.source not in SOURCES:
            raise ValueError(f"source must be one of {SOURCES}, got {self.source!r}")

    def to_dict(self) -> dict:
        return {"claim": self.claim, "check": self.check, "evidence": self.evidence,
                "margin": _json_float(self.margin), "passed": bool(self.passed),
                "source": self.source, "data": jsonable(self.data)}


def slack_result(claim: str, check: str, slack, evidence: str, *, source: str = "paper",
                 data: dict | None = None) -> CheckResult:
    """A result whose statement is ``slack >= 0`` at every point of ``slack``."""
    slack = np.atleast_1d(np.asarray(slack, dtype=np.float64))
    if slack.size == 0:
        return CheckResult(claim, check, evidence + " (no points to check)", math.nan, False,
                           source, dict(data or {}))
    margin = float(np.min(slack)) if np.all(np.isfinite(slack)) else math.nan
    data = {"n_points": int(slack.size), "violations": int(np.sum(~(slack >= 0))),
            **(data or {})}
    return CheckResult(claim, check, evidence, margin, bool(margin >= 0), source, data)


def combine(claim: str, check: str, parts: list[CheckResult], *, source: str | None = None,
            evidence: str | None = None) -> CheckResult:
    """One result that holds iff every part holds; margin = smallest part margin."""
    if not parts:
        return CheckResult(claim, check, "no parts", math.nan, False, source or "paper")
    margins = [p.margin for p in parts]
    margin = math.nan if any(not math.isfinite(m) for m in margins) else min(margins)
    passed = all(p.passed for p in parts)
    failed = [p.check for p in parts if not p.passed]
    text = evidence or "; ".join(p.evidence for p in parts)
    if failed:
        text += " | FAILED: " + "; ".join(failed)
    return CheckResult(claim, check, text, margin, passed, source or parts[0].source,
                       {"parts": [p.to_dict() for p in parts]})


def _json_float(x) -> float | str:
    x = float(x)
    return x if math.isfinite(x) else str(x)


def jsonable(obj):
    if isinstance(obj, dict):
        return {str(k): jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [jsonable(v) for v in obj]
    if isinstance(obj, (bool, np.bool_)):
        return bool(obj)
    if isinstance(obj, (int, np.integer)):
        return int(obj)
    if isinstance(obj, (float, np.floating)):
        return _json_float(obj)
    if isinstance(obj, np.ndarray):
        return jsonable(obj.tolist())
    return obj if obj is None or isinstance(obj, str) else str(obj)
