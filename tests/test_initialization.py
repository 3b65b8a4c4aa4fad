import numpy as np
import pytest

import flowsim as fs


@pytest.mark.parametrize("depth", [1, 2, 3, 4])
@pytest.mark.parametrize("seed", range(6))
def test_balanced_init_is_balanced_with_the_drawn_product(depth, seed):
    model = fs.DeepMatrixFactorization((2, 2), depth)
    params = fs.balanced_init(model, seed=seed, scale=1e-3)
    drawn = 1e-3 * np.random.default_rng(seed).standard_normal((2, 2))
    np.testing.assert_allclose(model.product(params), drawn, rtol=1e-12, atol=1e-18)
    # exact up to rounding: a few ulps of the layers' squared scale sigma_max^(2/L)
    assert fs.balancedness_defect(params) <= 1e-14 * np.linalg.norm(drawn, 2) ** (2 / depth)


def test_balanced_init_with_wide_hidden_layers():
    model = fs.DeepMatrixFactorization((2, 3), depth=3, widths=(4, 5))
    params = fs.balanced_init(model, seed=3, scale=0.5)
    drawn = 0.5 * np.random.default_rng(3).standard_normal((2, 3))
    np.testing.assert_allclose(model.product(params), drawn, rtol=1e-12)
    assert fs.balancedness_defect(params) < 1e-14


@pytest.mark.parametrize("sign", [1, -1])
@pytest.mark.parametrize("depth", [1, 2, 3])
def test_det_sign_holds_for_every_kind(sign, depth):
    model = fs.DeepMatrixFactorization((2, 2), depth)
    for seed in range(10):
        for params in (fs.balanced_init(model, seed=seed, scale=1e-3, det_sign=sign),
                       fs.gaussian_init(model, seed=seed, std=1e-2, det_sign=sign)):
            assert np.sign(np.linalg.det(model.product(params))) == sign
    params = fs.identity_init(model, scale=0.1, det_sign=sign)
    assert np.sign(np.linalg.det(model.product(params))) == sign
    assert fs.balancedness_defect(params) < 1e-15


def test_det_sign_flip_keeps_balance_and_magnitude():
    model = fs.DeepMatrixFactorization((2, 2), 3)
    for seed in range(10):
        pos = fs.balanced_init(model, seed=seed, scale=1e-2, det_sign=+1)
        neg = fs.balanced_init(model, seed=seed, scale=1e-2, det_sign=-1)
        assert fs.balancedness_defect(neg) < 1e-15
        np.testing.assert_allclose(np.abs(model.product(pos)), np.abs(model.product(neg)),
                                   rtol=1e-12)


def test_inits_are_reproducible_and_seeded():
    model = fs.DeepMatrixFactorization((2, 2), 3)
    a = fs.gaussian_init(model, seed=5, std=0.1)
    b = fs.gaussian_init(model, seed=5, std=0.1)
    c = fs.gaussian_init(model, seed=6, std=0.1)
    assert all(np.array_equal(x, y) for x, y in zip(a, b))
    assert not np.array_equal(a[0], c[0])
    assert fs.balancedness_defect(a) > 1e-3  # layer-wise Gaussian is not balanced


def test_identity_init():
    model = fs.DeepMatrixFactorization((2, 2), 4)
    np.testing.assert_allclose(model.product(fs.identity_init(model, scale=0.1)),
                               0.1 * np.eye(2), rtol=1e-14)


@pytest.mark.parametrize("call, field", [
    (lambda m: fs.balanced_init(m, scale=-1.0), "scale"),
    (lambda m: fs.gaussian_init(m, std=-1.0), "std"),
    (lambda m: fs.identity_init(m, scale=np.nan), "scale"),
    (lambda m: fs.balanced_init(m, det_sign=2), "det_sign"),
    (lambda m: fs.balanced_init(fs.DeepMatrixFactorization((2, 3), 2), det_sign=1), "square"),
])
def test_bad_init_input(call, field):
    with pytest.raises(ValueError, match=field):
        call(fs.DeepMatrixFactorization((2, 2), 2))
