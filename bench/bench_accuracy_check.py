"""Benchmark: how exact the default call is, by ``fs.check_accuracy``, on three cases (the
issue of "exact along the whole path"): the 2x2 theorem regime in svd coordinates, the
100x100 protocol of the deep matrix factorization literature, and a stiff CP order-3 run
of Figure 2. For each: the default call's solver, steps, work and time; then the check at
100x tighter tolerances with the run's own solver and with another one (a check
independent of the method: ``INDEPENDENT``): the largest relative difference in ``W``
over the saved times, where, and what the check cost. ``--cp-solvers`` also runs the CP
case with other solvers.

    .venv/bin/python bench/bench_accuracy_check.py [--cases theorem protocol cp]
        [--cp-solvers Dopri8EXPRB43 ...]
"""

from __future__ import annotations

import argparse
import time

import flowsim as fs
from flowsim.experiments import figure2 as fig2
from flowsim.tensor import CPFactorization, cp_gaussian_init
from flowsim.tensor.descent import mse_to_loss


def theorem():
    """Depth 3, balanced 1e-3, det > 0, to loss 1e-12: coordinates "auto" takes svd."""
    model = fs.DeepMatrixFactorization((2, 2), 3)
    params = fs.balanced_init(model, seed=0, scale=1e-3, det_sign=1)
    return (fs.paper_problem(), model, params,
            dict(stop_loss=1e-12, save_at=[1.0, 10.0, 100.0, 1e3, 1e4, 1e5]))


def protocol():
    """100x100, rank 5, 2,000 observed, depth 3, balanced 1e-3, to loss 1e-6."""
    problem, _ = fs.low_rank_completion((100, 100), 5, 2000, seed=0)
    model = fs.DeepMatrixFactorization((100, 100), 3)
    params = fs.balanced_init(model, seed=0, scale=1e-3)
    return (problem, model, params,
            dict(stop_loss=1e-6, save_at=[0.25, 0.5, 1.0, 2.0, 5.0, 30.0, 100.0]))


def cp():
    """Figure 2 order 3 (8x8x8, R = 64), n = 200 observed, init std 1e-2, trial 0, to
    MSE 1e-10: the grid's stiff runs."""
    config = fig2.Figure2Config(order=3, trials=1, n_values=[200])
    problem = fig2.dataset(config).problem(200)
    model = CPFactorization(config.shape, config.cp_rank)
    params = cp_gaussian_init(model, seed=1, std=1e-2)
    return (problem, model, params,
            dict(stop_loss=mse_to_loss(config.stop_mse, 200),
                 save_at=[1.0, 10.0, 100.0, 1000.0]))


CASES = {"theorem": theorem, "protocol": protocol, "cp": cp}
#: the independent reference of each case: scipy's Radau (implicit, another code) for the
#: stiff 2x2 run, Dopri8 for the protocol, Dopri8EXPRB43 for the CP run (Dopri8 alone is
#: held at its stability limit through their stiff stretches)
INDEPENDENT = {"theorem": "Radau", "protocol": "Dopri8", "cp": "Dopri8EXPRB43"}


def report(name, traj, wall_s, independent):
    st = traj.stats
    print(f"\n{name}: {traj.config['options']['solver']} at rtol "
          f"{traj.config['options']['rtol']:g}, {traj.status}, {st['steps']} steps, "
          f"{st.get('vector_field_evaluations', '-')} evaluations, "
          f"{st.get('jacobian_vector_products', '-')} HVPs, {wall_s:.1f} s "
          f"(first call, compile included)")
    for solver in (None, independent):
        start = time.perf_counter()
        check = fs.check_accuracy(traj, solver=solver)
        errors = " ".join(f"t={t:g}: {e:.1e}" for t, e in zip(check.times, check.errors))
        print(f"  check ({check.solver}, rtol {check.rtol:g}): max {check.max_error:.2e} "
              f"at t = {check.worst_time:g}; {errors}; its cost "
              f"{check.reference_stats.get('steps')} steps, "
              f"{time.perf_counter() - start:.1f} s, complete={check.complete}")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", nargs="+", choices=list(CASES), default=list(CASES))
    parser.add_argument("--cp-solvers", nargs="*", default=[],
                        help="also run the CP case with these solvers")
    args = parser.parse_args()
    for name in args.cases:
        problem, model, params, kw = CASES[name]()
        solvers = [None] + (args.cp_solvers if name == "cp" else [])
        for solver in solvers:
            extra = {} if solver is None else {"solver": solver}
            start = time.perf_counter()
            traj = fs.gradient_flow(problem, model, params, progress=False, **kw, **extra)
            report(name + ("" if solver is None else f" ({solver})"), traj,
                   time.perf_counter() - start, INDEPENDENT[name])


if __name__ == "__main__":
    main()
