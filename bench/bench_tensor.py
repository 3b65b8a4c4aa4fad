"""Benchmark: the whole Figure 2 order-3 grid (8x8x8, R = 64, n in {50..511}, init std
1e-2 and 1e-3, 5 trials) with flowsim, against a plain NumPy loop of the reference
protocol on the same runs, in the same process (this machine is shared and noisy, so
only the ratio is meaningful).

Parts:

1. Compile vs warm: the first grid run (compiles the chunk solve) timed cold and again
   warm, for the flow and for the NumPy loop.
2. The whole tf grid, warm: every ``("tf", n, std, trial)`` run solved by
   :func:`flowsim.experiments.figure2.solve_one` (exact gradient flow,
   ``solver="auto"``: the matrix-free RKC2, to MSE ``stop_mse``, 1e-10 by default) and by
   :func:`numpy_reference_gd` (adaptive global step, stop at MSE < 1e-6 at 3 checks in a
   row every 100 iterations, App. F.2), from the same init. Totals, ratio, median errors.
3. The rank estimates of the grid (the same function whichever method produced the
   tensor): tf results and memorizers, at rtol 1e-2 and at the reference criterion.
4. With ``--engines``: one stiff run (n = 200, init 1e-2, trial 0) through
   :func:`flowsim.gradient_flow` (every step saved) vs the grid's engine
   (``gradient_flow(..., save_at="ends")``); the stiff alternatives: scipy
   BDF and LSODA with the dense jax Jacobian (through ``gradient_flow``), Kvaerno5 with
   its dense Newton for 8 steps, and Kvaerno5 with a matrix-free Newton-Krylov (lineax
   GMRES, JVPs only; a bare ``diffrax.diffeqsolve``, which ``gradient_flow`` cannot
   configure) to the end.

    .venv/bin/python bench/bench_tensor.py [--trials 5] [--n 50 100 ...] [--engines]
"""

from __future__ import annotations

import argparse
import statistics

import numpy as np
from _timing import wall  # bench/ is on sys.path when a bench runs

import flowsim as fs
from flowsim.experiments import figure2 as fig2
from flowsim.parameterization import cp_subscripts
from flowsim.tensor import CPFactorization, cp_gaussian_init
from flowsim.tensor.descent import mse_to_loss


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


def _numpy_run(config, data, key):
    _, n, std, trial = key
    model = CPFactorization(config.shape, config.cp_rank)
    params = cp_gaussian_init(model, seed=trial + 1, std=std)
    return numpy_reference_gd(data.truth, data.problem(n).mask, params)


def compile_and_warm(config, data, key):
    print(f"\n1. compile vs warm, run {key}")
    for name, fn in (("flow", lambda: fig2.solve_one(config, data, key)),
                     ("numpy", lambda: _numpy_run(config, data, key))):
        _, cold = wall(fn)
        _, warm = wall(fn)
        print(f"   {name:6s} first call {cold:6.2f} s, warm {warm:6.2f} s, compile ~"
              f"{max(cold - warm, 0):.2f} s")


def whole_grid(config, data):
    keys = [k for k in config.runs() if k[0] == "tf"]
    print(f"\n2. whole tf grid, warm: {len(keys)} runs ({len(config.n_values)} n x "
          f"{len(config.init_stds)} stds x {config.trials} trials)")
    print(f"{'n':>5s} {'std':>6s} {'flow s':>8s} {'steps':>7s} {'numpy s':>8s} "
          f"{'numpy it':>9s} {'flow err':>9s} {'numpy err':>9s}")
    rows, tensors = [], []
    for key in keys:
        (w, record), flow_s = wall(lambda key=key: fig2.solve_one(config, data, key))
        (w_np, iters, _), numpy_s = wall(lambda key=key: _numpy_run(config, data, key))
        err = fig2._relative_error(w, data.truth)
        err_np = fig2._relative_error(w_np, data.truth)
        rows.append((key[2], flow_s, numpy_s, err, err_np, record["status"]))
        tensors.append(w)
        print(f"{key[1]:5d} {key[2]:6.0e} {flow_s:8.2f} {record['steps']:7d} {numpy_s:8.2f} "
              f"{iters:9d} {err:9.1e} {err_np:9.1e}", flush=True)
    flow = sum(r[1] for r in rows)
    numpy_total = sum(r[2] for r in rows)
    for std in config.init_stds:
        sub = [r for r in rows if r[0] == std]
        print(f"   init {std:g}: flow {sum(r[1] for r in sub):.0f} s, NumPy "
              f"{sum(r[2] for r in sub):.0f} s; median error flow "
              f"{statistics.median(r[3] for r in sub):.1e} (MSE {config.stop_mse:g}), NumPy "
              f"{statistics.median(r[4] for r in sub):.1e} (MSE < 1e-6, 3 checks)")
    bad = [r for r in rows if r[5] != "stop_loss"]
    print(f"   TOTAL flow {flow:.0f} s, NumPy reference GD {numpy_total:.0f} s, ratio "
          f"flow/NumPy {flow / numpy_total:.2f}; flows not at stop_mse: {len(bad)}")
    return tensors, flow, numpy_total


def rank_estimates(config, data, tensors):
    print("\n3. rank estimates (the same function for any method)")
    _, tf_s = wall(lambda: [fig2.evaluate(config, data, w, {}) for w in tensors])
    linear = [fig2.solve_one(config, data, k)[0] for k in config.runs() if k[0] == "linear"]
    _, lin_s = wall(lambda: [fig2.evaluate(config, data, w, {}) for w in linear])
    print(f"   tf results: {len(tensors)} tensors {tf_s:.0f} s; memorizers: {len(linear)} "
          f"tensors {lin_s:.0f} s")
    return tf_s + lin_s


def engines(config, data):
    n, std = 200, 1e-2
    problem = data.problem(n)
    model = CPFactorization(config.shape, config.cp_rank)
    params = cp_gaussian_init(model, seed=1, std=std)
    kw = dict(stop_loss=mse_to_loss(config.stop_mse, n), rtol=config.rtol, atol=config.atol,
              progress=False)
    print(f"\n4. engines, one stiff run (n={n}, init {std:g}, trial 0), {model.n_params} "
          "unknowns")
    for name, fn in (
            ("gradient_flow (all steps)", lambda **o: fs.gradient_flow(
                problem, model, params, solver="Tsit5", **kw, **o)),
            ("end points only", lambda **o: fs.gradient_flow(
                problem, model, params, solver="Tsit5", save_at="ends", **kw, **o))):
        fn(max_steps=256)
        traj, warm = wall(lambda fn=fn: fn(max_steps=config.max_steps))
        print(f"   Tsit5 {name:26s} {warm:7.2f} s, {traj.stats['steps']} steps "
              f"({warm / traj.stats['steps'] * 1e3:.2f} ms/step)")
    traj, cold = wall(lambda: fs.gradient_flow(problem, model, params, solver="Kvaerno5",
                                                 max_steps=8, chunk_steps=4, **kw))
    _, warm = wall(lambda: fs.gradient_flow(problem, model, params, solver="Kvaerno5",
                                              max_steps=8, chunk_steps=4, **kw))
    print(f"   Kvaerno5 (dense Newton) 8 steps: first {cold:.1f} s, warm {warm:.1f} s "
          f"({warm / 8:.2f} s/step)")
    for solver in ("BDF", "LSODA"):
        traj, warm = wall(lambda solver=solver: fs.gradient_flow(
            problem, model, params, solver=solver, max_steps=config.max_steps, **kw))
        print(f"   scipy {solver} (dense jax Jacobian): {warm:.1f} s, {traj.stats}")
    krylov(problem, model, params, kw["stop_loss"], config)


def krylov(problem, model, params, stop_loss, config):
    """Kvaerno5 + optimistix Newton + lineax GMRES on the CP flow, bare diffrax."""
    import diffrax
    import jax
    import jax.numpy as jnp
    import lineax as lx
    import optimistix as optx

    from flowsim.dynamics import CPFactorCoordinates

    coords = CPFactorCoordinates(model)
    mask, target = jnp.asarray(problem.mask), jnp.asarray(problem.target)
    term = diffrax.ODETerm(lambda t, y, args: coords.vector_field(y, mask, target))
    event = diffrax.Event(lambda t, y, args, **k: coords.loss(y, mask, target) <= stop_loss)
    solver = diffrax.Kvaerno5(root_finder=optx.Newton(
        rtol=1e-6, atol=1e-8, linear_solver=lx.GMRES(rtol=1e-6, atol=1e-10, restart=60,
                                                     stagnation_iters=60, max_steps=600)))

    @jax.jit
    def solve(y0):
        sol = diffrax.diffeqsolve(
            term, solver, 0.0, 1e7, 0.1, y0, saveat=diffrax.SaveAt(t1=True),
            stepsize_controller=diffrax.PIDController(rtol=config.rtol, atol=config.atol),
            event=event, max_steps=config.max_steps, throw=False)
        return sol.ys[-1], sol.stats["num_accepted_steps"]

    y0 = jnp.asarray(coords.from_factors(params))
    _, cold = wall(lambda: jax.block_until_ready(solve(y0)))
    (y, steps), warm = wall(lambda: jax.block_until_ready(solve(y0)))
    print(f"   Kvaerno5 + Newton-GMRES (bare diffrax): first {cold:.1f} s, warm {warm:.1f} s, "
          f"{int(steps)} steps ({warm / int(steps) * 1e3:.0f} ms/step)")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=5)
    parser.add_argument("--n", type=int, nargs="+", dest="n_values")
    parser.add_argument("--no-ranks", action="store_true", help="skip part 3")
    parser.add_argument("--engines", action="store_true", help="run part 4")
    args = parser.parse_args()
    config = fig2.Figure2Config(order=3, trials=args.trials, n_values=args.n_values)
    data = fig2.dataset(config)
    print(f"order-3 grid: {config.to_dict()}")
    compile_and_warm(config, data, ("tf", config.n_values[0], config.init_stds[-1], 0))
    tensors, flow, numpy_total = whole_grid(config, data)
    if not args.no_ranks:
        ranks = rank_estimates(config, data, tensors)
        print(f"\nwhole grid as `flowsim figure2` runs it: flows {flow:.0f} s + rank "
              f"estimates {ranks:.0f} s = {(flow + ranks) / 60:.1f} min; NumPy reference "
              f"GD {numpy_total:.0f} s (+ the same rank estimates: "
              f"{(numpy_total + ranks) / 60:.1f} min)")
    if args.engines:
        engines(config, data)


if __name__ == "__main__":
    main()
