"""Benchmark: the exact flow into Theorem 1's regime with the default call (coordinates
"auto", which takes the sign-exact "svd" coordinates here): balanced init, det > 0,
product scale 1e-3, to loss 1e-12, depths 2-4, seeds.

For each run: compile time (first call minus warm) and warm time (median of repeats)
separately, the ratio of the warm time against a baseline run in the same process
(factor coordinates, depth 3, to loss 1e-8, gradient_flow's defaults; this machine is
noisy), accepted/rejected steps, the end status, the loss reached, whether det > 0 at
every saved point, and |W11| sqrt(2 loss) (Theorem 1: -> 1).

    .venv/bin/python bench/bench_theorem_regime.py [--depths 2 3 4] [--seeds 0 1 2 3]
"""

from __future__ import annotations

import argparse
import math

import numpy as np
from _timing import timed  # bench/ is on sys.path when a bench runs

import flowsim as fs


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--depths", type=int, nargs="+", default=[2, 3, 4])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3])
    parser.add_argument("--stop", type=float, default=1e-12)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--chunk-steps", type=int, default=fs.SolverOptions.chunk_steps)
    args = parser.parse_args()
    problem = fs.paper_problem()

    base_model = fs.DeepMatrixFactorization((2, 2), 3)
    base_params = fs.balanced_init(base_model, seed=0, scale=1e-3, det_sign=1)
    _, base_compile, base_warm = timed(lambda: fs.gradient_flow(
        problem, base_model, base_params, coordinates="factors", stop_loss=1e-8,
        progress=False), args.repeats)
    print(f"baseline (factors, depth 3, loss 1e-8): compile {base_compile:.2f} s, "
          f"warm {base_warm:.3f} s")
    print(f"{'depth':>5s} {'seed':>4s} {'compile s':>9s} {'warm s':>7s} {'x base':>7s} "
          f"{'steps':>6s} {'rejected':>8s} {'status':>10s} {'loss':>10s} {'det>0':>6s} "
          f"{'|W11|sqrt(2l)':>13s}")
    for depth in args.depths:
        model = fs.DeepMatrixFactorization((2, 2), depth)
        for seed in args.seeds:
            params = fs.balanced_init(model, seed=seed, scale=1e-3, det_sign=1)
            traj, compile_s, warm = timed(lambda m=model, p=params: fs.gradient_flow(
                problem, m, p, stop_loss=args.stop, max_steps=20_000,
                chunk_steps=args.chunk_steps, progress=False), args.repeats)
            loss = float(traj.loss[-1])
            ratio = abs(traj.product[-1, 0, 0]) * math.sqrt(2 * loss)
            print(f"{depth:5d} {seed:4d} {compile_s:9.2f} {warm:7.3f} {warm / base_warm:7.2f} "
                  f"{traj.stats['steps']:6d} {traj.stats['rejected']:8d} {traj.status:>10s} "
                  f"{loss:10.3e} {str(bool(np.all(traj.det_sign == 1))):>6s} {ratio:13.6f}")


if __name__ == "__main__":
    main()
