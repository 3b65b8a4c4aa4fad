"""gradient descent: closed forms, an independent NumPy loop, the GD balancedness identity,
float32 mode, the adaptive step, stopping rules and bad input."""

import math

import jax.numpy as jnp
import numpy as np
import pytest

import flowsim as fs
from flowsim.dynamics import factor_gradients
from flowsim.metrics import balancedness_defect


def quadratic(params, center, curvature):
    """``1/2 sum_i a_i (x_i - c_i)^2`` on a dict pytree: GD has a closed form."""
    return 0.5 * jnp.sum(curvature * (params["x"] - center) ** 2) + 0.5 * jnp.sum(params["y"] ** 2)


CENTER = np.array([1.0, -2.0, 0.5])
CURVATURE = np.array([1.0, 3.0, 0.2])
X0 = {"x": np.zeros(3), "y": np.array([[2.0, -1.0]])}


def numpy_gd(params, problem, lr, steps):
    """Independent reference: factor gradients written out by hand, a Python loop."""
    params = [np.array(w, dtype=np.float64) for w in params]
    for _ in range(steps):
        w = params[-1]
        for layer in params[-2::-1]:
            w = w @ layer
        g = problem.mask * (w - problem.target)
        grads = []
        for l in range(len(params)):
            left = np.eye(params[-1].shape[0])
            for layer in params[:l:-1]:
                left = left @ layer
            right = np.eye(params[0].shape[1])
            for layer in params[:l]:
                right = layer @ right
            grads.append(left.T @ g @ right.T)
        params = [w - lr * gw for w, gw in zip(params, grads)]
    return params


def test_descend_matches_closed_form_on_a_quadratic():
    lr = 0.1
    res = fs.descend(quadratic, X0, args=(CENTER, CURVATURE), lr=lr, max_iterations=200,
                     save_steps=[7, 50])
    assert res.status == "max_iterations" and res.steps[-1] == 200
    assert {0, 7, 50, 200} <= set(res.steps.tolist())
    k = res.steps[:, None]
    np.testing.assert_allclose(res.params["x"], CENTER + (1 - lr * CURVATURE) ** k * (0 - CENTER),
                               rtol=1e-12, atol=1e-15)
    np.testing.assert_allclose(res.params["y"][:, 0], (1 - lr) ** k * X0["y"][0],
                               rtol=1e-12, atol=1e-300)
    np.testing.assert_allclose(res.time, res.steps * lr, rtol=1e-14)
    assert np.isnan(res.step_size[0]) and np.all(res.step_size[1:] == lr)
    expected = np.array([float(quadratic({"x": x, "y": y}, CENTER, CURVATURE))
                         for x, y in zip(res.params["x"], res.params["y"])])
    np.testing.assert_allclose(res.loss, expected, rtol=1e-12)


def test_saves_are_log_spaced_in_steps_and_loss():
    res = fs.descend(quadratic, X0, args=(CENTER, CURVATURE), lr=0.01, max_iterations=100_000,
                     saves_per_decade=10)
    steps = res.steps[1:]
    # consecutive saved iterations never more than one tenth of a decade apart, or loss drops
    # by at most one tenth of a decade between saves (whichever triggered first)
    step_gap = np.diff(np.log10(steps))
    loss_gap = -np.diff(np.log10(res.loss[1:]))
    assert np.all((step_gap <= 0.1 + 1e-9) | (loss_gap <= 0.1 + 1e-9))
    assert np.all(loss_gap >= 0)


def test_adaptive_step_follows_its_definition():
    lr, beta, eps = 0.05, 0.99, 1e-6
    res = fs.descend(quadratic, X0, args=(CENTER, CURVATURE), lr=lr, step_rule="adaptive",
                     beta=beta, eps=eps, max_iterations=3, save_steps=[1, 2, 3])
    assert res.steps.tolist() == [0, 1, 2, 3]
    # App. F.2: v_k = beta v_{k-1} + (1 - beta) |g|^2, eta_k = lr / (sqrt(v_k / (1 - beta^k)) + eps)
    x, y, v, etas = X0["x"].copy(), X0["y"].copy(), 0.0, []
    for k in range(1, 4):
        gx, gy = CURVATURE * (x - CENTER), y
        v = beta * v + (1 - beta) * (np.sum(gx ** 2) + np.sum(gy ** 2))
        etas.append(lr / (math.sqrt(v / (1 - beta ** k)) + eps))
        x, y = x - etas[-1] * gx, y - etas[-1] * gy
        np.testing.assert_allclose(res.params["x"][k], x, rtol=1e-13)
    g0 = math.sqrt(np.sum((CURVATURE * CENTER) ** 2) + np.sum(X0["y"] ** 2))
    assert res.step_size[1] == pytest.approx(lr / (g0 + eps), rel=1e-14)  # first step
    np.testing.assert_allclose(res.step_size[1:], etas, rtol=1e-13)
    np.testing.assert_allclose(res.time[1:], np.cumsum(etas), rtol=1e-13)


@pytest.fixture(scope="module")
def depth2():
    return fs.DeepMatrixFactorization((2, 2), depth=2)


@pytest.fixture(scope="module")
def unbalanced(depth2):
    return fs.gaussian_init(depth2, seed=3, std=0.5, det_sign=+1)


def test_matrix_gd_matches_an_independent_numpy_loop(paper, depth2, unbalanced):
    lr = 0.05
    traj = fs.gradient_descent(paper, depth2, unbalanced, lr, max_iterations=300,
                               save_steps=[300])
    expected = numpy_gd(unbalanced, paper, lr, 300)
    for got, want in zip(traj.factors, expected):
        np.testing.assert_allclose(got[-1], want, rtol=1e-12, atol=1e-14)
    assert traj.status == "max_iterations" and traj.success
    np.testing.assert_array_equal(traj.t, traj.steps * lr)
    np.testing.assert_allclose(traj.product, depth2.product(traj.factors), rtol=1e-14)
    np.testing.assert_allclose(traj.loss, paper.loss(traj.product), rtol=1e-12)
    np.testing.assert_array_equal(traj.det_sign, np.sign(fs.det(traj.product)))


def test_trajectory_round_trip_keeps_steps(tmp_path, paper, depth2, unbalanced):
    traj = fs.gradient_descent(paper, depth2, unbalanced, 0.05, max_iterations=50)
    back = fs.Trajectory.load(traj.save(tmp_path / "gd.npz"))
    np.testing.assert_array_equal(back.steps, traj.steps)
    assert back.config["kind"] == "gradient_descent" and back.config["lr"] == 0.05


def c_j(params, j):
    """Unbalancedness C_j = W_{j+1}^T W_{j+1} - W_j W_j^T (0-based j)."""
    return params[j + 1].T @ params[j + 1] - params[j] @ params[j].T


@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_gd_balancedness_identity(paper, depth3, dtype):
    """App. notes 10.1: C_j(k+1) - C_j(k) = lr^2 (G_{j+1}^T G_{j+1} - G_j G_j^T) exactly:
    the first-order terms cancel, so this holds to the rounding of C_j in the run's dtype."""
    params = fs.gaussian_init(depth3, seed=1, std=0.7, det_sign=+1)
    lr = 0.05
    traj = fs.gradient_descent(paper, depth3, params, lr, max_iterations=6,
                               save_steps=range(1, 7), dtype=dtype)
    assert traj.steps.tolist() == list(range(7))
    eps = np.finfo(dtype).eps
    worst = 0.0
    for k in range(6):
        now = [f[k] for f in traj.factors]
        nxt = [f[k + 1] for f in traj.factors]
        grads = [np.asarray(g) for g in
                 factor_gradients(now, paper.residual(depth3.product(now)))]
        for j in range(depth3.depth - 1):
            lhs = c_j(nxt, j) - c_j(now, j)
            rhs = lr ** 2 * (grads[j + 1].T @ grads[j + 1] - grads[j] @ grads[j].T)
            # rounding unit of C_j: eps times the size of its terms
            unit = eps * max(np.abs(w).max() ** 2 for w in now + nxt)
            assert np.abs(rhs).max() > 100 * unit  # the identity is not 0 = 0 up to rounding
            worst = max(worst, np.abs(lhs - rhs).max() / unit)
    assert worst < 20
def test_float32_mode_computes_in_float32(paper, depth3, depth3_params):
    runs = {dt: fs.gradient_descent(paper, depth3, depth3_params, 3e-3, max_iterations=20_000,
                                    dtype=dt) for dt in ("float64", "float32")}
    assert runs["float32"].config["dtype"] == "float32"
    # iterates were stored in float32: their float64 copies are exactly representable
    states = runs["float32"].states
    np.testing.assert_array_equal(states, states.astype(np.float32).astype(np.float64))
    assert not np.array_equal(runs["float64"].states,
                              runs["float64"].states.astype(np.float32).astype(np.float64))
    # the two runs differ at float32 rounding level, not at float64's
    diff = np.abs(runs["float32"].product[-1] - runs["float64"].product[-1]).max()
    assert 1e-9 < diff < 1e-3
    res = fs.descend(quadratic, X0, args=(CENTER, CURVATURE), lr=0.1, max_iterations=5,
                     dtype="float32")
    assert res.params["x"].dtype == np.float32


def test_float32_refuses_a_loss_that_promotes_to_float64():
    def promoting(params):
        return jnp.sum(params ** 2 * jnp.asarray(np.ones(3)))  # a float64 constant

    with pytest.raises(TypeError, match="float32"):
        fs.descend(promoting, np.ones(3), lr=0.1, dtype="float32")


def test_stop_loss_stops_at_the_first_iterate_below(paper, depth2, unbalanced):
    traj = fs.gradient_descent(paper, depth2, unbalanced, 0.05, stop_loss=1e-6)
    assert traj.status == "stop_loss" and traj.success
    k = int(traj.steps[-1])
    assert traj.loss[-1] <= 1e-6
    before = fs.gradient_descent(paper, depth2, unbalanced, 0.05, max_iterations=k - 1,
                                 save_steps=[k - 1])
    assert before.steps[-1] == k - 1 and before.loss[-1] > 1e-6
    assert np.all(np.diff(traj.loss) < 0)


def test_max_iterations_and_zero_iterations(paper, depth2, unbalanced):
    traj = fs.gradient_descent(paper, depth2, unbalanced, 0.05, max_iterations=0)
    assert traj.status == "max_iterations" and traj.steps.tolist() == [0]
    np.testing.assert_allclose(traj.product[0], depth2.product(unbalanced))


def test_divergence_ends_with_nonfinite_status_and_keeps_points(paper, depth2, unbalanced):
    traj = fs.gradient_descent(paper, depth2, unbalanced, 5.0, max_iterations=10_000)
    assert traj.status == "nonfinite" and not traj.success
    assert "iteration" in traj.message
    assert np.isfinite(traj.loss[0]) and not np.isfinite(traj.loss[-1])
    assert traj.steps[-1] < 10_000


@pytest.mark.parametrize("kwargs, exc, field", [
    ({"lr": 0.0}, ValueError, "lr"),
    ({"lr": -1e-3}, ValueError, "lr"),
    ({"lr": float("nan")}, ValueError, "lr"),
    ({"lr": "0.1"}, TypeError, "lr"),
    ({"lr": 0.1, "step_rule": "adam"}, ValueError, "step_rule"),
    ({"lr": 0.1, "dtype": "float16"}, ValueError, "dtype"),
    ({"lr": 0.1, "dtype": "quad"}, ValueError, "dtype"),
    ({"lr": 0.1, "beta": 1.0}, ValueError, "beta"),
    ({"lr": 0.1, "eps": -1.0}, ValueError, "eps"),
    ({"lr": 0.1, "stop_loss": 0.0}, ValueError, "stop_loss"),
    ({"lr": 0.1, "max_iterations": -1}, ValueError, "max_iterations"),
    ({"lr": 0.1, "max_iterations": 2.5}, ValueError, "max_iterations"),
    ({"lr": 0.1, "saves_per_decade": 0}, ValueError, "saves_per_decade"),
    ({"lr": 0.1, "save_steps": [-1]}, ValueError, "save_steps"),
])
def test_bad_input_names_the_field(paper, depth2, unbalanced, kwargs, exc, field):
    with pytest.raises(exc, match=field):
        fs.gradient_descent(paper, depth2, unbalanced, **kwargs)


def test_bad_problem_model_and_params(paper, depth2, depth3, unbalanced):
    with pytest.raises(TypeError, match="problem"):
        fs.gradient_descent("paper", depth2, unbalanced, 0.1)
    with pytest.raises(TypeError, match="model"):
        fs.gradient_descent(paper, "depth2", unbalanced, 0.1)
    with pytest.raises(ValueError, match="shape"):
        fs.gradient_descent(fs.padded_problem(3, 3), depth2, unbalanced, 0.1)
    with pytest.raises(ValueError, match="params"):
        fs.gradient_descent(paper, depth3, unbalanced, 0.1)
    with pytest.raises(TypeError, match="args"):
        fs.descend(quadratic, X0, lr=0.1, args=[CENTER, CURVATURE])


def test_balanced_gd_stays_nearly_balanced(paper, depth3, depth3_params):
    """The defect grows only at O(lr^2) per step (the identity above), from exactly 0."""
    traj = fs.gradient_descent(paper, depth3, depth3_params, 3e-3, max_iterations=100_000)
    defect = balancedness_defect(traj.factors)
    assert defect[0] < 1e-15 and defect[-1] < 1e-3


def test_a_run_at_zero_loss_still_steps():
    """Loss exactly 0 has no lower log-level to save at: the loop must still advance."""
    start = {"x": CENTER.copy(), "y": np.zeros((1, 2))}
    res = fs.descend(quadratic, start, args=(CENTER, CURVATURE), lr=0.1, max_iterations=1000)
    assert res.status == "max_iterations" and res.steps[-1] == 1000
    assert np.all(res.loss == 0)
