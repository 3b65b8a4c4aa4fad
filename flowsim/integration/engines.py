"""Engines: what advances the members of a solve by one chunk of steps.

The driver (:mod:`.driver`) holds the one chunk loop: it asks an engine to advance its
running members by a chunk, reads back why each chunk ended, and asks the engine for the
few extra things the stop locator needs (one step from a stored point, the loss and its
rate). Two engines:

- :class:`JaxEngine`: the compiled loop of :mod:`.loop`, vmapped over lanes. A single run
  is a batch of one.
- :class:`ScipyEngine`: scipy's ``OdeSolver`` classes stepping in Python with the vector
  field and its Jacobian from jax, an independent cross-check. It checks the same end
  conditions (:func:`.guards.step_code`) after every step.
"""

from __future__ import annotations

from dataclasses import dataclass

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np

from ..runtime import one_blas_thread
from . import guards, loop
from .programs import PROGRAMS
from .runs import cut_member
from .solvers import REGISTRY


def count_cut(run, steps: int, evaluations: int, products: int) -> None:
    """Add one re-integration of the stop locator to ``run.stop_location``."""
    cut = run.stop_location
    for key, value in (("cuts", 1), ("steps", steps), ("vector_field_evaluations", evaluations),
                       ("jacobian_vector_products", products)):
        cut[key] = cut.get(key, 0) + value


@dataclass
class ChunkOut:
    """One member's chunk, on the host."""

    code: int
    ts: np.ndarray
    ys: np.ndarray


def _stack(trees):
    """Per-member pytrees -> one pytree with a leading member axis."""
    return jax.tree.map(lambda *xs: np.stack([np.asarray(x) for x in xs]), *trees)


def _unstack(tree, n):
    leaves, treedef = jax.tree.flatten(tree)
    leaves = [np.asarray(v) for v in leaves]
    return [jax.tree.unflatten(treedef, [v[i] for v in leaves]) for i in range(n)]


def initial_step(y, f) -> np.float64:
    """First trial step: 1% of the state's scale over the field's, at most 1."""
    with np.errstate(over="ignore", invalid="ignore"):  # a non-finite start ends anyway
        scale = max(float(np.linalg.norm(y)), 1e-8)
        return np.float64(min(1e-2 * scale / max(float(np.linalg.norm(f)), 1e-300), 1.0))


#: the compiled pieces the engine calls, by name (the exported programs' file names)
PIECES = {loop.lanes_start_point: "start_point", loop.lanes_initial_carry: "initial_carry",
          loop.lanes_run_chunk: "run_chunk"}

#: fewest lanes a batched call is padded to (a few compiled shapes)
MIN_LANES = 16


class JaxEngine:
    """Runs :func:`.loop.run_chunk` on up to ``width`` members at once (a single run is
    one lane). A call on ``n`` members is padded (copies of the first, dropped afterwards)
    to the next power of two ``>= n`` (at least :data:`MIN_LANES`, at most ``width``;
    1 for a single run): a few compiled shapes, and the last slow members of a batch do
    not drag ``width`` lanes through every chunk."""

    def __init__(self, spec: loop.LoopSpec, width: int):
        self.spec, self.width = spec, int(width)

    def padded_width(self, n: int) -> int:
        if self.width == 1:
            return 1
        return min(self.width, max(MIN_LANES, 1 << max(n - 1, 0).bit_length()))

    def _call(self, fn, *per_member):
        """``fn(spec, *stacked)`` (through its exported program, :mod:`.programs`) on
        groups of at most ``width`` members, each padded; returns a list of per-member
        outputs."""
        n = len(per_member[0])
        out = []
        for start in range(0, n, self.width):
            group = [column[start:start + self.width] for column in per_member]
            size = len(group[0])
            pad = self.padded_width(size) - size
            stacked = [_stack(list(col) + [col[0]] * pad) for col in group]
            # one LAPACK thread: the loop's only LAPACK call is the LU of the sign watch
            # (every accepted step), where OpenBLAS's threads spin against XLA's on a busy
            # machine (docs/numerics.md, "LAPACK threads")
            with one_blas_thread():
                out += _unstack(PROGRAMS.call(PIECES[fn], fn, self.spec, tuple(stacked)),
                                size)
        return out

    def start(self, runs) -> list[tuple[float, np.ndarray]]:
        """Give each run its carry; returns ``(loss, vector field)`` at each start. The
        first trial step is computed here, in numpy, per member: a reduction compiled
        for 4+ lanes rounds differently from one compiled for 1 (measured: 1 ulp in the
        step, which the saddle escape amplifies to 1e-9), and a batched member must take
        its single run's steps."""
        points = self._call(loop.lanes_start_point, [r.y0 for r in runs],
                            [r.member for r in runs])
        dt0 = [initial_step(r.y0, np.asarray(f)) for r, (_, f) in zip(runs, points)]
        carries = self._call(loop.lanes_initial_carry, [r.y0 for r in runs], dt0,
                             [r.member for r in runs])
        for run, carry, (loss, _) in zip(runs, carries, points):
            run.carry, run.loss = carry, float(loss)
        return [(float(loss), np.asarray(f)) for loss, f in points]

    def chunk(self, runs) -> list[ChunkOut]:
        outs = self._call(loop.lanes_run_chunk, [r.carry for r in runs],
                          [r.member for r in runs])
        result = []
        for run, out in zip(runs, outs):
            run.carry, run.prev = out.carry, out.prev
            run.loss, run.rate, run.prev_loss = float(out.loss), float(out.rate), \
                float(out.prev_loss)
            n = int(out.saved)
            result.append(ChunkOut(int(out.code), np.asarray(out.ts)[:n],
                                   np.asarray(out.ys)[:n]))
        return result

    def cut(self, runs, t):
        """States, losses and ``d loss/dt`` at times ``t`` (one per run), integrated from
        each run's point before its last accepted step with the solver state stored there
        (the first trial step aims exactly at ``t``): a continuous solve cut at ``t``."""
        carries = [eqx.tree_at(lambda c: c.tnext, r.prev, np.float64(ti))
                   for r, ti in zip(runs, t)]
        members = [cut_member(r.member, ti) for r, ti in zip(runs, t)]
        outs = self._call(loop.lanes_run_chunk, carries, members)
        for run, out, ti in zip(runs, outs, t):
            work = np.asarray(out.carry.work) - np.asarray(run.prev.work)
            steps = (int(out.carry.steps) + int(out.carry.rejected)
                     - int(run.prev.steps) - int(run.prev.rejected))
            count_cut(run, steps, int(work[0]), int(work[1]))
            if int(out.code) != guards.T_MAX or float(out.carry.t) != float(ti):
                raise FloatingPointError(f"re-integration to the stop_loss time t={ti:.10g} "
                                         f"failed ({guards.CODES[int(out.code)]})")
        return (np.stack([np.asarray(o.carry.y) for o in outs]),
                np.array([float(o.loss) for o in outs]),
                np.array([float(o.rate) for o in outs]))

    @staticmethod
    def point(run) -> tuple[float, np.ndarray]:
        return float(run.carry.t), np.asarray(run.carry.y)

    @staticmethod
    def prev_point(run) -> tuple[float, np.ndarray]:
        return float(run.prev.t), np.asarray(run.prev.y)

    @staticmethod
    def counters(run) -> dict:
        out = {"steps": int(run.carry.steps), "rejected": int(run.carry.rejected)}
        # the stop locator's re-integrations are work of the run too
        cut = run.stop_location
        work = np.asarray(run.carry.work) + np.array(
            [cut.get("vector_field_evaluations", 0), cut.get("jacobian_vector_products", 0)])
        if work.any():
            out.update(vector_field_evaluations=int(work[0]),
                       jacobian_vector_products=int(work[1]))
        if cut:
            out["stop_location"] = dict(cut)
        switched = getattr(run.carry.solver_state, "switched_at", None)
        if switched is not None:  # Dopri8EXPRB43, Dopri8ROCK4: when Dopri8 handed over
            t = float(switched)
            out["stabilized_from_t"] = t if np.isfinite(t) else None
        return out

    @staticmethod
    def sign(run) -> float:
        return float(run.carry.sign)


@eqx.filter_jit
def _scipy_code(spec, y, t, sign, prev_sign, steps, prev_loss, member):
    """``(code, loss)`` of a scipy step (:func:`.guards.step_code`)."""
    carry = guards.StepContext(steps=steps, sign=prev_sign, loss=prev_loss)
    return guards.step_code(spec, spec.coords, y, t, sign, carry, member)


@eqx.filter_jit
def _watch_sign(spec, y):
    return spec.coords.watch_sign(y)


@eqx.filter_jit
def _rechart(spec, y):
    return spec.coords.rechart(y)


@dataclass
class ScipyCarry:
    t: float
    y: np.ndarray
    sign: float
    steps: int = 0
    save_index: int = 0
    solver: object = None
    counts: dict = None
    before: dict = None


class ScipyEngine:
    """scipy ``OdeSolver`` stepping, one member after the other (module doc). A solver
    object is kept between chunks; it is created afresh after a change of chart and at
    every requested save time (scipy cannot be told to step onto a time otherwise)."""

    #: members advanced per call (one after the other)
    width = 1

    def __init__(self, spec: loop.LoopSpec):
        self.spec = spec
        coords = spec.coords
        self._field = jax.jit(lambda y, m, tg: coords.vector_field(y, m, tg))
        self._jac = jax.jit(jax.jacfwd(lambda y, m, tg: coords.vector_field(y, m, tg)))

    def _make(self, run, t, y, t_bound):
        m, tg = jnp.asarray(run.member.mask), jnp.asarray(run.member.target)
        kwargs = {"rtol": self.spec.rtol, "atol": self.spec.atol}
        solver = REGISTRY[self.spec.solver]
        if solver.implicit:
            kwargs["jac"] = lambda t_, y_: np.asarray(self._jac(jnp.asarray(y_), m, tg))
        cls = solver.build(self.spec)
        return cls(lambda t_, y_: np.asarray(self._field(jnp.asarray(y_), m, tg)), float(t),
                   np.asarray(y, dtype=np.float64), float(t_bound), **kwargs)

    def _bound(self, run, carry):
        times = np.asarray(run.member.save_times)
        nxt = times[carry.save_index] if carry.save_index < len(times) else np.inf
        return min(float(run.member.t1), nxt), nxt

    def start(self, runs) -> list[tuple[float, np.ndarray]]:
        out = []
        for run in runs:
            y = np.asarray(_rechart(self.spec, jnp.asarray(run.y0)))
            run.carry = ScipyCarry(0.0, y, float(_watch_sign(self.spec, jnp.asarray(y))),
                                   counts={"nfev": 0, "njev": 0, "nlu": 0})
            loss, _ = loop.point_loss_and_rate(self.spec, jnp.asarray(run.y0), run.member)
            run.loss = float(loss)
            field = self._field(jnp.asarray(run.y0), run.member.mask, run.member.target)
            out.append((run.loss, np.asarray(field)))
        return out

    def _count(self, carry, solver, before=None):
        for key in carry.counts:
            now = int(getattr(solver, key, 0) or 0)
            carry.counts[key] += now - (before or {}).get(key, 0)

    def chunk(self, runs) -> list[ChunkOut]:
        return [self._chunk_one(run) for run in runs]

    def _chunk_one(self, run) -> ChunkOut:
        spec, carry = self.spec, run.carry
        ts, ys, code = [], [], guards.CONTINUE
        for _ in range(max(1, min(spec.chunk_steps, int(run.member.chunk_limit)))):
            bound, nxt = self._bound(run, carry)
            if carry.solver is None:
                carry.solver = self._make(run, carry.t, carry.y, bound)
                carry.before = {k: 0 for k in carry.counts}
            solver = carry.solver
            t_prev, y_prev = carry.t, carry.y
            message = solver.step()
            if solver.status == "failed":
                self._count(carry, solver, carry.before)
                run.failure = f"scipy {spec.solver}: {message}"
                code = guards.COLLAPSE
                break
            t, y = float(solver.t), solver.y.copy()
            y_new = np.asarray(_rechart(spec, jnp.asarray(y)))
            restart = not np.array_equal(y_new, y) or solver.status == "finished"
            sign = float(_watch_sign(spec, jnp.asarray(y_new))) if spec.watch_sign \
                else carry.sign
            f64 = jnp.float64
            code, loss = _scipy_code(spec, jnp.asarray(y_new), f64(t), f64(sign),
                                     f64(carry.sign), jnp.asarray(carry.steps), f64(run.loss),
                                     run.member)
            code = int(code)
            run.prev_loss, run.loss = run.loss, float(loss)
            run.prev = (t_prev, y_prev)
            carry.t, carry.y, carry.sign, carry.steps = t, y_new, sign, carry.steps + 1
            landed = solver.status == "finished" and t == nxt
            if landed:
                carry.save_index += 1
            if spec.save_mode == "steps" or landed:
                ts.append(t)
                ys.append(y_new)
            if restart:
                self._count(carry, solver, carry.before)
                carry.solver = None
            if code != guards.CONTINUE:
                break
        if carry.solver is not None:
            self._count(carry, carry.solver, carry.before)
            carry.before = {k: int(getattr(carry.solver, k, 0) or 0) for k in carry.counts}
        k = len(run.y0)
        run.rate = float(loop.point_loss_and_rate(spec, jnp.asarray(carry.y), run.member)[1])
        return ChunkOut(code, np.asarray(ts), np.asarray(ys).reshape(len(ts), k))

    def cut(self, runs, t):
        """States, losses and rates at times ``t``: a fresh scipy solve from each run's
        point before its last step (scipy cannot resume a step from stored state)."""
        ys = []
        for run, t1 in zip(runs, np.asarray(t, dtype=np.float64)):
            t0, y0 = run.prev
            if not t1 > t0:
                ys.append(np.asarray(y0))
                continue
            solver = self._make(run, t0, y0, t1)
            steps = 0
            while solver.status == "running":
                message = solver.step()
                steps += 1
                if solver.status == "failed":
                    raise FloatingPointError(
                        f"re-integration to the stop_loss time failed: {message}")
            ys.append(solver.y.copy())
            count_cut(run, steps, int(solver.nfev), 0)
        out = [loop.point_loss_and_rate(self.spec, jnp.asarray(y), r.member)
               for r, y in zip(runs, ys)]
        return (np.stack(ys), np.array([float(o[0]) for o in out]),
                np.array([float(o[1]) for o in out]))

    @staticmethod
    def point(run) -> tuple[float, np.ndarray]:
        return float(run.carry.t), np.asarray(run.carry.y)

    @staticmethod
    def prev_point(run) -> tuple[float, np.ndarray]:
        return float(run.prev[0]), np.asarray(run.prev[1])

    @staticmethod
    def counters(run) -> dict:
        out = {"steps": run.carry.steps, "rejected": 0, **run.carry.counts}
        if run.stop_location:
            out["nfev"] += run.stop_location["vector_field_evaluations"]
            out["stop_location"] = dict(run.stop_location)
        return out

    @staticmethod
    def sign(run) -> float:
        return run.carry.sign
