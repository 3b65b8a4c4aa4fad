"""EXPRB32 (flowsim.integration.exponential): its phi functions against mpmath, Lanczos
for phi_k(h J) v against the eigendecomposition of a symmetric J with a gradient flow's
spectrum, a loud failure where Lanczos cannot converge, exactness on linear fields far
beyond explicit stability, order 3 on a stiff nonlinear gradient flow against scipy's
Radau, and the solver in the compiled loop against scipy's DOP853 on the factor ODE.
Every expected value is computed here, never by flowsim."""

import functools
import math
import signal

import diffrax
import jax
import jax.numpy as jnp
import mpmath
import numpy as np
import pytest
import scipy.integrate
from hard_kill import killed_run
from reference_odes import completion_gradient, products_at

import flowsim as fs
from flowsim.integration import exponential
from flowsim.integration.rkc import POWER_STEPS_INIT

EPS = np.finfo(np.float64).eps


# ---------------------------------------------------------------------------- references


def phi_mpmath(k, z):
    """``phi_k(z)`` at 100 digits (``z`` a float, taken exactly): the closed form loses at
    most ~40 digits to cancellation at |z| = 1e-12, leaving 60."""
    with mpmath.workdps(100):
        z = mpmath.mpf(z)
        if z == 0:
            return 1 / mpmath.factorial(k)
        if k == 1:
            return mpmath.expm1(z) / z
        return (mpmath.exp(z) - 1 - z - z * z / 2) / z ** 3


def phi_numpy(k, z):
    """``phi_k(z)``, ``k = 1 ... 4``, in numpy, independent of flowsim: 30 Taylor terms
    for ``|z| <= 1`` (truncation < 1/31! ~ 1e-34), else ``phi_1 = expm1(z)/z`` and the
    recurrence ``phi_(j+1) = (phi_j - 1/j!) / z`` (cancellation at most ~10x for
    ``|z| > 1``)."""
    z = np.asarray(z, dtype=float)
    out = np.empty_like(z)
    small = np.abs(z) <= 1.0
    zs = z[small]
    term, total = np.full_like(zs, 1.0 / math.factorial(k)), np.zeros_like(zs)
    for j in range(30):
        total += term
        term = term * zs / (j + k + 1)
    out[small] = total
    zl = z[~small]
    p = np.expm1(zl) / zl
    for j in range(1, k):
        p = (p - 1.0 / math.factorial(j)) / zl
    out[~small] = p
    return out


def symmetric(lam, seed):
    """``(A, Q)`` with ``A = Q diag(lam) Q^T``, ``Q`` a seeded random orthogonal matrix."""
    rng = np.random.default_rng(seed)
    q, _ = np.linalg.qr(rng.standard_normal((lam.size, lam.size)))
    a = (q * lam) @ q.T
    return 0.5 * (a + a.T), q


def flow_spectrum(seed):
    """A gradient flow's Jacobian: 40 stiff eigenvalues in [-160, -100] (the largest
    modulus exactly 160) and 300 slow ones in [-0.1, 0.01]."""
    rng = np.random.default_rng(seed)
    lam = np.concatenate([rng.uniform(-160.0, -100.0, 40), rng.uniform(-0.1, 0.01, 300)])
    lam[0] = -160.0
    return lam


# ------------------------------------------------------------- the code under test, jitted


@functools.partial(jax.jit, static_argnames="k")
def lanczos(a, v, h, weight, k):
    return exponential.lanczos_phi(lambda u: a @ u, v, h, k, weight, 1.0)


#: tight enough that the Krylov tolerance (a change of at most 1e-11 |y| in h phi v) is
#: far below every error measured with it
SOLVER = exponential.EXPRB32(rtol=1e-10, atol=1e-13)


def field(a, b, cubic, y):
    """``F(y) = a y + b`` (``- y^3`` componentwise if ``cubic``): with ``a`` symmetric
    the gradient flow of ``-y.a y/2 - b.y (+ sum y^4/4)``, Jacobian ``a - 3 diag(y^2)``."""
    out = a @ y + b
    return out - y ** 3 if cubic else out


@functools.partial(jax.jit, static_argnames="cubic")
def exprb32_step(a, b, y0, h, cubic):
    term = diffrax.ODETerm(lambda t, y, args: field(a, b, cubic, y))
    return SOLVER.advance(term, 0.0, h, y0, None, field(a, b, cubic, y0))


# ------------------------------------------------------------------------------ 1. phi

GRID = np.array([-2000.0, -300.0, -30.0, -1e-12, 1e-12, -1e-6, 1e-6, -0.3, 0.3, -0.49, 0.49,
                 -0.5, 0.5, -0.51, 0.51, 0.0, 1.0, 5.0, 20.0])


@pytest.mark.parametrize("k", [1, 3])
def test_phi_against_mpmath(k):
    exact = np.array([float(phi_mpmath(k, z)) for z in GRID])
    got = np.asarray(exponential.phi(k, jnp.asarray(GRID)))
    rel = np.abs(got - exact) / np.abs(exact)
    # What float64 guarantees. phi_1 = expm1(z)/z and the Taylor series (|z| < 0.5:
    # truncation of 14 terms |z|^14/17! < 2e-19, terms of one sign for z > 0 and falling
    # fast for z < 0) are a few roundings: 4 eps. The closed form of phi_3 (used from
    # |z| = 0.5 on when this test was written) subtracts terms of total size
    # s = |expm1 z| + |z| + z^2/2 to get z^3 phi_3(z): its rounding is amplified by
    # kappa = s / |z^3 phi_3(z)|, ~52 at |z| = 0.5 and 0.51, 15 at z = 1, -> 1 as |z|
    # grows (1.0 at -2000 and 20); bound 4 eps (1 + kappa) (<= 4.7e-14; a series used
    # further out only does better). Measured: phi_1 <= 0.9 ulp everywhere; phi_3 <= 0.8
    # ulp on the series side, 8.8, 15, 13.7, 12.1 ulp (<= 3.4e-15) at z = -0.51, 0.51,
    # -0.5, 0.5 with the closed form there (6.2 ulp at z = 1 with the series to |z| = 1).
    kappa = np.zeros_like(GRID)
    if k == 3:
        closed = np.abs(GRID) >= 0.5
        z = GRID[closed]
        s = np.abs(np.expm1(z)) + np.abs(z) + 0.5 * z * z
        kappa[closed] = s / np.abs(z ** 3 * exact[closed])
    bound = 4 * EPS * (1 + kappa)
    assert np.all(rel <= bound), list(zip(GRID[rel > bound], rel[rel > bound]))
    assert rel.max() <= 1e-13
    # the numpy reference used by the tests below agrees with mpmath as well
    ref = phi_numpy(k, GRID)
    assert np.all(np.abs(ref - exact) <= 1e-14 * np.abs(exact))


# ----------------------------------------------------------------------------- 2. Lanczos


@pytest.mark.parametrize("k", [1, 3])
def test_lanczos_phi_against_the_eigendecomposition(k):
    lam = flow_spectrum(seed=0)
    a, q = symmetric(lam, seed=1)
    v = np.random.default_rng(2).standard_normal(lam.size)
    rho = np.abs(lam).max()
    # converged: a last change of at most 0.1 tol in the RMS of phi_k v (which is O(1))
    tol = 1e-12
    weight = jnp.full(lam.size, 1.0 / tol)
    for h in (0.5, 2.0, 8.0):
        x, iterations, converged, ritz = lanczos(jnp.asarray(a), jnp.asarray(v), h, weight,
                                                 k=k)
        exact = q @ (phi_numpy(k, h * lam) * (q.T @ v))
        assert bool(converged) and 0 < int(iterations) < exponential.MAX_KRYLOV, (h, iterations)
        # float64 Lanczos attains ~eps h rho (3e-13 at h rho = 1280); the stopping rule
        # asks for 1e-13. Measured: 1.0e-14, 4.0e-14, 1.6e-13 (phi_1), 5.2e-15, 2.1e-14,
        # 8.4e-14 (phi_3) at h = 0.5, 2, 8, in 28 to 48 iterations; 1e-10 leaves 600x.
        error = np.linalg.norm(np.asarray(x) - exact) / np.linalg.norm(exact)
        assert error <= 1e-10, (h, error)
        # the extreme Ritz value: a lower bound of rho (up to rounding), close to it
        # (measured >= 0.99988 rho)
        assert 0.99 * rho <= float(ritz) <= rho * (1 + 1e-12), (h, float(ritz))


@pytest.mark.parametrize("used", [0, 1, 7, 8, 9, 40, 89, 90, 96])
def test_the_final_combination_takes_the_used_rows_once(used):
    # Lanczos stores MAX_KRYLOV + 1 = 97 vectors and combines the first ``used``: in blocks
    # of COMBINE_ROWS, the last one moved back to end at row 97 (its overlap with the
    # block before must count once). The reference is numpy's product with the used rows;
    # the coefficients past ``used`` must not enter (here: large ones).
    rows = exponential.MAX_KRYLOV + 1
    rng = np.random.default_rng(used)
    basis = rng.standard_normal((rows, 300))
    c = 1e6 * rng.standard_normal((3, exponential.MAX_KRYLOV))
    c[:, :used] = rng.standard_normal((3, used))
    got = np.asarray(exponential.combine(jnp.asarray(c), jnp.asarray(basis), used))
    expected = c[:, :used] @ basis[:used]
    # float64 sums of at most 96 terms of size ~1 in another order: below 1e-13
    assert np.max(np.abs(got - expected)) <= 1e-13 * max(1.0, np.max(np.abs(expected)))


# ---------------------------------------------------------------------- 3. non-convergence


def test_a_phi_that_cannot_converge_makes_the_step_fail():
    rng = np.random.default_rng(3)
    # eigenvalues to -1e7: with h = 10, h rho = 1e8 needs ~sqrt(h rho) = 1e4 iterations
    lam = np.concatenate([-np.geomspace(1e-2, 1e7, 300), rng.uniform(-0.1, 0.01, 40)])
    a, _ = symmetric(lam, seed=4)
    v = rng.standard_normal(lam.size)
    weight = jnp.full(lam.size, 1e8)  # a loose tolerance, 1e-8: still out of reach
    _, iterations, converged, _ = lanczos(jnp.asarray(a), jnp.asarray(v), 10.0, weight, k=1)
    assert not bool(converged)
    assert int(iterations) == exponential.MAX_KRYLOV
    # the same matrix at h rho = 100 converges (measured: 40 iterations): it is h rho
    # that is out of reach
    _, iterations, converged, _ = lanczos(jnp.asarray(a), jnp.asarray(v), 1e-5, weight, k=1)
    assert bool(converged) and int(iterations) < exponential.MAX_KRYLOV
    # and the step's error estimate says so: infinite, so the controller must reject it
    _, y_error, *_ = exprb32_step(jnp.asarray(a), jnp.zeros(lam.size), jnp.asarray(v), 10.0,
                                  cubic=False)
    assert np.all(np.isinf(np.asarray(y_error)))


# ------------------------------------------------------------------ 4. linear exactness


def test_exact_on_a_linear_field_far_beyond_explicit_stability():
    rng = np.random.default_rng(5)
    # negative semidefinite, rho = 160
    lam = np.concatenate([rng.uniform(-160.0, -100.0, 40), rng.uniform(-0.1, 0.0, 300)])
    lam[0] = -160.0
    a, q = symmetric(lam, seed=6)
    b, y0 = rng.standard_normal(lam.size), rng.standard_normal(lam.size)
    for h in (0.5, 1000.0 / 160.0):  # h rho = 80 and 1000 (Dopri8 is stable to 5.2)
        y1, y_error, f1, *_ = exprb32_step(jnp.asarray(a), jnp.asarray(b), jnp.asarray(y0), h,
                                           cubic=False)
        y1, y_error, f1 = np.asarray(y1), np.asarray(y_error), np.asarray(f1)
        # y(h) = y0 + h phi_1(h A) (A y0 + b), in the eigenbasis
        exact = y0 + h * (q @ (phi_numpy(1, h * lam) * (q.T @ (a @ y0 + b))))
        scale = np.linalg.norm(exact)
        # the Krylov tolerance bounds the last change of h phi_1 v by ~1e-11 |y|, rounding
        # is ~eps h rho; measured 1.7e-14 (h rho = 80) and 1.3e-13 (h rho = 1000)
        assert np.linalg.norm(y1 - exact) <= 1e-10 * scale, h
        # D = F(U) - F(y0) - A (U - y0) is rounding alone (~eps rho |U|), and so is the
        # estimate 2 h phi_3(hA) D: measured 3.3e-15 and 3.6e-14 of |y|
        assert np.linalg.norm(y_error) <= 1e-12 * scale, h
        # F(y1) is returned for the next step (measured 7e-17, 3e-16)
        assert np.linalg.norm(f1 - (a @ y1 + b)) <= 1e-13 * np.linalg.norm(f1)


# ---------------------------------------------------------------------------- 5. order 3


@pytest.mark.parametrize("method, order, hs", [
    (exponential.EXPRB32, 3, (0.1, 0.05, 0.025)),   # h rho = 94, 47, 24 (rho = 942): stiff
    # EXPRB43's error at h = 0.025 (1.6e-11) nears the Krylov tolerance's floor: one
    # halving larger
    (exponential.EXPRB43, 4, (0.2, 0.1, 0.05))])
def test_order_on_a_stiff_nonlinear_gradient_flow(method, order, hs):
    # y' = -A y - y^3 + b: the gradient flow of y.A y/2 + sum y^4/4 - b.y, Jacobian
    # -A - 3 diag(y^2) (symmetric), A with 15 eigenvalues in [100, 1000] and 15 in
    # [0.01, 1]
    rng = np.random.default_rng(0)
    lam = np.concatenate([rng.uniform(100.0, 1000.0, 15), rng.uniform(0.01, 1.0, 15)])
    a, _ = symmetric(lam, seed=3)
    b = 0.3 * np.random.default_rng(4).standard_normal(lam.size)

    def solve(y, t):
        sol = scipy.integrate.solve_ivp(
            lambda _, y: -a @ y - y ** 3 + b, (0.0, t), y, method="Radau",
            jac=lambda _, y: -a - np.diag(3 * y ** 2), rtol=1e-13, atol=1e-15)
        assert sol.status == 0, sol.message
        return sol.y[:, -1]

    # start on the slow manifold (the stiff transients died out by t = 1), where the
    # stiff order theory applies
    y0 = solve(np.random.default_rng(5).standard_normal(lam.size), 1.0)
    solver = method(rtol=1e-10, atol=1e-13)
    term = diffrax.ODETerm(lambda t, y, args: field(jnp.asarray(-a), jnp.asarray(b), True, y))
    errors, estimates = [], []
    for h in hs:
        y1, y_error, *_ = solver.advance(term, 0.0, h, jnp.asarray(y0), None,
                                         term.vf(0.0, jnp.asarray(y0), None))
        errors.append(np.linalg.norm(np.asarray(y1) - solve(y0, h)))
        estimates.append(np.linalg.norm(np.asarray(y_error)))
    errors, estimates = np.array(errors), np.array(estimates)
    # local errors of an order-p method fall like h^(p+1). Measured, EXPRB32: 2.7e-6,
    # 1.8e-7, 1.2e-8 (|y0| = 1.6), slopes 3.90 and 3.95 (3.61, 3.81 from h = 0.4: not
    # yet asymptotic there); EXPRB43: 2.7e-7, 9.9e-9, 3.9e-10, slopes 4.78 and 4.67 (its
    # stiff order is 4: local error O(h^5), approached from below). All far above Radau's own error
    # (its change from rtol 1e-12 to 1e-13: <= 3e-15) and the Krylov tolerance's ~1e-11.
    slopes = np.log2(errors[:-1] / errors[1:])
    assert np.all((order + 0.5 < slopes) & (slopes < order + 1.5)), (errors, slopes)
    # the estimate is the local error of the embedded method, of order p - 1: O(h^p)
    # (the ``order`` the controller is told), and larger than the error it bounds;
    # measured slopes 2.88, 2.92 (EXPRB32), 3.80, 3.89 (EXPRB43)
    est_slopes = np.log2(estimates[:-1] / estimates[1:])
    assert np.all((order - 0.5 < est_slopes) & (est_slopes < order + 0.5)), (estimates,
                                                                             est_slopes)
    assert method.order == order
    assert np.all(estimates > errors)


def test_exprb43_step_is_the_scheme_with_exact_matrix_functions():
    """One EXPRB43 step (its third process on ``D_3 - alpha D_2``, Lanczos throughout)
    against the textbook scheme written here with the matrix functions from a dense
    eigendecomposition of ``J``: the same step and error estimate, to the Krylov
    tolerance."""
    rng = np.random.default_rng(0)
    lam = np.concatenate([rng.uniform(100.0, 1000.0, 15), rng.uniform(0.01, 1.0, 15)])
    a, _ = symmetric(lam, seed=3)
    b = 0.3 * np.random.default_rng(4).standard_normal(lam.size)
    y0 = np.random.default_rng(5).standard_normal(lam.size)
    f = lambda y: -a @ y - y ** 3 + b  # noqa: E731
    jac = -a - np.diag(3 * y0 ** 2)
    mu, q = np.linalg.eigh(jac)
    solver = exponential.EXPRB43(rtol=1e-10, atol=1e-13)
    term = diffrax.ODETerm(lambda t, y, args: field(jnp.asarray(-a), jnp.asarray(b), True, y))
    for h in (0.02, 0.1):
        def fn(k, v, c=1.0, h=h):
            return q @ (phi_numpy(k, c * h * mu) * (q.T @ v))

        f0 = f(y0)
        u2 = y0 + 0.5 * h * fn(1, f0, 0.5)
        d2 = f(u2) - f0 - jac @ (u2 - y0)
        u3 = y0 + h * fn(1, f0) + h * fn(1, d2)
        d3 = f(u3) - f0 - jac @ (u3 - y0)
        y1 = (y0 + h * fn(1, f0) + h * (16 * fn(3, d2) - 48 * fn(4, d2))
              + h * (-2 * fn(3, d3) + 12 * fn(4, d3)))
        estimate = h * fn(4, 12 * d3 - 48 * d2)
        got, got_error, *_ = solver.advance(term, 0.0, h, jnp.asarray(y0), None,
                                            jnp.asarray(f0))
        # each process converges to 0.1 of the tolerance (atol + rtol |y0|) in the RMS
        # norm; four terms: at most 0.4 in RMS. Measured 1.4e-4 and 8.3e-4 of it in the
        # step, 7e-5 and 2.4e-4 in the estimate (alpha = 1.09 and 1.07 here; the alpha D_2
        # part of the step is 1.5e8 and 1.1e9 tolerances: leaving it out would fail)
        rms = lambda x: float(np.sqrt(np.mean(np.square(x / (1e-13 + 1e-10 * np.abs(y0))))))  # noqa: E731, E501
        assert rms(np.asarray(got) - y1) <= 0.4, (h, rms(np.asarray(got) - y1))
        assert rms(np.asarray(got_error) - estimate) <= 0.4, h
        # and the estimate is not trivially small: the check can fail
        assert rms(estimate) > 10.0, (h, rms(estimate))


# ---------------------------------------------------------------------- 6. compiled loop

#: the escape from a small start (to ~t = 10) and the stiff stretch after it: Dopri8EXPRB43
#: goes over to EXPRB32 inside it (measured at rtol 1e-7: from t = 36.4; with the run's
#: tolerance 1e-6, from t = 12.2; at 1e-8, from t = 61.2)
TIMES = [0.5, 2.0, 8.0, 20.0, 100.0]


@pytest.fixture(scope="module")
def completion():
    problem, _ = fs.low_rank_completion((12, 10), 2, 60, seed=0)
    model = fs.DeepMatrixFactorization(shape=(12, 10), depth=3)
    params = fs.balanced_init(model, seed=0, scale=1e-2)
    # the factor ODE in numpy (tests/reference_odes.py); its own error, against rtol
    # 1e-13, measured <= 1.8e-12
    exact = products_at(completion_gradient(problem.mask, problem.target), params, TIMES,
                        rtol=1e-12, atol=1e-14)
    return problem, model, params, exact


@pytest.mark.parametrize("solver", ["EXPRB32", "EXPRB43", "Dopri8EXPRB43"])
def test_in_the_compiled_loop_against_scipy(completion, solver):
    problem, model, params, exact = completion
    rtol, atol = 1e-7, 1e-10
    traj = fs.gradient_flow(problem, model, params, solver=solver, save_at=TIMES,
                            coordinates="factors", rtol=rtol, atol=atol, progress=False)
    assert traj.status == "t_max", traj.message
    np.testing.assert_allclose(traj.t, [0.0] + TIMES, rtol=1e-12)
    errors = [np.linalg.norm(traj.product[i + 1] - w) / np.linalg.norm(w)
              for i, w in enumerate(exact)]
    # a global error within 10 rtol. Measured: EXPRB32 4.2e-8, 2.9e-9, 2.9e-9, 9.6e-10,
    # 1.2e-9 (its errors follow rtol: 4.2e-7 at the first time with rtol 1e-6);
    # Dopri8EXPRB43 <= 4.5e-10 (at t = 100, after the switch)
    assert max(errors) <= 10 * rtol, errors
    # Lanczos ran: beyond the power iteration's POWER_STEPS_INIT products at the start,
    # every accepted exponential step takes at least two (m1 >= 1, plus J (U - y0));
    # measured 26452 for 1486 steps (EXPRB32), 1450 (Dopri8EXPRB43)
    jvps = traj.stats["jacobian_vector_products"]
    assert jvps > 0
    if solver.startswith("EXPRB"):
        assert jvps >= POWER_STEPS_INIT + 2 * traj.stats["steps"]
    else:
        # Dopri8 until the flow is stiff, EXPRB32 after
        switched = traj.stats["stabilized_from_t"]
        assert switched is not None and 0 < switched < TIMES[-1]
        assert jvps > POWER_STEPS_INIT


# ------------------------------------------------------------- 7. batches and checkpoints


def small_run(path=None, params=None, **kwargs):
    """The default call on a 10x8 completion (240 unknowns: "auto" takes Dopri8EXPRB43),
    depth 3, from a balanced start of 1e-2, to t = 60: Dopri8, then EXPRB43."""
    problem, _ = fs.low_rank_completion((10, 8), 2, 40, seed=2)
    model = fs.DeepMatrixFactorization(shape=(10, 8), depth=3)
    if params is None:
        params = fs.balanced_init(model, seed=2, scale=1e-2)
    return fs.gradient_flow(problem, model, params, t_max=60.0, coordinates="factors",
                            chunk_steps=2, checkpoint=path, progress=False, **kwargs)


def test_a_batch_follows_its_members():
    model = fs.DeepMatrixFactorization(shape=(10, 8), depth=3)
    starts = [fs.balanced_init(model, seed=s, scale=1e-2) for s in (2, 3)]
    batch = small_run(params=starts)
    for start, member in zip(starts, batch):
        single = small_run(params=start)
        assert single.config["options"]["solver"] == "Dopri8EXPRB43"
        assert member.status == single.status == "t_max"
        assert single.stats["stabilized_from_t"] is not None
        # each lane's Lanczos stops at its own test (a lane that is done idles): the same
        # steps; products differ by the batched arithmetic's rounding at most
        assert member.stats["steps"] == single.stats["steps"]
        np.testing.assert_allclose(member.product[-1], single.product[-1], rtol=1e-9,
                                   atol=1e-12)


def test_killed_in_the_exponential_stretch_resumes_bit_for_bit(tmp_path):
    whole = small_run()
    switched = whole.stats["stabilized_from_t"]
    assert switched is not None
    # kill it halfway through the exponential stretch (a checkpoint write per 2 steps)
    first = int(np.searchsorted(whole.t, switched))
    killed_after = (first + (len(whole.t) - first) // 2) // 2
    path = tmp_path / "run.npz"
    proc = killed_run("test_exponential", "small_run", path, killed_after)
    assert proc.returncode == -signal.SIGKILL, proc.stderr[-2000:]
    partial = fs.Trajectory.load(path)
    assert partial.status == "interrupted" and switched < partial.t[-1] < whole.t[-1]
    resumed = small_run(path)
    assert resumed.status == "t_max"
    np.testing.assert_array_equal(resumed.t, whole.t)
    np.testing.assert_array_equal(resumed.states, whole.states)
    assert resumed.stats["jacobian_vector_products"] == whole.stats["jacobian_vector_products"]


def test_krylov_step_bound_predicts_the_target_dimension():
    """After a step of size ``h`` that took ``m`` Lanczos iterations (count ~ ``kappa
    sqrt(h rho)``), the bound ``MAX_H_RHO / rho_K`` is the step at which the same
    ``kappa`` predicts ``KRYLOV_TARGET`` iterations; ``kappa`` is floored at
    ``KRYLOV_RATIO_MIN`` (a step of few iterations does not open the bound without
    limit)."""
    ritz = 160.0
    for h, m in [(12.0, 54), (2.0, 28), (0.5, 16)]:
        kappa = m / np.sqrt(h * ritz)
        bound = exponential.MAX_H_RHO / float(exponential.krylov_radius(h, ritz, m))
        np.testing.assert_allclose(kappa * np.sqrt(bound * ritz),
                                   exponential.KRYLOV_TARGET, rtol=1e-12)
        assert bound * ritz < exponential.KRYLOV_TARGET ** 2 / exponential.KRYLOV_RATIO_MIN ** 2
    # two iterations at a large step: kappa below the floor, so the floor sets the bound
    bound = exponential.MAX_H_RHO / float(exponential.krylov_radius(100.0, ritz, 2))
    np.testing.assert_allclose(bound * ritz, (exponential.KRYLOV_TARGET
                                              / exponential.KRYLOV_RATIO_MIN) ** 2, rtol=1e-12)
