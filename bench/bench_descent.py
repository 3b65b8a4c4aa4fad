"""Benchmark: the compiled GD engine against a plain NumPy loop, and GD against the exact
flow for reaching loss 1e-4 at depth 3 (balanced init, product scale 1e-3, det > 0).

Everything is timed in this one process, so the printed ratios compare like with like on
a shared, noisy machine. Compile (first call) and warm times are reported separately.

    .venv/bin/python bench/bench_descent.py [--numpy-steps 20000] [--engine-steps 2000000]
"""

from __future__ import annotations

import argparse

import numpy as np
from _timing import wall  # bench/ is on sys.path when a bench runs

import flowsim as fs


def numpy_gd(params, mask, target, lr, steps):
    """Baseline: full-batch GD on the factors in a plain Python/NumPy loop."""
    ws = [np.array(w) for w in params]
    depth = len(ws)
    for _ in range(steps):
        # prefix products P_l = W_l ... W_1 and suffix products S_l = W_L ... W_l
        prefix = [ws[0]]
        for w in ws[1:]:
            prefix.append(w @ prefix[-1])
        suffix = [ws[-1]]
        for w in ws[-2::-1]:
            suffix.append(suffix[-1] @ w)
        suffix = suffix[::-1]
        g = mask * (prefix[-1] - target)
        eye = np.eye(ws[0].shape[0])
        grads = [(suffix[l + 1] if l + 1 < depth else eye).T @ g
                 @ (prefix[l - 1] if l > 0 else eye).T for l in range(depth)]
        ws = [w - lr * gw for w, gw in zip(ws, grads)]
    return ws


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--numpy-steps", type=int, default=20_000)
    parser.add_argument("--engine-steps", type=int, default=2_000_000)
    args = parser.parse_args()

    problem = fs.paper_problem()
    model = fs.DeepMatrixFactorization((2, 2), depth=3)
    params = fs.balanced_init(model, seed=0, scale=1e-3, det_sign=+1)
    lr = 3e-3
    print(f"depth 3, 2x2, balanced init scale 1e-3, lr {lr:g}, float64 unless noted\n")

    # -- steps per second ---------------------------------------------------------------
    ref, t_numpy = wall(lambda: numpy_gd(params, problem.mask, problem.target, lr,
                                          args.numpy_steps))
    numpy_rate = args.numpy_steps / t_numpy
    print(f"NumPy loop: {args.numpy_steps} steps in {t_numpy:.3f} s -> "
          f"{numpy_rate:,.0f} steps/s ({1e6 / numpy_rate:.2f} us/step)")
    rates = {}
    for dtype in ("float64", "float32"):
        def run(n, dtype=dtype):
            return fs.gradient_descent(problem, model, params, lr, max_iterations=n,
                                       dtype=dtype, progress=False)
        _, first = wall(lambda: run(10))   # compile + 10 steps
        _, small = wall(lambda: run(10))   # warm fixed cost of one call
        traj, warm = wall(lambda: run(args.engine_steps))
        rates[dtype] = args.engine_steps / warm
        print(f"engine {dtype}: first call {first:.2f} s (compile), warm call of 10 steps "
              f"{small * 1e3:.1f} ms; {args.engine_steps} steps warm {warm:.3f} s -> "
              f"{rates[dtype]:,.0f} steps/s ({1e9 / rates[dtype]:.0f} ns/step), "
              f"{len(traj)} points saved")
        if dtype == "float64":
            check = fs.gradient_descent(problem, model, params, lr,
                                        max_iterations=args.numpy_steps, progress=False)
            diff = max(np.abs(a[-1] - b).max() for a, b in zip(check.factors, ref))
            print(f"  engine vs NumPy loop after {args.numpy_steps} steps: max |diff| = "
                  f"{diff:.1e}")
    print(f"RATIO engine/NumPy steps per second: float64 {rates['float64'] / numpy_rate:.0f}x, "
          f"float32 {rates['float32'] / numpy_rate:.0f}x\n")

    # -- time to loss 1e-4: GD (millions of steps) vs the exact flow ---------------------
    gd, t_gd = wall(lambda: fs.gradient_descent(problem, model, params, lr, stop_loss=1e-4,
                                                 progress=False))
    print(f"GD to loss 1e-4 (warm): {gd.steps[-1]:,} steps in {t_gd:.2f} s, "
          f"|W11| = {abs(gd.product[-1, 0, 0]):.6f}")
    flows = {}
    for coords in [c for c in ("factors", "svd") if c in fs.COORDINATES]:
        def flow(coords=coords):
            return fs.gradient_flow(problem, model, params, coordinates=coords, stop_loss=1e-4,
                                    progress=False)
        _, first = wall(flow)
        traj, warm = wall(flow)
        flows[coords] = warm
        print(f"flow ({coords}, Kvaerno5) to loss 1e-4: first call {first:.2f} s (compile), "
              f"warm {warm:.3f} s, {traj.stats['steps']} steps, "
              f"|W11| = {abs(traj.product[-1, 0, 0]):.6f}")
    for coords, warm in flows.items():
        print(f"RATIO time to loss 1e-4, GD (warm) / flow {coords} (warm): {t_gd / warm:.1f}x")


if __name__ == "__main__":
    main()
