"""Norm-minimizing baselines, checked against answers flowsim does not compute: a cvxpy
program written here (the semidefinite form of the nuclear norm, Clarabel), least squares
for the minimum Frobenius norm, and closed forms."""

import math
import sys

import numpy as np
import pytest

import flowsim as fs
from flowsim.cli import main

cp = pytest.importorskip("cvxpy")  # in the test extra, so CI runs these


def sdp_nuclear(problem, delta=0.0, solver="CLARABEL"):
    """min (tr P + tr Q) / 2 s.t. [[P, X], [X^T, Q]] PSD and the observations: the
    nuclear norm's semidefinite form (Fazel 2002), written independently of flowsim."""
    d, d2 = problem.shape
    x = cp.Variable((d, d2))
    p = cp.Variable((d, d), symmetric=True)
    q = cp.Variable((d2, d2), symmetric=True)
    rows, cols = problem.indices.T
    cons = [cp.bmat([[p, x], [x.T, q]]) >> 0]
    for r, c, b in zip(rows, cols, problem.values):
        cons.append(cp.abs(x[r, c] - b) <= delta if delta else x[r, c] == b)
    prob = cp.Problem(cp.Minimize((cp.trace(p) + cp.trace(q)) / 2), cons)
    prob.solve(solver=solver)
    assert prob.status == "optimal"
    return prob.value, x.value


@pytest.fixture(scope="module")
def small():
    return fs.low_rank_completion((12, 10), 2, 60, seed=3)


@pytest.mark.parametrize("delta", [0.0, 0.05])
def test_nuclear_norm_matches_an_independent_sdp(small, delta):
    problem, _ = small
    ref, _ = sdp_nuclear(problem, delta)
    fit = fs.min_nuclear_norm(problem, delta=delta)
    admm = fs.nuclear_norm_admm(problem, delta=delta)
    for got in (fit, admm):
        assert got.objective == pytest.approx(ref, rel=1e-4)
        assert got.max_violation <= 1e-7
        assert got.objective == pytest.approx(np.linalg.svd(got.matrix, compute_uv=False).sum())
    assert admm.status == "converged" and fit.status == "optimal"
    # the slack buys a smaller norm: the check can tell the two programs apart
    if delta:
        assert ref < sdp_nuclear(problem, 0.0)[0] - 0.1


def test_clarabel_agrees_with_scs(small):
    problem, _ = small
    a = fs.min_nuclear_norm(problem, solver="SCS")
    b = fs.min_nuclear_norm(problem, solver="CLARABEL")
    assert a.objective == pytest.approx(b.objective, rel=1e-6)


def test_large_slack_gives_zero():
    """delta >= max |b|: the zero matrix is feasible, so the minimum is 0 (closed form)."""
    problem, _ = fs.low_rank_completion((8, 8), 1, 20, seed=0)
    delta = float(np.abs(problem.values).max())
    assert fs.nuclear_norm_admm(problem, delta=delta).objective < 1e-9
    assert fs.min_nuclear_norm(problem, delta=delta).objective < 1e-6


def scs_nuclear(problem, delta=0.0):
    """cvxpy's normNuc under the observations (exact or within delta), SCS at eps 1e-8,
    written here rather than through flowsim's min_nuclear_norm."""
    d, d2 = problem.shape
    x = cp.Variable((d, d2))
    flat = np.ravel_multi_index(tuple(problem.indices.T), (d, d2))
    observed = cp.vec(x, order="C")[flat]
    cons = [observed == problem.values if delta == 0
            else cp.abs(observed - problem.values) <= delta]
    prob = cp.Problem(cp.Minimize(cp.normNuc(x)), cons)
    prob.solve(solver="SCS", eps_abs=1e-8, eps_rel=1e-8, max_iters=100_000)
    assert prob.status == "optimal"
    return prob.value


@pytest.mark.parametrize("n, delta", [(2000, 0.0), (2000, 0.05), (5000, 0.0)])
def test_admm_matches_cvxpy_at_100x100(n, delta):
    """The large-scale method against cvxpy written here (SCS on normNuc), 1e-4 relative
    in objective, at the literature's size: 2,000 observations (the minimizer is not the
    truth) and 5,000 (it is), exact and with a slack. (The slack at 5,000 is left out:
    the ADMM needs adapt=1000 and ~2,000 iterations there, SCS ~40 s.)"""
    problem, truth = fs.low_rank_completion((100, 100), 5, n, seed=1)
    ref = scs_nuclear(problem, delta)
    admm = fs.nuclear_norm_admm(problem, delta=delta)
    assert admm.status == "converged", admm.info["message"]
    assert abs(admm.objective - ref) <= 1e-4 * ref
    assert admm.max_violation <= 1e-9
    # at 2,000 observations the minimizer is not the truth (Arora et al.'s point)
    if n == 2000:
        assert fs.test_error(admm.matrix, truth) > 1e-2
    elif delta == 0:  # at 5,000 it is
        assert fs.test_error(admm.matrix, truth) < 1e-10


def test_admm_with_the_partial_svd_matches_cvxpy():
    """The partial SVD (block power iteration, the route taken at scale) at 100x100,
    5,000 observations, where the minimizer has rank 5: the same minimum as cvxpy, and
    the threshold mostly from partial SVDs; the verdict rests on a dense one."""
    problem, truth = fs.low_rank_completion((100, 100), 5, 5000, seed=1)
    admm = fs.nuclear_norm_admm(problem, partial_svd=True)
    assert admm.status == "converged", admm.info["message"]
    assert admm.info["svd_partial"] > admm.info["svd_full"] >= 1
    assert abs(admm.objective - scs_nuclear(problem)) <= 1e-4 * admm.objective
    assert fs.test_error(admm.matrix, truth) < 1e-10


@pytest.mark.parametrize("shape", [(300, 300), (200, 260)])
def test_partial_threshold_matches_the_dense_one(shape):
    """The block power SVT against the dense SVT on a matrix with a gap (rank 8 plus a
    small bulk), warm-started and cold."""
    from flowsim import baselines

    rng = np.random.default_rng(0)
    a = rng.standard_normal((shape[0], 8)) @ rng.standard_normal((8, shape[1]))
    a += 0.05 * rng.standard_normal(shape)
    tau = 2.0
    ref, rank, basis = baselines._svt_full(a, tau)
    assert rank == 8
    for start, extra in ((basis, 5), (basis[:, :0], 13)):
        got = baselines._svt_subspace(a, tau, start, extra, rng)
        assert got is not None and got[1] == 8
        np.testing.assert_allclose(got[0], ref, atol=1e-9 * np.abs(ref).max())
    # a block that is too small to hold every singular value above tau says so
    assert baselines._svt_subspace(a, tau, basis[:, :0], 4, rng) is None


def test_admm_out_of_iterations_says_so(small):
    problem, _ = small
    fit = fs.nuclear_norm_admm(problem, max_iter=3, progress=True)
    assert fit.status == "max_iter" and fit.iterations == 3
    assert "not converged" in fit.info["message"]
    assert fit.max_violation <= 1e-12  # still feasible


def test_scs_out_of_iterations_says_so(small):
    with pytest.warns(UserWarning):
        fit = fs.min_nuclear_norm(small[0], max_iters=5)
    assert fit.status == "optimal_inaccurate" and fit.iterations == 5


def test_min_frobenius_is_the_least_squares_minimum_norm(small):
    problem, _ = small
    d, d2 = problem.shape
    a = np.zeros((problem.n_observed, d * d2))
    a[np.arange(problem.n_observed),
      np.ravel_multi_index(tuple(problem.indices.T), (d, d2))] = 1.0
    ref = np.linalg.lstsq(a, problem.values, rcond=None)[0].reshape(d, d2)
    fit = fs.min_frobenius_norm(problem)
    np.testing.assert_allclose(fit.matrix, ref, atol=1e-14)
    assert fit.objective == pytest.approx(np.linalg.norm(ref))


def test_summary_on_a_known_matrix():
    w = np.diag([3.0, 4.0, 0.0])
    s = fs.norm_summary(w, truth=np.diag([3.0, 4.0, 1.0]))
    h = -(3 / 7) * math.log(3 / 7) - (4 / 7) * math.log(4 / 7)
    assert s["nuclear"] == pytest.approx(7) and s["frobenius"] == pytest.approx(5)
    assert s["spectral"] == pytest.approx(4)
    assert s["schatten_0.5"] == pytest.approx((math.sqrt(3) + 2) ** 2)
    assert s["effective_rank"] == pytest.approx(math.exp(h))
    assert s["test_error"] == pytest.approx(1 / 26)


@pytest.mark.parametrize("call, field", [
    (lambda p: fs.min_nuclear_norm(p, delta=-0.1), "delta"),
    (lambda p: fs.min_nuclear_norm(p, delta=math.nan), "delta"),
    (lambda p: fs.nuclear_norm_admm(p, delta=math.inf), "delta"),
    (lambda p: fs.min_nuclear_norm(p, solver="MOSEK"), "solver"),
    (lambda p: fs.nuclear_norm_admm(p, tol=0), "tol"),
    (lambda p: fs.min_nuclear_norm(fs.TensorCompletion((2, 2, 2), [(0, 0, 0)], [1.0])),
     "MatrixCompletion"),
    (lambda p: fs.test_error(np.ones((2, 2)), np.ones((3, 2))), "shape"),
    (lambda p: fs.test_error(np.ones((2, 2)), np.zeros((2, 2))), "nonzero"),
    (lambda p: fs.norm_summary(np.array([[np.nan]])), "finite"),
])
def test_bad_input_is_named(small, call, field):
    with pytest.raises((ValueError, TypeError), match=field):
        call(small[0])


def test_non_finite_observations_are_refused():
    with pytest.raises(ValueError, match="finite"):
        fs.MatrixCompletion((2, 2), [(0, 0)], [math.inf])


def test_missing_cvxpy_is_one_line_naming_the_extra(small, monkeypatch, tmp_path, capsys):
    monkeypatch.setitem(sys.modules, "cvxpy", None)  # import cvxpy now raises ImportError
    with pytest.raises(ImportError, match=r"pip install 'flowsim\[convex\]'"):
        fs.min_nuclear_norm(small[0])
    fs.nuclear_norm_admm(small[0], max_iter=2)  # the numpy method needs nothing more
    assert main(["norms", "--out", str(tmp_path / "n"), "--shape", "6", "6", "--rank", "1",
                 "--n", "20", "--depths", "1", "--seeds", "0", "--no-progress"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "flowsim[convex]" in err[0], err
    assert not (tmp_path / "n" / "norms_results.json").exists()
