"""Numerical CP rank: the smallest number of components whose best fit is close enough.

The CP rank of a tensor ``T`` is the least ``r`` with ``T = sum_{k=1}^{r}`` (outer
products); Figure 2 plots an estimate of it. Computing it exactly is NP-hard, so, like
the reference (App. F.2), we fit rank-``r`` CP models by alternating least squares (ALS)
and report the smallest ``r`` whose fit reaches a tolerance:

    cp_rank(T) = min { r >= 0 : min_X ||T - X||_F <= rtol * ||T||_F, rank_CP(X) <= r },

with the minimum over ``X`` approximated by the best of ``restarts`` seeded ALS runs.
Unlike the reference heuristic (which returned 11, 12 or 13 on repeated runs for one
tensor) the estimate is a deterministic function of ``(T, rtol, seed, restarts,
max_sweeps)``: every ALS start is drawn from ``default_rng([seed, r, restart])``.

Search: ``r = 0`` only for the zero tensor; ``r_max = prod(shape) / max(shape)`` always
fits exactly (:func:`flowsim.tensor.cp.max_cp_rank`), so it is never fitted. Ranks
``1, 2, 4, ...`` are tried until one fits, then bisection finds the smallest fitting one
in the last gap (this assumes, as the reference does, that fitting is monotone in ``r``,
which holds for exact best fits).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from .cp import max_cp_rank


@dataclass(frozen=True, eq=False)
class CPFit:
    """Result of :func:`cp_fit`: the factors ``(d_n, rank)`` of the best start, its
    relative error ``||T - X||_F / ||T||_F``, and the number of ALS sweeps it took."""

    factors: tuple[np.ndarray, ...]
    relative_error: float
    sweeps: int


def _khatri_rao(factors) -> np.ndarray:
    """Column-wise Kronecker product, rows in C order of the modes: ``(prod d_m, r)``."""
    out = factors[0]
    for f in factors[1:]:
        out = (out[:, None, :] * f[None, :, :]).reshape(-1, f.shape[1])
    return out


def _unfold(tensor: np.ndarray, mode: int) -> np.ndarray:
    """Mode-``mode`` unfolding, the other modes in their order (matches :func:`_khatri_rao`)."""
    return np.moveaxis(tensor, mode, 0).reshape(tensor.shape[mode], -1)


def _als(tensor, norm, rank, rng, max_sweeps, target, stall) -> CPFit:
    order = tensor.ndim
    unfolded = [_unfold(tensor, n) for n in range(order)]
    factors = [rng.standard_normal((d, rank)) for d in tensor.shape]
    history = []
    for _ in range(max_sweeps):
        for n in range(order):
            others = factors[:n] + factors[n + 1:]
            gram = np.prod([f.T @ f for f in others], axis=0)
            # least squares in W^(n): (T_(n) KR) gram^+ (pinv: gram can be singular)
            factors[n] = unfolded[n] @ _khatri_rao(others) @ np.linalg.pinv(gram)
        # direct residual (no ||T||^2 - 2<T,X> + ||X||^2 cancellation)
        err = np.linalg.norm(unfolded[0] - factors[0] @ _khatri_rao(factors[1:]).T) / norm
        history.append(err)
        if err <= target:
            break
        # stop when the last 25 sweeps gained less than `stall` of the error: a fit that
        # cannot reach the target has converged to its floor (slow "swamps" still move)
        if len(history) > 25 and history[-26] - err < stall * err:
            break
    return CPFit(factors=tuple(factors), relative_error=float(history[-1]), sweeps=len(history))


def _check(tensor, rtol, restarts, max_sweeps):
    tensor = np.asarray(tensor, dtype=np.float64)
    if tensor.ndim < 2:
        raise ValueError(f"tensor must have order >= 2, got shape {tensor.shape}")
    if not np.all(np.isfinite(tensor)):
        raise ValueError("tensor must be finite")
    if not (rtol > 0 and math.isfinite(rtol)):
        raise ValueError(f"rtol must be a finite number > 0, got {rtol!r}")
    for name, v in (("restarts", restarts), ("max_sweeps", max_sweeps)):
        if isinstance(v, bool) or int(v) != v or v < 1:
            raise ValueError(f"{name} must be an integer >= 1, got {v!r}")
    return tensor


def cp_fit(tensor, rank: int, *, seed: int = 0, restarts: int = 3, max_sweeps: int = 1000,
           rtol: float = 1e-2, stall: float = 1e-6) -> CPFit:
    """Best of ``restarts`` seeded ALS fits of a rank-``rank`` CP model to ``tensor``.

    A start stops when its relative error reaches ``rtol`` (and then no further start is
    run), after ``max_sweeps`` sweeps, or when 25 sweeps gain less than ``stall`` of the
    error. Starts are drawn from ``default_rng([seed, rank, restart])``.
    """
    tensor = _check(tensor, rtol, restarts, max_sweeps)
    if isinstance(rank, bool) or int(rank) != rank or rank < 1:
        raise ValueError(f"rank must be an integer >= 1, got {rank!r}")
    norm = np.linalg.norm(tensor)
    if norm == 0:
        zeros = tuple(np.zeros((d, int(rank))) for d in tensor.shape)
        return CPFit(factors=zeros, relative_error=0.0, sweeps=0)
    best = None
    for restart in range(int(restarts)):
        rng = np.random.default_rng([int(seed), int(rank), restart])
        fit = _als(tensor, norm, int(rank), rng, int(max_sweeps), rtol, stall)
        if best is None or fit.relative_error < best.relative_error:
            best = fit
        if best.relative_error <= rtol:
            break
    return best


def cp_rank(tensor, *, rtol: float = 1e-2, seed: int = 0, restarts: int = 3,
            max_sweeps: int = 1000) -> int:
    """Numerical CP rank of ``tensor`` (module doc): the smallest ``r`` whose best seeded
    ALS fit has ``||T - X||_F <= rtol ||T||_F``; 0 for the zero tensor.

    ```python
    cp_rank(random_cp_tensor((8, 8, 8), rank=3, seed=0))  # 3
    ```
    """
    tensor = _check(tensor, rtol, restarts, max_sweeps)
    if not np.any(tensor):
        return 0
    r_max = max_cp_rank(tensor.shape)

    def fits(r: int) -> bool:
        if r >= r_max:
            return True
        fit = cp_fit(tensor, r, seed=seed, restarts=restarts, max_sweeps=max_sweeps, rtol=rtol)
        return fit.relative_error <= rtol

    lo, hi = 0, 1  # invariant once found: lo does not fit, hi fits
    while not fits(hi):
        lo, hi = hi, min(2 * hi, r_max)
    while hi - lo > 1:
        mid = (lo + hi) // 2
        lo, hi = (lo, mid) if fits(mid) else (mid, hi)
    return hi
