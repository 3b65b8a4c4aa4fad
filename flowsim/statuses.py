"""How a run ends: one table (:data:`ENDS`, as diffrax keeps one ``RESULTS`` enum) that every
list of statuses, end codes and guards is read from.

Each row is one reason a run pauses or ends: the integer ``code`` the compiled step loop
returns for it (:mod:`flowsim.integration.guards`; reasons only the host decides come
after the loop's codes), the :class:`~flowsim.Trajectory` status it ends with, whether
that is a success, whether a finished checkpoint with that status can be extended, the
message template (``str.format`` fields), the guard that raises it (the loop's
``Member`` field that carries it, and the value that switches it off) and, for the three
precision guards, the kind of precision event recorded in
``traj.stats["precision_events"]``.

The trajectory's statuses (:data:`SUCCESS_STATUSES`, :data:`FAILURE_STATUSES`),
gradient descent's (:data:`DESCENT_STATUSES`), the checkpoint's extendable statuses and
guard state, and the loop's codes are all derived here.
"""

from __future__ import annotations

import math
from typing import NamedTuple

#: switched-off value of an integer budget (``max_steps``)
NO_LIMIT = 2**63 - 1


class End(NamedTuple):
    """One row of :data:`ENDS`."""

    #: the compiled loop's code (host-only reasons: numbers past the loop's)
    code: int
    #: the reason's name (:data:`flowsim.integration.guards.CODES`)
    reason: str
    #: the Trajectory status (``None``: not an end, the loop goes on)
    status: str | None
    success: bool = False
    #: a finished run with this status can be extended from its checkpoint
    extendable: bool = False
    #: the message, ``str.format`` fields named as the verdicts fill them
    message: str = ""
    #: the loop ``Member`` field that carries the guard, and its off value
    guard: str | None = None
    off: object = None
    #: precision guards: the kind of event in ``traj.stats["precision_events"]``
    event: str | None = None
    #: who ends with it: the flow, gradient descent (:func:`flowsim.descend`)
    by: tuple[str, ...] = ("flow",)


ENDS = (
    End(0, "continue", None),
    End(1, "t_max", "t_max", success=True, extendable=True, guard="t1",
        message="reached t_max={t_max:g} (loss {loss:.3e})"),
    End(2, "stop_loss", "stop_loss", success=True, extendable=True, guard="stop", off=-1.0,
        message="loss reached stop_loss={stop_loss:.3e} at t={t:.10g} (located by Newton "
                "on log-loss: loss {loss:.10e} there)", by=("flow", "descent")),
    End(3, "norm_bound", "norm_bound", guard="max_abs", off=math.inf,
        message="max|W| = {big:.3e} reached max_abs={max_abs:g} at t={t:.6g} "
                "(loss {loss:.3e})"),
    End(4, "nonfinite", "nonfinite", message="non-finite state at t={t:.6g}",
        by=("flow", "descent")),
    End(5, "det_sign_changed", "precision_lost", guard="sign_check", off=False,
        event="det_sign"),
    End(6, "conserved_drift", "precision_lost", guard="drift_tol", off=math.inf,
        event="conserved"),
    End(7, "step_size_collapsed", "solver_failure",
        message="the step size collapsed at t={t:.6g} (loss {loss:.3e}): no step accepted "
                "in {attempts} tries"),
    End(8, "max_steps", "max_steps", extendable=True, guard="max_steps", off=NO_LIMIT,
        message="max_steps={max_steps} accepted steps reached at t={t:.6g} "
                "(loss {loss:.3e})"),
    End(9, "loss_rose", "precision_lost", guard="rise_tol", off=math.inf, event="loss_rose"),
    # decided on the host, never by the loop
    End(10, "max_iterations", "max_iterations", success=True, by=("descent",)),
    End(11, "interrupted", "interrupted", by=("flow", "descent")),
    End(12, "stationary", "stationary"),
)
assert all(end.code == i for i, end in enumerate(ENDS))  # a code indexes its row

#: the message every precision guard's event starts with
PRECISION_MESSAGE = ("precision lost at t={t:.6g} (loss {loss:.3e}, step {steps}) in "
                     "coordinates={coordinates!r}: {detail}")


def statuses(*, success: bool | None = None, by: str | None = None) -> tuple[str, ...]:
    """The statuses of :data:`ENDS` (each once, in code order), those that are (not) a
    success, or those ``by`` (``"flow"``, ``"descent"``) ends with."""
    return tuple(dict.fromkeys(
        e.status for e in ENDS if e.status is not None
        and (success is None or e.success == success) and (by is None or by in e.by)))


#: statuses that mean "stopped where asked"
SUCCESS_STATUSES = statuses(success=True)
#: statuses of a run that ended early or could not follow the flow
FAILURE_STATUSES = statuses(success=False)
#: statuses :func:`flowsim.descend` ends with
DESCENT_STATUSES = statuses(by="descent")
#: statuses a finished run can be extended from (its checkpoint)
EXTENDABLE_STATUSES = tuple(dict.fromkeys(e.status for e in ENDS if e.extendable))
#: the precision guards, by event kind
PRECISION_GUARDS = {e.event: e for e in ENDS if e.event is not None}
