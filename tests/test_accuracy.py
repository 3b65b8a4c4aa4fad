"""check_accuracy: its error per saved time matches the true error of the run, measured
against scipy on the factor ODE written here."""

import numpy as np
import pytest
import scipy.integrate

import flowsim as fs


@pytest.fixture(scope="module")
def loose_run():
    problem, _ = fs.low_rank_completion((6, 5), 2, 20, seed=3)
    model = fs.DeepMatrixFactorization((6, 5), 3)
    params = fs.balanced_init(model, seed=3, scale=1e-2)
    times = [1.0, 5.0, 20.0, 60.0]
    traj = fs.gradient_flow(problem, model, params, save_at=times, coordinates="factors",
                            solver="Dopri8ROCK4", rtol=1e-6, atol=1e-9, progress=False)
    return problem, params, times, traj


def exact_products(problem, params, times):
    mask, target = np.asarray(problem.mask), np.asarray(problem.target)
    shapes = [w.shape for w in params]
    cuts = np.cumsum([0] + [a * b for a, b in shapes])

    def split(y):
        return [y[cuts[k]:cuts[k + 1]].reshape(shapes[k]) for k in range(3)]

    def rhs(t, y):
        w1, w2, w3 = split(y)
        a = w2 @ w1
        r = mask * (w3 @ a - target)
        b = w3.T @ r
        return -np.concatenate([(w2.T @ b).ravel(), (b @ w1.T).ravel(), (r @ a.T).ravel()])

    y0 = np.concatenate([np.asarray(w).ravel() for w in params])
    sol = scipy.integrate.solve_ivp(rhs, (0, times[-1]), y0, method="DOP853", rtol=1e-13,
                                    atol=1e-15, t_eval=times)
    return [np.linalg.multi_dot(split(y)[::-1]) for y in sol.y.T]


def test_reported_error_is_the_true_error(loose_run):
    problem, params, times, traj = loose_run
    report = fs.check_accuracy(traj)
    assert report.complete and report.solver == "Dopri8ROCK4"
    assert report.rtol == pytest.approx(1e-8) and report.atol == pytest.approx(1e-11)
    np.testing.assert_array_equal(report.times, times)
    true = np.array([np.linalg.norm(traj.product[k + 1] - w) / np.linalg.norm(w)
                     for k, w in enumerate(exact_products(problem, params, times))])
    assert true.max() > 1e-9  # the loose run is measurably off the flow
    # the reference is ~100x closer to the flow than the run: the report is the run's
    # error to within a few percent of it, plus the reference's own
    np.testing.assert_allclose(report.errors, true, rtol=0.1, atol=1e-10)
    assert report.max_error == report.errors.max()
    assert report.worst_time == times[int(np.argmax(report.errors))]
    assert report.reference_stats["steps"] > traj.stats["steps"]
    text = str(report)
    assert "largest" in text and "cost" in text


def test_independent_solver_and_bad_input(loose_run):
    _, _, _, traj = loose_run
    report = fs.check_accuracy(traj, solver="DOP853", factor=1e3)
    assert report.solver == "DOP853" and report.complete
    assert report.max_error < 1e-5
    with pytest.raises(ValueError, match="factor"):
        fs.check_accuracy(traj, factor=1.0)
    with pytest.raises(TypeError, match="Trajectory"):
        fs.check_accuracy("run.npz")
