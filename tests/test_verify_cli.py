"""``flowsim verify``: table, report folder, exit status (cheap claims only; the full
run is the README's command, not a test)."""

import json

import pytest

from flowsim.cli import main
from proofs_checks import runner
from proofs_checks.result import CheckResult


def test_verify_writes_report_and_exits_zero(tmp_path, capsys):
    out = tmp_path / "report"
    code = main(["verify", "--quick", "--only", "Proposition 3", "--out", str(out),
                 "--no-progress"])
    text = capsys.readouterr().out
    assert code == 0
    assert "Proposition 3" in text and "checks passed" in text
    data = json.loads((out / "report.json").read_text())
    assert data["passed"] is True and len(data["results"]) > 10
    assert all(r["claim"] == "Proposition 3" for r in data["results"])
    assert "| Proposition 3 |" in (out / "report.md").read_text()


def test_verify_exits_nonzero_when_a_claim_fails(tmp_path, monkeypatch, capsys):
    def failing(plan, outcome):
        return [CheckResult("Proposition 3", "deliberately wrong", "p = 0.9", -0.4, False)]

    monkeypatch.setitem(runner.TASKS, "Proposition 3", failing)
    code = main(["verify", "--quick", "--only", "Proposition 3", "--out", str(tmp_path),
                 "--no-progress"])
    assert code == 1
    assert "FAIL" in capsys.readouterr().out


def test_verify_crashing_task_is_a_failed_claim(tmp_path, monkeypatch):
    def crash(plan, outcome):
        raise FloatingPointError("boom")

    monkeypatch.setitem(runner.TASKS, "Proposition 3", crash)
    outcome = runner.run_checks(quick=True, only=["Proposition 3"], progress=False)
    assert not outcome.passed and "boom" in outcome.results[0].evidence


@pytest.mark.parametrize("argv, field", [
    (["--only", "Theorem 9"], "only"),
    (["--coordinates", "polar"], "coordinates"),
])
def test_verify_bad_input_exits_2_naming_the_field(argv, field, tmp_path, capsys):
    assert main(["verify", "--quick", "--out", str(tmp_path), "--no-progress"] + argv) == 2
    assert field in capsys.readouterr().err


def test_fold_keeps_the_tightest_run():
    a = CheckResult("T", "c", "A", 2.0, True)
    b = CheckResult("T", "c", "B", 0.5, True)
    folded = runner.fold([("run a", a), ("run b", b)])
    assert folded.passed and folded.margin == 0.5 and "run b" in folded.evidence
    c = CheckResult("T", "c", "C", -1.0, False)
    assert not runner.fold([("run a", a), ("run c", c)]).passed


def test_warnings_of_the_runs_are_kept_for_the_report(monkeypatch, tmp_path, recwarn):
    """A task's warnings go to the report (report.md, report.json), not over the bar."""
    import json
    import warnings

    from proofs_checks import report, runner
    from proofs_checks.result import CheckResult

    def task(plan, outcome):
        warnings.warn("a sign event, recorded", stacklevel=2)
        return [CheckResult("claim x", "holds", "ok", 1.0, True, "numeric")]

    monkeypatch.setattr(runner, "TASKS", {"claim x": task})
    outcome = runner.run_checks(quick=True, progress=False)
    assert outcome.passed and not recwarn.list
    assert outcome.warnings == {"claim x": ["UserWarning: a sign event, recorded"]}
    folder = report.write_report(outcome, tmp_path)
    assert "a sign event, recorded" in (folder / "report.md").read_text()
    assert json.loads((folder / "report.json").read_text())["warnings"] == outcome.warnings
