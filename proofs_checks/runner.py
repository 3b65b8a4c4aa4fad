"""Run every check of the paper's claims and collect the results (``flowsim verify``).

One task per claim; each generates its inputs (closed forms, Monte Carlo samples,
trajectories from :mod:`proofs_checks.trajectories`) and hands them to the pure checks.
Checks repeated over many trajectories are folded into one row per bound whose margin
is the smallest over all runs.
"""

from __future__ import annotations

import math
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import sympy as sp
from tqdm.auto import tqdm

import flowsim as fs
from flowsim.baselines import MissingExtraError

from . import (
    gunasekar,
    lemmas,
    norms,
    norms_at_scale,
    proposition1,
    proposition2,
    proposition3,
    proposition4,
    theorem1,
    theorem2,
    trajectories,
)
from .closed_forms import singular_values_on_s
from .result import CheckResult


@dataclass(frozen=True)
class Plan:
    """How much to run. :func:`make_plan` gives the ``--quick`` and full sizes."""

    quick: bool
    coordinates: dict  # depth -> coordinates of the Theorem 1/2 runs
    depths: tuple[int, ...] = (2, 3, 4)
    scales: tuple[float, ...] = (1e-3, 1e-1)
    seeds: tuple[int, ...] = (0, 1)
    b22s: tuple[float, ...] = (0.0, 0.01, 0.05, 0.1, 0.5)
    theorem2_depth: int = 3
    theorem2_t_max: float = 3e3
    mc_samples: int = 20_000
    mc_init_samples: int = 2_000
    alphas: tuple[float, ...] = (0.1, 1.0)
    prop4_stop_loss: float = 1e-6
    prop4_flow_alphas: tuple[float, ...] = (0.1,)
    # (solver, loss level) of the cross-check against flowsim.gradient_flow (its default
    # coordinates follow the flow at depth 2 to any loss; Radau is scipy's, independent)
    prop4_flow: tuple[str, float] = ("auto", 1e-3)
    lemma_depths: tuple[int, ...] = (2, 3, 4)
    lemma_seeds: tuple[int, ...] = (0,)
    lemma_points: int = 40
    # the norms question beyond 2x2 (norms_at_scale): Arora et al.'s 100x100 protocol, and
    # the padded problem of App. E (square shapes, depth 3, balanced start with det > 0)
    arora_n: tuple[int, ...] = (2000,)
    arora_seeds: tuple[int, ...] = (0,)
    padded_shapes: tuple[tuple[int, int], ...] = ((6, 6),)
    padded_stop_loss: float = 1e-4
    # Gunasekar et al. 2017's Theorem 1 (commuting sensing, depth 2, start alpha I): the
    # same alphas in both modes (8x8, 0.1 s a run once compiled)
    gunasekar_alphas: tuple[float, ...] = gunasekar.ALPHAS


def make_plan(quick: bool, coordinates: str | None = None) -> Plan:
    """``coordinates`` for every depth, or by default flowsim's "auto" (the singular-value
    coordinates for these balanced 2x2 starts: det's sign exact, deepest losses,
    :data:`trajectories.DEEPEST_LOSS`), while factor coordinates lose the sign near loss
    1e-2 at depth 2."""
    table = {d: coordinates or trajectories.default_coordinates() for d in (2, 3, 4)}
    if quick:
        return Plan(True, table)
    return Plan(False, table, scales=(1e-4, 1e-3, 1e-2, 1e-1, 0.5), seeds=(0, 1, 2),
                theorem2_t_max=3e4, mc_samples=400_000, mc_init_samples=10_000,
                alphas=(0.05, 0.1, 0.5, 1.0), prop4_stop_loss=1e-8,
                prop4_flow_alphas=(0.1, 1.0), prop4_flow=("auto", 1e-6), lemma_seeds=(0, 1, 2),
                lemma_points=80, arora_n=(2000, 5000), arora_seeds=(0, 1, 2),
                padded_shapes=((6, 6), (10, 10)), padded_stop_loss=2e-5)


@dataclass
class Outcome:
    """Everything a report needs: results in order, the runs behind them, timings."""

    plan: Plan
    results: list[CheckResult] = field(default_factory=list)
    runs: dict = field(default_factory=dict)
    seconds: dict = field(default_factory=dict)
    #: claim -> the distinct warnings its runs raised (kept for the report, not printed
    #: over the progress bar: e.g. the sign events the Gaussian-start flows record)
    warnings: dict = field(default_factory=dict)

    @property
    def passed(self) -> bool:
        return all(r.passed for r in self.results)


def fold(per_run: list[tuple[str, CheckResult]]) -> CheckResult:
    """One row for a check repeated over runs: holds iff it holds in every run; margin
    and evidence of the tightest (or first failing) run."""
    results = [r for _, r in per_run]
    worst = min(range(len(results)), key=lambda k: (results[k].passed, _key(results[k].margin)))
    label, first = per_run[worst]
    failing = [lab for lab, r in per_run if not r.passed]
    evidence = f"{len(per_run)} runs; tightest: {label}: {first.evidence}"
    if failing:
        evidence += f" | fails in {len(failing)} runs, e.g. {failing[0]}"
    return CheckResult(first.claim, first.check, evidence, first.margin,
                       not failing, first.source, {"per_run": {lab: r.to_dict()
                                                               for lab, r in per_run}})


def _key(margin: float) -> float:
    return margin if math.isfinite(margin) else -math.inf


def _fold_by_check(per_run: list[tuple[str, CheckResult]]) -> list[CheckResult]:
    groups: dict[tuple[str, str], list] = {}
    for label, r in per_run:
        groups.setdefault((r.claim, r.check), []).append((label, r))
    return [fold(group) for group in groups.values()]


def _sample(n_points: int, length: int) -> np.ndarray:
    return np.unique(np.linspace(0, length - 1, min(n_points, length)).astype(int))


# -- one task per claim -----------------------------------------------------------------
def proposition1_task(plan: Plan, outcome: Outcome) -> list[CheckResult]:
    s1, s2 = singular_values_on_s()
    out = [proposition1.check_singular_values(s1, s2),
           proposition1.check_power_sum_derivative(s1, s2)]
    out += [proposition1.check_schatten_minimizer(s1, s2, p)
            for p in (sp.Rational(1, 2), sp.Rational(2, 3), 1, 2, sp.oo)]
    out += [proposition1.check_epsilon_minimizers(n, eps)
            for n in norms.non_schatten_norms() for eps in (0.1, 1.0)]
    return out


def proposition2_task(plan: Plan, outcome: Outcome) -> list[CheckResult]:
    s1, s2 = singular_values_on_s()
    return [proposition2.check_effective_rank_on_s(s1, s2),
            proposition2.check_distance_on_s(s1, s2)]


def theorem1_task(plan: Plan, outcome: Outcome) -> list[CheckResult]:
    runs = trajectories.theorem1_runs(plan.depths, plan.scales, plan.seeds, plan.coordinates)
    outcome.runs["theorem1"] = runs
    per_run = []
    for run in runs:
        tr, label = run.traj, run.label
        loss, w = tr.loss, tr.product
        checks = [theorem1.check_det_positive(tr.det_sign, tr.log_abs_det, loss),
                  theorem1.check_unobserved_entry(loss, w)]
        for norm in norms.all_norms():
            checks += [theorem1.check_norm_bound(loss, w, norm, "paper"),
                       theorem1.check_norm_bound(loss, w, norm, "derived")]
        logs = tr.log_singular_values
        checks += [theorem1.check_distance_bound(loss, w, log_sv=logs),
                   theorem1.check_erank_bound(loss, w, log_sv=logs)]
        if loss[-1] <= 1e-7:  # the sharp limit needs a run that got deep
            checks.append(theorem1.check_sharp_asymptotics(loss, w, log_sv=logs))
        if not tr.success:
            checks.append(CheckResult("Theorem 1", "trajectory reached its stop loss",
                                      tr.message, -1.0, False, "numeric"))
        per_run += [(label, c) for c in checks]
    return _fold_by_check(per_run)


def theorem2_task(plan: Plan, outcome: Outcome) -> list[CheckResult]:
    runs = trajectories.theorem2_runs(plan.b22s, plan.theorem2_depth, 1e-3,
                                      plan.coordinates[plan.theorem2_depth], plan.theorem2_t_max)
    outcome.runs["theorem2"] = runs
    per_run, limits = [], []
    for run in runs:
        tr, b = run.traj, tuple(run.problem.values)
        per_run += [(run.label, theorem2.check_entry_bound(tr.loss, tr.product, b)),
                    (run.label, theorem2.check_sign_pattern(tr.loss, tr.product, tr.det_sign, b))]
        limits.append(theorem2.check_limit(tr.loss, tr.product, b, label=run.label + ": "))
    return _fold_by_check(per_run) + limits


def proposition3_task(plan: Plan, outcome: Outcome) -> list[CheckResult]:
    n, out = plan.mc_samples, []
    for k, dist in enumerate(proposition3.SYMMETRIC):
        for d in (2, 3):
            for scale in (1e-6, 1.0, 1e6):
                out.append(proposition3.check_sign_probability(
                    proposition3.entry_signs(dist, d, n, scale, seed=k),
                    f"{dist} entries, {d}x{d}, scale {scale:g}"))
    for depth in (2, 3, 4):
        out.append(proposition3.check_sign_probability(
            proposition3.product_signs(depth, 2, n, seed=depth),
            f"product of {depth} layers (1 Gaussian, others exponential)"))
    for kind in ("balanced", "gaussian"):
        out.append(proposition3.check_sign_probability(
            proposition3.init_signs(kind, 3, plan.mc_init_samples, 1e-3),
            f"flowsim {kind}_init, depth 3, scale 1e-3"))
    return out


def proposition4_task(plan: Plan, outcome: Outcome) -> list[CheckResult]:
    out = [proposition4.check_entry_ode(), proposition4.check_log_det_rate()]
    solver, level = plan.prop4_flow
    model = fs.DeepMatrixFactorization((2, 2), 2)
    for alpha in plan.alphas:
        sol = proposition4.integrate_entry_ode(alpha, plan.prop4_stop_loss)
        out.append(proposition4.check_loss_to_zero(sol["t"], sol["loss"], plan.prop4_stop_loss,
                                                   label=f"alpha {alpha:g}: "))
        if alpha in plan.prop4_flow_alphas:
            ode = proposition4.integrate_entry_ode(alpha, level)
            flow = fs.gradient_flow(fs.paper_problem(), model, fs.identity_init(model, alpha),
                                    solver=solver, stop_loss=level, progress=False)
            out.append(proposition4.check_matches_flow(ode["x"][-1], flow.product[-1, 0, 0],
                                                       level, label=f"alpha {alpha:g}: "))
    return out


def lemmas_task(plan: Plan, outcome: Outcome) -> list[CheckResult]:
    problem = fs.paper_problem()
    runs = trajectories.factor_runs(plan.lemma_depths, plan.lemma_seeds, 1e-3, 1e-4)
    per_run = []
    for run in runs:
        idx = _sample(plan.lemma_points, len(run.traj))
        points = [tuple(layer[i] for layer in run.traj.factors) for i in idx]
        per_run += [(run.label, lemmas.check_lemma4(points, problem.mask, problem.target)),
                    (run.label, lemmas.check_lemma5(points, problem.mask, problem.target))]
    return _fold_by_check(per_run)


def arora_task(plan: Plan, outcome: Outcome) -> list[CheckResult]:
    from flowsim.experiments.norms import NormsConfig, run_one

    config = NormsConfig(n_values=plan.arora_n, depths=(3,), seeds=plan.arora_seeds,
                         baseline="admm")
    out = []
    for n in plan.arora_n:
        flow, nuclear = {}, {}
        for seed in plan.arora_seeds:
            flow[f"seed {seed}"] = run_one(config, ("flow", n, seed, 3))[1]
            nuclear[f"seed {seed}"] = run_one(config, ("nuclear", n, seed, None))[1]
        err = {k: r["test_error"] for k, r in flow.items()}
        nuc_err = {k: r["test_error"] for k, r in nuclear.items()}
        out.append(norms_at_scale.check_recovers(err, f"n = {n}: flow, depth 3"))
        if n <= 2000:
            out.append(norms_at_scale.check_does_not_recover(
                nuc_err, f"n = {n}: minimum nuclear norm"))
            out.append(norms_at_scale.check_not_nuclear_minimal(
                {k: r["nuclear"] for k, r in flow.items()},
                {k: r["nuclear"] for k, r in nuclear.items()}, f"n = {n}: depth 3"))
        else:
            out.append(norms_at_scale.check_recovers(nuc_err, f"n = {n}: minimum nuclear norm"))
        out += [CheckResult(norms_at_scale.ARORA, f"n = {n}: run reached its stop",
                            f"{k}: {r['status']}", -1.0, False, "numeric")
                for k, r in {**flow, **nuclear}.items()
                if r["status"] not in ("stop_loss", "converged")]
    return out


def padded_task(plan: Plan, outcome: Outcome) -> list[CheckResult]:
    out = []
    for shape in plan.padded_shapes:
        problem = fs.padded_problem(*shape)
        minimizer = norms_at_scale.padded_minimizer(shape)
        out.append(norms_at_scale.check_baseline_minimizer(fs.nuclear_norm_admm(problem),
                                                           shape))
        model = fs.DeepMatrixFactorization(shape, 3)
        traj = fs.gradient_flow(problem, model, fs.balanced_init(model, seed=0, det_sign=+1),
                                stop_loss=plan.padded_stop_loss, t_max=1e7, progress=False)
        label = f"{shape[0]}x{shape[1]}, depth 3"
        out.append(norms_at_scale.check_entry_growth(traj.loss, traj.product, label))
        out += norms_at_scale.check_far_and_growing(traj.loss, traj.product, minimizer, label)
        if not traj.success:
            out.append(CheckResult(norms_at_scale.PROP1, f"{label}: trajectory reached its "
                                   "stop loss", traj.message, -1.0, False, "numeric"))
    return out


def gunasekar_task(plan: Plan, outcome: Outcome) -> list[CheckResult]:
    inst = gunasekar.commuting_sensing()
    problem = inst.problem
    nuc = gunasekar.lp_minimizer(inst)
    fro = fs.min_frobenius_norm(problem).matrix
    out = [gunasekar.check_instance_discriminates(nuc.matrix, inst.truth, fro),
           gunasekar.check_baseline(nuc, inst)]
    try:  # flowsim's conic baseline against the LP, where the convex extra is installed
        out.append(gunasekar.check_solvers_agree(
            nuc, fs.min_nuclear_norm(problem, solver="CLARABEL")))
    except MissingExtraError:
        pass
    model = fs.DeepMatrixFactorization(problem.shape, 2)
    start = float(problem.loss(np.zeros(problem.shape)))
    products = {}
    for alpha in plan.gunasekar_alphas:
        traj = fs.gradient_flow(problem, model, fs.identity_init(model, alpha),
                                stop_loss=gunasekar.STOP_LOSS_REL * start, save_at="ends",
                                progress=False)
        products[alpha] = traj.product[-1]
        if not traj.success:
            out.append(CheckResult(gunasekar.GUNASEKAR, f"alpha {alpha:g}: trajectory "
                                   "reached its stop loss", traj.message, -1.0, False,
                                   "numeric"))
    outcome.runs["gunasekar"] = products
    gaps = gunasekar.gaps(products, nuc.matrix)
    smallest = min(products)
    z_nuc = np.diag(inst.eigen_coordinates(nuc.matrix))
    out += [gunasekar.check_flow_commutes(products, inst),
            gunasekar.check_gaps_decrease(gaps),
            gunasekar.check_smallest_gap(gaps),
            gunasekar.check_not_frobenius(products[smallest], fro, nuc.matrix, smallest),
            gunasekar.check_rate(gaps, gunasekar.predicted_exponent(inst.a, z_nuc))]
    return out


#: claim name -> task, in report order
TASKS: dict[str, Callable[[Plan, Outcome], list[CheckResult]]] = {
    "Proposition 1": proposition1_task,
    "Proposition 2": proposition2_task,
    "Theorem 1": theorem1_task,
    "Theorem 2": theorem2_task,
    "Proposition 3": proposition3_task,
    "Proposition 4": proposition4_task,
    "Lemmas 4-5": lemmas_task,
    norms_at_scale.PROP1: padded_task,
    norms_at_scale.ARORA: arora_task,
    gunasekar.GUNASEKAR: gunasekar_task,
}


def run_checks(quick: bool = True, only: list[str] | None = None, coordinates: str | None = None,
               progress: bool = True) -> Outcome:
    """Run the tasks named in ``only`` (default all of :data:`TASKS`)."""
    names = list(TASKS) if not only else list(only)
    unknown = [n for n in names if n not in TASKS]
    if unknown:
        raise ValueError(f"only must name claims among {list(TASKS)}, got {unknown}")
    outcome = Outcome(make_plan(quick, coordinates))
    bar = tqdm(names, desc="verify", unit="claim", disable=not progress, leave=False)
    for name in bar:
        bar.set_postfix_str(name)
        start = time.perf_counter()
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            try:
                outcome.results += TASKS[name](outcome.plan, outcome)
            except Exception as exc:  # a crashed task is a failed claim, the others run
                outcome.results.append(CheckResult(name, "task ran",
                                                   f"{type(exc).__name__}: {exc}",
                                                   math.nan, False, "numeric"))
        if caught:
            outcome.warnings[name] = sorted({f"{w.category.__name__}: {w.message}"
                                             for w in caught})
        outcome.seconds[name] = time.perf_counter() - start
    return outcome
