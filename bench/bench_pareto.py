"""Benchmark: cost against path error of the large-flow solvers (issue 25's Pareto table).

The protocol of the deep matrix factorization literature (100x100, rank 5, 2,000 observed
entries, depth 3, balanced init of product scale 1e-3), saved at ``t = 0.25, 0.5, 0.8, 1,
2, 5, 30, 100, 200, 300``. A reference run (Dopri8 at rtol 1e-12, atol 1e-15) first; then
each ``SOLVER:RTOL:ATOL`` given (the default: the registry's defaults of the two switching
methods and a few tolerances around them), in one process: its gradient evaluations,
Hessian-vector products, steps, the largest relative Frobenius error in ``W`` over the
saved times (and where), its compile and warm time, and its warm time as a ratio to the
first row's (these machines are noisy: only ratios in one process and the counts mean
much).

    .venv/bin/python bench/bench_pareto.py [SOLVER:RTOL:ATOL ...]
"""

from __future__ import annotations

import argparse

import numpy as np
from _timing import timed  # bench/ is on sys.path when a bench runs

import flowsim as fs

TIMES = [0.25, 0.5, 0.8, 1.0, 2.0, 5.0, 30.0, 100.0, 200.0, 300.0]
DEFAULT_RUNS = ["Dopri8ROCK4:1e-8:1e-11", "Dopri8EXPRB43:1e-6:1e-9",
                "Dopri8EXPRB43:3e-6:3e-9", "Dopri8EXPRB43:1e-7:1e-10",
                "Dopri8ROCK4:1e-7:1e-10"]


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("runs", nargs="*", default=DEFAULT_RUNS,
                        help="SOLVER:RTOL:ATOL (the first is the baseline of the ratios)")
    args = parser.parse_args()
    problem, _ = fs.low_rank_completion((100, 100), 5, 2000, seed=0)
    model = fs.DeepMatrixFactorization((100, 100), 3)
    params = fs.balanced_init(model, seed=0, scale=1e-3)
    ref = fs.gradient_flow(problem, model, params, save_at=TIMES, solver="Dopri8",
                           rtol=1e-12, atol=1e-15, progress=False)
    print(f"reference: Dopri8 1e-12 / 1e-15, {ref.stats['steps']} steps, {ref.status}")
    print(f"{'solver':>14s} {'rtol':>6s} {'atol':>6s} {'grads':>7s} {'hvps':>7s} "
          f"{'steps':>6s} {'max err W':>9s} {'at t':>6s} {'compile s':>9s} {'warm s':>7s} "
          f"{'ratio':>6s}")
    base = None
    for spec in args.runs:
        solver, rtol, atol = spec.split(":")
        traj, compile_s, warm = timed(lambda s=solver, r=float(rtol), a=float(atol):
                                      fs.gradient_flow(problem, model, params, save_at=TIMES,
                                                       solver=s, rtol=r, atol=a,
                                                       progress=False), repeats=1)
        errors = [np.linalg.norm(traj.product[i] - ref.product[i])
                  / np.linalg.norm(ref.product[i]) for i in range(1, len(TIMES) + 1)]
        worst = int(np.argmax(errors))
        base = warm if base is None else base
        st = traj.stats
        print(f"{solver:>14s} {float(rtol):6.0e} {float(atol):6.0e} "
              f"{st.get('vector_field_evaluations', 0):7d} "
              f"{st.get('jacobian_vector_products', 0):7d} {st['steps']:6d} "
              f"{errors[worst]:9.2e} {TIMES[worst]:6g} {compile_s:9.1f} {warm:7.2f} "
              f"{warm / base:6.2f}", flush=True)


if __name__ == "__main__":
    main()
