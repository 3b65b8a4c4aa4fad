"""Benchmark: default calls from the deep matrix factorization literature's own start.

Arora, Cohen, Hu & Luo (2019) start from Gaussian factors of per-layer std
``init_scale^(1/L) / sqrt(n)`` (init_scale 1e-3) on the 100x100 rank-5 protocol and train
to a train MSE of 1e-6 (``MSE = 2 loss / n_observed`` in flowsim's units). This runs the
default ``gradient_flow`` call on depths 2-4, 2,000 and 5,000 observed entries and three
seeds (data seed ``s``, init seed ``1000 + s``) and prints, per run: status, flow time,
steps, gradient evaluations and Hessian-vector products, wall time, test error against the
ground truth, and the sign changes of det W recorded (``det_sign_guard="record"``, the
default on this problem) with the largest relative size ``sigma_min(W) / ||W||_F`` at
which one happened.

    .venv/bin/python bench/bench_gaussian_start.py [--depths 2 3 4] [--observed 2000 5000]
        [--seeds 0 1 2]
"""

from __future__ import annotations

import argparse

import numpy as np
from _timing import wall  # bench/ is on sys.path when a bench runs

import flowsim as fs


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--depths", type=int, nargs="+", default=[2, 3, 4])
    parser.add_argument("--observed", type=int, nargs="+", default=[2000, 5000])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--mse", type=float, default=1e-6)
    args = parser.parse_args()
    print(f"{'depth':>5s} {'obs':>5s} {'seed':>4s} {'status':>10s} {'t':>8s} {'steps':>6s} "
          f"{'evals':>7s} {'hvps':>7s} {'wall s':>7s} {'test err':>9s} {'signs':>5s} "
          f"{'max size':>9s}")
    done = 0
    total = 0
    for depth in args.depths:
        model = fs.DeepMatrixFactorization((100, 100), depth)
        for n_obs in args.observed:
            for seed in args.seeds:
                total += 1
                problem, truth = fs.low_rank_completion((100, 100), 5, n_obs, seed=seed)
                params = fs.gaussian_init(model, seed=1000 + seed,
                                          std=1e-3 ** (1 / depth) / 10)
                stop = args.mse * n_obs / 2
                traj, seconds = wall(lambda p=problem, m=model, w=params, s=stop: fs.gradient_flow(
                    p, m, w, stop_loss=s, save_at="ends", progress=False))
                events = traj.stats.get("sign_events", [])
                size = max((e["relative_size"] for e in events), default=0.0)
                w = traj.product[-1]
                error = float(np.sum((w - truth) ** 2) / np.sum(truth ** 2))
                done += traj.status == "stop_loss"
                print(f"{depth:5d} {n_obs:5d} {seed:4d} {traj.status:>10s} {traj.t[-1]:8.2f} "
                      f"{traj.stats['steps']:6d} "
                      f"{traj.stats.get('vector_field_evaluations', 0):7d} "
                      f"{traj.stats.get('jacobian_vector_products', 0):7d} {seconds:7.2f} "
                      f"{error:9.2e} {len(events):5d} {size:9.1e}", flush=True)
    print(f"{done} of {total} default calls reached train MSE {args.mse:g} "
          "(wall times include the first call's compile for each depth)")


if __name__ == "__main__":
    main()
