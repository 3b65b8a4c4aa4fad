"""Metrics against closed forms on the solution set S = {[[w, 1], [1, 0]]}
(appendix_notes.md, section 2)."""

import numpy as np
import pytest

import flowsim as fs

W_GRID = np.array([-30.0, -2.5, 0.0, 0.3, 1.0, 7.0, 1e3])


def on_s(w):
    return np.array([[w, 1.0], [1.0, 0.0]])


@pytest.mark.parametrize("w", W_GRID)
def test_schatten_norms_on_s(w):
    m = on_s(w)
    r = np.sqrt(w * w + 4)
    assert fs.schatten_norm(m, 1) == pytest.approx(r, rel=1e-12)
    assert fs.schatten_norm(m, 2) == pytest.approx(np.sqrt(w * w + 2), rel=1e-12)
    assert fs.schatten_norm(m, np.inf) == pytest.approx((r + abs(w)) / 2, rel=1e-12)
    p = 0.5
    closed = 0.5 * ((r + abs(w)) ** p + (r - abs(w)) ** p) ** (1 / p)
    assert fs.schatten_norm(m, p) == pytest.approx(closed, rel=1e-9)


@pytest.mark.parametrize("w", W_GRID)
def test_rank_measures_on_s(w):
    m = on_s(w)
    r = np.sqrt(w * w + 4)
    sigma2 = 2 / (r + abs(w))
    assert fs.distance_to_rank(m, 1) == pytest.approx(sigma2, rel=1e-9)
    assert fs.distance_to_rank(m, 2) == 0.0
    rho2 = (1 - abs(w) / r) / 2
    h = -(rho2 * np.log(rho2) + (1 - rho2) * np.log(1 - rho2))
    assert fs.effective_rank(m) == pytest.approx(np.exp(h), rel=1e-8)


def test_effective_rank_extremes_and_zero():
    assert fs.effective_rank(np.eye(3)) == pytest.approx(3.0, rel=1e-14)
    assert fs.effective_rank(np.outer([1.0, 2.0], [3.0, -1.0])) == pytest.approx(1.0, abs=1e-7)
    with pytest.raises(ValueError, match="zero matrix"):
        fs.effective_rank(np.zeros((2, 2)))


def test_schatten_bad_p_and_batches():
    with pytest.raises(ValueError, match="p must be"):
        fs.schatten_norm(np.eye(2), 0)
    batch = np.stack([on_s(w) for w in W_GRID])
    np.testing.assert_allclose(fs.schatten_norm(batch, 1), np.sqrt(W_GRID ** 2 + 4), rtol=1e-12)
    np.testing.assert_allclose(fs.det(batch), -1.0, rtol=1e-12)


def test_balancedness_defect():
    a = np.array([[1.0, 2.0], [0.0, 1.0]])
    # W_2^T W_2 - W_1 W_1^T with W_1 = a, W_2 = I: I - a a^T
    expected = np.abs(np.eye(2) - a @ a.T).max()
    assert fs.balancedness_defect([a, np.eye(2)]) == pytest.approx(expected)
    assert fs.balancedness_defect([a]) == 0.0


def test_unobserved_entries():
    p = fs.padded_problem(3, 3)
    w = np.arange(9.0).reshape(3, 3)
    np.testing.assert_array_equal(fs.unobserved_entries(p, w), [0.0])


# -- from log singular values (exact however small) ------------------------------------

def _mp_erank_minus_one(s):
    import mpmath
    with mpmath.workdps(80):
        s = [mpmath.mpf(x) for x in s]
        total = sum(s)
        rho = [x / total for x in s if x > 0]
        return float(mpmath.e ** (-sum(r * mpmath.log(r) for r in rho)) - 1)


@pytest.mark.parametrize("ratio", [1e-30, 1e-12, 1e-3, 0.5])
def test_erank_minus_one_and_distance_against_mpmath(ratio):
    """At sigma_min / sigma_max = 1e-30 the direct formula returns exactly 0 (1 minus a
    number rounded to 1); the log form keeps full relative precision."""
    import mpmath
    s = np.array([2.5, 2.5 * ratio])
    a = np.log(s)
    got = fs.effective_rank_minus_one(a)
    want = _mp_erank_minus_one(s.tolist())
    assert got == pytest.approx(want, rel=1e-13)
    if ratio <= 1e-20:
        assert fs.effective_rank(np.diag(s)) - 1 < want / 10  # what the entries lose
    dist = fs.distance_to_rank_from_log_singular_values(a, 1)
    assert dist == pytest.approx(2.5 * ratio, rel=1e-15)
    with mpmath.workdps(60):
        half = float(sum(mpmath.mpf(x) ** 0.5 for x in s) ** 2)
    assert fs.schatten_from_log_singular_values(a, 0.5) == pytest.approx(half, rel=1e-14)
    assert fs.schatten_from_log_singular_values(a, np.inf) == 2.5


def test_log_singular_value_functions_match_the_matrix_ones():
    rng = np.random.default_rng(0)
    w = rng.standard_normal((5, 3, 4))
    a = fs.log_singular_values(w)
    np.testing.assert_allclose(fs.effective_rank_minus_one(a), fs.effective_rank(w) - 1,
                               rtol=1e-12)
    for p in (0.5, 1.0, 2.0):
        np.testing.assert_allclose(fs.schatten_from_log_singular_values(a, p),
                                   fs.schatten_norm(w, p), rtol=1e-12)
    np.testing.assert_allclose(fs.distance_to_rank_from_log_singular_values(a, 1),
                               fs.distance_to_rank(w, 1), rtol=1e-12)
    with pytest.raises(ValueError, match="p"):
        fs.schatten_from_log_singular_values(a, 0.0)
    with pytest.raises(ValueError, match="r"):
        fs.distance_to_rank_from_log_singular_values(a, -1)


def test_erank_minus_one_falls_strictly_along_theorem1_run():
    """Depth 3 to loss 1e-12 (svd coordinates): erank - 1 from the trajectory's log
    singular values falls strictly at every saved point once the run has left the start,
    down to ~1e-12, where the value computed from W's entries has long been rounding."""
    model = fs.DeepMatrixFactorization((2, 2), 3)
    params = fs.balanced_init(model, seed=0, scale=1e-3, det_sign=+1)
    traj = fs.gradient_flow(fs.paper_problem(), model, params, stop_loss=1e-12,
                            progress=False)
    assert traj.status == "stop_loss"
    er = fs.effective_rank_minus_one(traj.log_singular_values)
    late = traj.loss < 1e-2
    assert np.all(np.diff(er[late]) < 0)
    assert 0 < er[-1] < 1e-9
    # (D5) bound, and the log singular values agree with W's SVD where W resolves them
    assert np.all(er <= 4 * np.sqrt(2 * traj.loss) + 1e-15)
    np.testing.assert_allclose(np.exp(traj.log_singular_values[:, 0]),
                               fs.singular_values(traj.product)[:, 0], rtol=1e-10)
