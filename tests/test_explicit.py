"""The explicit methods with their stages written out (flowsim.integration.explicit):
one step against diffrax's own step, the local error's order on a linear ODE against
its matrix exponential, and the refusal of a tableau the step cannot run."""

import diffrax
import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.linalg

from flowsim.integration.explicit import UNROLLED, check_tableau, rk_step

jax.config.update("jax_enable_x64", True)

#: a nonlinear, non-autonomous field (the time argument must reach every stage)
NONLINEAR = diffrax.ODETerm(lambda t, y, args: -y ** 3 + jnp.sin(3.0 * t) * y[::-1])
Y0 = jnp.array([1.0, -0.5, 2.0])


@pytest.mark.parametrize("name", sorted(UNROLLED))
def test_step_matches_diffrax(name):
    """The same step as diffrax's (its stages as a loop over a buffer): equal to the
    rounding of a sum of a dozen terms of size ~10."""
    f0 = NONLINEAR.vf(0.1, Y0, None)
    state = (jnp.asarray(False), f0)
    ours = UNROLLED[name]().step(NONLINEAR, 0.1, 0.35, Y0, None, state, False)
    theirs = getattr(diffrax, name)().step(NONLINEAR, 0.1, 0.35, Y0, None, state, False)
    scale = float(jnp.max(jnp.abs(theirs[0])))
    assert float(jnp.max(jnp.abs(ours[0] - theirs[0]))) <= 1e-13 * scale
    assert float(jnp.max(jnp.abs(ours[1] - theirs[1]))) <= 1e-13 * scale
    assert float(jnp.max(jnp.abs(ours[3][1] - theirs[3][1]))) <= 1e-12 * scale


@pytest.mark.parametrize("name,order", [("Dopri8", 8), ("Dopri5", 5), ("Tsit5", 5)])
def test_local_error_order(name, order):
    """On ``y' = A y`` the step's error against ``expm(h A) y0`` falls at least like
    ``h^(order + 1)`` (on a linear field a method may do better: Dopri8's slope is ~10):
    the fitted slope over h = 0.6 ... 0.2 is at least ``order + 0.5`` (the errors stay
    above 1e-13, far from rounding)."""
    a = np.array([[-1.0, 2.0, 0.0], [-2.0, -0.5, 1.0], [0.0, -1.0, -2.0]])
    term = diffrax.ODETerm(lambda t, y, args: jnp.asarray(a) @ y)
    y0 = np.array([1.0, 0.3, -0.7])
    tableau = UNROLLED[name].tableau
    hs = np.array([0.6, 0.45, 0.35, 0.27, 0.2])
    errors = []
    for h in hs:
        y1, _, f1 = rk_step(tableau, term, 0.0, h, jnp.asarray(y0), None,
                            jnp.asarray(a @ y0))
        exact = scipy.linalg.expm(h * a) @ y0
        errors.append(np.linalg.norm(np.asarray(y1) - exact))
        # the last stage is the field at the new point (first-same-as-last)
        np.testing.assert_allclose(np.asarray(f1), a @ np.asarray(y1), rtol=0, atol=1e-14)
    slope = np.polyfit(np.log(hs), np.log(errors), 1)[0]
    assert min(errors) > 1e-13 and slope >= order + 0.5, (slope, errors)


def test_refuses_a_tableau_without_last_stage_at_the_new_point():
    with pytest.raises(ValueError, match="first-same-as-last"):
        check_tableau(diffrax.Heun.tableau)
    check_tableau(diffrax.Bosh3.tableau)  # first-same-as-last: accepted
