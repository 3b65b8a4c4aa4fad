import numpy as np
import pytest

import flowsim as fs
from proofs_checks import proposition4
from proofs_checks.proposition4 import X, Y, Z


def test_entry_ode_is_derived_from_lemma4():
    assert proposition4.check_entry_ode().passed


def test_a_wrong_stated_ode_fails():
    wrong = (-2 * Y * (Y - 1), -((Y - 1) * (X + Z)), -2 * (Y * (Y - 1) + Z**2))
    assert not proposition4.check_entry_ode(wrong).passed
    assert not proposition4.check_log_det_rate(wrong).passed


def test_log_det_rate_is_exact():
    assert proposition4.check_log_det_rate().passed


@pytest.fixture(scope="module")
def solution():
    return proposition4.integrate_entry_ode(0.5, 1e-5)


def test_loss_reaches_zero_and_w11_grows(solution):
    r = proposition4.check_loss_to_zero(solution["t"], solution["loss"], 1e-5)
    assert r.passed, r.evidence
    # Theorem 1's bound with det > 0 (kept exactly by the log det state)
    s = np.sqrt(2 * solution["loss"][-1])
    assert solution["x"][-1] >= 1 / s - 2


def test_plateau_fails():
    t = np.linspace(0, 10, 50)
    loss = 0.1 + np.exp(-t)  # converges, but to 0.1
    assert not proposition4.check_loss_to_zero(t, loss, 1e-6).passed
    rising = np.linspace(1.0, 1e-7, 50)
    rising[25] = 2.0
    assert not proposition4.check_loss_to_zero(t, rising, 1e-6).passed


def test_entry_ode_matches_the_factor_flow():
    level = 3e-2  # factor coordinates keep det's sign to here at depth 2 (Kvaerno5)
    ode = proposition4.integrate_entry_ode(0.5, level)
    model = fs.DeepMatrixFactorization((2, 2), 2)
    flow = fs.gradient_flow(fs.paper_problem(), model, fs.identity_init(model, 0.5),
                            stop_loss=level, progress=False)
    r = proposition4.check_matches_flow(ode["x"][-1], flow.product[-1, 0, 0], level)
    assert r.passed, r.evidence
    assert not proposition4.check_matches_flow(ode["x"][-1] * (1 + 1e-4),
                                               flow.product[-1, 0, 0], level).passed
