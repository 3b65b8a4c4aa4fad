"""The stop locator (flowsim.integration.locate) on losses written here: it ends on the
stop side within its tolerance in a few cuts, survives a slope that has lost its digits
and a loss whose rounding is above the tolerance, and never returns a point above the
stop loss."""

import math
from types import SimpleNamespace

import numpy as np
import pytest

from flowsim.integration import locate as loc


class Engine:
    """Cuts of a scalar run whose loss is ``loss(t)`` and whose slope ``d loss / dt`` is
    ``rate(t)`` (both written in the test), counting the cuts."""

    def __init__(self, loss, rate, t_a, t_b):
        self.loss, self.rate, self.t_a, self.t_b = loss, rate, t_a, t_b
        self.cuts = 0

    def prev_point(self, run):
        return self.t_a, np.array([self.t_a])

    def point(self, run):
        return self.t_b, np.array([self.t_b])

    def cut(self, runs, t):
        self.cuts += 1
        return (np.array([[ti] for ti in t]), np.array([self.loss(ti) for ti in t]),
                np.array([self.rate(ti) for ti in t]))


def run_for(engine, stop):
    return SimpleNamespace(stop_loss=stop, loss=engine.loss(engine.t_b),
                           rate=engine.rate(engine.t_b), prev_loss=engine.loss(engine.t_a))


def located(engine, stop):
    t, y, loss = loc.locate([run_for(engine, stop)], engine)
    return float(t[0]), float(y[0, 0]), float(loss[0])


def exact_root(loss, stop, lo, hi):
    """Bisection to the last bit (independent of the locator)."""
    for _ in range(200):
        mid = 0.5 * (lo + hi)
        if loss(mid) > stop:
            lo = mid
        else:
            hi = mid
    return hi


@pytest.mark.parametrize("decay", [0.0174, 2.0])
def test_an_exponential_tail_is_located_in_a_few_cuts(decay):
    # the protocol's tail: loss = c exp(-decay t), a step from 308 to 337 crossing 1e-6
    c = 1e-6 * math.exp(decay * 330.0)
    loss = lambda t: c * math.exp(-decay * t)  # noqa: E731
    rate = lambda t: -decay * loss(t)  # noqa: E731
    t_b = 330.0 + 0.5 / decay
    engine = Engine(loss, rate, 330.0 - 22.0 / (1 + decay), t_b)
    t, y, value = located(engine, 1e-6)
    # the stop side, within the tolerance, and the point returned is the one cut there
    assert value <= 1e-6 and math.log(value / 1e-6) > -loc.STOP_LOG_TOL
    assert y == t and value == loss(t)
    # log loss falls at rate ``decay``: the window of accepted losses is ``t`` in
    # ``[root, root + STOP_LOG_TOL / decay)``
    root = exact_root(loss, 1e-6, engine.t_a, t_b)
    assert 0.0 <= (t - root) * decay < loc.STOP_LOG_TOL * (1.0 + 1e-6), (t - root) * decay
    # log loss is linear in t here: the quadratic start is exact up to rounding
    assert engine.cuts == 1


def test_a_slope_without_digits_falls_back_on_the_secant():
    # Theorem 1's regime: loss ~ 1/t to 1e-12 near t = 5e14, the exact slope -loss/t
    # reported 10-1000x too steep (as flowsim's d loss/dt is there, from cancellation)
    loss = lambda t: 5e2 / t  # noqa: E731
    wrong = lambda t: -loss(t) / t * (10.0 + 990.0 * (t * 1e-3 % 1.0))  # noqa: E731
    stop = 1e-12
    t_b = 6e14
    engine = Engine(loss, wrong, 2e14, t_b)
    t, _, value = located(engine, stop)
    assert value <= stop and math.log(value / stop) > -loc.STOP_LOG_TOL, value / stop - 1
    assert engine.cuts <= 6
    # with the slope trusted throughout, 8 cuts leave it 1e-3 or more away: the fallback
    # is what converges (checked by making the secant unavailable: agreement everywhere)
    trusted = Engine(loss, wrong, 2e14, t_b)
    original = loc.SLOPE_AGREEMENT
    try:
        loc.SLOPE_AGREEMENT = math.inf
        _, _, stuck = located(trusted, stop)
    finally:
        loc.SLOPE_AGREEMENT = original
    assert abs(math.log(stuck / stop)) > 1e3 * loc.STOP_LOG_TOL


def test_a_loss_rounded_above_the_tolerance_ends_on_the_stop_side():
    # the loss carries a deterministic relative noise 10x the tolerance: the locator gives
    # up after its iterates and returns the best one on the stop side
    noise = 10.0 * loc.STOP_LOG_TOL
    base = lambda t: 1e-6 * math.exp(-0.02 * (t - 100.0))  # noqa: E731
    noisy = lambda t: base(t) * (1.0 + noise * math.sin(1e7 * t))  # noqa: E731
    rate = lambda t: -0.02 * base(t)  # noqa: E731
    engine = Engine(noisy, rate, 90.0, 110.0)
    t, _, value = located(engine, 1e-6)
    assert value <= 1e-6
    assert value == noisy(t)
    assert abs(math.log(value / 1e-6)) < 3.0 * noise
    assert engine.cuts <= 8


def test_no_cut_past_the_step_end_and_the_step_end_kept_if_nothing_better():
    # a crossing exactly at the step end: no cut is needed, the step end is the stop
    loss = lambda t: 1e-6 * math.exp(-(t - 10.0))  # noqa: E731
    rate = lambda t: -loss(t)  # noqa: E731
    engine = Engine(loss, rate, 9.0, 10.0)
    t, _, value = located(engine, 1e-6)
    assert t == 10.0 and value == 1e-6 and engine.cuts == 0


def test_the_first_iterate_is_the_quadratic_root():
    # log loss = a quadratic: its root found exactly from the two ends and the end slope
    f = lambda t: 2.0 - 0.5 * t - 0.1 * t * t  # noqa: E731
    slope = lambda t: -0.5 - 0.2 * t  # noqa: E731
    root = (-0.5 + math.sqrt(0.25 + 0.8)) / 0.2
    got = loc.first_iterate(np.array([0.0]), np.array([4.0]), np.array([f(0.0)]),
                            np.array([f(4.0)]), np.array([slope(4.0)]))
    assert float(got[0]) == pytest.approx(root, rel=1e-14)
    # no root inside (a slope of the wrong sign): the straight line's
    got = loc.first_iterate(np.array([0.0]), np.array([4.0]), np.array([1.0]),
                            np.array([-1.0]), np.array([50.0]))
    assert float(got[0]) == pytest.approx(2.0, rel=1e-15)
