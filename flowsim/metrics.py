"""Metrics of product matrices (numpy, float64, batched over leading axes).

Definitions follow the paper: Schatten-p (quasi-)norms, effective rank (Definition 1,
Roy & Vetterli), distance to rank r (Definition 2; by Eckart-Young the Frobenius
distance to the rank-<=r matrices is the l2 norm of the trailing singular values).
"""

from __future__ import annotations

import numpy as np

from .parameterization import Params
from .problem import EntryCompletion


def singular_values(w) -> np.ndarray:
    """Singular values in decreasing order, shape ``(..., min(d, d2))``."""
    return np.linalg.svd(np.asarray(w, dtype=np.float64), compute_uv=False)


def schatten_from_singular_values(s, p: float) -> np.ndarray:
    """``(sum_r s_r^p)^(1/p)`` for ``p`` in ``(0, inf]`` (``inf``: the largest ``s_r``)."""
    p = float(p)
    if not (p > 0):
        raise ValueError(f"p must be in (0, inf], got {p!r}")
    s = np.asarray(s, dtype=np.float64)
    if np.isinf(p):
        return s.max(axis=-1)
    top = s.max(axis=-1, keepdims=True)
    safe = np.where(top > 0, top, 1.0)  # scale out the largest value: no overflow of s^p
    return safe[..., 0] * np.sum((s / safe) ** p, axis=-1) ** (1.0 / p)


def schatten_norm(w, p: float) -> np.ndarray:
    """Schatten-p norm (p >= 1) or quasi-norm (0 < p < 1) of ``w``: p=1 nuclear, p=2
    Frobenius, p=inf spectral."""
    return schatten_from_singular_values(singular_values(w), p)


def effective_rank_from_singular_values(s) -> np.ndarray:
    """``exp(H(rho))`` with ``rho_r = s_r / sum s``, natural log, ``0 log 0 = 0``."""
    s = np.asarray(s, dtype=np.float64)
    total = s.sum(axis=-1, keepdims=True)
    if np.any(total == 0):
        raise ValueError("effective rank is undefined for the zero matrix (Definition 1)")
    rho = s / total
    with np.errstate(divide="ignore", invalid="ignore"):
        terms = np.where(rho > 0, -rho * np.log(rho), 0.0)
    return np.exp(terms.sum(axis=-1))


def effective_rank(w) -> np.ndarray:
    """Effective rank (Definition 1) of a nonzero matrix."""
    return effective_rank_from_singular_values(singular_values(w))


def distance_to_rank(w, r: int) -> np.ndarray:
    """Definition 2's distance: Frobenius distance from ``w`` to the matrices of rank <= r,
    ``sqrt(sum_{k > r} s_k^2)``."""
    if int(r) != r or r < 0:
        raise ValueError(f"r must be an integer >= 0, got {r!r}")
    s = singular_values(w)
    return np.sqrt(np.sum(s[..., int(r):] ** 2, axis=-1))


# -- from log singular values: exact however small the trailing ones get -----------------
#
# Theorem 1 sends erank - 1 and sigma_min to 0 while sigma_1 grows; computed from W's
# rounded entries they stop at float64's resolution (1 - a number rounded to 1). A
# trajectory carries the log singular values from its own coordinates
# (``traj.log_singular_values``), and these functions keep every digit of them.

def log_singular_values(w) -> np.ndarray:
    """``log`` of the singular values of ``w`` (largest first), ``(..., min(d, d2))``."""
    with np.errstate(divide="ignore"):
        return np.log(singular_values(w))


def _sorted_logs(log_sv) -> np.ndarray:
    a = np.asarray(log_sv, dtype=np.float64)
    if a.ndim == 0 or a.shape[-1] == 0:
        raise ValueError("log_sv must hold at least one log singular value on its last axis")
    return -np.sort(-a, axis=-1)


def effective_rank_minus_one(log_sv) -> np.ndarray:
    """``erank - 1`` (Definition 1) from log singular values ``(..., m)``, accurate to
    float64's relative precision even when it is far below ``1e-16``.

    With ``a`` sorted decreasingly, ``r_j = exp(a_j - a_1)`` and ``S = sum_{j>1} r_j``,
    ``rho_1 = 1 / (1 + S)``, ``rho_j = r_j / (1 + S)`` and the entropy is
    ``H = log1p(S) / (1 + S) + sum_{j>1} rho_j (a_1 - a_j + log1p(S))``; every term is a
    sum of positive numbers, so ``erank - 1 = expm1(H)`` loses nothing."""
    a = _sorted_logs(log_sv)
    if np.any(np.isposinf(a[..., 0])) or np.any(np.isneginf(a[..., 0])):
        raise ValueError("effective rank needs a nonzero, finite matrix (Definition 1)")
    gaps = a[..., :1] - a[..., 1:]  # >= 0
    with np.errstate(under="ignore"):
        r = np.exp(-gaps)
    s = np.sum(r, axis=-1)
    log1p_s = np.log1p(s)
    with np.errstate(invalid="ignore"):  # inf gaps (zero singular values) contribute 0
        terms = np.where(r > 0, r * (gaps + log1p_s[..., None]), 0.0)
    entropy = (log1p_s + np.sum(terms, axis=-1)) / (1.0 + s)
    return np.expm1(entropy)


def schatten_from_log_singular_values(log_sv, p: float) -> np.ndarray:
    """Schatten-p (quasi-)norm ``(sum_r s_r^p)^(1/p)`` from log singular values, in log
    space (no overflow or underflow of ``s^p``); ``p = inf`` is the spectral norm."""
    p = float(p)
    if not p > 0:
        raise ValueError(f"p must be in (0, inf], got {p!r}")
    a = _sorted_logs(log_sv)
    if np.isinf(p):
        return np.exp(a[..., 0])
    top = a[..., :1]
    with np.errstate(under="ignore"):
        return np.exp(top[..., 0] + np.log(np.sum(np.exp(p * (a - top)), axis=-1)) / p)


def distance_to_rank_from_log_singular_values(log_sv, r: int) -> np.ndarray:
    """Definition 2's distance to the rank-``<= r`` matrices, ``sqrt(sum_{k > r} s_k^2)``,
    from log singular values (exact however small the trailing ones are)."""
    if isinstance(r, bool) or int(r) != r or r < 0:
        raise ValueError(f"r must be an integer >= 0, got {r!r}")
    a = _sorted_logs(log_sv)[..., int(r):]
    if a.shape[-1] == 0:
        return np.zeros(a.shape[:-1])
    top = a[..., :1]
    with np.errstate(under="ignore", invalid="ignore"):
        out = np.exp(top[..., 0] + 0.5 * np.log(np.sum(np.exp(2 * (a - top)), axis=-1)))
    return np.where(np.isneginf(top[..., 0]), 0.0, out)


def det(w) -> np.ndarray:
    """Determinant of a square product matrix (computed from the entries: it loses its
    sign once it falls below ~1e-16 of ``||w||^2``; trajectories carry a sign-safe
    ``det_sign``/``log_abs_det`` from their own coordinates)."""
    w = np.asarray(w, dtype=np.float64)
    if w.shape[-1] != w.shape[-2]:
        raise ValueError(f"det needs square matrices, got shape {w.shape[-2:]}")
    return np.linalg.det(w)


def unobserved_entries(problem: EntryCompletion, w) -> np.ndarray:
    """Values of the unobserved entries, shape ``(..., k')`` in :attr:`unobserved_indices` order."""
    if not isinstance(problem, EntryCompletion):
        raise TypeError(f"problem must be a completion problem (a sensing problem has no "
                        f"unobserved entries), got {type(problem).__name__}")
    w = np.asarray(w, dtype=np.float64)
    idx = problem.unobserved_indices
    return w[(Ellipsis, *idx.T)]


def balancedness_defect(params: Params) -> np.ndarray:
    """``max_l max|W_{l+1}^T W_{l+1} - W_l W_l^T|`` over l = 1..L-1 (0 for depth 1);
    zero at a balanced point (Eq. 5) and conserved along gradient flow. Batched over
    leading axes of the layers."""
    params = [np.asarray(p, dtype=np.float64) for p in params]
    if len(params) == 1:
        return np.zeros(params[0].shape[:-2])
    defects = [
        np.abs(np.swapaxes(nxt, -1, -2) @ nxt - cur @ np.swapaxes(cur, -1, -2)).max(axis=(-1, -2))
        for cur, nxt in zip(params[:-1], params[1:])
    ]
    return np.max(np.stack(defects), axis=0)
