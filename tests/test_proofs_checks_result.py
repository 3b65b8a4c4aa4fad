import math

import numpy as np

from proofs_checks.result import CheckResult, combine, slack_result


def test_slack_result_margin_is_the_smallest_slack():
    r = slack_result("C", "c", [3.0, 0.5, 2.0], "e")
    assert r.passed and r.margin == 0.5 and r.data["violations"] == 0


def test_negative_nan_or_empty_slack_fails():
    assert not slack_result("C", "c", [1.0, -1e-300], "e").passed
    nan = slack_result("C", "c", [1.0, np.nan], "e")
    assert not nan.passed and math.isnan(nan.margin)
    assert not slack_result("C", "c", [], "e").passed


def test_combine_fails_if_any_part_fails_and_json_is_plain():
    good = CheckResult("C", "a", "ok", 1.0, True)
    bad = CheckResult("C", "b", "no", -2.0, False)
    both = combine("C", "both", [good, bad])
    assert not both.passed and both.margin == -2.0 and "FAILED: b" in both.evidence
    d = both.to_dict()
    assert d["passed"] is False and len(d["data"]["parts"]) == 2


def test_unknown_source_is_rejected():
    try:
        CheckResult("C", "c", "e", 0.0, True, source="guess")
    except ValueError as exc:
        assert "source" in str(exc)
    else:
        raise AssertionError("source='guess' accepted")
