"""Benchmark: the exact flow deep into Theorem 1's regime with the default call
(coordinates "auto", which takes the sign-exact "svd" coordinates here): balanced init,
det > 0, product scale 1e-3, to loss 1e-12 (and 1e-14 at depth 3), depths 2-6, many
seeds, and several chunk sizes (the steps must not depend on them).

Per depth and chunk size: how many seeds reach the stop loss, whether det > 0 at every
saved point, the largest |1 - |W11| sqrt(2 loss)| at the end (Theorem 1: -> 1), the
accepted steps, the warm time per run (median), and the compile time of the first run.
The warm median is also given as a ratio against a baseline timed in the same process
(the default call at depth 3 to loss 1e-4; this machine is noisy). Runs with other chunk
sizes are compared with the default chunk size's run bit for bit (times and states).

    .venv/bin/python bench/bench_theorem_regime.py [--depths 2 3 4 5 6] [--seeds 16]
        [--chunks 8 32 256] [--deep-depth 3 --deep-stop 1e-14]
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np
from _timing import timed  # bench/ is on sys.path when a bench runs

import flowsim as fs


def one(problem, model, params, stop, chunk):
    start = time.perf_counter()
    traj = fs.gradient_flow(problem, model, params, stop_loss=stop, chunk_steps=chunk,
                            max_steps=100_000, progress=False)
    return traj, time.perf_counter() - start


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--depths", type=int, nargs="+", default=[2, 3, 4, 5, 6])
    parser.add_argument("--seeds", type=int, default=16)
    parser.add_argument("--stop", type=float, default=1e-12)
    parser.add_argument("--chunks", type=int, nargs="+", default=[256, 8, 32])
    parser.add_argument("--deep-depth", type=int, default=3)
    parser.add_argument("--deep-stop", type=float, default=1e-14)
    args = parser.parse_args()
    problem = fs.paper_problem()

    base_model = fs.DeepMatrixFactorization((2, 2), 3)
    base_params = fs.balanced_init(base_model, seed=0, scale=1e-3, det_sign=1)
    _, base_compile, base_warm = timed(lambda: fs.gradient_flow(
        problem, base_model, base_params, stop_loss=1e-4, progress=False), 5)
    print(f"baseline (default call, depth 3, loss 1e-4): compile {base_compile:.2f} s, "
          f"warm {base_warm:.3f} s")
    print(f"{'depth':>5s} {'stop':>7s} {'chunk':>5s} {'reached':>8s} {'det>0':>6s} "
          f"{'max|1-ratio|':>12s} {'steps (min-max)':>16s} {'warm s (median)':>15s} "
          f"{'x base':>7s} {'compile s':>9s} {'same steps':>10s}")
    cases = [(d, args.stop) for d in args.depths]
    if args.deep_depth:
        cases.append((args.deep_depth, args.deep_stop))
    for depth, stop in cases:
        model = fs.DeepMatrixFactorization((2, 2), depth)
        inits = [fs.balanced_init(model, seed=s, scale=1e-3, det_sign=1)
                 for s in range(args.seeds)]
        reference = {}
        for chunk in args.chunks:
            first, first_s = one(problem, model, inits[0], stop, chunk)
            runs = [first] + [one(problem, model, p, stop, chunk)[0] for p in inits[1:]]
            warm = [one(problem, model, p, stop, chunk)[1] for p in inits[:4]]
            compile_s = max(first_s - statistics.median(warm), 0.0)
            reached = sum(r.status == "stop_loss" for r in runs)
            det_kept = all(np.all(r.det_sign == 1) for r in runs)
            ratio = max(abs(1 - abs(r.product[-1, 0, 0]) * np.sqrt(2 * r.loss[-1]))
                        for r in runs)
            steps = [r.stats["steps"] for r in runs]
            if not reference:
                reference = {i: r for i, r in enumerate(runs)}
                same = "-"
            else:
                same = str(all(np.array_equal(r.t, reference[i].t)
                               and np.array_equal(r.states, reference[i].states)
                               for i, r in enumerate(runs)))
            med = statistics.median(warm)
            print(f"{depth:5d} {stop:7.0e} {chunk:5d} {reached:4d}/{len(runs):<3d} "
                  f"{str(det_kept):>6s} {ratio:12.2e} {min(steps):7d}-{max(steps):<8d} "
                  f"{med:15.3f} {med / base_warm:7.1f} {compile_s:9.2f} {same:>10s}")
            failed = [r for r in runs if r.status != "stop_loss"]
            for r in failed[:3]:
                print(f"      not reached: {r.status}: {r.message[:150]}")


if __name__ == "__main__":
    main()
