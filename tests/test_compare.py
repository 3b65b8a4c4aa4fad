"""GD against the exact flow: measured order in lr, equal-loss agreement, exact times."""

import math

import numpy as np
import pytest

import flowsim as fs

LRS = (1e-3, 5e-4, 2.5e-4)


@pytest.fixture(scope="module")
def order(paper, depth3, depth3_params):
    """GD with three learning rates against the flow at t = 200 (loss ~2e-3, |W11| ~ 14)."""
    return fs.measure_order(paper, depth3, depth3_params, LRS, 200.0)


def test_gd_converges_to_the_flow_at_first_order_in_lr(order):
    # GD is the explicit Euler method for Eq. (4): global error O(lr) on [0, t]
    assert order.steps.tolist() == [200_000, 400_000, 800_000]
    assert 0.8 <= order.order <= 1.2
    assert 0.8 <= order.param_order <= 1.2
    assert np.all(np.diff(order.product_deviation) < 0)
    # and the deviation is small against the matrix itself
    assert order.product_deviation[-1] < 1e-4


@pytest.fixture(scope="module")
def at_1e4(paper, depth3, depth3_params):
    gd = fs.gradient_descent(paper, depth3, depth3_params, 3e-3, stop_loss=1e-4)
    flow = fs.gradient_flow(paper, depth3, depth3_params, stop_loss=1e-4, progress=False)
    return gd, flow


def test_gd_and_flow_agree_on_the_unobserved_entry_at_equal_loss(paper, at_1e4):
    gd, flow = at_1e4
    assert gd.status == "stop_loss" and flow.status == "stop_loss"
    cmp = fs.compare_at_loss(paper, gd, flow, [1e-2, 1e-3, 1e-4])
    assert np.all(cmp.relative_difference < 1e-2)
    # Theorem 1's asymptotics |W11| sqrt(2 l) -> 1 (appendix notes D2): 70.71 at 1e-4
    assert abs(cmp.descent[-1, 0]) * math.sqrt(2e-4) == pytest.approx(1.0, rel=1e-2)
    # GD ran the paper's protocol: millions of steps, t = k lr near the flow's time
    assert gd.steps[-1] > 1e6
    assert gd.t[-1] == pytest.approx(flow.t[-1], rel=1e-2)
    assert np.all(gd.det_sign == 1)


def test_flow_at_times_lands_exactly_and_matches_one_long_solve(paper, depth3, depth3_params):
    times = [10.0, 100.0, 1000.0]
    legs = fs.flow_at_times(paper, depth3, depth3_params, times)
    assert legs.status == "t_max"
    np.testing.assert_array_equal(legs.t, times)
    for t, w in zip(times, legs.product):
        one = fs.gradient_flow(paper, depth3, depth3_params, t_max=t, coordinates="factors",
                               progress=False)
        assert one.t[-1] == t
        np.testing.assert_allclose(w, one.product[-1], rtol=1e-7, atol=1e-12)
    np.testing.assert_allclose(legs.product, depth3.product(legs.factors), rtol=1e-13)


def test_descent_vs_flow_matches_iterates_to_times(paper, depth3, depth3_params):
    steps = [10_000, 100_000]
    cmp = fs.descent_vs_flow(paper, depth3, depth3_params, 1e-3, steps)
    np.testing.assert_array_equal(cmp.steps, steps)
    np.testing.assert_allclose(cmp.t, np.array(steps) * 1e-3)
    # the product is a smooth function of the factors: both distances are small together
    assert np.all(cmp.product_distance < 1e-2) and np.all(cmp.param_distance < 1e-2)
    assert np.all(cmp.product_relative > 0)


def test_compare_at_times_needs_matching_times(paper, depth3, depth3_params):
    gd = fs.gradient_descent(paper, depth3, depth3_params, 1e-3, max_iterations=1000)
    flow = fs.flow_at_times(paper, depth3, depth3_params, [0.5005])
    with pytest.raises(ValueError, match="save_steps"):
        fs.compare_at_times(gd, flow)


def test_convergence_order_recovers_a_power_law():
    h = np.array([0.1, 0.05, 0.025, 0.0125])
    order, const = fs.convergence_order(h, 3.0 * h ** 1.5)
    assert order == pytest.approx(1.5, rel=1e-12) and const == pytest.approx(3.0, rel=1e-12)
    with pytest.raises(ValueError, match="errors"):
        fs.convergence_order(h, -h)
    with pytest.raises(ValueError, match="same length"):
        fs.convergence_order(h, h[:2])


def test_unobserved_at_loss_is_exact_on_the_late_time_law(paper):
    """|W11| = (2 l)^{-1/2} sampled at whole decades: log-log interpolation reproduces it
    between the samples."""
    loss = np.logspace(-1, -6, 6)
    w11 = 1.0 / np.sqrt(2 * loss)
    product = np.zeros((6, 2, 2))
    product[:, 0, 0], product[:, 0, 1], product[:, 1, 0] = w11, 1.0, 1.0
    traj = fs.Trajectory(t=np.arange(6.0), loss=loss, product=product, det_sign=np.ones(6),
                         log_abs_det=np.zeros(6), states=np.zeros((6, 1)), status="t_max",
                         message="")
    levels = np.array([0.05, 3e-4, 1e-6])
    got = fs.unobserved_at_loss(paper, traj, levels)[:, 0]
    np.testing.assert_allclose(got, 1.0 / np.sqrt(2 * levels), rtol=1e-12)
    with pytest.raises(ValueError, match="never reached"):
        fs.unobserved_at_loss(paper, traj, [1e-7])


@pytest.mark.parametrize("call, match", [
    (lambda p, m, x: fs.measure_order(p, m, x, LRS, 1000.0001), "multiple"),
    (lambda p, m, x: fs.measure_order(p, m, x, LRS, -1.0), "t must"),
    (lambda p, m, x: fs.flow_at_times(p, m, x, [2.0, 1.0]), "times"),
    (lambda p, m, x: fs.flow_at_times(p, m, x, [1.0], t_max=3.0), "t_max"),
    (lambda p, m, x: fs.descent_vs_flow(p, m, x, 1e-3, [0, 5]), "steps"),
])
def test_bad_input(paper, depth3, depth3_params, call, match):
    with pytest.raises(ValueError, match=match):
        call(paper, depth3, depth3_params)
