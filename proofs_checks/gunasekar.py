"""The other side of the norms conjecture: Gunasekar, Woodworth, Bhojanapalli, Neyshabur &
Srebro (2017), Theorem 1 (commuting measurements), as a check.

Statement. Sensing with symmetric measurement matrices that commute, ``A_i = Q diag(a_i)
Q^T`` (one orthogonal ``Q``), and the factorization ``X = U U^T`` from ``U(0) = sqrt(alpha)
I``: if the flow's limit ``W_alpha(inf)`` tends, as ``alpha -> 0``, to a global minimum, that
minimum is ``argmin ||W||_*`` subject to ``<A_i, W> = y_i``, ``W`` PSD. In flowsim: depth 2,
:func:`flowsim.identity_init` (``W_1 = W_2 = sqrt(alpha) I``, product ``alpha I``); then
``W_2 = W_1^T = U`` for all time and the flow is the one on ``U`` up to a time rescaling,
and ``W = Q diag(z) Q^T`` with ``z_k' = -2 z_k g_k``, ``g = A^T r`` (``A`` the ``m x d``
matrix of the ``a_i``, ``r`` the residuals): ``z(t) = alpha exp(-2 A^T int_0^t r)``.

Instance (:func:`commuting_sensing`, seed 0): ``d = 8``, ``m = 4``; ``Q`` from the QR of a
Gaussian matrix, ``a_i`` i.i.d. ``N(0, 1)``, ground truth ``W* = Q diag(z*) Q^T`` with
``z*`` uniform on ``[0.5, 1.5]`` (full rank PSD), ``y = A z*``. Only ``z = diag(Q^T W Q)``
is measured; by the pinching inequality ``||z||_1 <= ||W||_*``, so the minimum nuclear
norm is the minimum l1 norm of ``z`` (the LP ``min ||z||_1, A z = y``). Here that LP has a
unique, nondegenerate solution ``z_nuc = (0, 1.488, 1.909, 0, 0, 0.814, 0, 0.332)``
(support of size ``m``, dual certificate ``c = A^T nu`` equal to 1 on the support, at most
0.30 in absolute value off it), nonnegative, so it is also the PSD minimum-trace solution
(the theorem's reference). It is neither the truth (relative Frobenius distance 0.99) nor
the minimum Frobenius norm solution ``A^+ y`` (0.38).

Rate. The flow on ``z`` is mirror flow with the entropy (``d/dt log z = -2 A^T r``), so
``z_alpha(inf) = argmin sum_k z_k log(z_k / alpha) - z_k`` s.t. ``A z = y`` (Woodworth et al.
2020, "Kernel and rich regimes"): ``log(z_k / alpha) = (A^T nu_alpha)_k``. With ``nu_alpha =
log(1/alpha) nu* + delta_alpha`` (``nu*`` the LP's dual, ``c = A^T nu*``), the support
entries tend to ``z_nuc`` and every entry off the support is ``alpha^(1 - c_k) e^((A^T
delta)_k)``; so the gap ``||W_alpha - W_nuc||_F / ||W_nuc||_F`` falls like a *power*
``alpha^p`` with ``p = 1 - max_{k off S} c_k`` (here 0.826), not like ``1 / log(1/alpha)``
(that is the rate of the l1 *objective* bound, and of degenerate LPs). Measured
(docs/concepts/norms.md): 1.38e-1, 1.52e-2, 1.73e-3, 2.33e-4, 5.03e-6 at alpha = 1e-1 ..
1e-6; local exponent 0.832 over the last two.

Thresholds (``rel`` = relative to ``||W_nuc||_F``):

- gaps strictly decreasing in ``1/alpha``: margin the smallest decrease, in decades
  (measured: 0.87, between alpha = 1e-3 and 1e-4).
- the smallest gap (alpha = 1e-6) ``<= GAP_MAX = 1e-4``: the power law predicts 5e-6;
  the flow's own error at its stop loss (1e-16 of the initial loss, residual ~5e-8) is
  ~2e-8 rel and Clarabel's ~5e-9 rel, both below 1e-3 of the threshold; and 1e-4 is
  3,800 times below the distance to the minimum Frobenius norm solution and 10^4 below
  the truth's, so a flow heading to either fails by more than three decades (margin
  ``log10(GAP_MAX / gap)``, measured 1.3).
- ``APART = 0.1`` rel: the instance discriminates (the nuclear minimizer is this far
  from the truth and from ``A^+ y``), and the flow's limit at the smallest alpha is this
  far from ``A^+ y``; 0.1 is 1,000 times ``GAP_MAX``, and the measured distances are
  0.99, 0.38, 0.38.
- rate: the local exponent ``log(g_(-2) / g_(-1)) / log(alpha_(-2) / alpha_(-1))`` is
  within ``SLOPE_TOL = 0.05`` of ``p`` (measured 0.832 vs 0.826; the next off-support
  exponent, ``1 - c = 1.09``, bends it by ``~(1.09 - 0.83) x alpha^0.27`` ~ 0.01 there);
  and a power law fits ``log gap`` better than ``C / log(1/alpha)^q`` (rms residuals).
- ``W`` stays symmetric, PSD and diagonal in ``Q`` (``COMMUTE_TOL = 1e-8`` rel, measured
  1e-12) and flowsim's baseline (Clarabel, exact to ~1e-9) is PSD and diagonal in ``Q``
  and fits ``y`` (``BASELINE_TOL = 1e-7``).

Each check is a pure function of its inputs; :mod:`.runner` generates them.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

import flowsim as fs

from .result import CheckResult, slack_result

GUNASEKAR = "Gunasekar et al. 2017 Thm 1 (commuting)"
#: the instance (module doc)
D, M, SEED = 8, 4, 0
#: the initial scales; the same in quick and full mode (0.1 s a run once compiled)
ALPHAS = (1e-1, 1e-2, 1e-3, 1e-4, 1e-6)
#: each run stops at this fraction of its initial loss (float64's floor is near 1e-18)
STOP_LOSS_REL = 1e-16
#: thresholds (module doc)
GAP_MAX = 1e-4
APART = 0.1
SLOPE_TOL = 0.05
COMMUTE_TOL = 1e-8
BASELINE_TOL = 1e-7
#: entries of ``diag(Q^T W_nuc Q)`` above this (relative to the largest) are its support
SUPPORT_TOL = 1e-6


@dataclass(frozen=True)
class CommutingInstance:
    """A sensing problem with commuting symmetric measurements ``A_i = Q diag(a_i) Q^T``:
    ``problem`` (:class:`flowsim.MatrixSensing`), ``q`` (``d x d`` orthogonal), ``a``
    (``m x d``), ``truth_z`` (the ground truth's eigenvalues, ``W* = Q diag(truth_z)
    Q^T``)."""

    problem: fs.MatrixSensing
    q: np.ndarray
    a: np.ndarray
    truth_z: np.ndarray

    @property
    def truth(self) -> np.ndarray:
        return self.q @ np.diag(self.truth_z) @ self.q.T

    def eigen_coordinates(self, w) -> np.ndarray:
        """``Q^T W Q`` (batched over leading axes)."""
        return np.einsum("ji,...jk,kl->...il", self.q, np.asarray(w, dtype=np.float64), self.q)


def commuting_sensing(d: int = D, m: int = M, seed: int = SEED) -> CommutingInstance:
    """The instance of the module doc: ``Q`` from the QR of a Gaussian ``d x d`` matrix
    (signs fixed by ``diag R > 0``), ``a_i`` i.i.d. ``N(0, 1)``, ``z*`` uniform on ``[0.5,
    1.5]``, ``y = A z*``, all drawn from ``seed`` by numpy's PCG64 in that order; the
    operators are symmetrized exactly (``(A + A^T) / 2``)."""
    rng = np.random.default_rng(seed)
    q, r = np.linalg.qr(rng.standard_normal((d, d)))
    q = q * np.sign(np.diag(r))
    a = rng.standard_normal((m, d))
    truth_z = rng.uniform(0.5, 1.5, d)
    ops = np.einsum("jk,ik,lk->ijl", q, a, q)
    ops = 0.5 * (ops + np.swapaxes(ops, 1, 2))
    return CommutingInstance(fs.MatrixSensing((d, d), ops, a @ truth_z), q, a, truth_z)


def _rel(x, y, ref) -> float:
    return float(np.linalg.norm(np.asarray(x) - np.asarray(y)) / np.linalg.norm(ref))


def gaps(products: dict, w_nuc) -> dict:
    """``alpha -> ||W_alpha - W_nuc||_F / ||W_nuc||_F``."""
    return {alpha: _rel(w, w_nuc, w_nuc) for alpha, w in products.items()}


def predicted_exponent(a, z_nuc) -> float:
    """``p = 1 - max_{k off S} c_k`` with ``c = A^T nu*`` and ``nu*`` the dual certificate
    of the l1 minimizer ``z_nuc`` (``A_S^T nu* = sign(z_S)``, least squares where the
    support ``S`` is not of size ``m``): the exponent of the gap's power law (module doc).
    ``nan`` when ``z_nuc`` has full support."""
    a, z = np.asarray(a, dtype=np.float64), np.asarray(z_nuc, dtype=np.float64)
    support = np.abs(z) > SUPPORT_TOL * np.abs(z).max()
    if support.all():
        return math.nan
    nu = np.linalg.lstsq(a[:, support].T, np.sign(z[support]), rcond=None)[0]
    return float(1.0 - (a.T @ nu)[~support].max())


def fit_rates(gap_by_alpha: dict) -> dict:
    """Least-squares fits of ``log gap`` over the alphas: ``power`` (``gap = C alpha^p``)
    and ``log`` (``gap = C / log(1/alpha)^q``), each with its rms residual (natural log),
    and ``local``, the exponent over the last two alphas."""
    alphas = np.array(sorted(gap_by_alpha, reverse=True), dtype=np.float64)
    g = np.log(np.array([gap_by_alpha[x] for x in alphas], dtype=np.float64))
    out = {}
    for name, x in (("power", np.log(alphas)), ("log", -np.log(np.log(1 / alphas)))):
        design = np.stack([x, np.ones_like(x)], axis=1)
        coef, *_ = np.linalg.lstsq(design, g, rcond=None)
        rms = float(np.sqrt(np.mean((design @ coef - g) ** 2)))
        out[name] = {"exponent": float(coef[0]), "C": float(np.exp(coef[1])), "rms": rms}
    out["local"] = float((g[-2] - g[-1]) / math.log(alphas[-2] / alphas[-1]))
    return out


def check_instance_discriminates(w_nuc, truth, w_fro) -> CheckResult:
    """The nuclear norm minimizer is ``>= APART`` (relative) from the truth and from the
    minimum Frobenius norm solution; margin the smaller distance minus ``APART``."""
    to_truth, to_fro = _rel(w_nuc, truth, w_nuc), _rel(w_nuc, w_fro, w_nuc)
    margin = min(to_truth, to_fro) - APART
    return CheckResult(GUNASEKAR, f"the instance discriminates: min ||W||_* is >= {APART:g} "
                                  "(rel.) from the truth and from min ||W||_F",
                       f"||W_nuc - W*|| = {to_truth:.3f}, ||W_nuc - W_fro|| = {to_fro:.3f} "
                       "(rel. to ||W_nuc||)", margin, bool(margin >= 0), "numeric",
                       {"to_truth": to_truth, "to_frobenius": to_fro})


def lp_minimizer(instance: CommutingInstance):
    """The minimum nuclear norm solution of a commuting instance without a conic solver:
    by the pinching inequality a minimizer is diagonal in ``Q``, ``W = Q diag(z) Q^T``
    with ``z`` of least l1 norm subject to ``a z = y``, a linear program (scipy's HiGHS,
    ``z = z+ - z-``). Returns a :class:`flowsim.baselines.NormMinimizer`. What ``flowsim
    verify`` uses, so that its main job needs no optional extra; where cvxpy is installed
    the runner also checks ``fs.min_nuclear_norm`` against it."""
    import time

    from scipy.optimize import linprog

    from flowsim.baselines import NormMinimizer

    a, y = instance.a, instance.problem.values
    d = a.shape[1]
    start = time.perf_counter()
    res = linprog(np.ones(2 * d), A_eq=np.hstack([a, -a]), b_eq=y, bounds=(0, None),
                  method="highs")
    if res.status != 0:
        raise ValueError(f"the instance's l1 program failed: {res.message}")
    z = res.x[:d] - res.x[d:]
    w = instance.q @ np.diag(z) @ instance.q.T
    w = 0.5 * (w + w.T)
    violation = float(np.abs(np.asarray(instance.problem.measure(w)) - y).max())
    return NormMinimizer(w, float(np.sum(np.linalg.svd(w, compute_uv=False))), violation,
                         "LP (scipy HiGHS)", "optimal", time.perf_counter() - start)


def check_solvers_agree(lp, conic) -> CheckResult:
    """flowsim's conic minimizer (``fs.min_nuclear_norm``) and the LP give the same
    matrix, to ``BASELINE_TOL`` relative (Frobenius)."""
    gap = _rel(conic.matrix, lp.matrix, lp.matrix)
    return CheckResult(GUNASEKAR, f"fs.min_nuclear_norm ({conic.method}) equals the LP's "
                                  f"minimizer to {BASELINE_TOL:g}",
                       f"relative difference {gap:.1e}; objectives {conic.objective:.9f} "
                       f"and {lp.objective:.9f}", BASELINE_TOL - gap,
                       bool(gap <= BASELINE_TOL), "numeric")


def check_baseline(fit, instance: CommutingInstance) -> CheckResult:
    """flowsim's nuclear norm minimizer fits ``y``, is diagonal in ``Q`` and PSD (so it is
    also the PSD minimum-trace solution the theorem names), each to ``BASELINE_TOL``
    (relative to ``||y||_inf`` and ``||W_nuc||_F``); margin ``BASELINE_TOL`` minus the
    worst."""
    w = np.asarray(fit.matrix, dtype=np.float64)
    problem = instance.problem
    scale = float(np.linalg.norm(w))
    fits = float(np.abs(np.asarray(problem.measure(w)) - problem.values).max()
                 / np.abs(problem.values).max())
    inner = instance.eigen_coordinates(w)
    offdiag = float(np.abs(inner - np.diag(np.diag(inner))).max()) / scale
    negative = max(0.0, -float(np.linalg.eigvalsh(0.5 * (w + w.T)).min())) / scale
    worst = max(fits, offdiag, negative)
    z = np.diag(inner)
    return CheckResult(GUNASEKAR, f"min ||W||_* ({fit.method}) fits y, is diagonal in Q and "
                                  f"PSD (= the PSD min-trace solution), to {BASELINE_TOL:g}",
                       f"violation {fits:.1e}, off-diagonal {offdiag:.1e}, negative "
                       f"eigenvalue {negative:.1e}; eigenvalues {np.round(z, 3).tolist()}",
                       BASELINE_TOL - worst, bool(worst <= BASELINE_TOL), "derived",
                       {"objective": fit.objective, "z": z})


def check_flow_commutes(products: dict, instance: CommutingInstance) -> CheckResult:
    """Every ``W_alpha`` is symmetric, PSD and diagonal in ``Q`` to ``COMMUTE_TOL``
    (relative to ``||W_alpha||_F``)."""
    worst = {}
    for alpha, w in products.items():
        w = np.asarray(w, dtype=np.float64)
        inner = instance.eigen_coordinates(w)
        scale = float(np.linalg.norm(w))
        worst[alpha] = max(float(np.abs(w - w.T).max()),
                           float(np.abs(inner - np.diag(np.diag(inner))).max()),
                           max(0.0, -float(np.linalg.eigvalsh(0.5 * (w + w.T)).min()))) / scale
    slack = np.array([COMMUTE_TOL - v for v in worst.values()])
    return slack_result(GUNASEKAR, f"W_alpha stays symmetric, PSD and diagonal in Q "
                                   f"(to {COMMUTE_TOL:g} rel.)", slack,
                        "worst defect " + ", ".join(f"{a:g}: {v:.1e}" for a, v in worst.items()),
                        source="derived", data={"defects": worst})


def check_gaps_decrease(gap_by_alpha: dict) -> CheckResult:
    """``gap(alpha)`` strictly decreases as alpha decreases; margin the smallest decrease
    between consecutive alphas, in decades (``> 0`` to pass)."""
    alphas = sorted(gap_by_alpha, reverse=True)
    g = [gap_by_alpha[x] for x in alphas]
    steps = [math.log10(g[k] / g[k + 1]) if g[k] > 0 and g[k + 1] > 0 else math.nan
             for k in range(len(g) - 1)]
    margin = min(steps) if steps and all(math.isfinite(s) for s in steps) else math.nan
    return CheckResult(GUNASEKAR, "||W_alpha - W_nuc|| / ||W_nuc|| strictly decreases as "
                                  "alpha -> 0",
                       ", ".join(f"{a:g}: {v:.3e}" for a, v in zip(alphas, g)), margin,
                       bool(margin > 0), "paper", {"gaps": dict(zip(alphas, g))})


def check_smallest_gap(gap_by_alpha: dict) -> CheckResult:
    """The gap at the smallest alpha is ``<= GAP_MAX``; margin ``log10(GAP_MAX / gap)``."""
    alpha = min(gap_by_alpha)
    gap = gap_by_alpha[alpha]
    margin = math.log10(GAP_MAX / gap) if gap > 0 else math.inf
    return CheckResult(GUNASEKAR, f"the flow's limit reaches min ||W||_*: gap <= {GAP_MAX:g} "
                                  "at the smallest alpha", f"alpha {alpha:g}: gap {gap:.3e}",
                       margin, bool(margin >= 0), "paper", {"alpha": alpha, "gap": gap})


def check_not_frobenius(w_flow, w_fro, w_nuc, alpha: float) -> CheckResult:
    """The flow's limit at the smallest alpha is ``>= APART`` from the minimum Frobenius
    norm solution (relative to ``||W_nuc||_F``); margin the distance minus ``APART``."""
    dist = _rel(w_flow, w_fro, w_nuc)
    return CheckResult(GUNASEKAR, f"the flow's limit is not min ||W||_F (distance >= {APART:g} "
                                  "rel.)", f"alpha {alpha:g}: ||W_alpha - W_fro|| = {dist:.3f}",
                       dist - APART, bool(dist >= APART), "numeric", {"distance": dist})


def check_rate(gap_by_alpha: dict, exponent: float) -> CheckResult:
    """The gap falls like ``alpha^p``: the local exponent over the last two alphas is within
    ``SLOPE_TOL`` of the predicted ``p`` (:func:`predicted_exponent`), and the power law
    fits ``log gap`` better than ``C / log(1/alpha)^q``; margin ``SLOPE_TOL - |local - p|``
    (``nan``, failing, where the power fit is the worse)."""
    fits = fit_rates(gap_by_alpha)
    power, log = fits["power"], fits["log"]
    margin = SLOPE_TOL - abs(fits["local"] - exponent)
    if not power["rms"] < log["rms"] or not math.isfinite(margin):
        margin = math.nan
    return CheckResult(GUNASEKAR, f"gap ~ alpha^p, p = 1 - max c_off (within {SLOPE_TOL:g}), "
                                  "not ~ 1/log(1/alpha)",
                       f"local exponent {fits['local']:.3f} vs p = {exponent:.3f}; fits: "
                       f"{power['C']:.2g} alpha^{power['exponent']:.3f} (rms {power['rms']:.2f})"
                       f", {log['C']:.2g} / log(1/alpha)^{log['exponent']:.2f} (rms "
                       f"{log['rms']:.2f})", float(margin), bool(margin >= 0), "derived",
                       {"fits": fits, "predicted": exponent})
