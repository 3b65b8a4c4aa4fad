"""Benchmark: the Figure 2 tensor grid (order 3: 8x8x8, R = 64) with flowsim, against a
plain NumPy loop of the reference protocol run in the same process (this machine is noisy).

Three parts:

1. Solvers on one grid run (n = 200, both init stds, flow to MSE 1e-10): explicit
   Tsit5 / Dopri5 / Dopri8 to the end, the stiff Kvaerno5 for a few steps only (its
   cost per step is extrapolated). Compile time (first call) and warm time separately.
2. Sampled grid runs (trial 0 of each (n, std) in --sample-n): flowsim's flow and the
   NumPy reference loop (adaptive global step, MSE < 1e-6 at 3 checks in a row every 100
   iterations, App. F.2), extrapolated to the whole grid (x trials); the rank estimate,
   the same function for both, is timed separately.
3. With --results FILE (a finished ``flowsim figure2`` results file): the measured total
   of that grid's runs.

    .venv/bin/python bench/bench_tensor.py \
        [--results notebooks/figures/figure2_order3_results.jsonl]
"""

from __future__ import annotations

import argparse
import json
import statistics
import time

import numpy as np

import flowsim as fs
from flowsim.tensor import CPFactorization, cp_dataset, cp_gaussian_init, cp_rank
from flowsim.tensor.cp import cp_subscripts
from flowsim.tensor.descent import mse_to_loss
from flowsim.tensor.figure2 import Figure2Config


def numpy_reference_gd(truth, mask, factors, lr=1e-2, beta=0.99, eps=1e-6, tol=1e-6,
                       check_every=100, patience=2, max_iterations=1_000_000):
    """The reference's training loop in NumPy (float64): MSE loss, GroupRMSprop global
    step, stop when MSE < tol at more than `patience` consecutive checks."""
    n = mask.sum()
    subs = cp_subscripts(truth.ndim)
    out = "".join(s[0] for s in subs)
    product = ",".join(subs) + "->" + out
    grads = [",".join((out, *subs[:k], *subs[k + 1:])) + "->" + subs[k]
             for k in range(truth.ndim)]
    factors = [f.copy() for f in factors]
    v, beta_pow, below = 0.0, 1.0, 0
    for k in range(max_iterations):
        residual = mask * (np.einsum(product, *factors, optimize=True) - truth)
        mse = np.sum(residual ** 2) / n
        if k % check_every == 0:
            below = below + 1 if mse < tol else 0
            if below > patience:
                break
        g_w = 2.0 / n * residual
        g = [np.einsum(spec, g_w, *factors[:j], *factors[j + 1:], optimize=True)
             for j, spec in enumerate(grads)]
        v = beta * v + (1 - beta) * sum(np.sum(x * x) for x in g)
        beta_pow *= beta
        eta = lr / (np.sqrt(v / (1 - beta_pow)) + eps)
        factors = [f - eta * x for f, x in zip(factors, g)]
    return np.einsum(product, *factors, optimize=True), k, mse


def timed(fn, repeats=1):
    start = time.perf_counter()
    first = fn()
    cold = time.perf_counter() - start
    warm = []
    for _ in range(repeats):
        start = time.perf_counter()
        first = fn()
        warm.append(time.perf_counter() - start)
    return first, cold, statistics.median(warm) if warm else None


def solver_table(config, data, model, n=200):
    problem = data.problem(n)
    print(f"\n1. solvers, one grid run (n={n}, flow to MSE {config.stop_mse:g}), "
          f"{model.n_params} unknowns")
    print(f"{'solver':>9s} {'std':>6s} {'compile s':>10s} {'warm s':>8s} {'steps':>7s} "
          f"{'s/step':>8s} {'status':>10s}")
    for std in config.init_stds:
        params = cp_gaussian_init(model, seed=1, std=std)
        for solver in ("Tsit5", "Dopri5", "Dopri8", "Kvaerno5"):
            stiff = solver == "Kvaerno5"
            run = lambda solver=solver, stiff=stiff, params=params: fs.gradient_flow(  # noqa: E731
                problem, model, params, solver=solver, stop_loss=mse_to_loss(
                    config.stop_mse, n), rtol=config.rtol, atol=config.atol,
                max_steps=8 if stiff else config.max_steps, chunk_steps=4 if stiff else 256,
                progress=False)
            traj, cold, warm = timed(run, repeats=1)
            steps = traj.stats["steps"]
            print(f"{solver:>9s} {std:6.0e} {cold - warm:10.2f} {warm:8.2f} {steps:7d} "
                  f"{warm / steps:8.1e} {traj.status:>10s}")


def sampled_grid(config, data, model, sample_n):
    print(f"\n2. sampled grid runs (trial 0), extrapolated x{config.trials} trials to the "
          f"{len(config.n_values)} x {len(config.init_stds)} x {config.trials} grid")
    print(f"{'n':>5s} {'std':>6s} {'flow s':>8s} {'numpy s':>8s} {'numpy it':>9s} "
          f"{'flow err':>9s} {'numpy err':>9s} {'rank s':>7s}")
    totals = {"flow": 0.0, "numpy": 0.0, "rank": 0.0}
    for n in sample_n:
        problem = data.problem(n)
        mask = problem.mask
        for std in config.init_stds:
            params = cp_gaussian_init(model, seed=1, std=std)
            start = time.perf_counter()
            traj = fs.gradient_flow(problem, model, params, solver=config.solver,
                                    stop_loss=mse_to_loss(config.stop_mse, n),
                                    rtol=config.rtol, atol=config.atol,
                                    max_steps=config.max_steps, progress=False)
            flow_s = time.perf_counter() - start
            start = time.perf_counter()
            w_np, iters, _ = numpy_reference_gd(data.truth, mask, params)
            numpy_s = time.perf_counter() - start
            start = time.perf_counter()
            cp_rank(traj.product[-1], rtol=config.rank_rtol)
            rank_s = time.perf_counter() - start
            err = lambda w: np.linalg.norm(w - data.truth)  # noqa: E731 (unit-norm truth)
            print(f"{n:5d} {std:6.0e} {flow_s:8.2f} {numpy_s:8.2f} {iters:9d} "
                  f"{err(traj.product[-1]):9.1e} {err(w_np):9.1e} {rank_s:7.2f}")
            for key, v in (("flow", flow_s), ("numpy", numpy_s), ("rank", rank_s)):
                totals[key] += v
    scale = len(config.n_values) / len(sample_n) * config.trials
    print(f"extrapolated grid (tf runs only): flow {totals['flow'] * scale:.0f} s, NumPy "
          f"reference GD {totals['numpy'] * scale:.0f} s (ratio flow/NumPy "
          f"{totals['flow'] / totals['numpy']:.2f}), rank estimates of the tf results "
          f"{totals['rank'] * scale:.0f} s")


def grid_results(path):
    lines = open(path).read().splitlines()
    records = [json.loads(line) for line in lines[1:]]
    tf = [r for r in records if r["kind"] == "tf"]
    lin = [r for r in records if r["kind"] == "linear"]
    by_std = {}
    for r in tf:
        by_std.setdefault(r["std"], []).append(r["solve_s"])
    print(f"\n3. measured grid {path}: {len(records)} runs")
    for std, times in sorted(by_std.items()):
        print(f"   tf init {std:g}: {len(times)} flows, total {sum(times):.0f} s, median "
              f"{statistics.median(times):.2f} s, max {max(times):.1f} s")
    print(f"   rank estimates: tf {sum(r['rank_s'] for r in tf):.0f} s, memorizer "
          f"{sum(r['rank_s'] for r in lin):.0f} s ({len(lin)} tensors)")
    total = sum(r["solve_s"] + r["rank_s"] for r in records)
    print(f"   total {total:.0f} s = {total / 60:.1f} min")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--order", type=int, default=3)
    parser.add_argument("--sample-n", type=int, nargs="+", default=[50, 200, 511])
    parser.add_argument("--results", help="a finished figure2 results file to summarize")
    parser.add_argument("--skip-solvers", action="store_true")
    args = parser.parse_args()
    config = Figure2Config(order=args.order)
    data = cp_dataset(config.shape, config.truth_rank, config.dataset_seed)
    model = CPFactorization(config.shape, config.cp_rank)
    if not args.skip_solvers:
        solver_table(config, data, model)
    sampled_grid(config, data, model, args.sample_n)
    if args.results:
        grid_results(args.results)


if __name__ == "__main__":
    main()
