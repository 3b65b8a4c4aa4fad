"""Singular-value coordinates (Lemmas 4-5, 2x2): chart round trip, the vector field against
Lemma 4, Lemma 5 along a trajectory, and Theorem 1's regime with the sign of det kept."""

import math
from functools import partial

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import flowsim as fs
from flowsim.dynamics import make_coordinates
from flowsim.dynamics import svd as svd_module


@partial(jax.jit, static_argnums=0)
def _chart_velocity(coords, y, mask, target):
    f = coords.vector_field(y, mask, target)
    return jax.jvp(coords.product, (y,), (f,))[1]


def chart_velocity(coords, y, mask, target):
    """dW/dt implied by the coordinates' own vector field (derivative of the chart)."""
    return np.asarray(_chart_velocity(coords, jnp.asarray(y), jnp.asarray(mask),
                                      jnp.asarray(target)))


@partial(jax.jit, static_argnums=0)
def _product(coords, y):
    return coords.product(y)


def lemma4_velocity(model, w, mask, target):
    coords = make_coordinates("product", model)
    return np.asarray(coords.vector_field(jnp.asarray(w).ravel(), mask, target)).reshape(2, 2)


@pytest.mark.parametrize("depth", [2, 3, 4])
@pytest.mark.parametrize("det_sign", [1, -1])
def test_chart_round_trip_and_lemma4(depth, det_sign, paper):
    model = fs.DeepMatrixFactorization((2, 2), depth)
    coords = make_coordinates("svd", model)
    for params in (fs.balanced_init(model, seed=depth, scale=0.8, det_sign=det_sign),
                   fs.identity_init(model, scale=0.1, det_sign=det_sign)):  # s1 = s2
        y = jnp.asarray(coords.from_factors(params))
        w = fs.product(params)
        np.testing.assert_allclose(_product(coords, y), w, atol=1e-15)
        sign, logabs = coords.slogdet(y)
        assert sign == det_sign
        assert float(logabs) == pytest.approx(np.linalg.slogdet(w)[1], rel=1e-13)
        np.testing.assert_allclose(chart_velocity(coords, y, paper.mask, paper.target),
                                   lemma4_velocity(model, w, paper.mask, paper.target),
                                   atol=1e-14)


@pytest.mark.parametrize("depth", [2, 3])
def test_both_charts_are_the_same_point_and_the_same_flow(depth, paper):
    """The conformal and the polar chart of one W (rechart's two conversions) give the same
    product, the same slogdet and the same dW/dt (each chart's own field pushed through
    its own map, against Lemma 4 from W), for singular-value ratios around the switch."""
    model = fs.DeepMatrixFactorization((2, 2), depth)
    coords = make_coordinates("svd", model)
    rng = np.random.default_rng(depth)
    for ell in (0.3, 0.7, 1.5, 6.0):
        theta, phi, log_s1 = rng.uniform(-3, 3, size=3)
        for eps in (1.0, -1.0):
            polar = np.array([theta, phi, log_s1, log_s1 - ell, eps, 1.0, 1.0])
            # ell < 0.5 goes back to the conformal chart by itself; force the other way
            conformal = np.asarray(svd_module.conformal_from_polar(jnp.asarray(polar)))
            assert conformal[5] == 0.0
            back = np.asarray(svd_module.polar_from_conformal(jnp.asarray(conformal)))
            w = np.asarray(_product(coords, jnp.asarray(polar)))
            for y in (conformal, back):
                y = jnp.asarray(y)
                np.testing.assert_allclose(_product(coords, y), w, rtol=0,
                                           atol=1e-13 * abs(w).max())
                assert coords.slogdet(y)[0] == eps
                assert float(coords.slogdet(y)[1]) == pytest.approx(2 * log_s1 - ell, rel=1e-13)
            lemma4 = lemma4_velocity(model, w, paper.mask, paper.target)
            for y in (polar, conformal):
                np.testing.assert_allclose(
                    chart_velocity(coords, jnp.asarray(y), paper.mask, paper.target), lemma4,
                    rtol=0, atol=1e-12 * np.abs(lemma4).max())
            chart = float(coords.rechart(jnp.asarray(polar))[5])
            assert chart == (1.0 if ell >= 0.5 else 0.0)


def test_from_factors_picks_the_chart(paper):
    model = fs.DeepMatrixFactorization((2, 2), 3)
    coords = make_coordinates("svd", model)
    assert coords.from_factors(fs.identity_init(model, scale=0.1))[5] == 0.0  # s1 = s2
    w = np.diag([2.0, 0.1])  # log(s1/s2) = 3 > 1
    assert coords.from_factors(fs.factors_from_product(model, w))[5] == 1.0


@pytest.mark.parametrize("chart", ["conformal", "polar"])
def test_tiny_det_state_is_exact_and_regular(chart, paper):
    """log det W = -1000: W's entries are those of a rank-1 matrix, the sign and log|det|
    come from the state, and the field and its Jacobian are finite (both charts)."""
    model = fs.DeepMatrixFactorization((2, 2), 3)
    coords = make_coordinates("svd", model)
    y = np.array([1e-3, 3.0, 0.9, -1000.0, 1.0, 0.0, 1.0])
    if chart == "polar":
        y = np.asarray(svd_module.polar_from_conformal(jnp.asarray(y)))
    y = jnp.asarray(y)
    log_s1, log_s2 = coords.log_singular_values(y)
    assert float(log_s1 + log_s2) == pytest.approx(-1000.0, rel=1e-15)
    w = np.asarray(_product(coords, y))
    assert np.linalg.svd(w, compute_uv=False)[0] == pytest.approx(math.exp(log_s1), rel=1e-14)
    # Lemma 4 from W's entries sees sigma_2 ~ 1e-16 |W| (rounding) instead of e^-1000;
    # at L = 3 that moves the field by ~(1e-16)^(2/3) relative, hence 1e-10
    lemma4 = lemma4_velocity(model, w, paper.mask, paper.target)
    np.testing.assert_allclose(chart_velocity(coords, y, paper.mask, paper.target), lemma4,
                               rtol=0, atol=1e-10 * np.abs(lemma4).max())
    assert coords.slogdet(y) == (1.0, -1000.0)
    jac = jax.jacfwd(lambda v: coords.vector_field(v, paper.mask, paper.target))(y)
    assert np.all(np.isfinite(np.asarray(jac)))


def test_jacobian_at_equal_singular_values_matches_finite_differences(paper):
    model = fs.DeepMatrixFactorization((2, 2), 3)
    coords = make_coordinates("svd", model)
    y = jnp.asarray(coords.from_factors(fs.identity_init(model, scale=0.1)))
    # z = 0 in the conformal chart: the usual SVD angles (the polar chart) are singular
    assert float(y[1]) == float(y[2]) == float(y[5]) == 0.0

    @jax.jit
    def field(v):
        return coords.vector_field(v, paper.mask, paper.target)

    jac = np.asarray(jax.jacfwd(field)(y))
    h = 1e-7
    fd = np.stack([(field(y + h * e) - field(y - h * e)) / (2 * h) for e in np.eye(7)], axis=1)
    assert np.all(np.isfinite(jac))
    np.testing.assert_allclose(jac, fd, rtol=0, atol=1e-7 * np.abs(fd).max())


def test_other_shapes_and_depth_one_are_rejected():
    with pytest.raises(ValueError, match="2x2"):
        make_coordinates("svd", fs.DeepMatrixFactorization((3, 2), 2))
    # at depth 1 det W may change sign in the exact flow: refused up front, not run
    with pytest.raises(ValueError, match="depth >= 2"):
        make_coordinates("svd", fs.DeepMatrixFactorization((2, 2), 1))
    model = fs.DeepMatrixFactorization((2, 2), 2)
    singular = fs.factors_from_product(model, np.array([[1.0, 0.0], [0.0, 0.0]]))
    with pytest.raises(ValueError, match="singular"):
        make_coordinates("svd", model).from_factors(singular)


# -- Theorem 1's regime ------------------------------------------------------------------



#: depth -> loss reached (issue 3: depth 2 and 3 to 1e-12). Depth 4 is not here: its steps
#: collapse near loss 1e-11 (bench/bench_coordinates.py).
THEOREM_LEVELS = {2: 1e-12, 3: 1e-12}


@pytest.fixture(scope="module", params=sorted(THEOREM_LEVELS))
def theorem_run(request, paper):
    model = fs.DeepMatrixFactorization((2, 2), request.param)
    params = fs.balanced_init(model, seed=0, scale=1e-3, det_sign=1)
    traj = fs.gradient_flow(paper, model, params, stop_loss=THEOREM_LEVELS[request.param],
                            max_steps=20_000, progress=False)
    assert traj.config["coordinates"] == "svd"  # what "auto" takes for this start
    return model, traj


def test_theorem1_regime_sign_kept(theorem_run):
    """Depth 2 and 3, balanced, det > 0, scale 1e-3: loss 1e-12 (1e-11) with det > 0 at
    every saved point and |W11| sqrt(2 loss) -> 1 (appendix_notes D2, sharp asymptotics)."""
    model, traj = theorem_run
    level = THEOREM_LEVELS[model.depth]
    assert traj.status == "stop_loss", traj.message
    # deep in the stiff regime the stop point is located to the solver's accuracy, not to
    # 1e-9 (the re-integration's last step changes with its end time)
    assert traj.loss[-1] == pytest.approx(level, rel=1e-2)
    assert np.all(traj.det_sign == 1)
    w11 = abs(traj.product[-1, 0, 0])
    assert w11 * math.sqrt(2 * traj.loss[-1]) == pytest.approx(1.0, rel=1e-2)
    assert w11 == pytest.approx(1 / math.sqrt(2 * level), rel=1e-2)
    # (D2): |W11| >= 1/sqrt(2 l) - 2 at every point; (D4): sigma_min <= sqrt(2 l) once l < 1/2
    assert np.all(np.abs(traj.product[:, 0, 0]) >= 1 / np.sqrt(2 * traj.loss) - 2)
    coords = make_coordinates("svd", model)
    log_s2 = np.array([float(coords.log_singular_values(jnp.asarray(y))[1])
                       for y in traj.states[::25]])
    small = traj.loss[::25] < 0.5
    assert np.all(log_s2[small] <= 0.5 * np.log(2 * traj.loss[::25][small]))
    # log|det| keeps falling: det -> 0+ (super-polynomially at depth 2)
    assert traj.log_abs_det[-1] < traj.log_abs_det[0]
    if model.depth == 2:
        assert traj.log_abs_det[-1] < -1000


def test_lemma5_along_trajectory(theorem_run, paper):
    """Lemma 5: d sigma_r/dt = -L (sigma_r^2)^(1-1/L) <grad l(W), u_r v_r^T>, with the
    left side from central differences of the chart's log-singular values along the flow
    and the right side from numpy's SVD of W (u_1, v_1; u_2 v_2^T is then fixed by
    det W > 0, even when sigma_2 is below W's resolution); checked all along the run."""
    model, traj = theorem_run
    depth = model.depth
    coords = make_coordinates("svd", model)
    logs = jax.jit(coords.log_singular_values)
    field = jax.jit(lambda v: coords.vector_field(v, paper.mask, paper.target))
    checked = 0
    for y in traj.states[:: max(1, len(traj) // 40)]:
        y = jnp.asarray(y)
        f = field(y)
        # step: each coordinate moves by at most 1e-4 of its natural scale (angle: 1; the
        # anticonformal part z: the size of W; log det: itself, it reaches -5e10 at depth 2)
        size = float(np.linalg.norm(_product(coords, y)))
        if float(y[5]) > 0.5:  # polar chart: two angles and two log-singular values
            natural = jnp.array([1.0, 1.0, max(1.0, abs(float(y[2]))),
                                 max(1.0, abs(float(y[3]))), 1.0, 1.0, 1.0])
        else:
            natural = jnp.array([1.0, size, size, max(1.0, abs(float(y[3]))), 1.0, 1.0, 1.0])
        h = 1e-4 / float(jnp.max(jnp.abs(f) / natural))
        # fourth-order central differences: truncation ~h^4, rounding ~eps/h
        at = {k: np.asarray(logs(y + k * h * f)) for k in (-2, -1, 1, 2)}
        w = np.asarray(_product(coords, y))
        u, _, vt = np.linalg.svd(w)
        # det W > 0: W = U S V^T with S > 0 needs det U det V = +1, so u_2, v_2 are u_1, v_1
        # turned by 90 degrees (numpy fixes their signs independently once sigma_2 is below
        # W's resolution, which would flip the sign of u_2 v_2^T)
        turn = np.array([[0.0, -1.0], [1.0, 0.0]])
        u[:, 1], vt[1] = turn @ u[:, 0], turn @ vt[0]
        g = paper.mask * (w - paper.target)
        for r in range(2):
            log_s = float(logs(y)[r])
            d_log_fd = (8 * (at[1][r] - at[-1][r]) - (at[2][r] - at[-2][r])) / (12 * h)
            # Lemma 5 divided by sigma_r (log form: valid at sigma_2 = exp(-1000))
            scale = depth * math.exp((1 - 2 / depth) * log_s)
            d_log = -scale * float(u[:, r] @ g @ vt[r])
            # late in the run <G, u_1 v_1^T> is a 1e-10 cancellation of |G|, and the chart's
            # d log s_2 = d log det - d log s_1 inherits its rounding: hence a floor relative
            # to L s_1^(1-2/L) |G|, the size of Lemma 5's r = 1 side before cancellation
            floor = 1e-9 * depth * math.exp((1 - 2 / depth) * float(logs(y)[0])) \
                * np.linalg.norm(g)
            assert d_log_fd == pytest.approx(d_log, rel=1e-5, abs=floor)
            checked += 1
    assert checked >= 60


@pytest.mark.parametrize("angles", [(3.0, 0.2), (-3.0, 2.9), (1.7, -1.7), (0.1, 0.2)])
def test_polar_angles_recentre_with_the_overall_sign(angles, paper):
    """A half turn of either polar angle flips the sign of W~; rechart keeps both angles
    in [-pi/2, pi/2) and records the flips in sigma: the same W, the same dW/dt."""
    model = fs.DeepMatrixFactorization((2, 2), 3)
    coords = make_coordinates("svd", model)
    y = jnp.asarray([angles[0], angles[1], 2.0, -1.0, -1.0, 1.0, 1.0])
    z = coords.rechart(y)
    assert abs(float(z[0])) <= np.pi / 2 and abs(float(z[1])) <= np.pi / 2
    np.testing.assert_allclose(_product(coords, z), _product(coords, y), atol=1e-14)
    np.testing.assert_allclose(chart_velocity(coords, z, paper.mask, paper.target),
                               chart_velocity(coords, y, paper.mask, paper.target),
                               rtol=1e-12, atol=1e-14)
    assert coords.slogdet(z)[0] == -1.0
