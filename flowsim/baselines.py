"""Norm-minimizing reference solutions, to put beside the limit of a flow.

The paper asks whether the implicit regularization of gradient flow on a deep matrix
factorization is the minimization of a norm. To ask it of a given completion problem one
needs the solutions a norm would pick:

- :func:`min_nuclear_norm`: ``argmin ||W||_*`` subject to the observations, exactly
  (``W_ij = b_ij``) or within ``delta`` (``|W_ij - b_ij| <= delta`` for every observed
  entry), solved as a convex program by cvxpy (SCS by default, Clarabel on request).
  cvxpy is an optional dependency: ``pip install 'flowsim[convex]'``.
- :func:`nuclear_norm_admm`: the same two programs by the alternating direction method of
  multipliers (singular value thresholding against projection onto the observations; Lin,
  Chen & Ma 2010, Boyd et al. 2011 section 4.4), numpy and scipy only, meant for sizes
  a conic solver cannot hold (docs/concepts/norms.md says what was measured). Its
  iterate ``Z`` satisfies the observations exactly at every step; the objective is
  ``||Z||_*``.
- :func:`min_frobenius_norm`: the closed form, every unobserved entry 0.

No minimizer of a Schatten-p quasi-norm with p < 1 is offered: that problem is not convex,
and a local method's answer depends on its start; :func:`norm_summary` reports the
quasi-norms of a given matrix instead.

Comparison helpers: :func:`test_error` (``||W - W*||_F^2 / ||W*||_F^2``, the deep matrix
factorization literature's measure) and :func:`norm_summary` (nuclear, Frobenius,
spectral and Schatten-1/2 values, effective rank, test error).
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field

import numpy as np
import scipy.linalg
from tqdm.auto import tqdm

from .metrics import effective_rank_from_singular_values, schatten_from_singular_values
from .problem import (
    MATRIX_PROBLEMS,
    MatrixCompletion,
    MatrixSensing,
    check_integer,
    check_real,
    class_names,
)

#: conic solvers :func:`min_nuclear_norm` accepts (cvxpy names)
CONVEX_SOLVERS = ("SCS", "CLARABEL")


class MissingExtraError(ImportError, ValueError):
    """An optional dependency is not installed; the message names the extra to install.

    Also a ``ValueError``, so the command line answers it in one line like bad input."""


def require_cvxpy():
    """The ``cvxpy`` module, or :class:`MissingExtraError` in one line."""
    try:
        import cvxpy
    except ImportError as exc:
        raise MissingExtraError(
            "the nuclear-norm baseline needs cvxpy, which is not installed: "
            "pip install 'flowsim[convex]'") from exc
    return cvxpy


@dataclass(frozen=True)
class NormMinimizer:
    """A norm-minimizing completion and how it was found.

    - `matrix`: the solution ``W``.
    - `objective`: ``||W||_*`` (or ``||W||_F`` for :func:`min_frobenius_norm`), recomputed
      from the singular values of `matrix`.
    - `max_violation`: ``max_(i,j) observed |W_ij - b_ij| - delta`` (<= 0 when feasible up
      to rounding; the solver's tolerance shows here).
    - `method`, `status`, `seconds`, `iterations`: what ran, the solver's verdict, the wall
      time, iterations where the method counts them.
    - `delta`: the constraint's slack (0: exact constraints).
    """

    matrix: np.ndarray
    objective: float
    max_violation: float
    method: str
    status: str
    seconds: float
    delta: float = 0.0
    iterations: int | None = None
    info: dict = field(default_factory=dict)

    def to_dict(self) -> dict:
        """JSON-ready description (without the matrix)."""
        return {"objective": self.objective, "max_violation": self.max_violation,
                "method": self.method, "status": self.status, "seconds": self.seconds,
                "delta": self.delta, "iterations": self.iterations, **self.info}


def _check_problem(problem, kinds=MATRIX_PROBLEMS):
    if not isinstance(problem, kinds):
        raise TypeError(f"problem must be a {class_names(kinds)}, got "
                        f"{type(problem).__name__}")
    return problem


def _check_delta(delta) -> float:
    return check_real("delta", delta, minimum=0)


def _flat_operators(problem: MatrixSensing) -> np.ndarray:
    """The measurement matrices as rows ``(m, d d2)`` acting on ``W`` flattened in C order."""
    return problem.operators.reshape(problem.n_observed, -1)


def _violation(problem, w: np.ndarray, delta: float) -> float:
    if isinstance(problem, MatrixSensing):
        r = np.asarray(problem.measure(w)) - problem.values
    else:
        r = w[tuple(problem.indices.T)] - problem.values
    return float(np.max(np.abs(r)) - delta)


def _nuclear(w: np.ndarray) -> float:
    return float(np.sum(np.linalg.svd(w, compute_uv=False)))


def min_nuclear_norm(problem: MatrixCompletion | MatrixSensing, delta: float = 0.0, *,
                     solver: str = "SCS",
                     eps: float = 1e-8, max_iters: int = 20_000,
                     verbose: bool = False) -> NormMinimizer:
    """``argmin ||W||_*`` over the ``W`` that match the observations exactly (``delta =
    0``) or within ``delta`` entrywise, by cvxpy.

    **Arguments:**

    - `problem`: a :class:`~flowsim.MatrixCompletion` (``W_ij = b_ij``) or a
      :class:`~flowsim.MatrixSensing` (``<A_i, W> = y_i``).
    - `delta`: slack of each observation, ``>= 0``: ``|W_ij - b_ij| <= delta`` or
      ``|<A_i, W> - y_i| <= delta``.
    - `solver`: ``"SCS"`` (default; first order, the one that fits 100 x 100 in seconds)
      or ``"CLARABEL"`` (interior point; exact to ~1e-9 but far slower at that size).
    - `eps`: SCS's relative and absolute tolerance (ignored by Clarabel).
    - `max_iters`: SCS's iteration budget. Near the number of observations where the
      minimizer starts to recover the truth SCS converges slowly (thousands of
      iterations); a run that ends on the budget has status ``"optimal_inaccurate"``.

    Raises :class:`MissingExtraError` when cvxpy is missing, ``ValueError`` when the
    solver reports no solution (infeasible, unbounded, or out of iterations with nothing
    usable).
    """
    problem = _check_problem(problem)
    delta = _check_delta(delta)
    if solver not in CONVEX_SOLVERS:
        raise ValueError(f"solver must be one of {list(CONVEX_SOLVERS)}, got {solver!r}")
    eps = check_real("eps", eps, minimum=0, strict=True)
    max_iters = check_integer("max_iters", max_iters, minimum=1)
    cp = require_cvxpy()
    d, d2 = problem.shape
    x = cp.Variable((d, d2))
    if isinstance(problem, MatrixSensing):
        observed = _flat_operators(problem) @ cp.vec(x, order="C")
    else:
        flat = np.ravel_multi_index(tuple(problem.indices.T), (d, d2))
        observed = cp.vec(x, order="C")[flat]
    constraint = (observed == problem.values if delta == 0
                  else cp.abs(observed - problem.values) <= delta)
    program = cp.Problem(cp.Minimize(cp.normNuc(x)), [constraint])
    options = ({"eps_abs": eps, "eps_rel": eps, "max_iters": max_iters} if solver == "SCS"
               else {})
    start = time.perf_counter()
    try:
        program.solve(solver=solver, verbose=verbose, **options)
    except cp.error.SolverError as exc:
        raise ValueError(f"min_nuclear_norm: cvxpy/{solver} failed: {exc}") from exc
    seconds = time.perf_counter() - start
    if x.value is None or program.status not in ("optimal", "optimal_inaccurate"):
        raise ValueError(f"min_nuclear_norm: cvxpy/{solver} found no solution (status "
                         f"{program.status!r}, delta={delta:g})")
    w = np.asarray(x.value, dtype=np.float64)
    stats = program.solver_stats
    return NormMinimizer(w, _nuclear(w), _violation(problem, w, delta), f"cvxpy/{solver}",
                         program.status, seconds, delta,
                         None if stats.num_iters is None else int(stats.num_iters),
                         {"solver_objective": float(program.value)})


def _svt_apply(u: np.ndarray, s: np.ndarray, vt: np.ndarray, tau: float
               ) -> tuple[np.ndarray, int]:
    keep = s > tau
    return (u[:, keep] * (s[keep] - tau)) @ vt[keep], int(keep.sum())


def _svt_full(y: np.ndarray, tau: float) -> tuple[np.ndarray, int, np.ndarray]:
    """Singular value thresholding from a dense SVD (LAPACK ``gesdd``); also the right
    singular vectors kept, to start the next partial SVD from."""
    try:
        u, s, vt = scipy.linalg.svd(y, full_matrices=False, lapack_driver="gesdd",
                                    check_finite=False)
    except np.linalg.LinAlgError:  # gesdd's rare failure to converge: the slower gesvd
        u, s, vt = scipy.linalg.svd(y, full_matrices=False, lapack_driver="gesvd",
                                    check_finite=False)
    x, rank = _svt_apply(u, s, vt, tau)
    return x, rank, vt[:rank].T


#: relative residual ``||Y v - s u|| / s_1`` at which a singular triplet of the partial
#: SVD counts as converged, and the most block-power sweeps one partial SVD may take
_SVT_RESIDUAL, _SVT_SWEEPS = 1e-11, 40


def _svt_subspace(y: np.ndarray, tau: float, start: np.ndarray, extra: int,
                  rng: np.random.Generator) -> tuple[np.ndarray, int, np.ndarray] | None:
    """Singular value thresholding from the top singular triplets only, by block power
    (subspace) iteration with Rayleigh-Ritz (Halko, Martinsson & Tropp 2011, algorithm
    4.4; Golub & Van Loan 2013, section 8.2.4) on a block of ``start.shape[1] + extra``
    right vectors: ``start`` (the right singular vectors kept by the previous threshold,
    the warm start) and ``extra`` random ones.

    Returns ``None`` (the caller grows the block or takes a dense SVD) when the smallest
    Ritz value of the block is still above ``tau`` (the block may miss a singular value
    the threshold lets through), or when the triplets above ``tau`` have not reached a
    relative residual ``||Y v - s u|| <= 1e-11 s_1`` in 40 sweeps."""
    d2 = y.shape[1]
    v = np.concatenate([start, rng.standard_normal((d2, extra))], axis=1)
    w = y @ v
    for _ in range(_SVT_SWEEPS):
        q, _ = np.linalg.qr(w)
        ub, s, vt = np.linalg.svd(q.T @ y, full_matrices=False)
        u = q @ ub
        w = y @ vt.T
        if s[-1] > tau:
            return None
        keep = s > tau
        if not keep.any():
            return np.zeros_like(y), 0, vt[:0].T
        residual = np.linalg.norm(w[:, keep] - u[:, keep] * s[keep], axis=0)
        if residual.max() <= _SVT_RESIDUAL * s[0]:
            x, rank = _svt_apply(u, s, vt, tau)
            return x, rank, vt[:rank].T
    return None


def nuclear_norm_admm(problem: MatrixCompletion, delta: float = 0.0, *, tol: float = 1e-7,
                      max_iter: int = 20_000, rho: float | None = None,
                      partial_svd: bool | None = None, adapt: int = 200,
                      progress: bool = False) -> NormMinimizer:
    """``argmin ||W||_*`` subject to the observations (exact, or within ``delta``
    entrywise) by ADMM: ``min ||X||_* + [Z feasible]`` subject to ``X = Z``.

    Each iteration: ``X = SVT_tau(Z - U)`` (singular value thresholding at ``tau = 1 /
    rho``; Cai, Candes & Shen 2010), ``Z`` = the projection of ``X + U`` onto the feasible
    set (observed entries set to, or clipped into ``[b - delta, b + delta]``), ``U += X -
    Z``. The answer is ``Z``: feasible to rounding at every step.

    **The threshold (continuation).** ``tau`` starts large, at twice the top singular
    value of the observed matrix, where the threshold keeps only a few singular values,
    and is lowered from there: during the first ``adapt`` iterations ``rho`` is doubled
    (``tau`` halved) when the primal residual is 10x the dual one and halved in the
    opposite case (residual balancing, Boyd et al. 2011, section 3.4.1; a large-``tau``
    start with decrease as in the continuation of Toh & Yun 2010 and the warm-started path
    of Mazumder, Hastie & Tibshirani 2010). With the partial SVD, a ``tau`` whose threshold
    lets more than ``min(d, d2) / 10`` singular values through is undone (doubled back)
    and not lowered again for 10 iterations, while the iterates settle (a dense SVD per
    iteration is what the partial SVD is there to avoid).
    After ``adapt`` iterations ``rho`` is held fixed (convergence is proved for a fixed
    ``rho``; the problem solved does not depend on it).

    **The SVD.** Dense (LAPACK ``gesdd``), or with `partial_svd` only the top singular
    triplets: block power iteration with Rayleigh-Ritz (Halko, Martinsson & Tropp 2011)
    on the right singular vectors the previous threshold kept (its rank is the predicted
    rank) plus ``max(5, rank / 4)`` random columns, swept until every triplet above
    ``tau`` has residual ``||Y v - s u|| <= 1e-11 s_1`` and the block's smallest Ritz value
    is below ``tau``; the extra columns double until it is, and past ``min(d, d2) / 10``
    columns (or 40 sweeps) the dense SVD is taken instead.

    **Stopping (primal and dual residuals).** Stops when the primal residual ``||X -
    Z||_F`` is below ``tol (sqrt(d d2) + max(||X||_F, ||Z||_F))`` and the dual residual
    ``rho ||Z - Z_prev||_F`` below ``tol (sqrt(d d2) + rho ||U||_F)``. When that holds
    after a partial SVD, the iteration is repeated with a dense SVD, and status
    ``"converged"`` is given only if the test holds there too, so it never rests on an
    approximate threshold.

    **Arguments:**

    - `problem`, `delta`: as :func:`min_nuclear_norm`.
    - `tol`: stopping tolerance (above).
    - `max_iter`: iteration budget; a run that spends it ends with status
      ``"max_iter"`` and ``info["message"]`` says so (the matrix is still feasible, its
      objective is not yet optimal).
    - `rho`: starting penalty (default ``0.5 / sigma_max(observed matrix)``).
    - `partial_svd`: threshold from the top singular triplets only (above); default for
      ``min(d, d2) >= 300``, where a dense SVD per iteration is the cost (about 1-3 s at
      1000 x 1000).
    - `adapt`: iterations during which ``rho`` is rebalanced.
    - `progress`: a progress bar with the iteration, the rank of the threshold, the SVDs
      taken and the two residuals against their targets.

    ``info``: ``rank`` (of the last threshold), ``rho`` (the last), ``svd_partial`` and
    ``svd_full`` (how many thresholds each kind of SVD gave), ``message``.
    """
    problem = _check_problem(problem, (MatrixCompletion,))  # sensing: min_nuclear_norm
    delta = _check_delta(delta)
    tol = check_real("tol", tol, minimum=0, strict=True)
    max_iter = check_integer("max_iter", max_iter, minimum=1)
    adapt = check_integer("adapt", adapt, minimum=0)
    d, d2 = problem.shape
    m = min(d, d2)
    if partial_svd is None:
        partial_svd = m >= 300
    idx = tuple(problem.indices.T)
    low, high = problem.values - delta, problem.values + delta
    z = np.asarray(problem.target, dtype=np.float64).copy()
    if rho is None:
        top = float(np.linalg.norm(z, 2)) if not partial_svd else float(
            _top_singular_value(z))
        rho = _SVT_RHO0 / top if top > 0 else 1.0
    rho = check_real("rho", rho, minimum=0, strict=True)
    u = np.zeros_like(z)
    rho_start, hold, cap = rho, 0, max(1, m // 10)
    scale = math.sqrt(d * d2)
    rng = np.random.default_rng(0)
    start = time.perf_counter()
    status, it, rank, verify = "max_iter", 0, 0, False
    basis = np.zeros((d2, 0))
    counts = {"partial": 0, "full": 0}
    bar = tqdm(total=max_iter, desc="admm", unit="it") if progress else None
    while it < max_iter:
        it += 1
        y = z - u
        tau = 1.0 / rho
        out = None
        if partial_svd and not verify:
            extra = max(5, rank // 4)
            while out is None and basis.shape[1] + extra <= cap:
                out = _svt_subspace(y, tau, basis, extra, rng)
                extra *= 2
        kind = "full" if out is None else "partial"
        counts[kind] += 1
        x, rank, basis = _svt_full(y, tau) if out is None else out
        del y, out
        z_prev = z
        z = x + u
        z[idx] = np.clip(z[idx], low, high)
        u += x
        u -= z
        primal = float(np.linalg.norm(x - z))
        dual = rho * float(np.linalg.norm(z - z_prev))
        del z_prev
        size = max(float(np.linalg.norm(x)), float(np.linalg.norm(z)))
        del x
        primal_target = tol * (scale + size)
        dual_target = tol * (scale + rho * float(np.linalg.norm(u)))
        if bar is not None:
            bar.update()
            bar.set_postfix_str(f"rank {rank}, svd {counts['partial']} partial "
                                f"{counts['full']} full, primal {primal / primal_target:.1e},"
                                f" dual {dual / dual_target:.1e} of target")
        passed = primal <= primal_target and dual <= dual_target
        if passed and kind == "full":
            status = "converged"
            break
        verify = passed  # met after a partial SVD: check once more with a dense one
        if it > adapt:  # a fixed rho from here on: ADMM's convergence needs it
            continue
        if partial_svd and rank > cap and rho > rho_start and it >= hold:
            hold = it + _SVT_HOLD  # too low for a partial SVD: back one step, and wait
            rho /= 2.0
            u *= 2.0
        elif primal > 10 * dual and it >= hold:
            rho *= 2.0
            u /= 2.0
        elif dual > 10 * primal:
            rho /= 2.0
            u *= 2.0
    seconds = time.perf_counter() - start
    if bar is not None:
        bar.close()
    message = ("primal and dual residuals below tol" if status == "converged" else
               f"not converged: max_iter={max_iter} iterations spent, the last primal "
               f"residual {primal / primal_target:.1e} and dual residual "
               f"{dual / dual_target:.1e} times their targets")
    return NormMinimizer(z, _nuclear(z), _violation(problem, z, delta), "admm", status,
                         seconds, delta, it,
                         {"rank": rank, "rho": rho, "svd_partial": counts["partial"],
                          "svd_full": counts["full"], "message": message})


#: default starting penalty, times 1 / sigma_max(observed): tau = 1 / rho starts at twice
#: the top singular value, where the threshold keeps few singular values
_SVT_RHO0 = 0.5
#: iterations during which the threshold is not lowered after one was undone
_SVT_HOLD = 10


def _top_singular_value(a: np.ndarray) -> float:
    from scipy.sparse.linalg import svds

    return float(svds(a, k=1, random_state=0, return_singular_vectors=False)[0])


def min_frobenius_norm(problem: MatrixCompletion | MatrixSensing) -> NormMinimizer:
    """``argmin ||W||_F`` subject to the observations, in closed form: for completion the
    observed entries and zeros elsewhere; for sensing ``vec W = A^+ y`` (the minimum-norm
    least-squares solution through LAPACK's SVD-based ``gelsd``: where the measurements
    are inconsistent, ``max_violation`` shows by how much it misses them)."""
    problem = _check_problem(problem)
    start = time.perf_counter()
    if isinstance(problem, MatrixSensing):
        w = scipy.linalg.lstsq(_flat_operators(problem), problem.values,
                               lapack_driver="gelsd")[0].reshape(problem.shape)
    else:
        w = np.asarray(problem.target, dtype=np.float64).copy()
    return NormMinimizer(w, float(np.linalg.norm(w)), _violation(problem, w, 0.0),
                         "closed form", "exact", time.perf_counter() - start)


def test_error(w, truth) -> float:
    """``||W - W*||_F^2 / ||W*||_F^2`` (squared relative error; ``W*`` nonzero)."""
    w, truth = np.asarray(w, dtype=np.float64), np.asarray(truth, dtype=np.float64)
    if w.shape != truth.shape:
        raise ValueError(f"w has shape {w.shape} but truth has shape {truth.shape}")
    ref = float(np.sum(truth * truth))
    if not ref > 0 or not np.isfinite(ref):
        raise ValueError("truth must be a nonzero finite matrix")
    return float(np.sum((w - truth) ** 2) / ref)


test_error.__test__ = False  # a helper, not a test (pytest collects test_* names)

#: Schatten exponents :func:`norm_summary` reports, by name
SUMMARY_NORMS = {"nuclear": 1.0, "frobenius": 2.0, "spectral": math.inf, "schatten_0.5": 0.5}


def norm_summary(w, truth=None) -> dict:
    """Norms of ``w`` (:data:`SUMMARY_NORMS`), its effective rank and, given a ground
    truth, the test error: a dict of floats."""
    w = np.asarray(w, dtype=np.float64)
    if w.ndim != 2 or not np.all(np.isfinite(w)):
        raise ValueError(f"w must be a finite matrix, got shape {w.shape}"
                         + ("" if w.ndim != 2 else " with non-finite entries"))
    s = np.linalg.svd(w, compute_uv=False)
    out = {name: float(schatten_from_singular_values(s, p)) for name, p in SUMMARY_NORMS.items()}
    out["effective_rank"] = (float(effective_rank_from_singular_values(s)) if s.sum() > 0
                             else math.nan)
    if truth is not None:
        out["test_error"] = test_error(w, truth)
    return out
