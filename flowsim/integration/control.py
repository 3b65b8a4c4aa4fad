"""Step-size controllers of the compiled loop: diffrax's integral controller, and
:class:`PredictiveController`, which also looks at how the error changed between the last
two accepted steps.

diffrax's :class:`~diffrax.PIDController` with its defaults is an integral controller: the
next step is ``h * safety * err^(-1/k)`` (``err`` the step's error in the tolerances'
norm, ``k`` the estimate's order), and after an accepted step it never shrinks. Where the
error per unit step grows from one step to the next, as in the escape from a small start
(the singular values grow exponentially, and with them the solution's derivatives), an
accepted step is followed by one at least as long that fails, then a shorter one that
passes (docs/numerics.md, "Speed: the default call against gradient descent", has it
measured on the literature's protocol).

Gustafsson's predictive controller (K. Gustafsson, "Control-theoretic techniques for
stepsize selection in implicit Runge-Kutta methods", ACM TOMS 20(4), 1994; the form of
Hairer & Wanner's RADAU5, "Solving ODEs II", IV.8) extrapolates the error's trend from the
last two accepted steps ``h_acc, err_acc`` and ``h, err``:

    h_pred = safety * h * (h / h_acc) * err^(-1/k) * (err_acc / err)^(1/k).

Under the model ``err = phi h^k`` it is ``(phi_acc / phi)^(1/k)`` times the step the
current ``phi`` allows: it follows a ``phi`` that changes steadily, where the integral
controller lags. As in RADAU5 the step taken is the smaller of the two proposals (the
prediction only ever shortens a step), and errors below ``1e-2`` count as ``1e-2``.
flowsim applies it only between two error-controlled steps of one method: the same error
order, step ratio within ``[1 / PREDICT_RATIO, PREDICT_RATIO]`` (a step cut short to land
on a requested time, or one after it, is not a trend).
"""

from __future__ import annotations

import diffrax
import jax.numpy as jnp

#: controllers a registry entry may name (:data:`.solvers.REGISTRY`)
CONTROLLERS = ("integral", "predictive")
#: the prediction is used between accepted steps whose ratio is within this factor
PREDICT_RATIO = 4.0
#: errors below this count as this much in the prediction (RADAU5's floor)
ERROR_FLOOR = 1e-2


class PredictiveController(diffrax.PIDController):
    """diffrax's integral controller, whose proposal after an accepted step is cut to
    Gustafsson's prediction where that is smaller (module doc). Its state is ``(err, h,
    k)`` of the last accepted step (``err`` floored at :data:`ERROR_FLOOR`; ``h = 0``: none
    yet); diffrax's minimum step is not used (``dtmin`` stays ``None``)."""

    def init(self, term, t0, t1, y0, dt0, args, func, error_order):
        t1, _ = super().init(term, t0, t1, y0, dt0, args, func, error_order)
        zero = jnp.zeros((), jnp.float64)
        return t1, (zero, zero, zero)

    def adapt_step_size(self, t0, t1, y0, y1_candidate, args, y_error, error_order,
                        controller_state):
        floored_acc, h_acc, order_acc = controller_state
        # the integral controller's proposal (its history is unused: no P or D terms)
        one = jnp.ones((), jnp.float64)
        keep, next_t0, next_t1, made_jump, _, result = super().adapt_step_size(
            t0, t1, y0, y1_candidate, args, y_error, error_order, (one, one, False))
        # the step's error as diffrax measures it, floored
        scale = self.atol + self.rtol * jnp.maximum(jnp.abs(y0), jnp.abs(y1_candidate))
        floored = jnp.maximum(jnp.nan_to_num(self.norm(y_error / scale), nan=jnp.inf),
                              ERROR_FLOOR)
        h = t1 - t0
        order = jnp.asarray(error_order, jnp.float64)
        ratio = h / jnp.where(h_acc > 0, h_acc, 1.0)
        predicted = self.safety * h * ratio * (floored_acc / floored ** 2) ** (1.0 / order)
        predicted = jnp.clip(predicted, self.factormin * h, self.factormax * h)
        use = (keep & (h_acc > 0) & (order == order_acc)
               & (ratio <= PREDICT_RATIO) & (ratio >= 1.0 / PREDICT_RATIO))
        next_t1 = jnp.where(use, next_t0 + jnp.minimum(next_t1 - next_t0, predicted),
                            next_t1)
        state = (jnp.where(keep, floored, floored_acc), jnp.where(keep, h, h_acc),
                 jnp.where(keep, order, order_acc))
        return keep, next_t0, next_t1, made_jump, state, result


def make_controller(name: str, rtol: float, atol: float):
    """The controller ``name`` (:data:`CONTROLLERS`) at tolerances ``rtol, atol``."""
    if name == "predictive":
        return PredictiveController(rtol=rtol, atol=atol)
    if name == "integral":
        return diffrax.PIDController(rtol=rtol, atol=atol)
    raise ValueError(f"controller must be one of {list(CONTROLLERS)}, got {name!r}")
