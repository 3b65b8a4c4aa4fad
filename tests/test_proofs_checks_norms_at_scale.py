"""The checks of both sides of the norms question beyond 2x2: each can fail, and the
padded (App. E) task passes on a small square problem."""

import math

import numpy as np
import pytest

import flowsim as fs
from proofs_checks import norms_at_scale as nas
from proofs_checks import runner


def test_recovery_thresholds_can_fail():
    assert nas.check_recovers({"a": 2e-5, "b": 4e-5}, "x").passed
    assert not nas.check_recovers({"a": 2e-5, "b": 2e-3}, "x").passed
    assert nas.check_does_not_recover({"a": 4e-2}, "x").passed
    assert not nas.check_does_not_recover({"a": 4e-2, "b": 5e-3}, "x").passed
    r = nas.check_recovers({"a": 1e-5}, "x")
    assert r.margin == pytest.approx(2.0)  # two decades below the threshold


def test_nuclear_excess_can_fail():
    assert nas.check_not_nuclear_minimal({"s": 220.4}, {"s": 216.3}, "x").passed
    assert not nas.check_not_nuclear_minimal({"s": 216.4}, {"s": 216.3}, "x").passed


def test_baseline_minimizer_check_sees_a_wrong_answer():
    shape = (5, 5)
    fit = fs.nuclear_norm_admm(fs.padded_problem(*shape))
    assert nas.check_baseline_minimizer(fit, shape).passed
    np.testing.assert_allclose(fit.matrix, nas.padded_minimizer(shape), atol=1e-6)
    wrong = fs.baselines.NormMinimizer(fit.matrix + np.eye(5) * 1e-3, 5.005, 0.0, "x", "x", 0.0)
    assert not nas.check_baseline_minimizer(wrong, shape).passed


def test_growth_checks_tell_growth_from_a_bounded_entry():
    loss = np.logspace(-3, -8, 20)
    m = nas.padded_minimizer((3, 3))
    growing = np.repeat(m[None], 20, axis=0)
    growing[:, 0, 0] = 1 / np.sqrt(2 * loss)
    bounded = np.repeat(m[None], 20, axis=0)
    bounded[:, 0, 0] = 7.0
    assert nas.check_entry_growth(loss, growing, "x").passed
    assert all(r.passed for r in nas.check_far_and_growing(loss, growing, m, "x"))
    assert not nas.check_entry_growth(loss, bounded, "x").passed
    assert not any(r.passed for r in nas.check_far_and_growing(loss, bounded, m, "x"))
    assert not math.isfinite(nas.check_entry_growth(loss[:0], growing[:0], "x").margin)


def test_padded_task_passes_on_a_small_square_problem():
    plan = runner.Plan(True, {}, padded_shapes=((4, 4),), padded_stop_loss=1e-4)
    results = runner.padded_task(plan, runner.Outcome(plan))
    assert len(results) == 9 and all(r.passed for r in results), [
        (r.check, r.evidence) for r in results if not r.passed]
