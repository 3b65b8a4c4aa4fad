"""The Rosenbrock methods (Rodas4, Rodas5P): measured convergence orders against a closed
form, L-stability, the automatic choice, and a default run against independent
integrators.

Closed form: a 1x1 depth-2 factorization fully observed, target ``s``: the product obeys
``sigma' = 2 sigma (s - sigma)`` (Lemma 4 with commuting factors), the logistic
``sigma(t) = s / (1 + (s / sigma0 - 1) exp(-2 s t))``.
"""

import diffrax
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import flowsim as fs
from flowsim.integration.rosenbrock import TABLEAUS, Rosenbrock
from flowsim.integration.solvers import ROSENBROCK_DOWN_TO

S, SIGMA0, T_END = 2.0, 1e-2, 3.0  # t = 3 is past the logistic's steep rise (t ~ 1.1)


def logistic(t):
    return S / (1.0 + (S / SIGMA0 - 1.0) * np.exp(-2.0 * S * t))


def fixed_steps(tableau, n, field, y0, t_end):
    solver = Rosenbrock(tableau)
    term = diffrax.ODETerm(field)

    @jax.jit
    def run(y):
        h = t_end / n

        def body(i, y):
            t0 = i * h
            return solver.step(term, t0, t0 + h, y, None, solver.init(term, t0, t0, y, None),
                               False)[0]
        return jax.lax.fori_loop(0, n, body, y)
    return run(jnp.asarray(y0))


@pytest.mark.parametrize("name", sorted(TABLEAUS))
def test_measured_order_against_the_logistic(name):
    tableau = TABLEAUS[name]
    field = lambda t, y, args: 2.0 * y * (S - y)  # noqa: E731
    steps = (40, 80, 160)
    errors = [abs(float(fixed_steps(tableau, n, field, [SIGMA0], T_END)[0]) - logistic(T_END))
              for n in steps]
    orders = np.log2(np.array(errors[:-1]) / np.array(errors[1:]))
    assert errors[-1] < 1e-7
    # a wrong coefficient drops the order; above it, a scalar problem can show more (it
    # satisfies some order conditions trivially): Rodas5P measures 6.0-6.3 here
    assert np.all(orders > tableau.order - 0.3) and np.all(orders < tableau.order + 1.5), \
        (name, errors, orders)


@pytest.mark.parametrize("name", sorted(TABLEAUS))
def test_l_stable_and_estimate_vanishes_with_the_stiff_mode(name):
    """``y' = lambda y``: one step with ``h lambda = -1e8`` damps the mode to ~1/|h lambda|
    (L-stability), and its error estimate is as small; with ``h lambda = -0.1`` the step
    follows ``exp``."""
    solver, term = Rosenbrock(TABLEAUS[name]), diffrax.ODETerm(lambda t, y, lam: lam * y)
    for z, close in ((-1e8, 0.0), (-0.1, np.exp(-0.1))):
        y1, err, _, _, _ = solver.step(term, 0.0, 1.0, jnp.ones(1), jnp.asarray(z),
                                       solver.init(term, 0.0, 1.0, jnp.ones(1), None), False)
        assert abs(float(y1[0]) - close) < 1e-6 and abs(float(err[0])) < 1e-5


def test_auto_takes_rodas5p_by_stop_loss_coordinates_and_size():
    options = fs.SolverOptions()
    assert options.resolve("svd", "matrix", 7, ROSENBROCK_DOWN_TO).solver == "Rodas5P"
    assert options.resolve("factors", "matrix", 12, 1e-4).solver == "Rodas5P"
    assert options.resolve("svd", "matrix", 7, ROSENBROCK_DOWN_TO / 10).solver == "Kvaerno5"
    assert options.resolve("svd", "matrix", 7, None).solver == "Kvaerno5"
    assert options.resolve("product", "matrix", 4, 1e-4).solver == "Kvaerno5"
    assert options.resolve("factors", "cp", 12, 1e-4).solver == "Kvaerno5"
    assert options.resolve("factors", "matrix", 300, 1e-4).solver == "Dopri8EXPRB43"
    assert fs.SolverOptions(solver="Kvaerno5").resolve("svd", "matrix", 7, 1e-4).solver \
        == "Kvaerno5"


def test_default_run_agrees_with_independent_integrators(paper):
    """Depth 3, balanced 1e-3, to loss 1e-6: the default (Rodas5P, svd coordinates) ends
    where a tight Kvaerno5 run in the same coordinates and scipy's Radau in factor
    coordinates end, at equal time; its cost counters add up."""
    model = fs.DeepMatrixFactorization((2, 2), 3)
    params = fs.balanced_init(model, seed=0, scale=1e-3)
    traj = fs.gradient_flow(paper, model, params, stop_loss=1e-6, progress=False)
    assert traj.status == "stop_loss" and traj.config["options"]["solver"] == "Rodas5P"
    t_end = float(traj.t[-1])
    tight = fs.gradient_flow(paper, model, params, t_max=t_end, solver="Kvaerno5",
                             coordinates="svd", rtol=1e-12, atol=1e-14, progress=False)
    radau = fs.gradient_flow(paper, model, params, t_max=t_end, solver="Radau",
                             coordinates="factors", rtol=1e-10, atol=1e-14, progress=False)
    w = traj.product[-1]
    for other in (tight, radau):
        assert other.status == "t_max"
        rel = np.abs(other.product[-1] - w).max() / np.abs(w).max()
        assert rel < 1e-6, rel
    assert traj.loss[-1] == pytest.approx(1e-6, rel=1e-9)
    stats = traj.stats
    # the totals count the stop locator's re-integrations too (their own steps)
    cut = stats["stop_location"]
    assert cut["cuts"] >= 1 and cut["steps"] >= cut["cuts"]
    steps = stats["steps"] + stats["rejected"] + cut["steps"]
    assert stats["vector_field_evaluations"] == 8 * steps
    assert stats["jacobian_vector_products"] == 7 * steps
    assert cut["vector_field_evaluations"] == 8 * cut["steps"]
