"""End conditions of a run, and the precision guards that make a lost flow loud.

Inside the compiled loop (:mod:`.loop`), after every accepted step, :func:`step_code`
returns why the run must pause or end there (one of :data:`CODES`). The host side
(:mod:`.verdicts`) then decides, and for the precision guards explains:

- **sign of det W.** Along gradient flow from a balanced start ``det W`` never changes
  sign (Lemma 5; docs/derivations.md D1); from an unbalanced start it may cross zero, and does
  (Figure 1's unbalanced runs). The sign is only resolved while the smallest singular
  value of ``W`` stands clear of the error level of ``W`` in the run's coordinates:
  float64's rounding, or the integrator's per-step tolerance ``rtol |W| + atol`` where
  that is larger (:meth:`~flowsim.dynamics.Coordinates.resolution`; measured: product
  coordinates at depth 2 flipped the sign with sigma_min/sigma_max = 3e-13, far above
  float64's 1e-16 but below rtol = 1e-10). A change of sign where both the
  point before and the point after are resolved by :data:`RESOLVED_DECADES` decades is
  the flow crossing ``det W = 0`` and the run goes on (``traj.stats["det_crossings"]``);
  a change where either is not is rounding: the run ends with status
  ``"precision_lost"``, a message naming the time, the loss and the coordinates that
  would follow the flow there.
- **conserved quantities.** ``W_{l+1}^T W_{l+1} - W_l W_l^T`` (CP: differences of
  component norms) is constant along the exact flow from every start. Coordinates that
  carry the factors watch its drift relative to its scale at the end of every chunk of
  steps (a drift accumulates slowly; checked after every step it cost 2/3 of a gradient
  evaluation per step at 100x100); past ``SolverOptions.conserved_rtol`` the run ends with
  ``"precision_lost"``.

- **the loss never rises.** Gradient flow decreases the loss (``d loss/dt = -|grad|^2``)
  in every coordinate system. An accepted step where it rose by more than
  ``SolverOptions.loss_rise_rtol`` (relative) means the integration no longer follows the
  flow (measured: the svd coordinates at depth 3 near loss 1.4e-14, seeds whose angles
  sit near ``pi``, where the residuals fall below the precision of ``W``'s entries): the
  run ends ``"precision_lost"``.

``SolverOptions(on_precision_loss="continue")`` records the event in
``traj.stats["precision_events"]`` and goes on instead.
"""

from __future__ import annotations

from typing import NamedTuple

import jax.numpy as jnp

from ..statuses import ENDS

#: the loop's end codes, named by :data:`flowsim.statuses.ENDS` (the rows' reasons)
CODES = {end.code: end.reason for end in ENDS}
_CODE = {end.reason: end.code for end in ENDS}
CONTINUE, T_MAX, STOP, NORM, NONFINITE = (_CODE[r] for r in (
    "continue", "t_max", "stop_loss", "norm_bound", "nonfinite"))
SIGN, DRIFT, COLLAPSE, MAX_STEPS, ROSE = (_CODE[r] for r in (
    "det_sign_changed", "conserved_drift", "step_size_collapsed", "max_steps", "loss_rose"))

#: decades by which sigma_min(W) must stand above the error level of W on both sides of
#: a change of sign of det W for the change to count as the flow's own
RESOLVED_DECADES = 2.0


class StepContext(NamedTuple):
    """What :func:`step_code` needs of the point before a step."""

    steps: object
    sign: object
    loss: object


def conserved_drift(coords, y, conserved0):
    """``max |c(y) - c(y0)| / scale(y)`` of the conserved quantities ``c``."""
    c = coords.conserved(y)
    if c.shape[0] == 0:
        return jnp.asarray(0.0)
    return jnp.max(jnp.abs(c - conserved0)) / jnp.maximum(coords.conserved_scale(y), 1e-300)


def step_code(spec, coords, y, t, sign, carry, member):
    """``(code, loss)``: why a run must pause or end at the accepted step ``(t, y)``
    (highest priority last), given ``carry`` (a :class:`StepContext` or the loop's carry)
    before the step, and the loss there."""
    mask, target = member.mask, member.target
    loss, big = coords.loss_and_size(y, mask, target)
    finite = jnp.all(jnp.isfinite(y)) & jnp.isfinite(loss)
    code = jnp.asarray(CONTINUE)
    code = jnp.where(carry.steps + 1 >= member.max_steps, MAX_STEPS, code)
    code = jnp.where(t >= member.t1, T_MAX, code)
    code = jnp.where(~(big < member.max_abs), NORM, code)
    code = jnp.where(loss <= member.stop, STOP, code)
    code = jnp.where(loss > carry.loss * (1.0 + member.rise_tol), ROSE, code)
    if spec.watch_sign:
        code = jnp.where((sign != carry.sign) & member.sign_check, SIGN, code)
    return jnp.where(finite, code, NONFINITE), loss
