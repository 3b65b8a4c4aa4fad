"""How exact a flow is: :func:`check_accuracy` solves the same run again, with tolerances a
hundred times tighter (and, on request, another solver), onto the same saved times, and
reports the relative difference in ``W`` at each of them.

A second solve at tighter tolerances estimates the global error of the first one at
every saved point (the error of the tighter solve is smaller by about the ratio of the
tolerances to the power ``1`` for a well-behaved controller); another solver makes the
check independent of the method as well. The check costs a solve of its own: its steps,
evaluations and time are in the report.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass

import numpy as np

from .initialization import factors_from_product
from .integration import SolverOptions, gradient_flow
from .integration.solvers import REGISTRY, check_name
from .parameterization import model_from_dict
from .problem import problem_from_dict
from .trajectory import Trajectory


@dataclass(frozen=True)
class AccuracyReport:
    """The outcome of :func:`check_accuracy`.

    **Attributes:**

    - `times`: the saved times compared (every saved point after ``t = 0``).
    - `errors`: ``||W - W_ref||_F / ||W_ref||_F`` at each of them.
    - `max_error`, `worst_time`: the largest and where.
    - `solver`, `rtol`, `atol`: what the reference solve used.
    - `reference_status`: its status (anything but ``"t_max"`` means the check itself
      did not reach the last saved time, and the report says so).
    - `reference_stats`: its counters (steps, evaluations, ``wall_s``).
    - `run_stats`: the checked run's counters, for the cost comparison.
    """

    times: np.ndarray
    errors: np.ndarray
    max_error: float
    worst_time: float
    solver: str
    rtol: float
    atol: float
    reference_status: str
    reference_stats: dict
    run_stats: dict

    @property
    def complete(self) -> bool:
        """The reference reached every saved time of the run."""
        return self.reference_status == "t_max" and len(self.errors) == len(self.times)

    def __str__(self) -> str:
        lines = [f"accuracy check: reference {self.solver} at rtol {self.rtol:g}, atol "
                 f"{self.atol:g} (status {self.reference_status})"]
        if not self.complete:
            lines.append(f"  INCOMPLETE: the reference reached {len(self.errors)} of "
                         f"{len(self.times)} saved times")
        shown = np.unique(np.concatenate([
            np.arange(min(len(self.errors), 12)),
            np.argsort(self.errors)[-3:] if len(self.errors) else [],
            [len(self.errors) - 1] if len(self.errors) else []]).astype(int))
        for i in shown:
            lines.append(f"  t = {self.times[i]:<12.6g} relative error in W {self.errors[i]:.2e}")
        if len(self.errors) > len(shown):
            lines.append(f"  ({len(self.errors) - len(shown)} more saved times not shown)")
        lines.append(f"  largest {self.max_error:.2e} at t = {self.worst_time:.6g}")
        lines.append(f"  cost: {_cost(self.reference_stats)} (the run: "
                     f"{_cost(self.run_stats)})")
        return "\n".join(lines)


def _cost(stats: dict) -> str:
    evaluations = stats.get("vector_field_evaluations")
    return ", ".join([f"{stats.get('steps', 0)} steps"]
                     + ([f"{int(evaluations)} evaluations"] if evaluations else [])
                     + [f"{stats.get('wall_s', math.nan):.2f} s"])


def check_accuracy(traj: Trajectory, *, factor: float = 100.0, solver: str | None = None,
                   progress: bool | None = False) -> AccuracyReport:
    """Solve the run of ``traj`` again with tolerances ``factor`` times tighter (and
    ``solver``, if given; e.g. ``"Dopri8"`` or scipy's ``"DOP853"`` for a check
    independent of the method) onto every saved time of ``traj``, and compare ``W``.

    **Arguments:**

    - `traj`: a gradient-flow :class:`~flowsim.Trajectory` (from :func:`gradient_flow`
      or loaded from a file; its ``config`` says how it was made).
    - `factor`: how much tighter ``rtol``, ``atol`` and ``escape_rtol`` are (``> 1``); a
      solver outside flowsim's loop (scipy's) has one tolerance and takes the tightest.
    - `solver`: the reference's solver (default: the run's own).
    - `progress`: a progress bar for the reference solve.

    **Returns:** an :class:`AccuracyReport`.

    ```python
    traj = fs.gradient_flow(problem, model, params, save_at=[0.5, 1, 2, 5], stop_loss=1e-6)
    print(fs.check_accuracy(traj))
    ```
    """
    if not isinstance(traj, Trajectory):
        raise TypeError(f"traj must be a Trajectory, got {type(traj).__name__}")
    config = traj.config
    if config.get("kind") != "gradient_flow":
        raise ValueError(f"traj must come from gradient_flow (its config kind is "
                         f"{config.get('kind')!r})")
    if isinstance(factor, bool) or not isinstance(factor, (int, float)) or not factor > 1 \
            or not math.isfinite(factor):
        raise ValueError(f"factor must be a finite number > 1, got {factor!r}")
    if len(traj) < 2:
        raise ValueError("traj has no saved point after t = 0 to check")
    problem = problem_from_dict(config["problem"])
    model = model_from_dict(config["model"])
    if traj.factors is not None:
        params = tuple(np.asarray(f[0]) for f in traj.factors)
    else:
        params = factors_from_product(model, np.asarray(traj.product[0]))
    used = SolverOptions.from_dict(config["options"])
    rtol, atol = used.rtol / factor, used.atol / factor
    escape = (used.escape_rtol or used.rtol) / factor
    if REGISTRY[check_name(solver or used.solver)].family != "loop":
        rtol, atol = escape, atol * escape / rtol  # one tolerance: the tightest
    options = used.replace(solver=solver or used.solver, rtol=rtol, atol=atol,
                           escape_rtol=escape, conserved_rtol=None,
                           max_steps=used.max_steps * 10)
    times = np.asarray(traj.t[1:], dtype=np.float64)
    keep = np.concatenate([[True], np.diff(times) > 0]) & (times > 0)
    times = times[keep]
    start = time.perf_counter()
    ref = gradient_flow(problem, model, params, coordinates=config["coordinates"],
                        t_max=float(times[-1]), save_at=times, options=options,
                        progress=progress)
    wall = time.perf_counter() - start
    n = min(len(ref) - 1, len(times))
    w = np.asarray(traj.product[1:])[keep][:n]
    w_ref = np.asarray(ref.product[1:n + 1])
    diff = np.linalg.norm((w - w_ref).reshape(n, -1), axis=1)
    scale = np.maximum(np.linalg.norm(w_ref.reshape(n, -1), axis=1), 1e-300)
    errors = diff / scale
    worst = int(np.argmax(errors)) if n else 0
    return AccuracyReport(
        times=times, errors=errors, max_error=float(errors.max()) if n else math.inf,
        worst_time=float(times[worst]) if n else math.nan, solver=options.solver,
        rtol=rtol, atol=atol, reference_status=ref.status,
        reference_stats={**ref.stats, "wall_s": wall}, run_stats=dict(traj.stats))
