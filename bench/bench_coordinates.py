"""Benchmark: the three coordinate systems on Theorem 1's problem (balanced, det > 0,
product scale 1e-3), to loss 1e-12 (and 1e-8).

For each coordinate system: compile time (first call minus warm) and warm time (median of
repeats) separately, the ratio of warm times against factor coordinates run in the same
process (this machine is noisy), accepted/rejected steps, whether the run kept the sign
of det (each from its own coordinates: factors from the layers, product from slogdet of
W, svd from its state) and the loss at which the sign was first lost, and
|W11| sqrt(2 loss) at the end (Theorem 1 predicts -> 1).

    .venv/bin/python bench/bench_coordinates.py [--depths 2 3] [--repeats 3] [--stop 1e-12]
"""

from __future__ import annotations

import argparse
import math

import numpy as np
from _timing import timed  # bench/ is on sys.path when a bench runs

import flowsim as fs

NAMES = ("factors", "product", "svd")


def sign_lost_at(traj) -> str:
    lost = np.flatnonzero(traj.det_sign != traj.det_sign[0])
    return "kept" if lost.size == 0 else f"loss {traj.loss[lost[0]]:.2e}"


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--depths", type=int, nargs="+", default=[2, 3])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--stop", type=float, nargs="+", default=[1e-8, 1e-12])
    parser.add_argument("--rtol", type=float, default=1e-10)
    parser.add_argument("--atol", type=float, default=1e-14)
    parser.add_argument("--max-steps", type=int, default=100_000)
    args = parser.parse_args()
    problem = fs.paper_problem()
    print(f"{'depth':>5s} {'stop':>7s} {'coords':>8s} {'compile s':>10s} {'warm s':>8s} "
          f"{'x factors':>9s} {'steps':>7s} {'rejected':>8s} {'status':>10s} "
          f"{'final loss':>10s} {'det sign':>14s} {'|W11|sqrt(2l)':>13s}")
    for depth in args.depths:
        model = fs.DeepMatrixFactorization((2, 2), depth)
        params = fs.balanced_init(model, seed=0, scale=1e-3, det_sign=+1)
        for stop in args.stop:
            base = None
            for name in NAMES:
                traj, compile_s, warm = timed(
                    lambda name=name, model=model, params=params, stop=stop: fs.gradient_flow(
                        problem, model, params, coordinates=name, stop_loss=stop,
                        rtol=args.rtol, atol=args.atol, max_steps=args.max_steps,
                        progress=False),
                    args.repeats)
                base = warm if name == "factors" else base
                w11 = abs(traj.product[-1, 0, 0]) * math.sqrt(2 * traj.loss[-1])
                print(f"{depth:5d} {stop:7.0e} {name:>8s} {compile_s:10.2f} {warm:8.3f} "
                      f"{warm / base:9.2f} {traj.stats['steps']:7d} "
                      f"{traj.stats.get('rejected', 0):8d} {traj.status:>10s} "
                      f"{traj.loss[-1]:10.2e} {sign_lost_at(traj):>14s} {w11:13.6f}",
                      flush=True)


if __name__ == "__main__":
    main()
