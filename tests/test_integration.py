"""gradient_flow against closed forms, invariants and independent integrators; exact by
default (a run follows the flow or ends loudly), save_at, options, batches."""

import math

import numpy as np
import pytest
import scipy.integrate

import flowsim as fs


@pytest.fixture(scope="module")
def flow_1e4(paper, depth3, depth3_params):
    return fs.gradient_flow(paper, depth3, depth3_params, stop_loss=1e-4, progress=False)


@pytest.fixture(scope="module")
def flow_1e8(paper, depth3, depth3_params):
    return fs.gradient_flow(paper, depth3, depth3_params, stop_loss=1e-8, progress=False)


def entry_ode_w11(alpha: float, level: float) -> float:
    """W11 where the loss first reaches ``level``, depth 2, W(0) = alpha I: the symmetric
    product obeys x' = -2y(y-1), y' = -[(y-1)(x+z) + yz], z' = -2[y(y-1) + z^2]
    (appendix_notes sec. 8), integrated by scipy's DOP853 with a loss event (independent
    of flowsim's code)."""
    def rhs(t, v):
        x, y, z = v
        return [-2 * y * (y - 1), -((y - 1) * (x + z) + y * z), -2 * (y * (y - 1) + z * z)]

    def event(t, v):
        return 0.5 * (2 * (v[1] - 1) ** 2 + v[2] ** 2) - level

    event.terminal = True
    sol = scipy.integrate.solve_ivp(rhs, (0, 1e9), [alpha, 0.0, alpha], method="DOP853",
                                    rtol=1e-13, atol=1e-15, events=event)
    return float(sol.y_events[0][0][0])


# -- exact by default ----------------------------------------------------------------

def test_proposition4_setting_by_default(paper):
    """Depth 2, W(0) = 0.1 I, loss 1e-3: the default call follows the flow (W11 = 22.316003,
    which an independent DOP853 integration of the entry ODE gives), and says which
    coordinates it took and why."""
    model = fs.DeepMatrixFactorization((2, 2), 2)
    traj = fs.gradient_flow(paper, model, fs.identity_init(model, scale=0.1), stop_loss=1e-3,
                            progress=False)
    assert traj.status == "stop_loss", traj.message
    reference = entry_ode_w11(0.1, 1e-3)
    assert reference == pytest.approx(22.316003, abs=5e-7)
    assert traj.product[-1, 0, 0] == pytest.approx(reference, rel=1e-6)
    assert traj.config["coordinates"] == "svd" and "balanced" in traj.config["coordinates_reason"]
    assert np.all(traj.det_sign == 1)


@pytest.mark.parametrize("depth, level", [(2, 1e-4), (3, 1e-10), (4, 1e-8)])
@pytest.mark.parametrize("seed", [0, 1, 2, 3])
def test_balanced_default_follows_the_flow(paper, depth, level, seed):
    """The issue's failing cases: |W11| sqrt(2 loss) -> 1 (Theorem 1) with det > 0 at every
    saved point, by default."""
    model = fs.DeepMatrixFactorization((2, 2), depth)
    params = fs.balanced_init(model, seed=seed, scale=1e-3, det_sign=+1)
    traj = fs.gradient_flow(paper, model, params, stop_loss=level, progress=False)
    assert traj.status == "stop_loss", traj.message
    assert np.all(traj.det_sign == 1)
    w11 = abs(traj.product[-1, 0, 0])
    assert w11 * math.sqrt(2 * traj.loss[-1]) == pytest.approx(1.0, rel=1e-2)


@pytest.mark.parametrize("depth", [2, 3, 4])
@pytest.mark.parametrize("scale", [1e-3, 0.3])
@pytest.mark.parametrize("init", ["balanced", "identity"])
def test_default_is_exact_or_loud_over_depths_scales_starts(paper, depth, scale, init):
    """Every default run to loss 1e-4 either follows the flow (sign of det kept at every
    point, Theorem 1's |W11| sqrt(2 loss) within 1% of 1) or ends non-success."""
    model = fs.DeepMatrixFactorization((2, 2), depth)
    params = (fs.balanced_init(model, seed=depth, scale=scale, det_sign=+1)
              if init == "balanced" else fs.identity_init(model, scale=scale))
    traj = fs.gradient_flow(paper, model, params, stop_loss=1e-4, progress=False)
    if traj.success:
        assert np.all(traj.det_sign == 1)
        w11 = abs(traj.product[-1, 0, 0])
        assert w11 * math.sqrt(2 * traj.loss[-1]) == pytest.approx(1.0, rel=1e-2)
    else:
        assert traj.message


@pytest.mark.parametrize("coordinates, where", [("product", 5.5e-4), ("factors", 1.35e-2)])
def test_explicit_coordinates_that_lose_the_sign_end_loudly(paper, coordinates, where):
    """Depth 2, balanced: product and factor coordinates lose the sign of det in float64
    (the flow keeps it); the run ends with "precision_lost", names the time, the loss and
    the coordinates that follow the flow, and keeps every point."""
    model = fs.DeepMatrixFactorization((2, 2), 2)
    params = fs.balanced_init(model, seed=0, scale=1e-3, det_sign=+1)
    traj = fs.gradient_flow(paper, model, params, coordinates=coordinates, stop_loss=1e-4,
                            progress=False)
    assert traj.status == "precision_lost" and not traj.success
    assert "sign of det W" in traj.message and "coordinates='svd'" in traj.message
    event = traj.stats["precision_events"][0]
    # where rounding flips the sign is itself noise: measured 5.3e-4 to 6.1e-4 (product)
    # with the solver's details, 1.35e-2 (factors)
    assert where / 3 < event["loss"] < where * 3
    assert f"t={event['t']:.6g}" in traj.message
    assert traj.det_sign[-1] == -1 and np.all(traj.det_sign[:-1] == 1)
    # continuing is an explicit choice, recorded
    going_on = fs.gradient_flow(paper, model, params, coordinates=coordinates,
                                stop_loss=1e-4, on_precision_loss="continue", progress=False)
    assert going_on.status == "stop_loss"
    assert going_on.stats["precision_events"][0]["t"] == event["t"]


def test_unbalanced_start_crosses_det_zero_as_the_flow_does(paper):
    """Depth 3, layer-wise Gaussian start (Figure 1's unbalanced protocol): det W changes
    sign in the exact flow. The run is a success, records the crossing, and agrees with
    scipy's Radau (an independent integrator) at equal time after it."""
    model = fs.DeepMatrixFactorization((2, 2), 3)
    params = fs.gaussian_init(model, seed=2, std=1e-3 ** (1 / 3), det_sign=+1)
    traj = fs.gradient_flow(paper, model, params, stop_loss=1e-4, progress=False)
    assert traj.status == "stop_loss" and traj.config["coordinates"] == "factors"
    assert "unbalanced" in traj.config["coordinates_reason"]
    assert len(traj.stats["det_crossings"]) == 1
    assert traj.det_sign[0] == 1 and traj.det_sign[-1] == -1
    t_after = 2 * traj.stats["det_crossings"][0]
    ours = fs.gradient_flow(paper, model, params, t_max=t_after, progress=False)
    radau = fs.gradient_flow(paper, model, params, t_max=t_after, solver="Radau",
                             rtol=1e-12, atol=1e-14, progress=False)
    assert ours.status == radau.status == "t_max"
    np.testing.assert_allclose(ours.product[-1], radau.product[-1], rtol=1e-7, atol=1e-9)
    assert ours.det_sign[-1] == radau.det_sign[-1] == -1


def test_conserved_quantity_drift_ends_the_run(paper):
    """Factor coordinates watch W_(l+1)^T W_(l+1) - W_l W_l^T (conserved from any start):
    with a tolerance below what the integrator keeps, the run ends "precision_lost",
    naming the quantity; the same run with the default tolerance keeps it."""
    model = fs.DeepMatrixFactorization((2, 2), 3)
    params = fs.gaussian_init(model, seed=0, std=0.1)
    # the drift is checked at the end of every chunk of steps: small chunks here
    loose = fs.gradient_flow(paper, model, params, stop_loss=1e-4, rtol=1e-4, atol=1e-8,
                             conserved_rtol=1e-9, chunk_steps=4, progress=False)
    assert loose.status == "precision_lost"
    assert "W_(l+1)^T W_(l+1) - W_l W_l^T" in loose.message
    c_end = [b.T @ b - a @ a.T for a, b in zip(*(tuple(f[i] for f in loose.factors)
                                                 for i in (0, -1)))]
    c_start = [b.T @ b - a @ a.T for a, b in zip(params[:-1], params[1:])]
    scale = max(np.sum(f[-1] ** 2) for f in loose.factors)
    assert max(np.max(np.abs(e - s)) for e, s in zip(c_end, c_start)) / scale > 1e-9
    tight = fs.gradient_flow(paper, model, params, stop_loss=1e-4, progress=False)
    assert tight.status == "stop_loss"
    c = [np.swapaxes(b, -1, -2) @ b - a @ np.swapaxes(a, -1, -2)
         for a, b in zip(tight.factors[:-1], tight.factors[1:])]
    scale = max(np.max(np.sum(f ** 2, axis=(1, 2))) for f in tight.factors)
    assert max(np.max(np.abs(ci - ci[:1])) for ci in c) / scale < 1e-6


def test_zero_start_is_a_stationary_point(paper, depth3):
    zeros = tuple(np.zeros(s) for s in depth3.layer_shapes)
    traj = fs.gradient_flow(paper, depth3, zeros, stop_loss=1e-4, progress=False)
    assert traj.status == "stationary" and not traj.success and "stationary" in traj.message
    assert len(traj) == 1
    timed = fs.gradient_flow(paper, depth3, zeros, t_max=10.0, progress=False)
    assert timed.status == "t_max" and timed.t[-1] == 10.0
    np.testing.assert_array_equal(timed.product[-1], timed.product[0])


def test_svd_refuses_depth_one_up_front(paper):
    model = fs.DeepMatrixFactorization((2, 2), 1)
    with pytest.raises(ValueError, match="depth >= 2"):
        fs.gradient_flow(paper, model, fs.identity_init(model, 0.1), coordinates="svd")


# -- the flow itself -------------------------------------------------------------------

@pytest.mark.parametrize("which, level", [("flow_1e4", 1e-4), ("flow_1e8", 1e-8)])
def test_depth3_reaches_loss_and_theorem1_asymptotics(request, which, level):
    traj = request.getfixturevalue(which)
    assert traj.status == "stop_loss" and traj.success
    # stop located by Newton on log loss, not overshot by a step
    assert traj.loss[-1] == pytest.approx(level, rel=1e-9)
    assert traj.loss[-2] > level
    w11 = traj.product[-1, 0, 0]
    assert abs(w11) * math.sqrt(2 * traj.loss[-1]) == pytest.approx(1.0, rel=1e-2)
    assert np.all(traj.det_sign == 1)
    assert np.all(fs.det(traj.product) > 0)


def test_loss_decreases_and_points_are_spread_in_log_time(flow_1e8):
    assert np.all(np.diff(flow_1e8.loss) <= 0)
    assert np.all(np.diff(flow_1e8.t) > 0)
    gaps = -np.diff(np.log10(flow_1e8.loss))
    assert gaps.max() < 0.2


@pytest.mark.parametrize("solver", ["BDF", "LSODA"])
def test_scipy_backend_agrees_with_diffrax(paper, depth3, depth3_params, solver):
    """In factor coordinates, where scipy and diffrax integrate the same ODE."""
    ref = fs.gradient_flow(paper, depth3, depth3_params, coordinates="factors",
                           stop_loss=1e-4, progress=False)
    other = fs.gradient_flow(paper, depth3, depth3_params, coordinates="factors",
                             stop_loss=1e-4, solver=solver, progress=False)
    assert ref.status == other.status == "stop_loss"
    rel = np.abs(other.product[-1] - ref.product[-1]).max() / np.abs(ref.product[-1]).max()
    assert rel < 1e-6
    assert other.stats["nfev"] > 0


def test_backends_agree_at_equal_time(paper, depth3, depth3_params):
    """Equal loss is a weak comparison (the flow is attracted to one curve); equal time is
    not. svd coordinates (diffrax) against factor coordinates (scipy LSODA)."""
    a = fs.gradient_flow(paper, depth3, depth3_params, t_max=2000.0, progress=False)
    b = fs.gradient_flow(paper, depth3, depth3_params, t_max=2000.0, solver="LSODA",
                         coordinates="factors", progress=False)
    assert a.status == b.status == "t_max"
    assert a.t[-1] == b.t[-1] == 2000.0
    np.testing.assert_allclose(a.product[-1], b.product[-1], rtol=1e-6)


def test_depth1_closed_form_at_requested_times(paper):
    """L = 1: W' = -mask * (W - B): observed entries relax like exp(-t), W11 never moves;
    save_at=times steps onto each time exactly (no interpolation)."""
    model = fs.DeepMatrixFactorization((2, 2), depth=1)
    params = fs.gaussian_init(model, seed=3, std=0.5)
    w0 = params[0]
    times = np.array([0.1, 0.5, 1.0, 2.5, 5.0])
    traj = fs.gradient_flow(paper, model, params, save_at=times, progress=False)
    assert traj.status == "t_max"
    np.testing.assert_array_equal(traj.t, np.concatenate([[0.0], times]))
    np.testing.assert_allclose(traj.product[:, 0, 0], w0[0, 0], rtol=1e-14)
    decay = np.exp(-traj.t)[:, None, None]
    expected = paper.target + (w0 - paper.target) * decay
    np.testing.assert_allclose(traj.product[:, paper.mask == 1], expected[:, paper.mask == 1],
                               rtol=1e-8, atol=1e-12)


def test_save_at_ends_and_times(paper, depth3, depth3_params, flow_1e4):
    ends = fs.gradient_flow(paper, depth3, depth3_params, stop_loss=1e-4, save_at="ends",
                            progress=False)
    assert len(ends) == 2 and ends.status == "stop_loss"
    np.testing.assert_array_equal(ends.states[-1], flow_1e4.states[-1])
    assert ends.stats["steps"] == flow_1e4.stats["steps"]
    times = [10.0, 100.0, 1000.0]
    at = fs.gradient_flow(paper, depth3, depth3_params, save_at=times, progress=False)
    np.testing.assert_array_equal(at.t, [0.0, *times])
    # a stop_loss before the last time ends the run there, located exactly
    early = fs.gradient_flow(paper, depth3, depth3_params, save_at=[10.0, 1e6],
                             stop_loss=1e-4, progress=False)
    assert early.status == "stop_loss" and early.t[1] == 10.0
    assert early.t[-1] == pytest.approx(flow_1e4.t[-1], rel=1e-6)


@pytest.mark.parametrize("chunk_steps", [8, 32])
def test_steps_do_not_depend_on_the_chunk_size(paper, depth3, depth3_params, flow_1e4,
                                               chunk_steps):
    """The carry holds all a continuous solve holds between steps (proposed step, stored
    stage derivative, controller history), so chunking changes nothing, bit for bit."""
    other = fs.gradient_flow(paper, depth3, depth3_params, stop_loss=1e-4,
                             chunk_steps=chunk_steps, progress=False)
    np.testing.assert_array_equal(other.t, flow_1e4.t)
    np.testing.assert_array_equal(other.states, flow_1e4.states)


def test_failures_keep_points_and_say_why(paper, depth3, depth3_params):
    short = fs.gradient_flow(paper, depth3, depth3_params, stop_loss=1e-8, max_steps=100,
                             chunk_steps=32, progress=False)
    assert short.status == "max_steps" and not short.success
    assert "max_steps" in short.message
    assert short.stats["steps"] == 100 and len(short) == 101  # the budget is exact
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
    (dict(rtol=10.0), "rtol"),
    (dict(max_steps=0), "max_steps"),
    (dict(chunk_steps=2.5), "chunk_steps"),
    (dict(t_max=-1.0), "t_max"),
    (dict(on_precision_loss="ignore"), "on_precision_loss"),
    (dict(save_at="everything"), "save_at"),
    (dict(save_at=[2.0, 1.0]), "save_at"),
])
def test_bad_arguments(paper, depth3, depth3_params, kwargs, field):
    with pytest.raises(ValueError, match=field):
        fs.gradient_flow(paper, depth3, depth3_params, **kwargs)


def test_bad_problem_params_and_options(paper, depth3, depth3_params):
    with pytest.raises(ValueError, match="shape"):
        fs.gradient_flow(fs.padded_problem(3, 3), depth3, depth3_params)
    with pytest.raises(ValueError, match="params"):
        fs.gradient_flow(paper, depth3, depth3_params[:2])
    with pytest.raises(TypeError, match="problem"):
        fs.gradient_flow("paper", depth3, depth3_params)
    with pytest.raises(TypeError, match="unknown keyword"):
        fs.gradient_flow(paper, depth3, depth3_params, rtoll=1e-3)
    with pytest.raises(ValueError, match="balanced"):
        fs.gradient_flow(paper, depth3, fs.gaussian_init(depth3, seed=0, std=0.1),
                         coordinates="product")


def test_options_in_one_place_recorded(paper, depth3, depth3_params, flow_1e4):
    options = flow_1e4.config["options"]
    assert options["solver"] == "Rodas5P" and options["rtol"] == 1e-8
    assert fs.SolverOptions.from_dict(options).resolve("svd", "matrix", 7) == \
        fs.SolverOptions(**options)
    same = fs.gradient_flow(paper, depth3, depth3_params, stop_loss=1e-4, progress=False,
                            options=fs.SolverOptions.from_dict(options))
    np.testing.assert_array_equal(same.states, flow_1e4.states)


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
                            max_abs=1e300, max_steps=300, progress=False)
    assert not traj.success and len(traj) >= 1
    assert traj.status in ("nonfinite", "max_steps", "solver_failure")
