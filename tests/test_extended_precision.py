"""The mpmath Taylor integrator against closed forms and invariants."""

import mpmath
import numpy as np
import pytest
import scipy.integrate

import flowsim as fs
from flowsim.extended_precision import factor_flow


def test_depth1_closed_form(paper):
    """L = 1: observed entries relax like exp(-t) exactly; W11 never moves."""
    model = fs.DeepMatrixFactorization((2, 2), 1)
    params = fs.gaussian_init(model, seed=1, std=0.5)
    sol = factor_flow(paper, model, params, [0.5, 2.0], dps=40, tol=1e-32)
    with mpmath.workdps(40):
        for i, t in enumerate(sol.t):
            w = sol.product(i)
            decay = mpmath.exp(-mpmath.mpf(t))
            for (a, b), obs in np.ndenumerate(paper.mask):
                w0, target = mpmath.mpf(float(params[0][a, b])), paper.target[a, b]
                expected = target + (w0 - target) * decay if obs else w0
                assert abs(w[a, b] - expected) < mpmath.mpf(10) ** -30


def test_symmetric_depth2_matches_scalar_ode(paper):
    """Depth 2 from 0.1 I against the scalar ODE of appendix_notes section 8 (scipy DOP853)."""
    model = fs.DeepMatrixFactorization((2, 2), 2)
    sol = factor_flow(paper, model, fs.identity_init(model, scale=0.1), [3.0, 6.0],
                      dps=30, order=20, tol=1e-22)

    def rhs(t, v):
        x, y, z = v
        return [-2 * y * (y - 1), -((y - 1) * (x + z) + y * z), -2 * (y * (y - 1) + z * z)]

    ref = scipy.integrate.solve_ivp(rhs, (0, 6.0), [0.1, 0.0, 0.1], method="DOP853",
                                    rtol=1e-13, atol=1e-15, t_eval=[3.0, 6.0])
    w = sol.product_float()
    np.testing.assert_allclose(np.stack([w[:, 0, 0], w[:, 0, 1], w[:, 1, 1]]), ref.y,
                               rtol=1e-10)


def test_balancedness_is_conserved_to_extended_precision(paper):
    """C_l = W_(l+1)^T W_(l+1) - W_l W_l^T is exactly conserved by Eq. (4)."""
    model = fs.DeepMatrixFactorization((2, 2), 3)
    params = fs.gaussian_init(model, seed=4, std=0.6)  # unbalanced: C_l != 0
    sol = factor_flow(paper, model, params, [1.0], dps=30, order=20, tol=1e-24)
    with mpmath.workdps(30):
        to_mp = np.vectorize(lambda v: mpmath.mpf(float(v)), otypes=[object])
        start = [to_mp(w) for w in params]
        end = list(sol.factors[0])
        for l in range(2):
            c0 = start[l + 1].T @ start[l + 1] - start[l] @ start[l].T
            c1 = end[l + 1].T @ end[l + 1] - end[l] @ end[l].T
            assert max(abs(v) for v in (c1 - c0).ravel()) < mpmath.mpf(10) ** -20
        # and the flow moved: not a trivially conserved stand-still
        assert abs(float(sol.product(0)[0, 1]) - float(fs.product(params)[0, 1])) > 1e-2


def test_bad_arguments(paper):
    model = fs.DeepMatrixFactorization((2, 2), 2)
    params = fs.balanced_init(model)
    with pytest.raises(ValueError, match="times"):
        factor_flow(paper, model, params, [1.0, 0.5])
    with pytest.raises(ValueError, match="order"):
        factor_flow(paper, model, params, [1.0], order=2)
