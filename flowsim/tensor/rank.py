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

Tolerance. ``rtol`` is relative to ``||T||_F`` (default 1e-2). The reference's criterion
(App. F.2, ``find_cp_rank``) is absolute instead: the fit's mean squared error over *all*
entries below 1e-6, i.e. ``||T - X||_F <= atol = sqrt(prod(shape) * 1e-6)``
(:func:`reference_atol`; 0.0226 for 8x8x8, 0.064 for 8x8x8x8). Pass ``atol`` to use it.
For a unit-norm tensor atol 0.0226 is rtol 0.0226. The memorizer has norm below 1 (0.66 at
n = 200 of 512 entries), so there the absolute criterion is rtol 0.034, 3.4x looser than
rtol 1e-2: that, not restarts, is why the reference reports memorizer ranks of 12-17
where rtol 1e-2 gives 19-22 (Figure 2 records both, :mod:`flowsim.tensor.figure2`).

Search: ``r = 0`` only for the zero tensor; ``r_max = prod(shape) / max(shape)`` always
fits exactly (:func:`flowsim.tensor.cp.max_cp_rank`), so it is never fitted. Ranks
``1, 2, 4, ...`` are tried until one fits, then bisection finds the smallest fitting one
in the last gap (this assumes, as the reference does, that fitting is monotone in ``r``,
which holds for exact best fits).

Cost: ALS runs on one BLAS thread (:func:`_one_blas_thread`) and keeps each component's
column norms equal across modes (:func:`_balanced`). Order 3 memorizers take 5-15 s per
tensor (both tolerances), order-4 memorizers at the reference criterion 10-60 s; at rtol
1e-2 an order-4 memorizer needs fits of hundreds of components (not run, see
:mod:`flowsim.tensor.figure2`).
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass

import numpy as np

from ..parameterization import max_cp_rank
from ..runtime import one_blas_thread


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


def _balanced(factors) -> list:
    """The same components with every column norm set to the geometric mean of that
    component's norms over the modes (``X`` unchanged). ALS fixes each component only up
    to a rescaling across modes; left alone the norms drift apart over hundreds of sweeps
    (to subnormal and huge values: some order-4 fits ran 10x slower per sweep), which the
    reference avoids by normalizing columns."""
    norms = np.array([np.linalg.norm(f, axis=0) for f in factors])  # (order, rank)
    ok = np.all(norms > 0, axis=0)
    target = np.exp(np.mean(np.log(np.where(ok, norms, 1.0)), axis=0))
    scale = np.where(ok, target / np.where(ok, norms, 1.0), 1.0)
    return [f * s for f, s in zip(factors, scale)]


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
        factors = _balanced(factors)
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


def _one_blas_thread(fn):
    """Run ``fn`` with one BLAS/LAPACK thread. ALS factors only small matrices (pinv of an
    ``r x r`` gram, ``r <= 512``), where OpenBLAS threads only add synchronisation, and on
    a busy machine they spin: measured on this 2-core machine with another job running,
    a 48 x 48 SVD took 70 ms threaded vs 1.4 ms on one thread, and one order-4 rank fit
    (r = 48, 101 sweeps) 25 s vs 1.0 s."""
    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        with one_blas_thread():
            return fn(*args, **kwargs)
    return wrapper


def reference_atol(shape, mse: float = 1e-6) -> float:
    """The reference's rank criterion "MSE over all entries < mse" as an absolute
    Frobenius tolerance ``sqrt(prod(shape) * mse)`` (App. F.2)."""
    return math.sqrt(math.prod(int(d) for d in shape) * float(mse))


def _check(tensor, rtol, restarts, max_sweeps, atol=None):
    tensor = np.asarray(tensor, dtype=np.float64)
    if tensor.ndim < 2:
        raise ValueError(f"tensor must have order >= 2, got shape {tensor.shape}")
    if not np.all(np.isfinite(tensor)):
        raise ValueError("tensor must be finite")
    if not (rtol > 0 and math.isfinite(rtol)):
        raise ValueError(f"rtol must be a finite number > 0, got {rtol!r}")
    if atol is not None and not (atol > 0 and math.isfinite(atol)):
        raise ValueError(f"atol must be None or a finite number > 0, got {atol!r}")
    for name, v in (("restarts", restarts), ("max_sweeps", max_sweeps)):
        if isinstance(v, bool) or int(v) != v or v < 1:
            raise ValueError(f"{name} must be an integer >= 1, got {v!r}")
    return tensor


@_one_blas_thread
def cp_fit(tensor, rank: int, *, seed: int = 0, restarts: int = 3, max_sweeps: int = 1000,
           rtol: float = 1e-2, stall: float = 1e-6, atol: float | None = None) -> CPFit:
    """Best of ``restarts`` seeded ALS fits of a rank-``rank`` CP model to ``tensor``.

    A start stops when its relative error reaches ``rtol`` (and then no further start is
    run), after ``max_sweeps`` sweeps, or when 25 sweeps gain less than ``stall`` of the
    error. Starts are drawn from ``default_rng([seed, rank, restart])``. With `atol` the
    target is ``||T - X||_F <= atol`` instead of ``rtol * ||T||_F``.
    """
    tensor = _check(tensor, rtol, restarts, max_sweeps, atol)
    if isinstance(rank, bool) or int(rank) != rank or rank < 1:
        raise ValueError(f"rank must be an integer >= 1, got {rank!r}")
    norm = np.linalg.norm(tensor)
    if norm == 0:
        zeros = tuple(np.zeros((d, int(rank))) for d in tensor.shape)
        return CPFit(factors=zeros, relative_error=0.0, sweeps=0)
    if atol is not None:
        rtol = atol / norm
    best = None
    for restart in range(int(restarts)):
        rng = np.random.default_rng([int(seed), int(rank), restart])
        fit = _als(tensor, norm, int(rank), rng, int(max_sweeps), rtol, stall)
        if best is None or fit.relative_error < best.relative_error:
            best = fit
        if best.relative_error <= rtol:
            break
    return best


@_one_blas_thread
def cp_rank(tensor, *, rtol: float = 1e-2, seed: int = 0, restarts: int = 3,
            max_sweeps: int = 1000, atol: float | None = None) -> int:
    """Numerical CP rank of ``tensor`` (module doc): the smallest ``r`` whose best seeded
    ALS fit has ``||T - X||_F <= rtol ||T||_F`` (or ``<= atol`` when given, e.g.
    :func:`reference_atol`); 0 for the zero tensor.

    ```python
    cp_rank(random_cp_tensor((8, 8, 8), rank=3, seed=0))  # 3
    ```
    """
    tensor = _check(tensor, rtol, restarts, max_sweeps, atol)
    if not np.any(tensor):
        return 0
    if atol is not None:
        rtol = atol / np.linalg.norm(tensor)
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
