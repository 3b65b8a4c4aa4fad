import numpy as np
import pytest
import sympy as sp

from proofs_checks import norms, proposition1
from proofs_checks.closed_forms import W, singular_values_on_s
from proofs_checks.norms import Norm


@pytest.fixture(scope="module")
def sigmas():
    return singular_values_on_s()


def test_closed_form_singular_values_hold(sigmas):
    r = proposition1.check_singular_values(*sigmas)
    assert r.passed and r.data["metrics_rel_error"] < 1e-13


def test_wrong_singular_values_fail(sigmas):
    wrong = (sp.sqrt(W**2 + 2) + sp.Abs(W)) / 2, (sp.sqrt(W**2 + 2) - sp.Abs(W)) / 2
    assert not proposition1.check_singular_values(*wrong).passed


def test_power_sum_derivative_identity(sigmas):
    assert proposition1.check_power_sum_derivative(*sigmas).passed
    assert not proposition1.check_power_sum_derivative(sigmas[0], sigmas[1] / 2).passed


@pytest.mark.parametrize("p", [sp.Rational(1, 2), 1, 2, sp.oo])
def test_schatten_minimized_exactly_at_zero(sigmas, p):
    r = proposition1.check_schatten_minimizer(*sigmas, p)
    assert r.passed, r.evidence
    assert r.margin > 0


def test_schatten_check_fails_for_a_closed_form_that_decreases(sigmas):
    # singular values of a family that shrinks with |w|: not the solution set's
    wrong = 1 + 1 / (1 + W**2), 1 / (1 + W**2)
    r = proposition1.check_schatten_minimizer(*wrong, 1)
    assert not r.passed and r.margin < 0


@pytest.mark.parametrize("norm", norms.non_schatten_norms(), ids=lambda n: n.name)
def test_epsilon_minimizers_are_bounded(norm):
    for eps in (0.1, 1.0):
        r = proposition1.check_epsilon_minimizers(norm, eps)
        assert r.passed, r.evidence


def test_epsilon_minimizers_l1_closed_form():
    # l1 on S is |w| + 2: the eps-minimizers are exactly |w| <= eps
    r = proposition1.check_epsilon_minimizers(norms.entrywise(1.0), 0.3)
    assert r.data["reach"] == pytest.approx(0.3, abs=1e-9)
    assert r.data["inf"] == pytest.approx(2.0, abs=1e-12)


def test_epsilon_check_fails_with_a_wrong_constant():
    l1 = norms.entrywise(1.0)
    wrong = Norm(l1.name, l1.fn, c=0.1)
    assert not proposition1.check_epsilon_minimizers(wrong, 1.0).passed


def test_epsilon_check_fails_for_a_seminorm_blind_to_w11():
    blind = Norm("off-diagonal only", lambda w: np.abs(w[..., 0, 1]) + np.abs(w[..., 1, 0]), 1.0)
    r = proposition1.check_epsilon_minimizers(blind, 1.0)
    assert not r.passed and r.margin == -np.inf
