"""The exact flow at the field's sizes, by default: the solver "auto" takes for large
states (Dopri8 while the flow is smooth, EXPRB43 once it is stiff) against a closed form and
an independent integrator, at every saved time, and its cost counters.

Closed form: every entry of a d x d2 matrix observed, target ``B = diag(s)``, start
``W(0) = alpha I`` (each layer ``alpha^(1/N) I``). The flow stays diagonal and each diagonal
entry obeys the scalar ODE ``sigma' = N sigma^(2 - 2/N) (s - sigma)`` (Lemma 4 with
commuting ``W`` and ``G``), integrated here by scipy's DOP853, entry by entry.
"""

import numpy as np
import pytest
import scipy.integrate
from reference_odes import completion_gradient, products_at

import flowsim as fs

ALPHA = 1e-3
#: default calls are exact to this, relative in the Frobenius norm of W, at every saved
#: time (the accuracy the defaults are chosen for: docs/numerics.md)
PATH_TOL = 1e-7


def diagonal_reference(depth, s, times):
    def rhs(t, sigma):
        return depth * np.abs(sigma) ** (2 - 2 / depth) * (s - sigma)

    sol = scipy.integrate.solve_ivp(rhs, (0, times[-1]), np.full(s.size, ALPHA),
                                    method="DOP853", rtol=1e-13, atol=1e-16, t_eval=times)
    return sol.y.T  # (len(times), min(d, d2))


def transition_times(depth, s):
    """A time mid-transition (most entries between 10% and 90% of their target) and a
    late one (every entry within 0.1% of it), from the reference itself."""
    grid = np.linspace(0.0, 400.0, 8001)[1:]
    frac = diagonal_reference(depth, s, grid) / s
    mid = grid[np.argmax(((frac > 0.1) & (frac < 0.9)).sum(axis=1))]
    late = grid[np.argmax(frac.min(axis=1) > 0.999)]
    return [float(mid), float(late)]


@pytest.mark.parametrize("shape", [(60, 40), (100, 100)])
@pytest.mark.parametrize("depth", [2, 3, 4])
def test_closed_form_with_defaults(shape, depth):
    d, d2 = shape
    m = min(d, d2)
    s = np.linspace(0.5, 2.0, m)
    times = transition_times(depth, s)
    indices = [(i, j) for i in range(d) for j in range(d2)]
    target = np.zeros(shape)
    target[range(m), range(m)] = s
    problem = fs.MatrixCompletion(shape, indices, target[tuple(np.array(indices).T)])
    model = fs.DeepMatrixFactorization(shape, depth)
    traj = fs.gradient_flow(problem, model, fs.identity_init(model, scale=ALPHA),
                            save_at=times, progress=False)
    assert traj.status == "t_max", traj.message
    assert traj.config["options"]["solver"] == "Dopri8EXPRB43"  # what "auto" takes here
    np.testing.assert_array_equal(traj.t, [0.0, *times])
    ref = diagonal_reference(depth, s, times)
    frac = ref[0] / s
    # the first time is mid-transition: entries in their steep growth, some not yet begun
    assert np.sum((frac > 0.1) & (frac < 0.9)) >= 3 and frac.min() < 0.1
    for k in range(len(times)):
        w = traj.product[k + 1]
        exact = np.zeros(shape)
        exact[range(m), range(m)] = ref[k]
        assert np.linalg.norm(w - exact) <= PATH_TOL * np.linalg.norm(exact), (k, times[k])
    stats = traj.stats
    assert stats["vector_field_evaluations"] >= stats["steps"] + stats["rejected"]
    assert stats["jacobian_vector_products"] > 0


def test_rkc2_agrees_with_kvaerno5_at_small_size(paper):
    """At 5x5 both solvers run: the matrix-free one agrees with the implicit one at equal
    time (to their tolerances)."""
    problem, _ = fs.low_rank_completion((5, 5), 2, 10, seed=1)
    model = fs.DeepMatrixFactorization((5, 5), 3)
    params = fs.balanced_init(model, seed=1, scale=1e-2)
    a = fs.gradient_flow(problem, model, params, t_max=50.0, solver="RKC2", rtol=1e-9,
                         atol=1e-12, coordinates="factors", progress=False)
    b = fs.gradient_flow(problem, model, params, t_max=50.0, solver="Kvaerno5",
                         coordinates="factors", progress=False)
    assert a.status == b.status == "t_max"
    diff = np.linalg.norm(a.product[-1] - b.product[-1]) / np.linalg.norm(b.product[-1])
    assert diff < 1e-6


def test_low_rank_completion_protocol():
    problem, truth = fs.low_rank_completion((30, 20), 3, 100, seed=4)
    assert problem.n_observed == 100 and truth.shape == (30, 20)
    assert np.linalg.matrix_rank(truth) == 3
    assert np.sqrt(np.mean(truth ** 2)) == pytest.approx(1.0)
    np.testing.assert_array_equal(problem.target[problem.mask == 1],
                                  truth[problem.mask == 1])
    with pytest.raises(ValueError, match="rank"):
        fs.low_rank_completion((5, 5), 6, 10)
    with pytest.raises(ValueError, match="n_observed"):
        fs.low_rank_completion((5, 5), 2, 26)


def test_protocol_default_call_along_the_path():
    """Arora et al.'s protocol (100x100, rank 5, 2,000 observed, depth 3, balanced 1e-3):
    the default call is within PATH_TOL of scipy's DOP853 at rtol 1e-12 on the factor ODE
    at every saved time, through the escape and on to loss 1e-6."""
    problem, _ = fs.low_rank_completion((100, 100), 5, 2000, seed=0)
    model = fs.DeepMatrixFactorization((100, 100), 3)
    params = fs.balanced_init(model, seed=0, scale=1e-3)
    times = [0.25, 0.5, 1.0, 2.0, 5.0, 30.0, 100.0]
    traj = fs.gradient_flow(problem, model, params, save_at=times, stop_loss=1e-6,
                            t_max=1e4, progress=False)
    assert traj.status == "stop_loss", traj.message
    assert traj.config["options"]["solver"] == "Dopri8EXPRB43"
    np.testing.assert_array_equal(traj.t[1:-1], times)
    exacts = products_at(completion_gradient(problem.mask, problem.target), params,
                         traj.t[1:])
    for k, exact in enumerate(exacts):
        error = np.linalg.norm(traj.product[k + 1] - exact) / np.linalg.norm(exact)
        assert error <= PATH_TOL, (traj.t[k + 1], error)
