"""Benchmark: a sweep of balanced depth-3 inits on the paper's problem, to loss 1e-6.

Proposition 3 (random det sign, P = 1/2) and Theorem 1 (det > 0: |W11| sqrt(2 loss) -> 1)
statistics over ``--runs`` seeds (default 1000, product scale 1e-3, no det-sign
conditioning), as one batched sweep (``flowsim.experiments.sweep``). Compile time and warm time are
reported separately (the sweep runs twice in this process: compile = first - second),
with the ratio against one-at-a-time ``gradient_flow`` on the first ``--baseline`` seeds,
timed warm in the same process and scaled per run. ``--dask`` reruns the sweep on an
embedded Dask LocalCluster and checks that every result column is identical.

    .venv/bin/python bench/bench_sweep.py [--runs 1000] [--baseline 20] [--dask]
        [--coordinates auto|svd|factors] [--solver auto] [--rtol 1e-8] [--atol 1e-12]

Defaults: flowsim's defaults (coordinates "auto", which takes the sign-exact svd
coordinates for these starts, at their default tolerances rtol 1e-8 / atol 1e-12, and
solver "auto", which takes Rodas5P for these runs to loss 1e-6).
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np

import flowsim as fs
from flowsim.experiments.sweep import RESULT_COLUMNS, SweepConfig, format_summary, run_sweep


def timed(fn):
    """``(result, wall seconds, CPU seconds of this process)``: on a shared machine wall
    time stretches with the load, CPU time much less."""
    start, cpu = time.perf_counter(), time.process_time()
    out = fn()
    return out, time.perf_counter() - start, time.process_time() - cpu


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=1000)
    parser.add_argument("--baseline", type=int, default=20)
    parser.add_argument("--lanes", type=int, default=256)
    parser.add_argument("--chunk-steps", type=int, default=fs.SolverOptions.chunk_steps)
    parser.add_argument("--batch-size", type=int, default=1000)
    parser.add_argument("--dask", action="store_true", help="also run on a Dask LocalCluster")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--coordinates", default="auto", help="auto (default), svd or factors")
    parser.add_argument("--solver", default="auto", help="auto (default) or a solver name")
    parser.add_argument("--rtol", type=float, default=None)
    parser.add_argument("--atol", type=float, default=None)
    args = parser.parse_args()

    config = SweepConfig(
        grid={"depth": 3, "init": "balanced", "scale": 1e-3, "det_sign": "none",
              "stop_loss": 1e-6, "coordinates": args.coordinates, "rtol": args.rtol,
              "atol": args.atol, "solver": args.solver},
        settings={"repetitions": args.runs, "batch_size": args.batch_size},
        solver=fs.SolverOptions(lanes=args.lanes, chunk_steps=args.chunk_steps))
    tmp = Path(tempfile.mkdtemp(prefix="bench_sweep_"))
    first, t_first, cpu_first = timed(lambda: run_sweep(config, tmp / "first.npz",
                                                        progress=False))
    warm, t_warm, cpu_warm = timed(lambda: run_sweep(config, tmp / "warm.npz", progress=False))

    problem = fs.paper_problem()
    model = fs.DeepMatrixFactorization((2, 2), 3)
    inits = [fs.balanced_init(model, seed=s, scale=1e-3) for s in range(args.baseline)]
    def one(w):
        return fs.gradient_flow(problem, model, w, stop_loss=1e-6, rtol=args.rtol,
                                atol=args.atol, coordinates=args.coordinates, solver=args.solver,
                                progress=False)

    _, t_compile_one, _ = timed(lambda: one(inits[0]))
    singles, t_singles, cpu_singles = timed(lambda: [one(w) for w in inits])
    per_single = t_singles / len(inits)
    per_batched = t_warm / args.runs

    c = warm.columns
    ref = np.stack([s.product[-1] for s in singles])
    rel = np.abs(c["w_final"][:len(singles)] - ref).max(axis=(1, 2)) / np.abs(ref).max(
        axis=(1, 2))
    pos = c["det_sign_initial"] > 0
    scaled = np.abs(c["w_final"][:, 0, 0]) * np.sqrt(2 * c["loss_final"])

    print(f"sweep: {args.runs} balanced depth-3 inits (scale 1e-3, random det sign) to loss "
          f"1e-6, {args.coordinates} coordinates, solver {args.solver} ("
          f"{singles[0].config['options']['solver']}), rtol {args.rtol}, atol {args.atol}, "
          f"lanes {args.lanes}, batch_size {args.batch_size}")
    print(f"  first sweep (compile + run) {t_first:8.2f} s wall, {cpu_first:8.2f} s CPU")
    print(f"  warm sweep                  {t_warm:8.2f} s wall, {cpu_warm:8.2f} s CPU "
          f"({1e3 * per_batched:.1f} ms/run wall)")
    print(f"  compile (first - warm)      {t_first - t_warm:8.2f} s wall, "
          f"{cpu_first - cpu_warm:8.2f} s CPU")
    print(f"  one-at-a-time gradient_flow {1e3 * per_single:8.1f} ms/run warm over "
          f"{len(inits)} runs ({1e3 * cpu_singles / len(inits):.1f} ms/run CPU; first call "
          f"{t_compile_one:.2f} s); {per_single * args.runs:.1f} s for {args.runs} runs")
    print(f"  speed-up batched vs one-at-a-time (warm, per run): {per_single / per_batched:.1f}x "
          f"wall, {(cpu_singles / len(inits)) / (cpu_warm / args.runs):.1f}x CPU")
    print(f"  batched vs one-at-a-time final W, max relative difference over the first "
          f"{len(inits)}: {rel.max():.2e}")
    same = all(np.array_equal(first.columns[k], c[k], equal_nan=c[k].dtype.kind == "f")
               for k in RESULT_COLUMNS)
    print(f"  first and warm sweeps identical: {same}")
    print(f"  statuses: { {s: int(np.sum(c['status'] == s)) for s in np.unique(c['status'])} }")
    n = args.runs
    print(f"  Proposition 3: P(det W(0) > 0) = {pos.mean():.3f} "
          f"(0.5 +- {3 / np.sqrt(n) / 2:.3f} at 3 sigma); det sign kept in "
          f"{int(np.sum(c['det_sign_final'] == c['det_sign_initial']))}/{n}")
    print(f"  Theorem 1, det > 0: |W11| sqrt(2 loss) in [{scaled[pos].min():.6f}, "
          f"{scaled[pos].max():.6f}]; |W11| median {np.median(np.abs(c['w_final'][pos, 0, 0])):.2f}"
          f" (1/sqrt(2e-6) = {1 / np.sqrt(2e-6):.2f})")
    neg = np.abs(c["w_final"][~pos, 0, 0])
    print(f"  det < 0: |W11| median {np.median(neg):.3f}, 90% quantile "
          f"{np.quantile(neg, 0.9):.3f}, max {neg.max():.3f}")
    print(format_summary(warm.summary(), ["scale"]))

    if args.dask:
        from flowsim.experiments.distributed import run_sweep_dask

        dist, t_dask, _ = timed(lambda: run_sweep_dask(config, tmp / "dask.npz",
                                                    n_workers=args.workers, progress=False))
        same = all(np.array_equal(dist.columns[k], c[k], equal_nan=c[k].dtype.kind == "f")
                   for k in RESULT_COLUMNS)
        print(f"  Dask LocalCluster ({args.workers} workers, incl. start + compile on each): "
              f"{t_dask:.2f} s; identical to the local sweep: {same}")


if __name__ == "__main__":
    main()
