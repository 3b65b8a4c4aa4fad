"""Gradient descent on CP factors with the adaptive global step (flowsim.tensor.descent),
against the exact flow."""

import numpy as np
import pytest

import flowsim as fs
from flowsim.dynamics import FactorCoordinates
from flowsim.tensor import CPFactorization, cp_dataset, cp_gaussian_init
from flowsim.tensor.descent import cp_gradient_descent, mse_to_loss


@pytest.fixture(scope="module")
def case():
    data = cp_dataset((8, 8, 8), rank=1, seed=0)
    model = CPFactorization((8, 8, 8))
    return data.problem(200), model, cp_gaussian_init(model, seed=1, std=1e-3)


@pytest.fixture(scope="module")
def runs(case):
    """GD (App. F.2's adaptive step) at two base steps to MSE 1e-8, and the flow to the
    loss each GD run ended at."""
    problem, model, params = case
    out = {}
    for lr in (1e-2, 1e-3):
        gd = cp_gradient_descent(problem, model, params, lr=lr, stop_mse=1e-8, progress=False)
        flow = fs.gradient_flow(problem, model, params, solver="Tsit5", stop_loss=gd.loss[-1],
                                rtol=1e-8, atol=1e-12, progress=False)
        out[lr] = gd, flow
    return out


def test_gd_and_flow_reach_the_same_tensor(runs):
    for gd, flow in runs.values():
        assert gd.status == "stop_loss" and flow.status == "stop_loss"
        a, b = gd.product[-1], flow.product[-1]
        assert np.linalg.norm(a - b) / np.linalg.norm(b) < 1e-3


def test_stop_is_on_the_mse_and_time_is_flow_time(case, runs):
    """``stop_mse`` is the reference's MSE = 2 l / n; ``t`` is the time of the flow of l.
    GD's time at a loss level converges to the flow's at first order in the step."""
    problem, _, _ = case
    n = problem.n_observed
    deviation = {}
    for lr, (gd, flow) in runs.items():
        mse = 2 * gd.loss / n
        assert mse[-1] <= 1e-8 < mse[-2]
        assert gd.loss[-1] <= mse_to_loss(1e-8, n)
        deviation[lr] = abs(gd.t[-1] / flow.t[-1] - 1)
    assert deviation[1e-3] < 0.05
    assert 5 < deviation[1e-2] / deviation[1e-3] < 20  # order 1: 10x step, ~10x deviation


def test_first_adaptive_step_is_normalized(case):
    """With the bias correction, eta_0 = lr / (|grad MSE| + eps) (appendix notes 10.13)."""
    problem, model, params = case
    gd = cp_gradient_descent(problem, model, params, max_iterations=1, stop_mse=None,
                             progress=False)
    coords = FactorCoordinates(model)
    y0 = coords.from_factors(params)
    grad = -np.asarray(coords.vector_field(y0, problem.mask, problem.target)) * 2 / 200
    eta = 1e-2 / (np.linalg.norm(grad) + 1e-6)
    np.testing.assert_allclose(gd.states[-1], y0 - eta * grad, rtol=1e-12, atol=1e-20)


def test_bad_arguments(case):
    problem, model, params = case
    with pytest.raises(TypeError, match="problem"):
        cp_gradient_descent(fs.paper_problem(), model, params)
    with pytest.raises(TypeError, match="model"):
        cp_gradient_descent(problem, fs.DeepMatrixFactorization((2, 2), 2), params)
    with pytest.raises(ValueError, match="shape"):
        cp_gradient_descent(cp_dataset((4, 4, 4)).problem(5), model, params)
    with pytest.raises(ValueError, match="lr"):
        cp_gradient_descent(problem, model, params, lr=-1.0)
