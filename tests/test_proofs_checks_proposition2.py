import sympy as sp

from proofs_checks import proposition2
from proofs_checks.closed_forms import W, singular_values_on_s


def test_effective_rank_and_distance_on_s_hold():
    s1, s2 = singular_values_on_s()
    for check in (proposition2.check_effective_rank_on_s, proposition2.check_distance_on_s):
        r = check(s1, s2)
        assert r.passed, r.evidence
        assert r.data["metrics_rel_error"] < 1e-12


def test_effective_rank_fails_for_wrong_singular_values():
    s1, s2 = singular_values_on_s()
    r = proposition2.check_effective_rank_on_s(s1, s2 / 2)
    assert not r.passed and "value at w=0" in r.evidence


def test_distance_fails_for_wrong_sigma2():
    s1, _ = singular_values_on_s()
    r = proposition2.check_distance_on_s(s1, 1 / (1 + sp.Abs(W)))
    assert not r.passed
