"""gradient_flow against closed forms, invariants and an independent integrator."""

import math

import numpy as np
import pytest

import flowsim as fs


@pytest.fixture(scope="module")
def flow_1e4(paper, depth3, depth3_params):
    return fs.gradient_flow(paper, depth3, depth3_params, stop_loss=1e-4, progress=False)


@pytest.fixture(scope="module")
def flow_1e8(paper, depth3, depth3_params):
    return fs.gradient_flow(paper, depth3, depth3_params, stop_loss=1e-8, progress=False)


@pytest.mark.parametrize("which, level", [("flow_1e4", 1e-4), ("flow_1e8", 1e-8)])
def test_depth3_reaches_loss_and_theorem1_asymptotics(request, which, level):
    traj = request.getfixturevalue(which)
    assert traj.status == "stop_loss" and traj.success
    # stop located by the event, not overshot by a step
    assert traj.loss[-1] == pytest.approx(level, rel=1e-9)
    assert traj.loss[-2] > level
    w11 = traj.product[-1, 0, 0]
    assert abs(w11) * math.sqrt(2 * traj.loss[-1]) == pytest.approx(1.0, rel=1e-2)
    # det stays > 0: from the layers, and from the entries of W
    assert np.all(traj.det_sign == 1)
    assert np.all(fs.det(traj.product) > 0)
    assert np.max(fs.balancedness_defect(traj.factors)) < 1e-6


def test_loss_decreases_and_points_are_spread_in_log_time(flow_1e8):
    assert np.all(np.diff(flow_1e8.loss) <= 0)
    assert np.all(np.diff(flow_1e8.t) > 0)
    # smooth against log-loss: no saved gap larger than a small fraction of a decade
    gaps = -np.diff(np.log10(flow_1e8.loss))
    assert gaps.max() < 0.2


def test_product_matches_factors(flow_1e4, depth3):
    w = depth3.product(tuple(f[-1] for f in flow_1e4.factors))
    np.testing.assert_allclose(flow_1e4.product[-1], w, rtol=1e-14)


@pytest.mark.parametrize("solver", ["BDF", "LSODA"])
def test_scipy_backend_agrees_with_diffrax(paper, depth3, depth3_params, flow_1e4, solver):
    other = fs.gradient_flow(paper, depth3, depth3_params, stop_loss=1e-4, solver=solver,
                             progress=False)
    assert other.status == "stop_loss"
    ref = flow_1e4.product[-1]
    rel = np.abs(other.product[-1] - ref).max() / np.abs(ref).max()
    assert rel < 1e-6
    assert other.stats["nfev"] > 0


def test_backends_agree_at_equal_time(paper, depth3, depth3_params):
    """Equal loss is a weak comparison (the flow is attracted to one curve); equal time is not."""
    a = fs.gradient_flow(paper, depth3, depth3_params, t_max=2000.0, progress=False)
    b = fs.gradient_flow(paper, depth3, depth3_params, t_max=2000.0, solver="LSODA",
                         progress=False)
    assert a.status == b.status == "t_max"
    assert a.t[-1] == b.t[-1] == 2000.0
    np.testing.assert_allclose(a.product[-1], b.product[-1], rtol=1e-6)


def test_depth1_closed_form(paper):
    """L = 1: W' = -mask * (W - B): observed entries relax like exp(-t), W11 never moves."""
    model = fs.DeepMatrixFactorization((2, 2), depth=1)
    params = fs.gaussian_init(model, seed=3, std=0.5)
    w0 = params[0]
    traj = fs.gradient_flow(paper, model, params, t_max=5.0, progress=False)
    assert traj.status == "t_max"
    np.testing.assert_allclose(traj.product[:, 0, 0], w0[0, 0], rtol=1e-14)
    decay = np.exp(-traj.t)[:, None, None]
    expected = paper.target + (w0 - paper.target) * decay
    np.testing.assert_allclose(traj.product[:, paper.mask == 1], expected[:, paper.mask == 1],
                               rtol=1e-8, atol=1e-12)


def test_failures_keep_points_and_say_why(paper, depth3, depth3_params):
    short = fs.gradient_flow(paper, depth3, depth3_params, stop_loss=1e-8, max_steps=100,
                             chunk_steps=50, progress=False)
    assert short.status == "max_steps" and not short.success
    assert "max_steps" in short.message
    # the budget is checked between chunks of (accepted + rejected) solver steps
    assert 100 <= short.stats["steps"] < 150 and len(short) == short.stats["steps"] + 1
    assert short.loss[-1] > 1e-8
    bounded = fs.gradient_flow(paper, depth3, depth3_params, stop_loss=1e-8, max_abs=10.0,
                               progress=False)
    assert bounded.status == "norm_bound" and not bounded.success
    assert np.abs(bounded.product[-1]).max() > 10.0 > np.abs(bounded.product[-2]).max()


@pytest.mark.parametrize("kwargs, field", [
    (dict(solver="Euler"), "solver"),
    (dict(coordinates="polar"), "coordinates"),
    (dict(stop_loss=-1.0), "stop_loss"),
    (dict(rtol=0.0), "rtol"),
    (dict(max_steps=0), "max_steps"),
    (dict(t_max=-1.0), "t_max"),
])
def test_bad_arguments(paper, depth3, depth3_params, kwargs, field):
    with pytest.raises(ValueError, match=field):
        fs.gradient_flow(paper, depth3, depth3_params, **kwargs)


def test_bad_problem_and_params(paper, depth3, depth3_params):
    with pytest.raises(ValueError, match="shape"):
        fs.gradient_flow(fs.padded_problem(3, 3), depth3, depth3_params)
    with pytest.raises(ValueError, match="params"):
        fs.gradient_flow(paper, depth3, depth3_params[:2])
    with pytest.raises(TypeError, match="problem"):
        fs.gradient_flow("paper", depth3, depth3_params)


def test_checkpoint_resume_continues_the_same_run(tmp_path, paper, depth3, depth3_params,
                                                  flow_1e4):
    path = tmp_path / "run.npz"
    first = fs.gradient_flow(paper, depth3, depth3_params, stop_loss=1e-4, max_steps=300,
                             chunk_steps=100, checkpoint=path, progress=False)
    assert first.status == "max_steps" and path.exists()
    assert fs.Trajectory.load(path).status == "max_steps"
    resumed = fs.gradient_flow(paper, depth3, depth3_params, stop_loss=1e-4, chunk_steps=100,
                               checkpoint=path, progress=False)
    assert resumed.status == "stop_loss"
    np.testing.assert_array_equal(resumed.t[:len(first)], first.t)
    np.testing.assert_allclose(resumed.product[-1], flow_1e4.product[-1], rtol=1e-6)
    other = fs.balanced_init(depth3, seed=1, scale=1e-3, det_sign=1)
    with pytest.raises(ValueError, match="initial state"):
        fs.gradient_flow(paper, depth3, other, stop_loss=1e-4, checkpoint=path)
    with pytest.raises(ValueError, match="solver"):
        fs.gradient_flow(paper, depth3, depth3_params, stop_loss=1e-4, solver="BDF",
                         checkpoint=path)


def test_nonfinite_start_is_reported_not_looped():
    problem = fs.MatrixCompletion((2, 2), [(0, 1), (1, 0)], [1e200, -1e200])
    model = fs.DeepMatrixFactorization((2, 2), 2)
    traj = fs.gradient_flow(problem, model, fs.balanced_init(model, scale=1.0), t_max=1.0,
                            progress=False)
    assert traj.status == "nonfinite" and len(traj) == 1 and "not finite" in traj.message



def test_blow_up_ends_with_a_status():
    """Observed values near float64's limit: the solve cannot proceed; it must end with a
    failure status and keep its points, never loop."""
    problem = fs.MatrixCompletion((2, 2), [(0, 1), (1, 0)], [1e150, -1e150])
    model = fs.DeepMatrixFactorization((2, 2), 3)
    traj = fs.gradient_flow(problem, model, fs.balanced_init(model, scale=1.0), t_max=1.0,
                            max_abs=np.inf, max_steps=300, progress=False)
    assert not traj.success and len(traj) >= 1
    assert traj.status in ("nonfinite", "max_steps", "solver_failure")
