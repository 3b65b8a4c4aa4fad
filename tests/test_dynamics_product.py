"""Product coordinates (Lemma 4) against the factor-level velocity, a closed form, finite
differences and an independent scalar ODE."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.integrate

import flowsim as fs
from flowsim.dynamics import end_to_end_field, factor_gradients, make_coordinates
from flowsim.parameterization import partial_products

#: the svd coordinates' default tolerances, shared by every coordinate system here so
#: that the comparisons are like for like
TOLERANCES = {"rtol": 1e-8, "atol": 1e-12}


def factor_velocity(params, mask, target):
    """dW/dt = sum_l A_l (dW_l/dt) B_l from Eq. (4) (appendix_notes section 10, item 2)."""
    w = fs.product(params)
    grads = factor_gradients(params, mask * (w - target))
    lefts, rights = partial_products(params)
    return sum(a @ (-g) @ b for a, g, b in zip(lefts, grads, rights))


def random_problem(shape, seed):
    rng = np.random.default_rng(seed)
    return (rng.random(shape) < 0.7) * 1.0, rng.standard_normal(shape)


@pytest.mark.parametrize("shape", [(2, 2), (3, 2), (2, 4)])
@pytest.mark.parametrize("depth", [1, 2, 3, 4])
def test_lemma4_equals_factor_velocity(shape, depth):
    model = fs.DeepMatrixFactorization(shape, depth)
    params = fs.balanced_init(model, seed=depth, scale=0.7)
    mask, target = random_problem(shape, depth)
    coords = make_coordinates("product", model)
    y = jnp.asarray(coords.from_factors(params))
    got = np.asarray(coords.vector_field(y, mask, target)).reshape(shape)
    ref = factor_velocity(params, mask, target)
    np.testing.assert_allclose(got, ref, rtol=0, atol=1e-13 * np.abs(ref).max())


def test_depth2_closed_form():
    """L = 2, 2x2 (appendix_notes section 8): W' = -(W W^T G + G W^T W + 2|det W| G)/||W||_*."""
    rng = np.random.default_rng(5)
    mask, target = fs.paper_problem().mask, fs.paper_problem().target
    for _ in range(5):
        w = rng.standard_normal((2, 2))
        g = mask * (w - target)
        closed = -(w @ w.T @ g + g @ w.T @ w + 2 * abs(np.linalg.det(w)) * g) \
            / np.linalg.svd(w, compute_uv=False).sum()
        got = -np.asarray(end_to_end_field(jnp.asarray(w), jnp.asarray(g), 2))
        np.testing.assert_allclose(got, closed, rtol=1e-13, atol=1e-15)


def _jacobian_cases():
    return [
        ((2, 2), 3, 0.1 * np.eye(2)),           # equal singular values
        ((3, 3), 4, np.diag([0.3, 0.3, 0.1])),  # a repeated pair
        ((3, 2), 3, None),                       # W W^T has a zero eigenvalue
        ((2, 4), 2, None),
    ]


@pytest.mark.parametrize("shape, depth, w0", _jacobian_cases())
def test_custom_jvp_matches_finite_differences(shape, depth, w0):
    """The Daleckii-Krein tangent is finite at repeated / zero eigenvalues and equals central
    differences; reverse mode (transposed custom JVP) agrees with forward mode."""
    model = fs.DeepMatrixFactorization(shape, depth)
    params = (fs.balanced_init(model, seed=2, scale=0.5) if w0 is None
              else fs.factors_from_product(model, w0))
    mask, target = random_problem(shape, 11)
    coords = make_coordinates("product", model)
    y = jnp.asarray(coords.from_factors(params))

    field = jax.jit(lambda v: coords.vector_field(v, mask, target))

    jac = np.asarray(jax.jacfwd(field)(y))
    assert np.all(np.isfinite(jac))
    np.testing.assert_allclose(np.asarray(jax.jacrev(field)(y)), jac, atol=1e-13)
    h = 1e-6
    fd = np.stack([(field(y + h * e) - field(y - h * e)) / (2 * h)
                   for e in np.eye(y.size)], axis=1)
    np.testing.assert_allclose(jac, fd, rtol=0, atol=1e-8 * np.abs(fd).max())


def test_unbalanced_params_are_rejected():
    model = fs.DeepMatrixFactorization((2, 2), 3)
    params = fs.gaussian_init(model, seed=0, std=0.3)
    for name in ("product", "svd"):
        with pytest.raises(ValueError, match="params"):
            make_coordinates(name, model).from_factors(params)
    # balanced to rounding passes
    make_coordinates("product", model).from_factors(fs.balanced_init(model, seed=0))


def test_symmetric_start_matches_scalar_ode(paper):
    """Depth 2, W(0) = 0.1 I (equal singular values): W stays symmetric and obeys
    x' = -2y(y-1), y' = -[(y-1)(x+z) + yz], z' = -2[y(y-1) + z^2] (appendix_notes sec. 8),
    integrated here by scipy's DOP853; compared at equal times."""
    model = fs.DeepMatrixFactorization((2, 2), 2)
    traj = fs.gradient_flow(paper, model, fs.identity_init(model, scale=0.1),
                            coordinates="product", t_max=25.0, progress=False,
                            **TOLERANCES)
    assert traj.status == "t_max"

    def rhs(t, v):
        x, y, z = v
        return [-2 * y * (y - 1), -((y - 1) * (x + z) + y * z), -2 * (y * (y - 1) + z * z)]

    ref = scipy.integrate.solve_ivp(rhs, (0, 25.0), [0.1, 0.0, 0.1], method="DOP853",
                                    rtol=1e-13, atol=1e-15, t_eval=traj.t, dense_output=False)
    w = traj.product
    np.testing.assert_allclose(w[:, 0, 1], w[:, 1, 0], atol=1e-12)
    got = np.stack([w[:, 0, 0], w[:, 0, 1], w[:, 1, 1]])
    np.testing.assert_allclose(got, ref.y, rtol=1e-6, atol=1e-8)
    assert traj.loss[-1] < 3e-2 < 0.3 < traj.loss[0]  # the comparison covers the descent
