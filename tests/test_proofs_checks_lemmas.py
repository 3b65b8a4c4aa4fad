import numpy as np
import pytest

import flowsim as fs
from proofs_checks import lemmas

PROBLEM = fs.paper_problem()


@pytest.fixture(scope="module", params=[2, 3])
def balanced_points(request):
    model = fs.DeepMatrixFactorization((2, 2), request.param)
    params = fs.balanced_init(model, seed=1, scale=1e-2, det_sign=+1)
    traj = fs.gradient_flow(PROBLEM, model, params, stop_loss=3e-2, coordinates="factors",
                            progress=False)
    idx = np.unique(np.linspace(0, len(traj) - 1, 25).astype(int))
    return [tuple(layer[i] for layer in traj.factors) for i in idx]


def _unbalanced(depth):
    model = fs.DeepMatrixFactorization((2, 2), depth)
    return [fs.gaussian_init(model, seed=k, std=0.5) for k in range(8)]


def test_lemma4_holds_on_balanced_factors(balanced_points):
    r = lemmas.check_lemma4(balanced_points, PROBLEM.mask, PROBLEM.target)
    assert r.passed, r.evidence


def test_lemma5_holds_on_balanced_factors(balanced_points):
    r = lemmas.check_lemma5(balanced_points, PROBLEM.mask, PROBLEM.target)
    assert r.passed, r.evidence
    assert r.data["n_points"] >= 5


@pytest.mark.parametrize("depth", [2, 3])
def test_both_fail_on_unbalanced_factors(depth):
    points = _unbalanced(depth)
    assert not lemmas.check_lemma4(points, PROBLEM.mask, PROBLEM.target).passed
    r = lemmas.check_lemma5(points, PROBLEM.mask, PROBLEM.target, max_imbalance=np.inf)
    assert not r.passed


def test_lemma4_closed_form_depth2():
    # appendix_notes section 8: W' = -(W W^T G + G W^T W + 2|det W| G) / ||W||_*
    rng = np.random.default_rng(0)
    w = rng.standard_normal((2, 2))
    g = rng.standard_normal((2, 2))
    closed = -(w @ w.T @ g + g @ w.T @ w + 2 * abs(np.linalg.det(w)) * g) / np.sum(
        np.linalg.svd(w, compute_uv=False))
    assert np.allclose(lemmas.lemma4_velocity(w, g, 2), closed, rtol=1e-13, atol=1e-14)
