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
