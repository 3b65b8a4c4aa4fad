"""Ground truths and observation orders (flowsim.tensor.truth)."""

import numpy as np
import pytest

from flowsim.tensor import cp_dataset, observation_order, random_cp_tensor


def _unfolding_ranks(t):
    return [np.linalg.matrix_rank(np.moveaxis(t, n, 0).reshape(t.shape[n], -1), tol=1e-10)
            for n in range(t.ndim)]


@pytest.mark.parametrize("rank", [1, 3])
def test_random_truth_has_unit_norm_and_its_rank(rank):
    t = random_cp_tensor((8, 8, 8), rank=rank, seed=5)
    assert abs(np.linalg.norm(t) - 1) < 1e-14
    # a CP rank r tensor has every unfolding of matrix rank <= r (= r for generic factors)
    assert _unfolding_ranks(t) == [rank] * 3
    np.testing.assert_array_equal(t, random_cp_tensor((8, 8, 8), rank=rank, seed=5))
    assert not np.allclose(t, random_cp_tensor((8, 8, 8), rank=rank, seed=6))


def test_observation_order_is_a_seeded_permutation():
    order = observation_order((3, 4, 2), seed=1)
    assert order.shape == (24, 3)
    assert len({tuple(i) for i in order}) == 24
    assert np.all((order >= 0) & (order < np.array([3, 4, 2])))
    np.testing.assert_array_equal(order, observation_order((3, 4, 2), seed=1))
    assert not np.array_equal(order, observation_order((3, 4, 2), seed=2))


def test_problems_are_nested_and_observe_the_truth():
    data = cp_dataset((4, 4, 4), rank=1, seed=0)
    small, large = data.problem(10), data.problem(30)
    np.testing.assert_array_equal(small.indices, large.indices[:10])
    np.testing.assert_array_equal(large.values, data.truth[tuple(large.indices.T)])
    assert data.problem(64).unobserved_indices.size == 0
    for bad in (0, 65, 2.5):
        with pytest.raises(ValueError, match="n_observed"):
            data.problem(bad)
    with pytest.raises(ValueError, match="rank"):
        random_cp_tensor((4, 4), rank=0)
    with pytest.raises(ValueError, match="shape"):
        random_cp_tensor((4,), rank=1)
