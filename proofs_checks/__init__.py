"""proofs_checks: the claims of Razin & Cohen (NeurIPS 2020) checked one by one,
symbolically (sympy) where exact and against simulated trajectories (flowsim).

One module per claim (:mod:`.proposition1`, :mod:`.proposition2`, :mod:`.theorem1`
with Corollary 1, :mod:`.theorem2`, :mod:`.proposition3`, :mod:`.proposition4`,
:mod:`.norms_at_scale` (beyond 2x2: Arora et al. 2019, App. E),
:mod:`.gunasekar` (the other side: Gunasekar et al. 2017's Theorem 1, commuting sensing),
:mod:`.lemmas`); each check is a pure function of its inputs returning a
:class:`CheckResult`. :mod:`.trajectories` generates the runs, :mod:`.runner` runs
everything (``flowsim verify``), :mod:`.report` writes the table, markdown, JSON and
figures.
"""

from .result import CheckResult
from .runner import TASKS, Outcome, make_plan, run_checks

__all__ = ["TASKS", "CheckResult", "Outcome", "make_plan", "run_checks"]
