import numpy as np

from proofs_checks import proposition3


def test_symmetric_entries_give_one_half():
    for dist in proposition3.SYMMETRIC:
        r = proposition3.check_sign_probability(
            proposition3.entry_signs(dist, 2, 20_000, 1e-3, seed=1), dist)
        assert r.passed, r.evidence


def test_product_with_one_symmetric_layer_gives_one_half():
    r = proposition3.check_sign_probability(proposition3.product_signs(3, 2, 20_000, seed=3), "p")
    assert r.passed, r.evidence


def test_scaling_does_not_change_signs():
    a = proposition3.entry_signs("laplace", 3, 1000, 1e-6, seed=2)
    b = proposition3.entry_signs("laplace", 3, 1000, 1e6, seed=2)
    assert np.array_equal(a, b)


def test_flowsim_inits_give_one_half():
    r = proposition3.check_sign_probability(proposition3.init_signs("balanced", 3, 1000, 1e-3), "b")
    assert r.passed, r.evidence


def test_non_symmetric_matrices_fail():
    rng = np.random.default_rng(0)
    signs = np.linalg.slogdet(np.eye(2) + 0.5 * rng.standard_normal((5000, 2, 2)))[0]
    r = proposition3.check_sign_probability(signs, "I + noise")
    assert not r.passed and r.margin < 0
