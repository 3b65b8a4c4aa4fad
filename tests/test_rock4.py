"""ROCK4 (flowsim.integration.rock4): the published coefficients give a method of order 4
at every tabulated degree, stable on the interval the stage count is chosen for, and a
solver of order 4 on a stiff nonlinear problem against scipy's Radau."""

import diffrax
import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.integrate

from flowsim.integration import rock4

SOLVER = rock4.ROCK4()


def linear_term(z):
    z = jnp.asarray(z)
    return diffrax.ODETerm(lambda t, y, args: z * y)


@pytest.mark.parametrize("index", [int(i) for i in rock4.USED])
def test_every_degree_is_fourth_order_and_stable_where_it_is_used(index):
    stages = int(rock4.DEGREES[index]) + 4
    # the largest h * rho the stage rule (stages_for, and the step limit at the cap)
    # gives this degree: sqrt((3 + h rho) / 0.353) < stages
    top = min(stages, rock4.MAX_STAGES - 1)
    # (degree 63 falls short of it by 2e-5 of its length, inside the safety factor on rho)
    interval = (rock4.STABILITY * top ** 2 - 3.0) * (1 - 1e-4)
    z = -np.linspace(0.0, interval, 2001)
    y1, _, _, evaluations = SOLVER.advance(linear_term(z), 0.0, 1.0, jnp.ones(z.size), None,
                                           jnp.asarray(z), index)
    assert int(evaluations) == stages
    assert np.abs(np.asarray(y1)).max() <= 1.0 + 1e-9
    # local error of y' = -y: C h^5, so halving h divides it by 32
    errors = []
    for h in (0.2, 0.1):
        y, _, _, _ = SOLVER.advance(linear_term(-1.0), 0.0, h, jnp.ones(1), None,
                                    -jnp.ones(1), index)
        errors.append(abs(float(y[0]) - np.exp(-h)))
    assert 4.8 < np.log2(errors[0] / errors[1]) < 5.2


def test_order_four_on_a_stiff_nonlinear_problem():
    lam = np.linspace(1.0, 300.0, 20)

    def field(y):
        return -lam * (y - 1.0) - 0.5 * y ** 2 + np.sin(3 * y)

    y0 = np.linspace(-1.0, 2.0, 20)
    ref = scipy.integrate.solve_ivp(lambda t, y: field(y), (0, 1.0), y0, method="Radau",
                                    rtol=1e-13, atol=1e-15).y[:, -1]
    term = diffrax.ODETerm(lambda t, y, args: -jnp.asarray(lam) * (y - 1.0) - 0.5 * y ** 2
                           + jnp.sin(3 * y))
    errors, hs = [], [1 / 100, 1 / 200, 1 / 400]
    for h in hs:
        state = SOLVER.init(term, 0.0, h, jnp.asarray(y0), None)
        step = jax.jit(lambda t, y, s, h=h: SOLVER.step(term, t, t + h, y, None, s, False))
        y, t = jnp.asarray(y0), 0.0
        for _ in range(round(1.0 / h)):
            y, _, _, state, _ = step(t, y, state)
            t += h
        errors.append(np.linalg.norm(np.asarray(y) - ref))
    slopes = np.diff(np.log(errors)) / np.diff(np.log(hs))
    assert np.all((3.7 < slopes) & (slopes < 4.3)), slopes


def test_stage_rule_and_step_limit():
    rho = 155.0
    for h in (1e-3, 0.1, 1.0, 10.0, 50.0):
        s = int(rock4.stages_for(h, rho))
        assert 5 <= s <= rock4.MAX_STAGES
        degree = int(rock4.DEGREES[int(rock4.degree_index(s))])
        assert degree >= s - 4 and degree not in rock4.EXCLUDED
        if s < rock4.MAX_STAGES:
            assert h * rho < rock4.STABILITY * s ** 2 - 3.0
    limit = float(SOLVER.stability_limit(rho))
    assert int(rock4.stages_for(limit, rho)) <= rock4.MAX_STAGES
