"""The step-size controllers (flowsim.integration.control): Gustafsson's prediction
against its formula written here, and, on a model of the escape's errors (``err = phi_n
h^k`` with ``phi`` growing geometrically from step to step), the rejections of the
integral controller and of the predictive one."""

import diffrax
import jax.numpy as jnp
import numpy as np
import pytest

from flowsim.integration import control
from flowsim.integration.solvers import REGISTRY

ORDER = 8


def controller(name):
    # atol 1, rtol 0: the scaled error of a one-element y_error is its modulus
    return control.make_controller(name, 0.0, 1.0)


def adapt(ctrl, state, t0, h, err):
    y = jnp.zeros(1)
    keep, t0n, t1n, _, state, _ = ctrl.adapt_step_size(
        t0, t0 + h, y, y, None, jnp.asarray([err]), ORDER, state)
    return bool(keep), float(t0n), float(t1n - t0n), state


def integral(h, err, order=ORDER, keep=True):
    """diffrax's integral controller with its defaults (safety 0.9, a factor in [1, 10]
    after an accepted step, in [0.2, 0.9] after a rejected one)."""
    factor = 0.9 * err ** (-1 / order)
    return h * (min(max(factor, 1.0), 10.0) if keep else min(max(factor, 0.2), 0.9))


def initial_state(ctrl):
    term = diffrax.ODETerm(lambda t, y, args: -y)
    return ctrl.init(term, 0.0, 0.1, jnp.zeros(1), 0.1, None, None, ORDER)[1]


def test_the_prediction_is_gustafssons_formula_where_smaller():
    ctrl = controller("predictive")
    state = initial_state(ctrl)
    # first accepted step: no history, the integral controller's step
    keep, _, h1, state = adapt(ctrl, state, 0.0, 0.1, 0.5)
    assert keep and h1 == pytest.approx(integral(0.1, 0.5), rel=1e-14)
    # second accepted step, shorter, with a larger error: the trend says shrink
    h, err = 0.08, 0.7
    keep, _, h2, state = adapt(ctrl, state, 0.1, h, err)
    predicted = 0.9 * h * (h / 0.1) * err ** (-1 / ORDER) * (0.5 / err) ** (1 / ORDER)
    assert keep and predicted < integral(h, err)
    assert h2 == pytest.approx(predicted, rel=1e-14)
    # a rejected step: the integral controller's shrink, the history kept
    keep, t0n, h3, state = adapt(ctrl, state, 0.18, 0.1, 2.0)
    assert not keep and t0n == 0.18
    assert h3 == pytest.approx(integral(0.1, 2.0, keep=False), rel=1e-14)
    # a falling error: the prediction is longer, the integral controller's step is taken
    keep, _, h4, _ = adapt(ctrl, state, 0.18, 0.09, 0.3)
    predicted = 0.9 * 0.09 * (0.09 / 0.08) * 0.3 ** (-1 / ORDER) * (0.7 / 0.3) ** (1 / ORDER)
    assert keep and predicted > integral(0.09, 0.3)
    assert h4 == pytest.approx(integral(0.09, 0.3), rel=1e-14)
    # an error below the floor counts as the floor (1e-2), which bounds the growth
    keep, _, h5, _ = adapt(ctrl, state, 0.18, 0.09, 1e-9)
    predicted = 0.9 * 0.09 * (0.09 / 0.08) * (0.7 / 1e-2 ** 2) ** (1 / ORDER)
    assert keep and predicted < integral(0.09, 1e-9)
    assert h5 == pytest.approx(predicted, rel=1e-14)


def test_no_prediction_across_a_change_of_order_or_a_cut_step():
    ctrl = controller("predictive")
    state = initial_state(ctrl)
    _, _, _, state = adapt(ctrl, state, 0.0, 0.1, 0.5)
    # a step cut to a tenth (to land on a save time): outside PREDICT_RATIO
    keep, _, h, _ = adapt(ctrl, state, 0.1, 0.01, 0.9)
    assert keep and h == pytest.approx(integral(0.01, 0.9), rel=1e-14)
    # another method's error order (the switch to the stiff method)
    y = jnp.zeros(1)
    keep, t0n, t1n, _, _, _ = ctrl.adapt_step_size(0.1, 0.19, y, y, None,
                                                   jnp.asarray([0.9]), 4, state)
    assert bool(keep) and float(t1n - t0n) == pytest.approx(integral(0.09, 0.9, order=4),
                                                            rel=1e-14)


def rejections(name, growth, steps=40):
    """Accepted and rejected steps of controller ``name`` on ``err = phi h^8`` where
    ``phi`` grows by ``growth`` per unit time (the escape from a small start: the
    solution's derivatives grow like its singular values)."""
    ctrl = controller(name)
    state = initial_state(ctrl)
    t, h, accepted, rejected = 0.0, 0.05, 0, 0
    while accepted < steps:
        err = np.exp(growth * t) * (h / 0.05) ** ORDER * 0.5
        keep, t, h, state = adapt(ctrl, state, t, h, err)
        accepted += keep
        rejected += not keep
    return rejected


def test_the_prediction_follows_a_growing_error_where_the_integral_controller_fails():
    # the error constant grows like e^(30 t): x4.5 per step of 0.05, as in the protocol's
    # escape. The integral controller never shrinks a step after an accepted one, so an
    # accepted step is followed by a failed one until the steps are short enough for the
    # growth per step to fit in its margin (measured: 15 rejections in 40 accepted steps,
    # none for the predictive controller after its first two steps)
    assert rejections("integral", 30.0) >= 10
    assert rejections("predictive", 30.0) <= 2


def test_the_registry_names_a_controller_for_every_solver():
    assert all(entry.controller in control.CONTROLLERS for entry in REGISTRY.values())
    assert REGISTRY["Dopri8EXPRB43"].controller == "predictive"
    with pytest.raises(ValueError, match="controller must be one of"):
        control.make_controller("pid", 1e-6, 1e-9)
