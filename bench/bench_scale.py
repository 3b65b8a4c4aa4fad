"""Benchmark: the exact flow at the field's sizes (issue 12), against gradient descent.

Part A, the protocol of the deep matrix factorization literature (Arora, Cohen, Hu & Luo
2019): a 100x100 rank-5 ground truth (entries of unit RMS), 2,000 observed entries drawn
uniformly, depth 3, balanced init of product scale 1e-3, to loss 1e-6 (flowsim's units:
1/2 sum of squared residuals). In one process (this machine is noisy: only ratios mean
much):

- the default flow call (``coordinates="auto"`` -> factors, ``solver="auto"`` ->
  Dopri8EXPRB43): its first call (compile included) and ``--warm-repeats`` warm calls
  before descent and as many after (the ratio takes their median);
- ``gradient_descent(lr=1e-3)`` to the same loss, and a plain jitted loop of the same
  update (``W_l <- W_l - lr dL/dW_l`` on the three layers, the same stop rule): the
  overhead of flowsim's descent engine;
- accuracy along the path: the default call saved at ``t = 0.25, 0.5, 1, 2, 5, 30, 100``
  and on to loss 1e-6, against Dopri8 at rtol 1e-12 on the same times (``--reference``;
  the test suite checks the same against scipy), and the Richardson extrapolation
  ``2 W(lr/2) - W(lr)`` of descent at ``t = T`` (descent's deviation from the flow is
  O(lr));
- depths 2 and 4, default call.

Part B: the scaling table of issue 25: depth 3, balanced init 1e-3, to loss 1e-6,
d = 100, 200, 500, 1000, rank 5 below d = 500 and 10 from 500, 20% of the entries
observed (uniform, seed 0), the default flow call. Each size runs in its own subprocess
(its peak RSS is its own): the flow warm (its loop compiled by a 4-step call first), its
steps, gradient evaluations, Hessian-vector products and ms per operation (either), then
``gradient_descent(lr=1e-3)`` to the same loss. The flow is stopped at a wall cap
(``--flow-cap``, 30 min by default): a capped flow reports the flow time, loss and
operations it reached and an extrapolated total (operations from a power law in d through
the two largest finished sizes, times its own ms per operation). Descent runs to the loss
where its pace (from two short runs) says it finishes within ``--gd-cap`` (30 min by
default), else for about ``--gd-probe`` seconds, and its time is estimated: its measured
iterations per second times the ``k ~ T / lr`` iterations the flow's stop time ``T`` asks
for. Estimates are marked ``e``. ``--rows FILE`` keeps the rows across
invocations (sizes run with different caps, one table).

    .venv/bin/python bench/bench_scale.py [--part A B] [--richardson-t 30]
    .venv/bin/python bench/bench_scale.py --part B [--sizes 100 200 500 1000]
        [--flow-cap 1800] [--gd-cap 1800] [--rows rows.jsonl]
"""

from __future__ import annotations

import argparse
import json
import math
import os
import resource
import signal
import subprocess
import sys
import time
from functools import partial

import jax
import jax.numpy as jnp
import numpy as np
from _timing import wall  # bench/ is on sys.path when a bench runs

import flowsim as fs
from flowsim.integration.driver import Solve
from flowsim.runtime import Interrupted


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
    load = [os.getloadavg()[0]]
    warms = []
    for _ in range(args.warm_repeats):
        warm, t_warm = wall(lambda: flow(problem, model, params, stop_loss=1e-6))
        warms.append(t_warm)
    load.append(os.getloadavg()[0])
    o = warm.config["options"]
    print(f"  flow (default call: {warm.config['coordinates']}, {o['solver']}, rtol "
          f"{o['rtol']:g}, atol {o['atol']:g}): {warm.status}, first call {t_first:.2f} s "
          f"(compile included), warm {', '.join(f'{w:.2f}' for w in warms)} s; "
          f"{warm.stats['steps']} steps "
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
    load.append(os.getloadavg()[0])
    # the warm flow again after descent: the load of a shared machine drifts in minutes
    after = [wall(lambda: flow(problem, model, params, stop_loss=1e-6))[1]
             for _ in range(args.warm_repeats)]
    load.append(os.getloadavg()[0])
    print(f"  gradient_descent(lr=1e-3): {gd.status}, {int(gd.steps[-1])} iterations, "
          f"{t_gd:.1f} s; plain jitted loop: {int(k_plain)} iterations, {t_plain:.1f} s; "
          f"engine overhead {t_gd / t_plain:.2f}x; the warm flow again "
          f"{', '.join(f'{w:.2f}' for w in after)} s")
    # descent's one long call averages the load over its minutes; the flow's few-second
    # calls do not, so the ratio takes their median
    t_flow = float(np.median(warms + after))
    print(f"  ratio descent / flow: {t_gd / t_first:.1f}x (flow's first call, compile "
          f"included), {t_gd / t_flow:.1f}x (median of the {len(warms + after)} warm calls; "
          f"{t_gd / max(warms + after):.1f}x to {t_gd / min(warms + after):.1f}x); "
          f"plain loop / flow warm {t_plain / t_flow:.1f}x; "
          f"per evaluation: flow {1e3 * t_flow / warm.stats['vector_field_evaluations']:.3f}"
          f" ms, descent {1e3 * t_gd / int(gd.steps[-1]):.3f} ms per iteration; 1-min load "
          f"before/after the warm flows, after descent, after the warm flows again "
          + "/".join(f"{v:.1f}" for v in load))
    if not args.accuracy:
        return
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


def rank_for(d):
    """The scaling table's ground-truth rank (issue 25): 5 below d = 500, 10 from 500."""
    return 5 if d < 500 else 10


class WallCap:
    """``with WallCap(seconds):`` interrupts a flow's step loop after ``seconds``
    (SIGALRM): the loop takes it as a Ctrl-C between two compiled chunks (a few seconds
    each) and raises ``Interrupted`` with the run so far. Outside the loop (compiling,
    building the trajectory) the alarm is ignored: a ``KeyboardInterrupt`` there would
    lose the run."""

    def __init__(self, seconds):
        self.seconds = seconds

    def _fire(self, signum, frame):
        while frame is not None:
            if frame.f_code is Solve.run.__code__:
                raise KeyboardInterrupt
            frame = frame.f_back

    def __enter__(self):
        if self.seconds and math.isfinite(self.seconds):
            self.old = signal.signal(signal.SIGALRM, self._fire)
            signal.setitimer(signal.ITIMER_REAL, self.seconds)
        return self

    def __exit__(self, *exc):
        if self.seconds and math.isfinite(self.seconds):
            signal.setitimer(signal.ITIMER_REAL, 0)
            signal.signal(signal.SIGALRM, self.old)
        return False


def capped(fn, seconds):
    """``(result, wall s, finished)``: ``fn()`` under a wall cap; an interrupted run gives
    the run so far (``Interrupted.partial``)."""
    start = time.perf_counter()
    try:
        with WallCap(seconds):
            out = fn()
        finished = True
    except Interrupted as exc:
        out = exc.partial[0] if isinstance(exc.partial, list) else exc.partial
        finished = False
    return out, time.perf_counter() - start, finished


def peak_rss_mb():
    """This process's peak resident set size so far (MiB; Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def bare_gradient_ms(model, problem, params, seconds=3.0):
    """ms per call of the flow's vector field alone, jitted (what an evaluation costs
    outside the step loop)."""
    from flowsim.dynamics import FactorCoordinates
    coords = FactorCoordinates(model)
    y = jnp.asarray(coords.from_factors(params))
    mask, target = jnp.asarray(problem.mask), jnp.asarray(problem.target)
    field = jax.jit(coords.vector_field)
    jax.block_until_ready(field(y, mask, target))
    n, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        y = y + 1e-3 * field(y, mask, target)  # noqa: PLW2901 (a chain: no reuse)
        n += 1
    jax.block_until_ready(y)
    return 1e3 * (time.perf_counter() - start) / n


def measure_size(d, args):
    """One row of the scaling table, in this process (part_b runs each size in a fresh
    subprocess, so that one size's peak memory and compiled programs do not mask the
    next's)."""
    rank, n_obs = rank_for(d), int(0.2 * d * d)
    problem, _ = fs.low_rank_completion((d, d), rank, n_obs, seed=0)
    model = fs.DeepMatrixFactorization((d, d), 3)
    params = fs.balanced_init(model, seed=0, scale=1e-3)
    row = {"d": d, "rank": rank, "observed": n_obs, "P": model.n_params,
           "load_start": os.getloadavg()[0]}
    # the compiled loop, by a 4-step run (max_steps is traced: the run below reuses it)
    _, row["compile_s"] = wall(lambda: flow(problem, model, params, stop_loss=1e-6,
                                            max_steps=4))
    traj, t, finished = capped(lambda: flow(problem, model, params, stop_loss=1e-6),
                               args.flow_cap)
    row.update(flow_s=t, flow_finished=finished, status=traj.status,
               T=float(traj.t[-1]), loss=float(traj.loss[-1]),
               steps=int(traj.stats["steps"]), rejected=int(traj.stats["rejected"]),
               evals=int(traj.stats.get("vector_field_evaluations") or 0),
               hvps=int(traj.stats.get("jacobian_vector_products") or 0),
               switched_at_t=traj.stats.get("stabilized_from_t"),
               flow_rss_mb=peak_rss_mb(), load_flow=os.getloadavg()[0])
    row["bare_ms"] = bare_gradient_ms(model, problem, params)
    # descent: compiled by a 3-iteration call, its pace from short runs; to the
    # same loss where that pace says it finishes within the cap, else a run of about
    # min(cap, --gd-probe) seconds gives its iterations per second (the table estimates)
    lr = 1e-3
    descend = lambda k=10_000_000: fs.gradient_descent(  # noqa: E731
        problem, model, params, lr, stop_loss=1e-6, max_iterations=k,
        saves_per_decade=1, progress=False)
    descend(k=3)
    # seconds per iteration from two short runs (their difference: a call's fixed costs,
    # its start and the saved iterates' observables, cancel)
    k1, k2 = 20, 20
    _, t1 = wall(lambda: descend(k=k1))
    t2 = t1
    while t2 - t1 < 2.0:
        k2 *= 4
        _, t2 = wall(lambda k=k2: descend(k=k))
    pace = (t2 - t1) / (k2 - k1)
    row["gd_pace_ms"] = 1e3 * pace
    k_needed = row["T"] / lr if finished else math.inf
    if k_needed * pace <= args.gd_cap:
        gd, t_gd = wall(descend)
    else:
        k_probe = max(k2, int(min(args.gd_cap, args.gd_probe) / pace))
        gd, t_gd = wall(lambda: descend(k=k_probe))
    k_done = int(gd.steps[-1])
    row.update(gd_s=t_gd, gd_finished=gd.status == "stop_loss", gd_status=gd.status,
               gd_iterations=k_done, gd_loss=float(gd.loss[-1]),
               # marginal iterations per second (the 20-iteration call's costs taken off)
               gd_ips=(k_done - k1) / max(t_gd - t1, 1e-9), rss_mb=peak_rss_mb(),
               load_end=os.getloadavg()[0])
    return row


def power_law(rows, key, d):
    """``key`` at size ``d`` from the power law through the two largest finished sizes
    below ``d`` (``None`` if there are fewer than two)."""
    known = sorted((r["d"], r[key]) for r in rows if r["flow_finished"] and r["d"] < d)
    if len(known) < 2:
        return None
    (d0, v0), (d1, v1) = known[-2:]
    slope = math.log(v1 / v0) / math.log(d1 / d0)
    return v1 * (d / d1) ** slope


def operations(row) -> int:
    """Gradient evaluations plus Hessian-vector products of a row (older rows: none)."""
    return row["evals"] + row.get("hvps", 0)


def print_table(rows, lr=1e-3):
    """The scaling table of measured rows (one per size), estimates marked."""
    print(f"{'d':>5s} {'rank':>4s} {'P':>9s} {'flow s':>14s} {'t reached':>10s} "
          f"{'loss':>8s} {'steps':>6s} {'evals':>7s} {'hvps':>7s} {'ms/op':>8s} "
          f"{'bare ms':>8s} {'RSS MiB':>8s} "
          f"{'GD s':>14s} {'GD iter':>16s} {'GD/flow':>8s} {'load':>10s}")
    notes = []
    for r in sorted(rows, key=lambda r: r["d"]):
        # an operation: a gradient evaluation or a Hessian-vector product (both counted)
        ms = 1e3 * r["flow_s"] / max(operations(r), 1)
        flow_total, T = r["flow_s"], r["T"]
        if r["flow_finished"]:
            flow_col = f"{r['flow_s']:.1f}"
        else:
            evals_est = power_law([dict(x, ops=operations(x)) for x in rows], "ops", r["d"])
            T_est = power_law(rows, "T", r["d"])
            if evals_est is not None:
                evals_est = max(evals_est, operations(r))
                flow_total = 1e-3 * ms * evals_est
                flow_col = f"{r['flow_s']:.0f}+ ~{flow_total:.0f}e"
                notes.append(f"d={r['d']}: flow capped at {r['flow_s']:.0f} s (t = {r['T']:.4g}, "
                             f"loss {r['loss']:.3g}, {operations(r)} operations); total "
                             f"estimated as {evals_est:.0f} operations (power law in d "
                             f"through the two largest finished sizes) x {ms:.1f} ms/op "
                             f"= {flow_total:.0f} s; stop time T ~ {T_est:.4g} (same law)")
            else:
                flow_col, flow_total = f"{r['flow_s']:.0f}+ capped", None
            T = T_est
        if r["gd_status"] == "nonfinite":
            gd_col, it_col, gd_total = "diverged", f"{r['gd_iterations']}", None
            notes.append(f"d={r['d']}: descent at lr 1e-3 diverged (non-finite) at "
                         f"iteration {r['gd_iterations']}")
        elif r["gd_finished"]:
            gd_col, it_col, gd_total = f"{r['gd_s']:.1f}", f"{r['gd_iterations']}", r["gd_s"]
        elif T is not None:
            k = T / lr
            gd_total = k / r["gd_ips"]
            gd_col, it_col = f"~{gd_total:.0f}e", f"~{k:.3g}e"
            notes.append(f"d={r['d']}: descent run {r['gd_s']:.0f} s, "
                         f"{r['gd_iterations']} iterations (loss {r['gd_loss']:.3g}, "
                         f"{r['gd_ips']:.1f} it/s); needs k ~ T/lr = {k:.3g} iterations: "
                         f"~{gd_total:.0f} s estimated")
        else:
            gd_col, it_col, gd_total = "-", "-", None
        ratio = (f"{gd_total / flow_total:.1f}" + ("" if r["gd_finished"]
                 and r["flow_finished"] else "e")) if gd_total and flow_total else "-"
        t_col = f"{r['T']:.4g}" + ("" if r["flow_finished"] else "*")
        print(f"{r['d']:5d} {r['rank']:4d} {r['P']:9d} {flow_col:>14s} {t_col:>10s} "
              f"{r['loss']:8.2g} {r['steps']:6d} {r['evals']:7d} {r.get('hvps', 0):7d} "
              f"{ms:8.2f} {r['bare_ms']:8.2f} "
              f"{r['flow_rss_mb']:8.0f} {gd_col:>14s} {it_col:>16s} {ratio:>8s} "
              f"{r['load_start']:4.1f}-{r['load_end']:.1f}")
    print("  (flow s: warm, the loop compiled by a 4-step call first; 'e': estimated; "
          "'*': the flow time a capped run reached; RSS: peak of the size's own process "
          "after the flow; bare ms: one jitted gradient alone; load: 1-min load average "
          "at the size's start and end)")
    for note in notes:
        print("  " + note)


def part_b(args):
    print(f"B. scaling, depth 3, balanced init 1e-3, to loss 1e-6; rank {rank_for(100)} "
          f"for d < 500, {rank_for(500)} from 500; 20% of entries observed (uniform, "
          f"seed 0); default flow call; descent lr 1e-3 (caps: flow {args.flow_cap:g} s, "
          f"descent {args.gd_cap:g} s per size)")
    rows = []
    if args.rows and os.path.exists(args.rows):
        with open(args.rows) as f:
            rows = [json.loads(line) for line in f if line.strip()]
    for d in args.sizes:
        cmd = [sys.executable, __file__, "--one-size", str(d), "--flow-cap",
               str(args.flow_cap), "--gd-cap", str(args.gd_cap), "--gd-probe",
               str(args.gd_probe)]
        out = subprocess.run(cmd, capture_output=True, text=True, check=False)
        if out.returncode != 0:
            print(f"  d={d}: failed (exit {out.returncode}):\n{out.stderr[-2000:]}")
            continue
        row = json.loads(out.stdout.strip().splitlines()[-1])
        rows = [r for r in rows if r["d"] != d] + [row]
        print(f"  d={d}: {json.dumps(row)}", flush=True)
        if args.rows:
            with open(args.rows, "w") as f:
                f.writelines(json.dumps(r) + "\n" for r in rows)
    print_table(rows)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--part", nargs="+", default=["A", "B"])
    parser.add_argument("--sizes", type=int, nargs="+", default=[100, 200, 500, 1000])
    parser.add_argument("--flow-cap", type=float, default=1800.0,
                        help="part B: wall seconds a size's flow may run (then: estimated)")
    parser.add_argument("--gd-cap", type=float, default=1800.0,
                        help="part B: wall seconds a size's descent may run (then: estimated)")
    parser.add_argument("--gd-probe", type=float, default=60.0,
                        help="part B: seconds of descent that measure its pace where it "
                             "would not finish within --gd-cap")
    parser.add_argument("--rows", default=None,
                        help="part B: JSON-lines file of measured rows, kept across "
                             "invocations (a size measured again replaces its row)")
    parser.add_argument("--one-size", type=int, default=None, help=argparse.SUPPRESS)
    parser.add_argument("--richardson-t", type=float, default=30.0)
    parser.add_argument("--warm-repeats", type=int, default=3,
                        help="warm flow calls before descent, and again after (part A)")
    parser.add_argument("--accuracy", action=argparse.BooleanOptionalAction, default=True,
                        help="part A: the accuracy along the path, Richardson, depths 2, 4 "
                             "(--no-accuracy: the timings only)")
    parser.add_argument("--reference", action=argparse.BooleanOptionalAction, default=True,
                        help="part A: the path against Dopri8 at rtol 1e-12 (~10,000 steps)")
    args = parser.parse_args()
    if args.one_size is not None:  # part B's subprocess for one size: its row as JSON
        print(json.dumps(measure_size(args.one_size, args)))
        return
    if "A" in args.part:
        part_a(args)
    if "B" in args.part:
        part_b(args)


if __name__ == "__main__":
    main()
