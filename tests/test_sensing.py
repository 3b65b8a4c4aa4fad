"""Matrix sensing (``y_i = <A_i, W>``): the problem's checks, its files, and its flows
against integrations written here (scipy on the factor ODE, tests/reference_odes.py) and
against gradient descent, whose deviation from the flow is first order in the step."""

import json

import numpy as np
import pytest
from reference_odes import products_at, sensing_gradient

import flowsim as fs


@pytest.fixture(scope="module")
def small():
    return fs.low_rank_sensing((20, 20), 2, 200, seed=0)


def test_loss_and_gradient_are_the_sums_they_name(small):
    problem, truth = small
    rng = np.random.default_rng(1)
    w = rng.standard_normal((20, 20))
    r = np.array([np.sum(a * w) for a in problem.operators]) - problem.values
    assert float(problem.loss(w)) == pytest.approx(0.5 * np.sum(r * r), rel=1e-13)
    grad = sum(ri * a for ri, a in zip(r, problem.operators))
    np.testing.assert_allclose(problem.residual(w), grad, rtol=1e-12, atol=1e-12)
    assert float(problem.loss(truth)) <= 1e-20 * float(problem.loss(w))
    # batched over leading axes
    batched = np.asarray(problem.loss(np.stack([w, w.T])))
    np.testing.assert_allclose(batched, [problem.loss(w), problem.loss(w.T)], rtol=1e-13)


def test_gaussian_operators_are_normalized(small):
    problem, _ = small
    ops = problem.operators
    assert ops.shape == (200, 20, 20)
    # entries N(0, 1/m): their sample variance over 80,000 draws is 1/m within 2 %
    assert np.var(ops) * 200 == pytest.approx(1.0, rel=0.02)


def test_completion_is_the_special_case():
    """A completion problem and its sensing form (indicator operators) have the same loss,
    gradient and flow."""
    completion = fs.perturbed_problem(1.0, 1.0, 0.3)
    sensing = fs.MatrixSensing.from_completion(completion)
    w = np.array([[0.3, -1.2], [0.7, 2.0]])
    assert float(sensing.loss(w)) == pytest.approx(float(completion.loss(w)), rel=1e-15)
    np.testing.assert_allclose(sensing.residual(w), completion.residual(w), rtol=1e-15)
    model = fs.DeepMatrixFactorization((3, 3), 3)
    big = fs.padded_problem(3, 3)
    params = fs.balanced_init(model, seed=2, scale=0.1)
    times = [0.5, 2.0, 6.0]
    a = fs.gradient_flow(big, model, params, save_at=times, t_max=6.0, progress=False)
    b = fs.gradient_flow(fs.MatrixSensing.from_completion(big), model, params, save_at=times,
                         t_max=6.0, progress=False)
    assert a.status == b.status == "t_max"
    for k in range(1, 4):
        scale = np.linalg.norm(a.product[k])
        assert np.linalg.norm(a.product[k] - b.product[k]) <= 1e-7 * scale


def test_files_store_a_recipe_and_check_its_digest(small, tmp_path):
    problem, _ = small
    data = problem.to_dict()
    assert set(data["operators"]) == {"recipe", "sha256"}
    assert len(json.dumps(data)) < 20_000  # 200 values, not 80,000 operator entries
    back = fs.MatrixCompletion.from_dict(json.loads(json.dumps(data)))
    assert isinstance(back, fs.MatrixSensing)
    np.testing.assert_array_equal(back.operators, problem.operators)
    np.testing.assert_array_equal(back.values, problem.values)
    data["operators"]["sha256"] = "0" * 64
    with pytest.raises(ValueError, match="sha256"):
        fs.MatrixCompletion.from_dict(data)
    given = fs.MatrixSensing((2, 2), [[[1.0, 0.0], [0.0, -1.0]], [[0.0, 1.0], [1.0, 0.0]]],
                             [0.5, 2.0])
    assert given.symmetric
    back = fs.MatrixCompletion.from_dict(json.loads(json.dumps(given.to_dict())))
    np.testing.assert_array_equal(back.operators, given.operators)
    # a trajectory file keeps the problem and reads it back
    model = fs.DeepMatrixFactorization((20, 20), 2)
    traj = fs.gradient_flow(problem, model, fs.balanced_init(model, scale=0.1), t_max=0.1,
                            progress=False)
    path = tmp_path / "sensing.npz"
    traj.save(path)
    again = fs.Trajectory.load(path)
    np.testing.assert_array_equal(again.product, traj.product)
    assert again.config["problem"] == traj.config["problem"]


@pytest.mark.parametrize("operators, values, match", [
    (np.ones((3, 2, 3)), np.ones(3), r"operators must have shape \(m, 2, 2\)"),
    (np.ones((0, 2, 2)), np.ones(0), r"operators must have shape"),
    (np.ones((2, 2, 2, 2)), np.ones(2), r"operators must have shape"),
    (np.full((2, 2, 2), np.nan), np.ones(2), "operators must be finite"),
    (np.full((2, 2, 2), np.inf), np.ones(2), "operators must be finite"),
    (np.array([[["a", "b"], ["c", "d"]]]), np.ones(1), "operators must be real"),
    (np.ones((2, 2, 2)), np.ones(3), "one entry per measurement"),
    (np.ones((2, 2, 2)), [1.0, np.nan], "values must be finite"),
    (np.ones((2, 2, 2)), np.ones((2, 1)), "values must be a 1-d list"),
])
def test_bad_measurements_are_refused_by_name(operators, values, match):
    with pytest.raises(ValueError, match=match):
        fs.MatrixSensing((2, 2), operators, values)


def test_sizes_are_checked_before_anything_is_allocated():
    with pytest.raises(ValueError, match="GiB of memory"):
        fs.gaussian_operators((1000, 1000), 10 ** 7)
    with pytest.raises(ValueError, match="n_measurements"):
        fs.gaussian_operators((5, 5), 0)
    with pytest.raises(ValueError, match="truth must have shape"):
        fs.gaussian_sensing((5, 5), 10, np.zeros((4, 5)))


def test_a_sensing_problem_needs_a_matrix_model(small):
    problem, _ = small
    with pytest.raises(ValueError, match="MatrixSensing"):
        fs.gradient_flow(problem, fs.DeepMatrixFactorization((20, 10), 2),
                         fs.balanced_init(fs.DeepMatrixFactorization((20, 10), 2)),
                         progress=False)
    with pytest.raises(TypeError, match="sensing problem has no unobserved entries"):
        fs.unobserved_entries(problem, np.zeros((20, 20)))


# the flow against scipy's DOP853 at rtol 1e-12 on the factor ODE written in the tests, at
# saved times through the escape from the small start and after it; and gradient descent
# at two learning rates against the same reference (first order: halving lr halves it)
CASES = {
    "20x20": dict(shape=(20, 20), rank=2, m=200, depth=3, scale=1e-2,
                  times=[0.05, 0.1, 0.25, 0.5, 1.0, 3.0], lrs=(1e-2, 5e-3)),
    # 500 measurements (40 MB of operators; each evaluation streams them twice), depth 2:
    # the escape is over by t = 0.2 (loss 4e-2 of 580 at t = 0.05)
    "100x100": dict(shape=(100, 100), rank=2, m=500, depth=2, scale=1e-3,
                    times=[0.05, 0.1, 0.2], lrs=(2e-3, 1e-3)),
}
PATH_TOL = 1e-7


@pytest.mark.parametrize("name", sorted(CASES))
def test_flow_against_scipy_and_descent(name):
    case = CASES[name]
    problem, _ = fs.low_rank_sensing(case["shape"], case["rank"], case["m"], seed=0)
    model = fs.DeepMatrixFactorization(case["shape"], case["depth"])
    params = fs.balanced_init(model, seed=0, scale=case["scale"])
    times = case["times"]
    traj = fs.gradient_flow(problem, model, params, save_at=times, t_max=times[-1],
                            progress=False)
    assert traj.status == "t_max", traj.message
    np.testing.assert_array_equal(traj.t[1:], times)
    exact = products_at(sensing_gradient(problem.operators, problem.values), params, times)
    for k, w in enumerate(exact):
        error = np.linalg.norm(traj.product[k + 1] - w) / np.linalg.norm(w)
        assert error <= PATH_TOL, (times[k], error)
    # the loss fell through the escape (the saved times are not all at the start)
    assert traj.loss[-1] < 1e-2 * traj.loss[0]
    deviations = []
    for lr in case["lrs"]:
        steps = int(round(times[-1] / lr))
        gd = fs.gradient_descent(problem, model, params, lr, max_iterations=steps,
                                 save_steps=[steps], progress=False)
        k = int(np.nonzero(gd.steps == steps)[0][0])
        deviations.append(np.linalg.norm(gd.product[k] - exact[-1]) / np.linalg.norm(exact[-1]))
    # deviation C lr + O(lr^2): the ratio at lr and lr/2 is 2 (1 + O(lr)), far from the
    # 1 of a deviation dominated by the flow's own error and the 4 of second order
    assert 1.8 <= deviations[0] / deviations[1] <= 2.2, deviations
    assert deviations[1] > 100 * PATH_TOL  # the flow's error is far below what is measured


# -- the norm-minimizing baselines on sensing problems ----------------------------------

def sdp_nuclear_sensing(problem, delta=0.0):
    """min (tr P + tr Q) / 2 s.t. [[P, X], [X^T, Q]] PSD and <A_i, X> = y_i (or within
    delta): the nuclear norm's semidefinite form (Fazel 2002), written here, Clarabel."""
    cp = pytest.importorskip("cvxpy")
    d, d2 = problem.shape
    x = cp.Variable((d, d2))
    p = cp.Variable((d, d), symmetric=True)
    q = cp.Variable((d2, d2), symmetric=True)
    cons = [cp.bmat([[p, x], [x.T, q]]) >> 0]
    for a, y in zip(problem.operators, problem.values):
        m = cp.sum(cp.multiply(a, x))
        cons.append(cp.abs(m - y) <= delta if delta else m == y)
    prob = cp.Problem(cp.Minimize((cp.trace(p) + cp.trace(q)) / 2), cons)
    prob.solve(solver="CLARABEL")
    assert prob.status == "optimal"
    return prob.value


@pytest.fixture(scope="module")
def tiny():
    return fs.low_rank_sensing((8, 7), 2, 30, seed=4)


@pytest.mark.parametrize("delta", [0.0, 0.05])
def test_nuclear_norm_on_sensing_matches_an_independent_sdp(tiny, delta):
    pytest.importorskip("cvxpy")
    problem, _ = tiny
    fit = fs.min_nuclear_norm(problem, delta=delta, eps=1e-10, max_iters=100_000)
    assert fit.status == "optimal"
    assert fit.objective == pytest.approx(sdp_nuclear_sensing(problem, delta), rel=1e-4)
    r = problem.measure(fit.matrix) - problem.values
    assert np.max(np.abs(r)) <= delta + 1e-6
    assert fit.max_violation == pytest.approx(np.max(np.abs(r)) - delta, abs=1e-12)


def test_min_frobenius_on_sensing_is_the_pseudo_inverse(tiny):
    problem, _ = tiny
    fit = fs.min_frobenius_norm(problem)
    a = problem.operators.reshape(problem.n_observed, -1)
    np.testing.assert_allclose(fit.matrix.ravel(), np.linalg.pinv(a) @ problem.values,
                               rtol=1e-9, atol=1e-12)
    assert abs(fit.max_violation) <= 1e-12 * np.max(np.abs(problem.values))


def test_an_infeasible_delta_is_said():
    """More measurements than unknowns, inconsistent: no W meets them exactly."""
    pytest.importorskip("cvxpy")
    ops = fs.gaussian_operators((3, 3), 20, seed=1)
    values = np.random.default_rng(0).standard_normal(20)
    problem = fs.MatrixSensing((3, 3), ops, values)
    with pytest.raises(ValueError, match="infeasible"):
        fs.min_nuclear_norm(problem)
    with pytest.raises(ValueError, match="delta must be"):
        fs.min_nuclear_norm(problem, delta=-1.0)
    assert fs.min_frobenius_norm(problem).max_violation > 1e-3  # least squares misses them


def test_admm_says_it_solves_completion_only(tiny):
    with pytest.raises(TypeError, match="MatrixCompletion"):
        fs.nuclear_norm_admm(tiny[0])


def test_missing_cvxpy_is_one_line_for_sensing(tiny, monkeypatch):
    import sys

    monkeypatch.setitem(sys.modules, "cvxpy", None)
    with pytest.raises(ImportError, match=r"pip install 'flowsim\[convex\]'"):
        fs.min_nuclear_norm(tiny[0])


def test_norms_experiment_on_sensing(tmp_path):
    """`flowsim norms --measurements sensing`: the grid on Gaussian measurements, the
    baseline from cvxpy, the figure and the files; ADMM refused by name."""
    pytest.importorskip("cvxpy")
    from flowsim.cli import main

    out = tmp_path / "n"
    assert main(["norms", "--out", str(out), "--shape", "8", "8", "--rank", "1", "--n", "20",
                 "40", "--depths", "1", "3", "--seeds", "0", "--measurements", "sensing",
                 "--no-progress"]) == 0
    data = json.loads((out / "norms_results.json").read_text())
    assert data["config"]["measurements"] == "sensing"
    assert {r["kind"] for r in data["records"]} == {"nuclear", "flow"}
    assert (out / "norms.png").stat().st_size > 0 and (out / "norms.pdf").stat().st_size > 0
    # 40 generic measurements of a rank-1 8x8 matrix (15 degrees of freedom): both recover
    at40 = [r for r in data["records"] if r["n"] == 40 and r["depth"] in (None, 3)]
    assert all(r["test_error"] < 1e-4 for r in at40), at40
    with pytest.raises(ValueError, match="completion only"):
        from flowsim.experiments.norms import NormsConfig

        NormsConfig(measurements="sensing", baseline="admm")


def test_cli_run_and_a_sweep_on_sensing(tmp_path, capsys):
    """`flowsim run --problem sensing` and a sweep on the named sensing problem: batched
    members take the steps of the single runs, and the results file holds them."""
    from flowsim.cli import main
    from flowsim.experiments.sweep import SweepConfig, run_sweep

    assert main(["run", "--problem", "sensing", "--dims", "5", "4", "--depth", "2",
                 "--det-sign", "none", "--stop-loss", "1e-6", "--no-progress"]) == 0
    out = capsys.readouterr().out
    assert "10 measurements, largest residual" in out
    config = SweepConfig(grid={"depth": 2, "scale": [1e-2, 1e-1], "stop_loss": 1e-6},
                         settings={"problem": "sensing", "d": 5, "d2": 4, "repetitions": 2,
                                   "batch_size": 4},
                         solver=fs.SolverOptions(lanes=2))
    results = run_sweep(config, tmp_path / "sweep.npz", progress=False)
    assert results.done.all() and len(results.done) == 4
    assert set(results.columns["status"]) == {"stop_loss"}
    assert results.columns["w_final"].shape == (4, 5, 4)
    problem = fs.low_rank_sensing((5, 4), 1, 10, seed=0)[0]
    model = fs.DeepMatrixFactorization((5, 4), 2)
    inits = [fs.balanced_init(model, seed=s, scale=1e-1) for s in range(3)]
    batch = fs.gradient_flow(problem, model, inits, stop_loss=1e-6, lanes=2, progress=False)
    singles = [fs.gradient_flow(problem, model, w, stop_loss=1e-6, progress=False)
               for w in inits]
    for b, s in zip(batch, singles):
        assert b.status == s.status == "stop_loss"
        assert np.linalg.norm(b.product[-1] - s.product[-1]) <= 1e-9 * np.linalg.norm(
            s.product[-1])
