"""The det-sign guard fires where the sign decides the answer (Theorem 1's regime) and
records elsewhere: from the deep matrix factorization literature's Gaussian start a
default call goes on, recording rounding-level changes of the sign with their size."""

import warnings

import numpy as np
import pytest

import flowsim as fs
from flowsim.problem import det_sign_decides


def test_where_the_sign_decides():
    assert det_sign_decides(fs.paper_problem())
    assert det_sign_decides(fs.perturbed_problem(-2.0, 0.5, 0.1))
    assert det_sign_decides(fs.padded_problem(4, 3))
    problem, _ = fs.low_rank_completion((6, 6), 2, 20, seed=0)
    assert not det_sign_decides(problem)
    options = fs.SolverOptions()
    def guard(options, decides):
        return options.resolve("factors", "matrix", 8, None,
                               det_sign_decides=decides).det_sign_guard

    assert guard(options, True) == "strict" and guard(options, False) == "record"
    assert guard(fs.SolverOptions(det_sign_guard="strict"), False) == "strict"
    with pytest.raises(ValueError, match="det_sign_guard"):
        fs.SolverOptions(det_sign_guard="sometimes")


@pytest.fixture(scope="module")
def gaussian_start():
    """Arora et al.'s protocol and start: 100x100 rank 5, 2,000 observed, depth 3,
    Gaussian factors of std 1e-3^(1/3) / sqrt(100). sigma_min / sigma_max of the product
    is ~1e-6 there, far below the step tolerance: the sign of det W is rounding's."""
    problem, _ = fs.low_rank_completion((100, 100), 5, 2000, seed=0)
    model = fs.DeepMatrixFactorization((100, 100), 3)
    return problem, model, fs.gaussian_init(model, seed=1000, std=1e-3 ** (1 / 3) / 10)


def test_gaussian_start_goes_on_and_records(gaussian_start):
    problem, model, params = gaussian_start
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        traj = fs.gradient_flow(problem, model, params, t_max=30.0, progress=False)
    assert traj.status == "t_max", traj.message
    assert traj.config["options"]["det_sign_guard"] == "record"
    events = traj.stats["sign_events"]
    assert events and "sign of det W changed" in traj.message
    assert any("sign of det W changed" in str(w.message) for w in caught)
    # each recorded change is rounding-level: W is within that relative distance of a
    # singular matrix (checked here from the saved product itself at the end)
    for event in events:
        assert 0 <= event["relative_size"] < 1e-6
    w = traj.product[-1]
    assert np.linalg.svd(w, compute_uv=False)[-1] / np.linalg.norm(w) < 1e-6
    # the strict policy ends the same run at the first of those changes
    strict = fs.gradient_flow(problem, model, params, t_max=30.0, progress=False,
                              det_sign_guard="strict")
    assert strict.status == "precision_lost" and "sign of det W" in strict.message
    assert strict.t[-1] == pytest.approx(events[0]["t"], rel=1e-12)
