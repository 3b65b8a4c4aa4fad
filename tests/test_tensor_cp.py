"""CP parameterization (Eq. 11), its init and the linear baseline (flowsim.tensor.cp)."""

import jax.numpy as jnp
import numpy as np
import pytest

import flowsim as fs
from flowsim.tensor import (
    CPFactorization,
    cp_dataset,
    cp_gaussian_init,
    cp_product,
    linear_baseline,
    max_cp_rank,
)


@pytest.mark.parametrize("shape", [(3, 4), (2, 3, 4), (2, 3, 2, 3)])
def test_product_is_the_sum_of_outer_products(shape):
    rng = np.random.default_rng(0)
    factors = [rng.standard_normal((d, 5)) for d in shape]
    expected = np.zeros(shape)
    for r in range(5):
        term = factors[0][:, r]
        for f in factors[1:]:
            term = np.multiply.outer(term, f[:, r])
        expected += term
    np.testing.assert_allclose(np.asarray(cp_product(factors)), expected, rtol=1e-13,
                               atol=1e-13)
    if len(shape) == 2:  # order 2: W^(1) W^(2)^T
        np.testing.assert_allclose(np.asarray(cp_product(factors)),
                                   factors[0] @ factors[1].T, rtol=1e-13)


def test_model_shapes_and_default_rank():
    assert max_cp_rank((8, 8, 8)) == 64 and max_cp_rank((8,) * 4) == 512
    assert max_cp_rank((3, 5, 4)) == 12
    model = CPFactorization((8, 8, 8))
    assert model.rank == 64 and model.order == 3
    assert model.factor_shapes == ((8, 64),) * 3 and model.n_params == 3 * 8 * 64
    assert CPFactorization((2, 3), rank=4).to_dict() == {"kind": "CPFactorization",
                                                         "shape": [2, 3], "rank": 4}


@pytest.mark.parametrize("kwargs, field", [
    ({"shape": (4,)}, "shape"), ({"shape": (4, 0)}, "shape"), ({"shape": (2, 2), "rank": 0},
                                                                "rank"),
    ({"shape": (2, 2), "rank": 1.5}, "rank"), ({"shape": (2, 2), "rank": True}, "rank"),
])
def test_model_rejects_bad_arguments(kwargs, field):
    with pytest.raises(ValueError, match=field):
        CPFactorization(**kwargs)


def test_check_params():
    model = CPFactorization((2, 3), rank=2)
    good = (np.ones((2, 2)), np.ones((3, 2)))
    assert all(a.dtype == np.float64 for a in model.check_params(good))
    for bad in (good[:1], (np.ones((2, 2)), np.ones((3, 3))),
                (np.ones((2, 2)), np.full((3, 2), np.nan))):
        with pytest.raises(ValueError, match="params"):
            model.check_params(bad)


def test_gaussian_init_is_seeded_with_the_requested_std():
    model = CPFactorization((8, 8, 8))
    a = cp_gaussian_init(model, seed=3, std=1e-2)
    b = cp_gaussian_init(model, seed=3, std=1e-3)
    assert [f.shape for f in a] == [(8, 64)] * 3
    # same seed: the same directions at another scale (common random numbers across stds)
    for fa, fb in zip(a, b):
        np.testing.assert_allclose(fa, 10 * fb, rtol=1e-14)
    sample = np.concatenate([f.ravel() for f in a])  # 1536 draws: std within ~2 %
    assert abs(sample.std() / 1e-2 - 1) < 0.1 and abs(sample.mean()) < 1e-3
    assert not np.array_equal(a[0], cp_gaussian_init(model, seed=4, std=1e-2)[0])
    with pytest.raises(ValueError, match="std"):
        cp_gaussian_init(model, std=-1.0)
    with pytest.raises(TypeError, match="model"):
        cp_gaussian_init(fs.DeepMatrixFactorization((2, 2), 2))


def test_linear_baseline_memorizes_the_observations():
    data = cp_dataset((4, 4, 4), rank=1, seed=0)
    problem = data.problem(20)
    w = linear_baseline(problem)
    idx = tuple(problem.indices.T)
    np.testing.assert_array_equal(w[idx], problem.values)
    assert np.count_nonzero(w) <= 20 and float(problem.loss(jnp.asarray(w))) == 0.0
    with pytest.raises(TypeError, match="problem"):
        linear_baseline(fs.paper_problem())
