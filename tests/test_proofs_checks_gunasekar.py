"""Gunasekar et al. (2017), Theorem 1 (commuting case): the instance is what the check says
(the l1 LP and the PSD min-trace SDP, solved here independently, agree with flowsim's
baseline and are unique), flowsim's flow is the z-ODE integrated here by scipy, the
gaps are the ODE's, and every check fails on doctored input."""

import math

import numpy as np
import pytest
from scipy.integrate import solve_ivp
from scipy.optimize import linprog

import flowsim as fs
from proofs_checks import gunasekar as gk
from proofs_checks import runner


@pytest.fixture(scope="module")
def inst():
    return gk.commuting_sensing()


@pytest.fixture(scope="module")
def lp(inst):
    """``min ||z||_1 s.t. A z = y`` as an LP in ``(z+, z-)``, by HiGHS: ``(z, nu)``."""
    a, y = inst.a, inst.problem.values
    d = a.shape[1]
    res = linprog(np.ones(2 * d), A_eq=np.hstack([a, -a]), b_eq=y, bounds=(0, None),
                  method="highs")
    assert res.status == 0
    return res.x[:d] - res.x[d:], res.eqlin.marginals


@pytest.fixture(scope="module")
def task():
    plan = runner.make_plan(True)
    outcome = runner.Outcome(plan)
    return runner.gunasekar_task(plan, outcome), outcome.runs["gunasekar"]


def _log_z_flow(a, y, alpha, t_eval, t_end):
    """The z-ODE ``z' = -2 z A^T (A z - y)`` in ``u = log z`` (``u' = -2 A^T r``) from ``z(0)
    = alpha``: ``z(t) = alpha exp(-2 A^T int r)``; DOP853 at rtol 1e-12."""
    def rhs(_, u):
        return -2.0 * a.T @ (a @ np.exp(u) - y)
    u0 = np.full(a.shape[1], math.log(alpha))
    sol = solve_ivp(rhs, (0.0, t_end), u0, method="DOP853", rtol=1e-12, atol=1e-12,
                    t_eval=t_eval)
    assert sol.success
    return np.exp(sol.y.T)


def _hypentropy_minimizer(a, y, alpha, nu0):
    """``argmin sum z log(z/alpha) - z s.t. A z = y`` through its dual ``max_nu y.nu - alpha
    sum exp(A^T nu)`` (damped Newton): ``z = alpha exp(A^T nu)``."""
    nu = np.array(nu0, dtype=np.float64)

    def dual(n):
        return y @ n - alpha * np.exp(a.T @ n).sum()
    for _ in range(200):
        e = alpha * np.exp(a.T @ nu)
        grad = y - a @ e
        if np.linalg.norm(grad) < 1e-14:
            break
        step, t = np.linalg.solve((a * e) @ a.T, grad), 1.0
        while dual(nu + t * step) < dual(nu) and t > 1e-10:
            t /= 2
        nu = nu + t * step
    return alpha * np.exp(a.T @ nu)


# -- the instance -------------------------------------------------------------------------
def test_instance_is_commuting_symmetric_and_as_documented(inst):
    p = inst.problem
    assert p.symmetric and p.shape == (gk.D, gk.D) and p.n_observed == gk.M < gk.D
    np.testing.assert_allclose(inst.q.T @ inst.q, np.eye(gk.D), atol=1e-14)
    ops = p.operators
    for i in range(gk.M):  # A_i = Q diag(a_i) Q^T, and they commute
        np.testing.assert_allclose(inst.eigen_coordinates(ops[i]), np.diag(inst.a[i]),
                                   atol=1e-14)
        for j in range(i):
            np.testing.assert_allclose(ops[i] @ ops[j], ops[j] @ ops[i], atol=1e-13)
    np.testing.assert_allclose(p.measure(inst.truth), p.values, rtol=1e-13)
    assert inst.truth_z.min() >= 0.5  # full-rank PSD truth


def test_l1_minimizer_is_unique_nonnegative_and_discriminating(inst, lp):
    z, nu = lp
    a = inst.a
    support = np.abs(z) > 1e-9
    np.testing.assert_allclose(z, [0, 1.488, 1.909, 0, 0, 0.814, 0, 0.332], atol=1e-3)
    # nondegenerate: m positive entries on a basis with A_S invertible, dual certificate
    # c = A^T nu equal to 1 on S and strictly inside (-1, 1) off S -> unique minimizer
    assert support.sum() == gk.M and z[support].min() > 0.3
    assert np.linalg.cond(a[:, support]) < 1e2
    c = a.T @ nu
    np.testing.assert_allclose(c[support], 1.0, atol=1e-9)
    assert np.abs(c[~support]).max() < 0.31
    w_lp = inst.q @ np.diag(z) @ inst.q.T
    fro = fs.min_frobenius_norm(inst.problem).matrix
    assert np.linalg.norm(w_lp - inst.truth) / np.linalg.norm(w_lp) > 0.9
    assert np.linalg.norm(w_lp - fro) / np.linalg.norm(w_lp) > 0.35
    # the check's exponent from flowsim's baseline is the LP dual's
    assert gk.predicted_exponent(a, z) == pytest.approx(1 - c[~support].max(), abs=1e-9)
    assert gk.predicted_exponent(a, z) == pytest.approx(0.826, abs=1e-3)


def test_flowsim_baselines_and_the_psd_sdp_agree_with_the_lp(inst, lp):
    import cvxpy as cp

    w_lp = inst.q @ np.diag(lp[0]) @ inst.q.T
    scale = np.linalg.norm(w_lp)
    clarabel = fs.min_nuclear_norm(inst.problem, solver="CLARABEL")
    assert np.linalg.norm(clarabel.matrix - w_lp) / scale < 1e-8
    assert clarabel.objective == pytest.approx(np.abs(lp[0]).sum(), rel=1e-8)
    scs = fs.min_nuclear_norm(inst.problem)
    assert np.linalg.norm(scs.matrix - w_lp) / scale < 1e-5
    x = cp.Variable((gk.D, gk.D), PSD=True)  # the theorem's reference: PSD min trace
    ops = inst.problem.operators
    sdp = cp.Problem(cp.Minimize(cp.trace(x)), [cp.trace(ops[i] @ x) == inst.problem.values[i]
                                                for i in range(gk.M)])
    sdp.solve(solver="CLARABEL")
    assert np.linalg.norm(x.value - w_lp) / scale < 1e-7


# -- the flow against an independent integration ------------------------------------------
@pytest.mark.parametrize("alpha", [1e-2, 1e-4])
def test_flow_matches_the_z_ode_at_several_times(inst, alpha):
    times = [1.0, 3.0, 6.0, 10.0]
    model = fs.DeepMatrixFactorization(inst.problem.shape, 2)
    traj = fs.gradient_flow(inst.problem, model, fs.identity_init(model, alpha),
                            save_at=times, progress=False)
    assert traj.success
    at = [int(np.argmin(np.abs(traj.t - t))) for t in times]
    np.testing.assert_allclose(traj.t[at], times, rtol=1e-12)
    z = _log_z_flow(inst.a, inst.problem.values, alpha, times, times[-1])
    for k, i in enumerate(at):
        want = inst.q @ np.diag(z[k]) @ inst.q.T
        assert np.linalg.norm(traj.product[i] - want) / np.linalg.norm(want) < 1e-7


def test_gaps_are_the_z_odes_and_its_limit_is_the_hypentropy_minimizer(inst, lp, task):
    _, products = task
    z_lp, nu = lp
    w_lp = inst.q @ np.diag(z_lp) @ inst.q.T
    mine = {}
    for alpha in gk.ALPHAS:
        z_end = _log_z_flow(inst.a, inst.problem.values, alpha, None, 60.0)[-1]
        z_hyp = _hypentropy_minimizer(inst.a, inst.problem.values, alpha,
                                      math.log(1 / alpha) * nu)
        np.testing.assert_allclose(z_end, z_hyp, rtol=1e-7, atol=1e-12)
        w = inst.q @ np.diag(z_end) @ inst.q.T
        mine[alpha] = np.linalg.norm(w - w_lp) / np.linalg.norm(w_lp)
        # flowsim stopped at 1e-16 of its initial loss: ~2e-8 relative from the limit
        assert np.linalg.norm(products[alpha] - w) / np.linalg.norm(w_lp) < 1e-7
    checks = gk.gaps(products, fs.min_nuclear_norm(inst.problem, solver="CLARABEL").matrix)
    for alpha in gk.ALPHAS:  # Clarabel's ~2e-9 on a gap of 5e-6 is 4e-4 of it
        assert checks[alpha] == pytest.approx(mine[alpha], rel=2e-3)
    documented = [1.381e-1, 1.521e-2, 1.731e-3, 2.326e-4, 5.03e-6]
    np.testing.assert_allclose([mine[a] for a in gk.ALPHAS], documented, rtol=2e-3)


def test_task_passes(task):
    results, _ = task
    import importlib.util

    rows = 7 + (importlib.util.find_spec("cvxpy") is not None)  # + the conic baseline's row
    assert len(results) == rows and all(r.passed for r in results), [
        (r.check, r.evidence) for r in results if not r.passed]


# -- every check can fail -----------------------------------------------------------------
GOOD = dict(zip(gk.ALPHAS, [1.381e-1, 1.521e-2, 1.731e-3, 2.326e-4, 5.03e-6]))


def test_gap_checks_fail_on_doctored_gaps():
    assert gk.check_gaps_decrease(GOOD).passed
    assert gk.check_gaps_decrease(GOOD).margin == pytest.approx(math.log10(1.731 / 0.2326))
    growing = {a: 1e-3 / a ** 0.1 for a in gk.ALPHAS}
    assert not gk.check_gaps_decrease(growing).passed
    flat = {**GOOD, 1e-6: GOOD[1e-4]}
    assert not gk.check_gaps_decrease(flat).passed
    assert not gk.check_gaps_decrease({**GOOD, 1e-3: math.nan}).passed
    assert gk.check_smallest_gap(GOOD).passed
    assert not gk.check_smallest_gap({**GOOD, 1e-6: 2e-4}).passed


def test_rate_check_fails_on_a_log_rate_and_on_a_wrong_exponent():
    assert gk.check_rate(GOOD, 0.826).passed
    slow = {a: 0.5 / math.log(1 / a) for a in gk.ALPHAS}
    r = gk.check_rate(slow, 0.826)
    assert not r.passed and not math.isfinite(r.margin)
    assert not gk.check_rate(GOOD, 0.7).passed
    fits = gk.fit_rates({a: 3 * a ** 0.5 for a in gk.ALPHAS})
    assert fits["power"]["exponent"] == pytest.approx(0.5) and fits["local"] == pytest.approx(0.5)
    assert fits["power"]["C"] == pytest.approx(3.0) and fits["power"]["rms"] < 1e-12


def test_matrix_checks_fail_on_doctored_matrices(inst, lp):
    w_lp = inst.q @ np.diag(lp[0]) @ inst.q.T
    fro = fs.min_frobenius_norm(inst.problem).matrix
    assert gk.check_instance_discriminates(w_lp, inst.truth, fro).passed
    assert not gk.check_instance_discriminates(inst.truth, inst.truth, fro).passed
    assert gk.check_not_frobenius(w_lp, fro, w_lp, 1e-6).passed
    assert not gk.check_not_frobenius(fro + 1e-3, fro, w_lp, 1e-6).passed
    fit = fs.baselines.NormMinimizer(w_lp, float(np.abs(lp[0]).sum()), 0.0, "lp", "x", 0.0)
    assert gk.check_baseline(fit, inst).passed
    rot = np.eye(gk.D)
    rot[:2, :2] = [[math.cos(0.1), -math.sin(0.1)], [math.sin(0.1), math.cos(0.1)]]
    off = inst.q @ rot @ inst.q.T @ w_lp @ inst.q @ rot.T @ inst.q.T  # not diagonal in Q
    assert not gk.check_baseline(fs.baselines.NormMinimizer(off, 0, 0, "x", "x", 0), inst).passed
    neg = inst.q @ np.diag(np.abs(lp[0]) * [1, 1, -1, 1, 1, 1, 1, 1]) @ inst.q.T
    assert not gk.check_baseline(fs.baselines.NormMinimizer(neg, 0, 0, "x", "x", 0), inst).passed
    assert gk.check_flow_commutes({1e-3: w_lp}, inst).passed
    skew = w_lp.copy()
    skew[0, 1] += 1e-6
    assert not gk.check_flow_commutes({1e-3: w_lp, 1e-6: skew}, inst).passed


def test_task_needs_no_convex_extra(monkeypatch):
    """The README's main job installs no optional extra: without cvxpy the check takes
    the LP's minimizer and passes; with it, a row compares flowsim's conic baseline."""
    import sys

    monkeypatch.setitem(sys.modules, "cvxpy", None)  # import cvxpy now raises ImportError
    plan = runner.make_plan(True)
    results = runner.gunasekar_task(plan, runner.Outcome(plan))
    assert all(r.passed for r in results), [r for r in results if not r.passed]
    assert not any("fs.min_nuclear_norm" in r.check for r in results)


def test_task_compares_the_conic_baseline_where_cvxpy_is_installed(task):
    pytest.importorskip("cvxpy")
    rows = [r for r in task[0] if "fs.min_nuclear_norm" in r.check]
    assert len(rows) == 1 and rows[0].passed, rows
