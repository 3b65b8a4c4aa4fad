"""Lemmas 4 and 5 (App. G.2.1) checked at points of factor-coordinate trajectories
(docs/derivations.md, "Lemmas 4 and 5 as used"). Balanced initialization is their
hypothesis: fed unbalanced factors, both checks fail.

- Lemma 4: ``dW/dt = sum_j A_j (-dphi/dW_j) B_j`` (from the factors, ``A_j = W_N ..
  W_{j+1}``, ``B_j = W_{j-1} .. W_1``) equals ``-sum_j (W W^T)^{(j-1)/N} grad l(W)
  (W^T W)^{(N-j)/N}``, fractional powers by numpy's eigendecomposition (independent of
  flowsim's dynamics code).
- Lemma 5: ``d sigma_r / dt = -N (sigma_r^2)^{1 - 1/N} <grad l(W), u_r v_r^T>``, the left
  side by central differences of numpy's singular values along ``dW/dt``.
"""

from __future__ import annotations

import mpmath
import numpy as np

from flowsim.dynamics import factor_gradients
from flowsim.metrics import balancedness_defect
from flowsim.parameterization import partial_products, product

from .result import slack_result


def product_velocity(factors, mask, target) -> tuple[np.ndarray, np.ndarray]:
    """``(W, dW/dt)`` at one point from its factors ``(W_1, ..., W_N)`` (Eq. 4)."""
    factors = tuple(np.asarray(f, dtype=np.float64) for f in factors)
    w = np.asarray(product(factors))
    grads = factor_gradients(factors, mask * (w - target))
    lefts, rights = partial_products(factors)
    velocity = sum(np.asarray(a) @ (-np.asarray(g)) @ np.asarray(b)
                   for a, g, b in zip(lefts, grads, rights))
    return w, velocity


def gram_powers(w: np.ndarray, alpha: float) -> tuple[np.ndarray, np.ndarray]:
    """``((W W^T)^alpha, (W^T W)^alpha)`` (``^0 = I``) from numpy's SVD ``W = U S V^T``
    as ``U S^{2 alpha} U^T`` and ``V S^{2 alpha} V^T``: the eigendecomposition of the
    Gram matrices, without squaring W first (which would put the error of a tiny
    eigenvalue at eps ||W||^2 instead of eps ||W|| before the fractional power)."""
    if alpha == 0:
        return np.eye(w.shape[0]), np.eye(w.shape[1])
    u, s, vt = np.linalg.svd(w)
    return (u * s ** (2 * alpha)) @ u.T, (vt.T * s ** (2 * alpha)) @ vt


def lemma4_velocity(w: np.ndarray, grad: np.ndarray, depth: int) -> np.ndarray:
    """Right-hand side of Lemma 4."""
    return -sum(gram_powers(w, (j - 1) / depth)[0] @ grad @ gram_powers(w, (depth - j) / depth)[1]
                for j in range(1, depth + 1))


def check_lemma4(points, mask, target, tol: float = 1e-9, label: str = ""):
    """``points``: sequence of factor tuples. Relative error ``||lhs - rhs|| / ||lhs||``
    must be <= ``tol``."""
    errors = []
    for factors in points:
        w, velocity = product_velocity(factors, mask, target)
        rhs = lemma4_velocity(w, mask * (w - target), len(factors))
        errors.append(np.linalg.norm(velocity - rhs) / np.linalg.norm(velocity))
    errors = np.asarray(errors)
    return slack_result("Lemma 4", "end-to-end dynamics: dW/dt from factors = Lemma 4 RHS",
                        tol - errors, f"{label}max rel error {errors.max():.1e} over "
                        f"{errors.size} points (tol {tol:g})", source="paper",
                        data={"max_rel_error": float(errors.max())})


def _mp_velocity(factors, mask, target):
    """``(W, G, dW/dt)`` as mpmath matrices, Eq. (4) evaluated in working precision."""
    layers = [mpmath.matrix(np.asarray(f, dtype=np.float64).tolist()) for f in factors]
    w = layers[0]
    for layer in layers[1:]:
        w = layer * w
    grad = mpmath.matrix(w.rows, w.cols)
    for i in range(w.rows):
        for j in range(w.cols):
            grad[i, j] = float(mask[i, j]) * (w[i, j] - float(target[i, j]))
    velocity = mpmath.matrix(w.rows, w.cols)
    for k in range(len(layers)):
        # A_k (-dphi/dW_k) B_k, dphi/dW_k = A_k^T G B_k^T, A_k = W_N..W_{k+1}, B_k = W_{k-1}..W_1
        left, right = mpmath.eye(w.rows), mpmath.eye(w.cols)
        for layer in reversed(layers[k + 1:]):
            left = left * layer
        for layer in layers[:k]:
            right = layer * right
        velocity -= left * (left.T * grad * right.T) * right
    return w, grad, velocity


def check_lemma5(points, mask, target, tol: float = 1e-6, dps: int = 60,
                 max_imbalance: float = 1e-8, label: str = ""):
    """Singular-value dynamics, in ``dps``-digit arithmetic (float64 cannot resolve
    d sigma_min/dt ~ sigma_min^{2-2/N} next to eps sigma_1): central differences of
    mpmath's singular values along dW/dt (step 10^{-dps/3} relative) against Lemma 5's
    formula; relative error <= ``tol``.

    Lemma 5 assumes exact balancedness, and float64 factors are balanced only to
    ~1e-16 absolute: that is a relative perturbation ``defect / sigma_min^{2/N}`` of the
    hypothesis. Points where it exceeds ``max_imbalance`` (or with equal or zero singular
    values) are skipped and counted."""
    errors, skipped = [], 0
    with mpmath.workdps(dps):
        for factors in points:
            depth = len(factors)
            w, grad, velocity = _mp_velocity(factors, mask, target)
            u, s, v = mpmath.svd_r(w)
            smallest = float(min(s))
            if (smallest == 0 or abs(s[0] - s[len(s) - 1]) == 0
                    or balancedness_defect(factors) > max_imbalance * smallest ** (2 / depth)):
                skipped += 1
                continue
            h = mpmath.mpf(10) ** (-dps // 3) * min(s) / mpmath.mnorm(velocity, "f")
            plus = mpmath.svd_r(w + h * velocity, compute_uv=False)
            minus = mpmath.svd_r(w - h * velocity, compute_uv=False)
            worst = 0.0
            for r in range(len(s)):
                numeric = (plus[r] - minus[r]) / (2 * h)
                inner = sum(u[i, r] * grad[i, j] * v[r, j]
                            for i in range(w.rows) for j in range(w.cols))
                formula = -depth * (s[r] ** 2) ** (1 - mpmath.mpf(1) / depth) * inner
                worst = max(worst, float(abs(numeric - formula) / abs(formula)))
            errors.append(worst)
    errors = np.asarray(errors)
    text = f"{errors.max():.1e}" if errors.size else "n/a"
    return slack_result("Lemma 5", "singular values: central differences = Lemma 5",
                        tol - errors, f"{label}max rel error {text} over {errors.size} "
                        f"points ({dps} digits, tol {tol:g}; {skipped} points skipped: "
                        f"imbalance/sigma_min^(2/N) > {max_imbalance:g})", source="paper",
                        data={"max_rel_error": float(errors.max()) if errors.size else None})
