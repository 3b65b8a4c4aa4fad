"""Members and their runs: the state of one start of a call while it is integrated.

Words, used alike throughout the package:

- a **member** is one start (one set of initial factors) of a :func:`gradient_flow` call,
  alone or in a batch;
- its :class:`Run` is the host's book-keeping of it (saved points, the loop's carry, the
  loss there, the stats, the Trajectory once it ends);
- its :class:`.loop.Member` is what the compiled loop reads of it, fixed along the run
  (observations, limits, the guards' tolerances);
- a **lane** is the slot of the vmapped loop a member takes while it runs.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import jax.numpy as jnp
import numpy as np

from ..statuses import ENDS, NO_LIMIT, PRECISION_GUARDS
from ..trajectory import Trajectory
from . import loop


@dataclass(eq=False)
class Run:
    """Book-keeping of one member."""

    index: int
    y0: np.ndarray
    member: loop.Member
    stop_loss: float | None
    t_max: float
    config: dict
    ts: list = field(default_factory=list)
    ys: list = field(default_factory=list)
    carry: object = None
    prev: object = None
    loss: float = math.nan
    rate: float = math.nan
    prev_loss: float = math.nan
    #: the stop locator's re-integrations (``engine.cut``): ``cuts``, their ``steps``
    #: (accepted and rejected), ``vector_field_evaluations`` and
    #: ``jacobian_vector_products``; counted into the run's totals as well
    stop_location: dict = field(default_factory=dict)
    stats: dict = field(default_factory=dict)
    failure: str | None = None
    trajectory: Trajectory | None = None
    resume: dict | None = None


def new_run(index, coords, options, problem, y0, stop_loss, t_max, save_times,
            n_save_times: int, chunk_limit: int, config: dict) -> Run:
    """The run of a fresh member, holding its first saved point (``t = 0``)."""
    times = np.full(max(n_save_times, 0), np.inf)
    times[:len(save_times)] = save_times
    member = loop.Member(
        mask=np.asarray(problem.mask, dtype=np.float64),
        target=np.asarray(problem.target, dtype=np.float64),
        t1=np.float64(t_max if math.isfinite(t_max) else 1e300),
        stop=np.float64(-1.0 if stop_loss is None else stop_loss),
        max_abs=np.float64(options.max_abs), max_steps=np.int64(options.max_steps),
        drift_tol=np.float64(options.conserved_rtol),
        rise_tol=np.float64(options.loss_rise_rtol), sign_check=np.bool_(True),
        conserved0=np.asarray(coords.conserved(jnp.asarray(y0))),
        save_times=times, chunk_limit=np.int64(chunk_limit))
    return Run(index, y0, member, stop_loss, t_max, config, ts=[np.zeros(1)],
               ys=[y0[None, :]], stats={"det_crossings": [], "precision_events": [],
                                                "sign_events": []})


def replace_member(member: loop.Member, **changes) -> loop.Member:
    """``member`` with ``changes``, each cast to the dtype of the field it replaces."""
    fields = {k: getattr(member, k) for k in loop.Member.__annotations__}
    for key, value in changes.items():
        fields[key] = np.asarray(value, dtype=np.asarray(fields[key]).dtype)[()]
    return loop.Member(**fields)


def cut_member(member: loop.Member, t) -> loop.Member:
    """``member`` integrated to exactly ``t`` and nothing else: every guard off
    (:data:`flowsim.statuses.ENDS`), no save time, no chunk limit."""
    off = {end.guard: end.off for end in ENDS if end.off is not None}
    return replace_member(member, t1=t, chunk_limit=NO_LIMIT, **off,
                          save_times=np.full_like(np.asarray(member.save_times), np.inf))


def guard_state(member: loop.Member) -> dict:
    """The precision guards a member still watches (switched off after a continued
    event), as plain numbers by field name: what a checkpoint keeps of them."""
    return {g.guard: type(g.off)(getattr(member, g.guard)) for g in PRECISION_GUARDS.values()}
