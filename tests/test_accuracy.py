"""check_accuracy: its error per saved time matches the true error of the run, measured
against scipy on the factor ODE written here."""

import numpy as np
import pytest
from reference_odes import completion_gradient, products_at

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
    return products_at(completion_gradient(problem.mask, problem.target), params, times,
                       rtol=1e-13, atol=1e-15)


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


@pytest.mark.parametrize("depth", [3, 6])
def test_theorem_regime_default_is_exact_through_the_escape(depth, paper):
    """The 2x2 problem's default call (svd coordinates, Kvaerno5 at rtol 1e-8) within 1e-7
    of scipy's DOP853 on the factor ODE at every saved time through the escape, where the
    escape tolerance (100x tighter while the loss is above 1e-2 of its value at W = 0)
    carries it: at rtol 1e-8 throughout the same run is further off. check_accuracy with an
    independent solver reports that error."""
    model = fs.DeepMatrixFactorization((2, 2), depth)
    params = fs.balanced_init(model, seed=1, scale=1e-3, det_sign=1)
    times = [1.0, 5.0, 10.0, 15.0, 30.0, 100.0]
    exact = products_at(completion_gradient(paper.mask, paper.target), params, times,
                        rtol=1e-13, atol=1e-16)

    def errors(traj):
        return np.array([np.linalg.norm(traj.product[k + 1] - w) / np.linalg.norm(w)
                         for k, w in enumerate(exact)])

    traj = fs.gradient_flow(paper, model, params, save_at=times, progress=False)
    options = traj.config["options"]
    assert traj.config["coordinates"] == "svd" and options["solver"] == "Kvaerno5"
    assert options["rtol"] == 1e-8 and options["escape_rtol"] == pytest.approx(1e-10)
    true = errors(traj)
    assert true.max() <= 1e-7, true
    # the same tolerance throughout: the escape's errors grow with the singular values
    plain = fs.gradient_flow(paper, model, params, save_at=times, rtol=1e-8, atol=1e-12,
                             progress=False)
    assert plain.config["options"]["escape_rtol"] == 1e-8
    assert errors(plain).max() > 3 * true.max()
    report = fs.check_accuracy(traj, solver="Radau")
    assert report.complete and report.solver == "Radau"
    np.testing.assert_allclose(report.errors, true, rtol=0.2, atol=2e-10)
    with pytest.raises(ValueError, match="escape_rtol must be at most rtol"):
        fs.gradient_flow(paper, model, params, save_at=times, rtol=1e-8, escape_rtol=1e-6,
                         progress=False)
    with pytest.raises(ValueError, match="escape_rtol is for the solvers of flowsim's loop"):
        fs.gradient_flow(paper, model, params, save_at=times, solver="Radau", rtol=1e-8,
                         escape_rtol=1e-10, progress=False)
