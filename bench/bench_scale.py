"""Benchmark: the exact flow at the field's sizes (issue 12), against gradient descent.

Part A, the protocol of the deep matrix factorization literature (Arora, Cohen, Hu & Luo
2019): a 100x100 rank-5 ground truth (entries of unit RMS), 2,000 observed entries drawn
uniformly, depth 3, balanced init of product scale 1e-3, to loss 1e-6 (flowsim's units:
1/2 sum of squared residuals). In one process (this machine is noisy: only ratios mean
much):

- the default flow call (``coordinates="auto"`` -> factors, ``solver="auto"`` ->
  Dopri8ROCK4): its first call (compile included) and a warm call;
- ``gradient_descent(lr=1e-3)`` to the same loss, and a plain jitted loop of the same
  update (``W_l <- W_l - lr dL/dW_l`` on the three layers, the same stop rule): the
  overhead of flowsim's descent engine;
- accuracy along the path: the default call saved at ``t = 0.25, 0.5, 1, 2, 5, 30, 100``
  and on to loss 1e-6, against Dopri8 at rtol 1e-12 on the same times (``--reference``;
  the test suite checks the same against scipy), and the Richardson extrapolation
  ``2 W(lr/2) - W(lr)`` of descent at ``t = T`` (descent's deviation from the flow is
  O(lr));
- depths 2 and 4, default call.

Part B: a scaling table, d = 10, 20, 50, 100, 200 (20% observed, rank min(5, d // 4)):
wall time, steps and evaluations of the flow, time and iterations of descent (lr 1e-3,
up to ``--gd-max-d``).

    .venv/bin/python bench/bench_scale.py [--part A B] [--gd-max-d 100] [--richardson-t 30]
"""

from __future__ import annotations

import argparse
from functools import partial

import jax
import jax.numpy as jnp
import numpy as np
from _timing import wall  # bench/ is on sys.path when a bench runs

import flowsim as fs


@partial(jax.jit, static_argnames=("max_iterations",))
def plain_descent(params, mask, target, lr, stop_loss, max_iterations):
    """The update of gradient descent on a depth-3 factorization, nothing else: loss and
    gradient by autodiff of ``1/2 |mask (W3 W2 W1 - B)|^2``, stop at ``loss <= stop``."""
    def loss(ps):
        r = mask * (ps[2] @ ps[1] @ ps[0] - target)
        return 0.5 * jnp.sum(r * r)

    def cond(c):
        k, _, value = c
        return (value > stop_loss) & (k < max_iterations)

    def body(c):
        k, ps, _ = c
        value, grads = jax.value_and_grad(loss)(ps)
        ps = tuple(p - lr * g for p, g in zip(ps, grads))
        return k + 1, ps, value

    k, ps, value = jax.lax.while_loop(cond, body, (0, params, loss(params)))
    return k, ps, value


def flow(problem, model, params, **kw):
    kw.setdefault("save_at", "ends")
    return fs.gradient_flow(problem, model, params, progress=False, **kw)


def rel(a, b):
    return float(np.abs(a - b).max() / np.abs(b).max())


def part_a(args):
    problem, _ = fs.low_rank_completion((100, 100), 5, 2000, seed=0)
    model = fs.DeepMatrixFactorization((100, 100), 3)
    params = fs.balanced_init(model, seed=0, scale=1e-3)
    print("A. 100x100, rank 5, 2,000 observed, depth 3, balanced 1e-3, to loss 1e-6")
    first, t_first = wall(lambda: flow(problem, model, params, stop_loss=1e-6))
    warm, t_warm = wall(lambda: flow(problem, model, params, stop_loss=1e-6))
    o = warm.config["options"]
    print(f"  flow (default call: {warm.config['coordinates']}, {o['solver']}, rtol "
          f"{o['rtol']:g}, atol {o['atol']:g}): {warm.status}, first call {t_first:.2f} s "
          f"(compile included), warm {t_warm:.2f} s; {warm.stats['steps']} steps "
          f"({warm.stats['rejected']} rejected), "
          f"{warm.stats.get('vector_field_evaluations')} gradient evaluations, "
          f"{warm.stats.get('jacobian_vector_products')} Hessian-vector products; "
          f"t = {warm.t[-1]:.6g}")
    gd, t_gd = wall(lambda: fs.gradient_descent(problem, model, params, 1e-3,
                                                  stop_loss=1e-6, progress=False))
    p0 = tuple(jnp.asarray(w) for w in params)
    mask, target = jnp.asarray(problem.mask), jnp.asarray(problem.target)
    (k_plain, _, _), t_plain = wall(lambda: jax.block_until_ready(plain_descent(
        p0, mask, target, 1e-3, 1e-6, max_iterations=10_000_000)))
    print(f"  gradient_descent(lr=1e-3): {gd.status}, {int(gd.steps[-1])} iterations, "
          f"{t_gd:.1f} s; plain jitted loop: {int(k_plain)} iterations, {t_plain:.1f} s; "
          f"engine overhead {t_gd / t_plain:.2f}x")
    print(f"  ratio descent / flow: {t_gd / t_first:.1f}x (flow's first call, compile "
          f"included), {t_gd / t_warm:.1f}x (warm); plain loop / flow first call "
          f"{t_plain / t_first:.1f}x")
    times = [0.25, 0.5, 1.0, 2.0, 5.0, 30.0, 100.0]
    path = flow(problem, model, params, save_at=times, stop_loss=1e-6, t_max=1e4)
    if args.reference:
        ref = flow(problem, model, params, save_at=list(path.t[1:]), solver="Dopri8",
                   rtol=1e-12, atol=1e-15, max_steps=10 ** 6)
        errors = [np.linalg.norm(a - b) / np.linalg.norm(b)
                  for a, b in zip(path.product[1:], ref.product[1:])]
        print("  default call along the path vs Dopri8 at rtol 1e-12 "
              f"({ref.stats['steps']} steps): " + ", ".join(
                  f"t={t:.4g}: {e:.1e}" for t, e in zip(path.t[1:], errors))
              + f"; largest {max(errors):.1e}")
    t_star = args.richardson_t
    lrs = (2e-3, 1e-3)
    ws = []
    for lr in lrs:
        k = int(round(t_star / lr))
        d = fs.gradient_descent(problem, model, params, lr, max_iterations=k, progress=False)
        ws.append(d.product[-1])
    extrapolated = 2 * ws[1] - ws[0]
    at = flow(problem, model, params, save_at=[t_star])
    print(f"  Richardson at t = {t_star:g} (lr {lrs[0]:g}, {lrs[1]:g}): descent lr 1e-3 is "
          f"{rel(ws[1], at.product[-1]):.2e} from the flow, lr 2e-3 "
          f"{rel(ws[0], at.product[-1]):.2e}, the extrapolation "
          f"{rel(extrapolated, at.product[-1]):.2e}")
    for depth in (2, 4):
        m = fs.DeepMatrixFactorization((100, 100), depth)
        p = fs.balanced_init(m, seed=0, scale=1e-3)
        traj, t = wall(lambda m=m, p=p: flow(problem, m, p, stop_loss=1e-6))
        print(f"  depth {depth}: {traj.status}, {t:.2f} s (first call), "
              f"{traj.stats['steps']} steps, t = {traj.t[-1]:.6g}")


def part_b(args):
    print("B. scaling, depth 3, balanced 1e-3, 20% observed, to loss 1e-6")
    print(f"{'d':>4s} {'P':>7s} {'flow s':>7s} {'steps':>6s} {'evals':>7s} "
          f"{'ms/eval':>8s} {'GD s':>7s} {'GD iter':>8s} {'GD/flow':>8s}")
    for d in args.sizes:
        rank = min(5, max(1, d // 4))
        problem, _ = fs.low_rank_completion((d, d), rank, int(0.2 * d * d), seed=0)
        model = fs.DeepMatrixFactorization((d, d), 3)
        params = fs.balanced_init(model, seed=0, scale=1e-3)
        flow(problem, model, params, stop_loss=1e-6, max_steps=4)
        traj, t = wall(lambda p=problem, m=model, w=params: flow(p, m, w, stop_loss=1e-6))
        evals = traj.stats.get("vector_field_evaluations") or 0
        row = (f"{d:4d} {model.n_params:7d} {t:7.2f} {traj.stats['steps']:6d} {evals:7d} "
               f"{1e3 * t / max(evals, 1):8.3f}")
        if d <= args.gd_max_d:
            gd, t_gd = wall(lambda p=problem, m=model, w=params: fs.gradient_descent(
                p, m, w, 1e-3, stop_loss=1e-6, progress=False))
            row += f" {t_gd:7.1f} {int(gd.steps[-1]):8d} {t_gd / t:8.1f}"
        else:
            row += f" {'-':>7s} {'-':>8s} {'-':>8s}"
        print(row + ("" if traj.status == "stop_loss" else f"  ({traj.status})"))


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--part", nargs="+", default=["A", "B"])
    parser.add_argument("--sizes", type=int, nargs="+", default=[10, 20, 50, 100, 200])
    parser.add_argument("--gd-max-d", type=int, default=100)
    parser.add_argument("--richardson-t", type=float, default=30.0)
    parser.add_argument("--reference", action=argparse.BooleanOptionalAction, default=True,
                        help="part A: the path against Dopri8 at rtol 1e-12 (~10,000 steps)")
    args = parser.parse_args()
    if "A" in args.part:
        part_a(args)
    if "B" in args.part:
        part_b(args)


if __name__ == "__main__":
    main()
