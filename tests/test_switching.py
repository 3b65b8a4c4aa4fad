"""Dopri8ROCK4 (flowsim.integration.switching): Dopri8 while the flow is not stiff (the same
steps as Dopri8 itself), ROCK4 once Dopri8 is held at its stability limit, and the
stability interval it assumes for Dopri8."""

import diffrax
import jax.numpy as jnp
import numpy as np
from reference_odes import completion_gradient, products_at

import flowsim as fs
from flowsim.integration import switching


def test_dopri8_stability_interval():
    z = -np.linspace(0.0, 5.3, 5301)
    term = diffrax.ODETerm(lambda t, y, args: jnp.asarray(z) * y)
    solver = diffrax.Dopri8()
    y0 = jnp.ones(z.size)
    y1 = np.abs(np.asarray(solver.step(term, 0.0, 1.0, y0, None, solver.init(
        term, 0.0, 1.0, y0, None), False)[0]))
    inside = -z <= switching.EXPLICIT_INTERVAL
    assert y1[inside].max() <= 1.0
    assert y1[-z >= switching.EXPLICIT_INTERVAL + 0.01].min() > 1.0


def completion(shape, depth, seed=0):
    problem, _ = fs.low_rank_completion(shape, 2, int(0.4 * shape[0] * shape[1]), seed=seed)
    model = fs.DeepMatrixFactorization(shape, depth)
    return problem, model, fs.balanced_init(model, seed=seed, scale=1e-2)


def test_not_stiff_it_takes_dopri8s_steps():
    # a short stretch of the escape from a small start: far from stiff
    problem, model, params = completion((8, 8), 3)
    kw = dict(t_max=3.0, coordinates="factors", progress=False)
    a = fs.gradient_flow(problem, model, params, solver="Dopri8ROCK4", rtol=1e-7, atol=1e-10,
                         **kw)
    # Dopri8 runs at EXPLICIT_TOLERANCE times the run's tolerances
    ratio = switching.EXPLICIT_TOLERANCE
    b = fs.gradient_flow(problem, model, params, solver="Dopri8", rtol=1e-7 * ratio,
                         atol=1e-10 * ratio, **kw)
    assert a.stats["stabilized_from_t"] is None
    assert a.stats["steps"] == b.stats["steps"] and a.stats["rejected"] == b.stats["rejected"]
    # the same steps; the error estimates differ by the ratio's rounding
    np.testing.assert_allclose(a.product[-1], b.product[-1], rtol=1e-12, atol=0)


def test_stiff_it_switches_and_follows_the_flow():
    problem, model, params = completion((8, 8), 3)
    mask, target = np.asarray(problem.mask), np.asarray(problem.target)
    t_max = 400.0
    a = fs.gradient_flow(problem, model, params, solver="Dopri8ROCK4", t_max=t_max,
                         coordinates="factors", rtol=1e-9, atol=1e-12, progress=False)
    b = fs.gradient_flow(problem, model, params, solver="Dopri8", t_max=t_max,
                         coordinates="factors", rtol=1e-9, atol=1e-12, progress=False,
                         max_steps=10 ** 6)
    assert a.status == b.status == "t_max"
    switched = a.stats["stabilized_from_t"]
    assert switched is not None and 0 < switched < t_max
    dopri8_evaluations = switching.EXPLICIT_EVALUATIONS * (b.stats["steps"] + b.stats["rejected"])
    assert a.stats["vector_field_evaluations"] < dopri8_evaluations / 2
    # an independent integration of the factor ODE (tests/reference_odes.py)
    exact = products_at(completion_gradient(mask, target), params, [t_max], method="Radau",
                        rtol=1e-12, atol=1e-14)[-1]
    assert np.linalg.norm(a.product[-1] - exact) <= 1e-7 * np.linalg.norm(exact)
