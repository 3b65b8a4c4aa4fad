"""Theorem 2 checks on perturbed problems (b = (-2, 0.5, 0.1))."""

import numpy as np
import pytest

import flowsim as fs
from proofs_checks import theorem2

B = (-2.0, 0.5, 0.1)


def _run(det_sign):
    model = fs.DeepMatrixFactorization((2, 2), 3)
    params = fs.balanced_init(model, seed=0, scale=1e-3, det_sign=det_sign)
    return fs.gradient_flow(fs.perturbed_problem(*B), model, params, stop_loss=1e-8,
                            t_max=3e3, progress=False)


@pytest.fixture(scope="module")
def hypothesis():
    """det W(0) < 0 = sign(b12 b21): the theorem's hypothesis."""
    return _run(-1)


@pytest.fixture(scope="module")
def good_sign():
    """det W(0) > 0: outside the hypothesis; converges fast with |W11| = O(1)."""
    return _run(+1)


def test_bound_and_sign_pattern_hold_under_the_hypothesis(hypothesis):
    tr = hypothesis
    for r in (theorem2.check_entry_bound(tr.loss, tr.product, B),
              theorem2.check_sign_pattern(tr.loss, tr.product, tr.det_sign, B),
              theorem2.check_limit(tr.loss, tr.product, B)):
        assert r.passed, r.evidence


def test_outcome_a_approaches_the_rank_one_solution(hypothesis):
    # appendix_notes 10.10 (a): W22 on b22's side, l -> 0, W11 -> ~ w* = b12 b21 / b22 = -10
    assert theorem2.outcome(hypothesis.product, B) == "a"
    assert hypothesis.product[-1, 0, 0] == pytest.approx(-10.0, rel=2e-3)


def test_checks_fail_outside_the_hypothesis(good_sign):
    tr = good_sign
    assert abs(tr.product[-1, 0, 0]) < 2
    assert not theorem2.check_entry_bound(tr.loss, tr.product, B).passed
    assert not theorem2.check_sign_pattern(tr.loss, tr.product, tr.det_sign, B).passed


def test_wrong_b22_in_the_bound_fails(hypothesis):
    wrong = (B[0], B[1], 0.01)  # claims |W11| -> >= 100
    assert not theorem2.check_entry_bound(hypothesis.loss, hypothesis.product, wrong).passed
    assert not theorem2.check_limit(hypothesis.loss, hypothesis.product, wrong).passed


def test_outcome_b_check_needs_growth_and_a_loss_floor():
    loss = np.full(10, 0.01)
    w = np.zeros((10, 2, 2))
    w[:, 1, 1] = -0.05  # W22 on the wrong side of b22 = 0.1
    w[:, 0, 0] = np.linspace(5, 50, 10)
    assert theorem2.check_limit(loss, w, B).passed
    w[:, 0, 0] = 5.0  # not growing
    assert not theorem2.check_limit(loss, w, B).passed
