"""Dopri8EXPRB43 and Dopri8ROCK4: high order where the flow is smooth, a method for stiff
flows where it is stiff.

A flow from a small start has two regimes. The escape (singular values growing from the
start, learned one after another) is smooth and not stiff: an eighth-order explicit
method crosses it in a few dozen steps where a second-order Chebyshev method takes
hundreds. Then the largest Hessian eigenvalue ``rho`` settles and the slow modes take far
longer than ``1 / rho``: an explicit method is held at its stability limit
(``h rho <= 5.17`` for Dopri8, whatever the tolerance) and a stabilized one is not.

This solver runs diffrax's Dopri8 while it is free (at a tolerance
:data:`EXPLICIT_TOLERANCE` times the run's), watches ``rho`` with the power
iteration of the Chebyshev methods (:mod:`.rkc`), caps Dopri8's step at its stability
limit, and once that cap has held the step for :data:`SWITCH_AFTER` accepted steps in a
row goes over to the stiff method for the rest of the run: ROCK4 (:mod:`.rock4`, order
4, stabilized) in :class:`Dopri8ROCK4`, the exponential Rosenbrock method EXPRB43
(:mod:`.exponential`, order 4, exact on the linearization) in :class:`Dopri8EXPRB43`,
``solver="auto"``'s choice for large matrix flows. The switch is one way: along the
gradient flows flowsim integrates, stiffness grows with the learned singular values and
does not go away.

The two methods share the step-size controller (Dopri8ROCK4: diffrax's integral
controller, whose only history is the last step size; Dopri8EXPRB43: the predictive one of
:mod:`.control`, which also extrapolates the error's trend over the last two accepted
steps of one method): on the switch the controller's exponent follows the method
(:meth:`Dopri8ROCK4.current_error_order`), and its step grows from Dopri8's
stability-limited one by at most the controller's ``factormax`` per step. Both methods
reuse ``F(y_n)`` from the end of the last step.
"""

from __future__ import annotations

import diffrax
import equinox as eqx
import equinox.internal as eqxi
import jax
import jax.numpy as jnp

from .explicit import rk_step
from .exponential import EXPRB43
from .rkc import ChebyshevSolver, StabilizedState
from .rock4 import ROCK4, degree_index, stages_for

#: Dopri8's stability interval on the negative real axis (``|R(z)| <= 1`` for
#: ``-5.166 <= z <= 0``, computed from diffrax's tableau; tests/test_switching.py)
EXPLICIT_INTERVAL = 5.166
#: new vector-field evaluations of one Dopri8 step (14 stages, the first reused)
EXPLICIT_EVALUATIONS = 13
#: accepted explicit steps in a row held at the stability limit before the switch
SWITCH_AFTER = 8
#: Dopri8's steps are controlled to this fraction of the run's tolerances: in the escape
#: from a small start the directions that grow carry their errors with them (a local
#: error made early is multiplied by the growth of the singular values after it), so the
#: global error at the end of the escape is its local errors times that growth; Dopri8
#: pays little for a tighter tolerance (order 8: 100x tighter costs ~1.8x its steps).
#: Dopri8EXPRB43 takes it too, and the loop tightens its tolerances 10x more in the
#: escape (:data:`.options.ESCAPE_TIGHTENING`): there Dopri8 runs at ``1e-3`` of them,
#: the same absolute tolerances as Dopri8ROCK4's defaults (docs/numerics.md, "The
#: explicit tolerance")
EXPLICIT_TOLERANCE = 1e-2
#: error orders of the two estimates (Dopri8: order 7 embedded in 8; ROCK4: 3 in 4)
EXPLICIT_ORDER, STABILIZED_ORDER = 8, 4


class SwitchState(eqx.Module):
    """The shared stabilized state (``F(y_n)``, power iteration, counters), whether the
    run has switched to ROCK4 and at what time (``inf``: not yet), and how many accepted
    explicit steps in a row were held at the stability limit."""

    base: StabilizedState
    stiff: jax.Array
    held: jax.Array
    switched_at: jax.Array

    @property
    def fevals(self):
        return self.base.fevals

    @property
    def jvps(self):
        return self.base.jvps

    @property
    def rho(self):
        return self.base.rho


class Dopri8ROCK4(ChebyshevSolver):
    """The solver interface of the compiled loop (module doc)."""

    def init(self, term, t0, t1, y0, args) -> SwitchState:
        base = super().init(term, t0, t1, y0, args)
        return SwitchState(base=base, stiff=jnp.asarray(False),
                           held=jnp.asarray(0, jnp.int32),
                           switched_at=jnp.asarray(jnp.inf, jnp.float64))

    def error_order(self, term):
        return EXPLICIT_ORDER

    def current_error_order(self, state: SwitchState):
        """The order of the estimate of the method the next step uses."""
        return jnp.where(state.stiff, self.stiff_order, EXPLICIT_ORDER)

    def explicit_limit(self, rho):
        return EXPLICIT_INTERVAL / jnp.maximum(self.safety * rho, 1e-300)

    def step_limit(self, state: SwitchState):
        return jnp.where(state.stiff, self.stiff_limit(state.base.rho),
                         self.explicit_limit(state.base.rho))

    # -- the stiff method (a subclass gives another) --------------------------------------
    #: Dopri8's tolerances, as a fraction of the run's
    explicit_tolerance = EXPLICIT_TOLERANCE
    #: error order of the stiff method's estimate
    stiff_order = STABILIZED_ORDER
    #: the stiff method returns the radius its step bound reads (no power iteration)
    stiff_measures_rho = False

    def stiff_limit(self, rho):
        """The stiff method's largest step at spectral radius ``rho``."""
        return ROCK4().stability_limit(self.safety * rho)

    def stiff_advance(self, term, t0, h, y0, args, f0, rho):
        """One step of the stiff method: ``(y1, error estimate, F(y1), evaluations,
        Jacobian-vector products, spectral radius)``."""
        index = degree_index(stages_for(h, self.safety * rho))
        y1, y_error, f1, evaluations = ROCK4().advance(term, t0, h, y0, args, f0, index)
        return y1, y_error, f1, evaluations, 0, rho

    def step(self, term, t0, t1, y0, args, state: SwitchState, made_jump):
        del made_jump
        h = t1 - t0
        # the stiff method may measure its own radius (the power iteration then stops)
        v, rho, n_power = self.spectral_radius(term, t0, y0, args, state.base,
                                               skip=state.stiff & self.stiff_measures_rho)
        f0 = state.base.f0

        def explicit():
            y1, y_error, f1 = rk_step(diffrax.Dopri8.tableau, term, t0, h, y0, args, f0)
            return (y1, y_error / self.explicit_tolerance, f1,
                    jnp.asarray(EXPLICIT_EVALUATIONS, jnp.int32), jnp.asarray(0, jnp.int32),
                    rho)

        def stabilized():
            y1, y_error, f1, evaluations, jvps, rho1 = self.stiff_advance(
                term, t0, h, y0, args, f0, rho)
            return (y1, y_error, f1, jnp.asarray(evaluations, jnp.int32),
                    jnp.asarray(jvps, jnp.int32), jnp.asarray(rho1, rho.dtype))

        def mixed():  # lanes of a batch in both regimes: both steps, each lane its own
            a, b = explicit(), stabilized()
            return jax.tree.map(lambda u, w: jnp.where(state.stiff, w, u), a, b)

        # a real branch wherever every lane is in one regime (a single run always is)
        y1, y_error, f1, evaluations, jvps, rho = jax.lax.cond(
            eqxi.unvmap_all(state.stiff), stabilized,
            lambda: jax.lax.cond(eqxi.unvmap_any(state.stiff), mixed, explicit))
        # held at the stability limit (the loop clipped the controller's step to it)
        held_now = ~state.stiff & (h >= (1.0 - 1e-9) * self.explicit_limit(state.base.rho))
        held = jnp.where(held_now, state.held + 1, 0)
        stiff = state.stiff | (held >= SWITCH_AFTER)
        switched_at = jnp.where(stiff & ~state.stiff, t1, state.switched_at)
        base = state.base.advanced(f1, v, rho, evaluations + n_power, jvps)
        return y1, y_error, None, SwitchState(base=base, stiff=stiff, held=held,
                                              switched_at=switched_at), None


class Dopri8EXPRB43(Dopri8ROCK4):
    """Dopri8 while the flow is not stiff, then the fourth-order exponential Rosenbrock
    method EXPRB43 (:mod:`.exponential`: exact on the linearization, Lanczos for its
    ``phi`` functions) once it is. The run's tolerances also set EXPRB43's Krylov
    tolerance; Dopri8 runs at :data:`EXPLICIT_TOLERANCE` of them (1e-3 in the escape)."""

    rtol: float = 1e-6
    atol: float = 1e-9
    stiff_order = EXPRB43.order
    stiff_measures_rho = True

    def stiff_limit(self, rho):
        return EXPRB43().stability_limit(rho)

    def stiff_advance(self, term, t0, h, y0, args, f0, rho):
        y1, y_error, f1, evaluations, jvps, radius = EXPRB43(
            rtol=self.rtol, atol=self.atol).advance(term, t0, h, y0, args, f0)
        return y1, y_error, f1, evaluations, jvps, jnp.maximum(radius, 0.5 * rho)
