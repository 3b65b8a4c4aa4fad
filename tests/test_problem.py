import numpy as np
import pytest

import flowsim as fs


def test_paper_problem_is_eq6():
    p = fs.paper_problem()
    assert p.shape == (2, 2)
    # Eq. (6), 1-based: b12 = 1, b21 = 1, b22 = 0; W11 unobserved.
    np.testing.assert_array_equal(p.mask, [[0, 1], [1, 1]])
    np.testing.assert_array_equal(p.target, [[0, 1], [1, 0]])
    np.testing.assert_array_equal(p.unobserved_indices, [[0, 0]])


def test_loss_is_half_sum_of_squares_over_observed():
    p = fs.perturbed_problem(-2.0, 0.5, 0.1)
    w = np.array([[123.0, 1.0], [2.0, 3.0]])
    expected = 0.5 * ((1.0 + 2.0) ** 2 + (2.0 - 0.5) ** 2 + (3.0 - 0.1) ** 2)
    assert float(p.loss(w)) == pytest.approx(expected, rel=1e-15)
    np.testing.assert_allclose(p.loss(np.stack([w, w])), [expected, expected], rtol=1e-15)


@pytest.mark.parametrize("d, d2", [(2, 2), (3, 3), (4, 3), (3, 5)])
def test_padded_problem_matches_appendix_e(d, d2):
    p = fs.padded_problem(d, d2)
    assert p.n_observed == d * d2 - 1
    np.testing.assert_array_equal(p.unobserved_indices, [[0, 0]])
    for i in range(d):
        for j in range(d2):
            if (i, j) == (0, 0):
                continue
            one_based = (i + 1, j + 1)
            expected = 1.0 if one_based in ((1, 2), (2, 1)) or (i == j and i >= 2) else 0.0
            assert p.target[i, j] == expected, one_based


@pytest.mark.parametrize("indices, values, field", [
    ([(0, 2)], [1.0], "out of range"),
    ([(-1, 0)], [1.0], "out of range"),
    ([(0, 1), (0, 1)], [1.0, 2.0], "duplicates"),
    ([(0, 1)], [np.nan], "finite"),
    ([(0, 1)], [np.inf], "finite"),
    ([(0, 1), (1, 0)], [1.0], "values"),
    ([(0, 1, 0)], [1.0], "indices"),
    ([], [], "at least one"),
])
def test_bad_matrix_completion_input(indices, values, field):
    with pytest.raises(ValueError, match=field):
        fs.MatrixCompletion((2, 2), indices, values)


def test_bad_shape():
    with pytest.raises(ValueError, match="shape"):
        fs.MatrixCompletion((2, 0), [(0, 0)], [1.0])
    with pytest.raises(ValueError, match="shape"):
        fs.MatrixCompletion((2, 2, 2), [(0, 0, 0)], [1.0])
    with pytest.raises(ValueError, match="shape"):
        fs.TensorCompletion((3,), [(0,)], [1.0])


def test_problem_round_trips_through_dict():
    p = fs.perturbed_problem(-2.0, 0.5, 0.05)
    q = type(p).from_dict(p.to_dict())
    np.testing.assert_array_equal(q.target, p.target)
    np.testing.assert_array_equal(q.mask, p.mask)
