import numpy as np
import pytest

import flowsim as fs
from flowsim.parameterization import partial_products


def test_product_is_paper_order():
    rng = np.random.default_rng(1)
    model = fs.DeepMatrixFactorization((3, 2), depth=3, widths=(4, 5))
    params = [rng.standard_normal(s) for s in model.layer_shapes]
    assert model.layer_shapes == ((4, 2), (5, 4), (3, 5))
    np.testing.assert_allclose(model.product(params), params[2] @ params[1] @ params[0],
                               rtol=1e-14)


def test_partial_products_factor_the_product():
    rng = np.random.default_rng(2)
    model = fs.DeepMatrixFactorization((2, 3), depth=4)
    params = [rng.standard_normal(s) for s in model.layer_shapes]
    lefts, rights = partial_products(params)
    w = model.product(params)
    for l in range(4):
        np.testing.assert_allclose(lefts[l] @ params[l] @ rights[l], w, rtol=1e-12)


def test_default_widths_are_min_dim():
    assert fs.DeepMatrixFactorization((3, 5), depth=3).widths == (3, 3)


@pytest.mark.parametrize("kwargs, field", [
    (dict(shape=(2, 2), depth=0), "depth"),
    (dict(shape=(2, 2), depth=2.5), "depth"),
    (dict(shape=(2, 2), depth=3, widths=(1, 2)), "widths"),
    (dict(shape=(2, 2), depth=3, widths=(2,)), "widths"),
    (dict(shape=(2, 0), depth=2), "shape"),
])
def test_bad_model(kwargs, field):
    with pytest.raises(ValueError, match=field):
        fs.DeepMatrixFactorization(**kwargs)


def test_check_params_names_the_layer():
    model = fs.DeepMatrixFactorization((2, 2), depth=2)
    with pytest.raises(ValueError, match=r"params\[1\] \(W_2\)"):
        model.check_params([np.eye(2), np.eye(3)])
