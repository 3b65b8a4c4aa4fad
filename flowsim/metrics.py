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
