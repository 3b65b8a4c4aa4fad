"""Verdicts: what a run's end, or a precision guard's alarm, means, and the messages.

After every chunk the driver (:mod:`.driver`) hands the code the chunk ended with
(:data:`flowsim.statuses.ENDS`) to :func:`verdict`: the run goes on, or ends with a status
and a message. The three precision guards of :mod:`.guards` are judged here:

- **sign of det W** (:func:`sign_verdict`): a change of sign where ``sigma_min(W)`` stands
  :data:`.guards.RESOLVED_DECADES` decades clear of the error level of ``W`` at both ends of
  the step is the flow's own crossing of ``det W = 0`` (recorded in
  ``traj.stats["det_crossings"]``, the run goes on); any other is rounding: a loss of
  precision where the sign decides the answer (``SolverOptions.det_sign_guard``
  ``"strict"``), else recorded with its size (``traj.stats["sign_events"]``,
  :func:`sign_events_note`) and the run goes on;
- **conserved quantities** (:func:`drift_verdict`) and **the loss never rises**
  (:func:`rise_verdict`): past their tolerance the integration no longer follows the flow.

A loss of precision (:func:`precision_event`) ends the run ``"precision_lost"``, or under
``on_precision_loss="continue"`` is recorded and its guard switched off for that member.
"""

from __future__ import annotations

import math
import warnings

import jax.numpy as jnp
import numpy as np

from ..dynamics import Coordinates
from ..parameterization import DeepMatrixFactorization
from ..statuses import ENDS, PRECISION_GUARDS, PRECISION_MESSAGE
from . import guards
from .runs import Run, replace_member


def follow_hint(coords: Coordinates, balanced: bool) -> str:
    """Which coordinates would follow the flow where ``coords`` lost the sign of det."""
    model = coords.model
    if (balanced and isinstance(model, DeepMatrixFactorization)
            and tuple(model.shape) == (2, 2) and model.depth >= 2):
        return "coordinates='svd' follow the flow there (the sign of det W is exact in them)"
    if balanced:
        return ("the exact flow keeps the sign of det W from a balanced start (Lemma 5); "
                "flowsim's sign-exact coordinates ('svd') exist for 2x2 products only, so "
                "follow this flow in extended precision (flowsim.extended_precision) or "
                "stop at a higher loss")
    return ("from an unbalanced start only extended precision resolves it "
            "(flowsim.extended_precision)")


def precision_event(coords, options, run: Run, engine, kind: str, detail: str) -> bool:
    """Record a loss of precision; ``True`` when the run must end."""
    t, _ = engine.point(run)
    loss = run.loss
    message = PRECISION_MESSAGE.format(t=t, loss=loss, steps=engine.counters(run)["steps"],
                                       coordinates=coords.name, detail=detail)
    run.stats["precision_events"].append({"kind": kind, "t": t, "loss": loss,
                                          "message": message})
    if options.on_precision_loss == "stop":
        run.failure = message + ". Every point computed is kept; pass " \
            "on_precision_loss='continue' to go on regardless."
        return True
    # continued on request: this guard is not watched again for this member
    guard = PRECISION_GUARDS[kind]
    run.member = replace_member(run.member, **{guard.guard: guard.off})
    return False


def sign_verdict(coords, options, run: Run, engine) -> bool:
    """A change of sign of det W at the last step: the flow's own crossing (go on) or
    rounding (a precision event). ``True`` when the run must end."""
    t_b, y_b = engine.point(run)
    t_a, y_a = engine.prev_point(run)
    tol = (options.rtol, options.atol)
    res_a, res_b = coords.resolution(y_a, *tol), coords.resolution(y_b, *tol)
    sign_b = engine.sign(run)
    if min(res_a, res_b) >= guards.RESOLVED_DECADES:
        run.stats["det_crossings"].append(t_b)
        return False
    if options.det_sign_guard == "record":
        # rounding-level where the sign does not decide the answer: the nearest W of the
        # other sign is sigma_min(W) away
        w = np.asarray(coords.product(jnp.asarray(y_b)), dtype=np.float64)
        size = float(coords.sigma_min(y_b)) / max(float(np.linalg.norm(w)), 1e-300)
        run.stats["sign_events"].append({"t": t_b, "loss": run.loss, "relative_size": size})
        return False
    balanced = bool(run.config.get("balanced_start"))
    margin = min(res_a, res_b)
    where = (f"only {margin:.1f} decades above" if margin >= 0
             else f"{-margin:.1f} decades below")
    detail = (f"the sign of det W changed from {-sign_b:+.0f} to {sign_b:+.0f} between "
              f"t={t_a:.6g} and t={t_b:.6g}, where sigma_min(W) stood {where} the error "
              f"level of W in these coordinates (float64 rounding or rtol * |W| + atol, "
              f"whichever is larger; a crossing of det W = 0 by the flow needs "
              f"{guards.RESOLVED_DECADES:g}); "
              f"{follow_hint(coords, balanced)}")
    return precision_event(coords, options, run, engine, "det_sign", detail)


def drift_verdict(coords, options, run: Run, engine) -> bool:
    _, y = engine.point(run)
    drift = float(guards.conserved_drift(coords, jnp.asarray(y),
                                         jnp.asarray(run.member.conserved0)))
    what = ("W_(l+1)^T W_(l+1) - W_l W_l^T" if isinstance(coords.model,
                                                       DeepMatrixFactorization)
            else "the differences of the CP components' squared norms")
    detail = (f"the conserved quantity {what} drifted by {drift:.2e} of its scale "
              f"(conserved_rtol={options.conserved_rtol:g}): the integration no "
              f"longer follows the flow to that accuracy; tighten rtol/atol (now "
              f"{options.rtol:g}/{options.atol:g})")
    return precision_event(coords, options, run, engine, "conserved", detail)


#: what a rise of the loss over an accepted step means
RISE_DETAIL = ("the loss rose from {before:.6e} to {after:.6e} between t={t_a:.6g} and "
               "t={t_b:.6g} (loss_rise_rtol={tol:g}); gradient flow never raises the loss, "
               "so the integration no longer follows it here (the residuals are at the "
               "precision of W's entries in these coordinates, or the step error exceeds "
               "them; tighter rtol/atol may help)")


def rise_verdict(coords, options, run: Run, engine) -> bool:
    t_a, _ = engine.prev_point(run)
    t_b, _ = engine.point(run)
    detail = RISE_DETAIL.format(before=run.prev_loss, after=run.loss, t_a=t_a, t_b=t_b,
                                tol=options.loss_rise_rtol)
    return precision_event(coords, options, run, engine, "loss_rose", detail)


#: the precision guards' verdicts, by event kind (:data:`flowsim.statuses.PRECISION_GUARDS`)
VERDICTS = {"det_sign": sign_verdict, "conserved": drift_verdict, "loss_rose": rise_verdict}
assert set(VERDICTS) == set(PRECISION_GUARDS)


def verdict(coords, options, spec, run: Run, engine, code: int) -> tuple[str, str] | None:
    """What the end ``code`` of ``run``'s last chunk means: ``None`` while the run goes on,
    else ``(status, message)``. (A stop-loss crossing is the driver's: it locates the stop
    point first.)"""
    end = ENDS[code]
    if code == guards.CONTINUE:
        return None
    t, y = engine.point(run)
    if end.event is not None:  # a precision guard: go on, or end "precision_lost"
        if not VERDICTS[end.event](coords, options, run, engine):
            return None
        return end.status, run.failure
    if code == guards.T_MAX and t < run.t_max:  # a requested save time, not t_max itself
        return None
    fields = {"t": t, "loss": run.loss, "t_max": run.t_max, "max_abs": options.max_abs,
              "max_steps": options.max_steps, "attempts": spec.max_attempts}
    if code == guards.NORM:
        fields["big"] = float(np.max(np.abs(np.asarray(coords.product(jnp.asarray(y))))))
    # a solver's own failure (scipy's message) says more than the collapse template
    failure = run.failure if code == guards.COLLAPSE else None
    return end.status, failure or end.message.format(**fields)


def stop_message(run: Run, t, loss) -> str:
    """The message of a run that ended at its located stop point ``(t, loss)``."""
    return ENDS[guards.STOP].message.format(stop_loss=run.stop_loss, t=t, loss=loss)


def at_start(run: Run, loss0: float, field0) -> tuple[str, str] | None:
    """``(status, message)`` of a run that needs no integration (non-finite, already below
    stop_loss, or a stationary point of the flow; a stationary run to a finite ``t_max``
    gets its point there), else ``None``."""
    y0 = run.y0
    if not (np.all(np.isfinite(y0)) and np.isfinite(loss0) and np.all(np.isfinite(field0))):
        return "nonfinite", ("loss or vector field is not finite at the initial state "
                             "(values too large for float64?)")
    if run.stop_loss is not None and loss0 <= run.stop_loss:
        return "stop_loss", (f"loss {loss0:.6e} <= stop_loss={run.stop_loss:.3e} at the "
                             "initial state (t=0)")
    if np.any(field0):
        return None
    if math.isfinite(run.t_max):
        run.ts.append(np.array([run.t_max]))
        run.ys.append(y0[None, :])
        return "t_max", (f"the initial state is a stationary point of the flow (vector field "
                         f"exactly 0): W(t) = W(0) up to t_max={run.t_max:g}")
    return "stationary", ("the initial state is a stationary point of the flow (vector field "
                          "exactly 0, e.g. zero factors at depth >= 2): the flow stays there "
                          "for all t, so " + ("stop_loss is never reached"
                                              if run.stop_loss is not None
                                              else "there is nothing to integrate"))


def sign_events_note(events: list) -> str:
    """What a run's recorded sign changes of det W (``det_sign_guard="record"``) add to
    its message, with a warning: empty where there were none."""
    if not events:
        return ""
    largest = max(e["relative_size"] for e in events)
    note = (f"; the sign of det W changed {len(events)} time(s) where rounding could change "
            f"it (recorded in stats['sign_events']): sigma_min(W) was at most "
            f"{largest:.1e} of ||W||_F there, so W is that close (relative, Frobenius) to "
            f"a matrix of either sign, and the run went on (det_sign_guard='strict' ends "
            f"it instead)")
    warnings.warn("flowsim: " + note[2:], stacklevel=4)
    return note
