"""The one solve loop: chunks of steps for one member or many, and the Trajectories.

:func:`gradient_flow` integrates one set of initial factors or many. The call is planned
first (:mod:`.plan`: inputs checked, members grouped into solves by coordinates and
resolved options); each group is one :class:`Solve`. Every member runs the same
algorithm: chunks of accepted steps from an engine (:mod:`.engines`; compiled and vmapped
over lanes for the loop's solvers, stepping in Python for scipy's), the end conditions of
:mod:`.guards` after every step, their verdicts (:mod:`.verdicts`: the precision guards,
the statuses and messages), and at a stop loss the exact stop point (:mod:`.locate`).
A checkpoint (:mod:`.checkpoint`) is written after every chunk and resumed from.

A member of a batch takes exactly the steps of its single run (same carry, same
algorithm; only the arithmetic is vmapped). Members run ``options.lanes`` at a time;
when one ends, the next one from the queue takes its lane (:mod:`.runs` names these).
"""

from __future__ import annotations

import math
import time
from collections import deque
from pathlib import Path

import numpy as np

from ..dynamics import AUTO, Coordinates
from ..parameterization import Factorization
from ..runtime import Interrupted
from ..trajectory import Trajectory, trajectory_from_states
from . import checkpoint as checkpoints
from . import guards, loop, verdicts
from .engines import JaxEngine, ScipyEngine
from .locate import locate
from .options import SolverOptions
from .plan import Group, Plan, Start, plan_call
from .progress import Bar
from .runs import Run, guard_state, new_run, replace_member
from .solvers import REGISTRY

#: wall seconds a chunk aims at once its steps are slow (``Solve.pace``), and the
#: accepted steps of a run's first chunk (before its pace is known)
CHUNK_SECONDS = 2.0
FIRST_CHUNK = 16


def _has_det(model: Factorization) -> bool:
    return len(model.shape) == 2 and model.shape[0] == model.shape[1]


def gather(chunks, n: int, extra=None) -> np.ndarray:
    """The first ``n`` rows of the stacked ``chunks`` (arrays of rows), and ``extra`` as
    one more row where given, in one new array: each state is copied once (a run's saved
    states are often most of its memory)."""
    out = np.empty((n + (extra is not None), chunks[0].shape[1]), dtype=np.float64)
    filled = 0
    for chunk in chunks:
        take = min(len(chunk), n - filled)
        out[filled:filled + take] = chunk[:take]
        filled += take
        if filled == n:
            break
    if extra is not None:
        out[n] = extra
    return out


class Solve:
    """One solve of a group of members sharing coordinates and options (``single``: a
    group of one member, which runs in one lane)."""

    def __init__(self, coords: Coordinates, options: SolverOptions, save_mode: str,
                 n_save_times: int, progress, checkpoint: Path | None, single: bool):
        self.coords, self.options = coords, options
        self.spec = loop.LoopSpec(
            coords=coords, solver=options.solver, rtol=options.rtol, atol=options.atol,
            newton_rtol=options.newton_rtol, newton_atol=options.newton_atol,
            chunk_steps=options.chunk_steps, save_mode=save_mode,
            watch_sign=not coords.sign_exact and _has_det(coords.model),
            watch_conserved=coords.watches_conserved,
            escape_factor=options.escape_rtol / options.rtol)
        self.n_save_times = n_save_times
        self.progress, self.checkpoint = progress, checkpoint
        #: accepted steps per chunk now (``pace``): FIRST_CHUNK until a chunk was timed
        self.chunk_limit = min(options.chunk_steps, FIRST_CHUNK)
        if REGISTRY[options.solver].family == "loop":
            self.engine = JaxEngine(self.spec, 1 if single else options.lanes)
        else:
            self.engine = ScipyEngine(self.spec)

    def new_run(self, start: Start, save_times) -> Run:
        """The run of one member of the group (:func:`.runs.new_run`)."""
        return new_run(start.index, self.coords, self.options, start.problem, start.y0,
                       start.stop_loss, start.t_max, save_times, self.n_save_times,
                       self.chunk_limit, start.config)

    # -- finishing -------------------------------------------------------------------
    def finish(self, run: Run, engine, status: str, message: str, located=None):
        """End ``run``: its saved points (plus the located stop point, or the last
        point if it was not saved) become its Trajectory."""
        raw_t, carry_saved, extra = self._saved(run, engine)
        if located is not None:
            # the saved times increase: the points before the located one are a prefix
            t_s, y_s = located
            n_keep = max(1, int(np.searchsorted(raw_t, t_s)))
            t, states = np.append(raw_t[:n_keep], t_s), gather(run.ys, n_keep, y_s)
        else:
            n_keep = len(raw_t)
            t, states = self._with_carry_point(run, raw_t, extra)
        stats = {**(engine.counters(run) if run.carry is not None else
                    {"steps": 0, "rejected": 0}), **run.stats}
        message += verdicts.sign_events_note(run.stats.get("sign_events", []))
        run.trajectory = self._trajectory(run, t, states, status, message, stats)
        run.resume = {"n_keep": n_keep, "carry_saved": carry_saved,
                      "located": located is not None, **guard_state(run.member)}

    def checkpoint_now(self, run: Run, engine, wall: float):
        """Write the run in progress (status ``"interrupted"``) with its carry."""
        raw_t, carry_saved, extra = self._saved(run, engine)
        t, states = self._with_carry_point(run, raw_t, extra)
        stats = {**engine.counters(run), **run.stats, "wall_s": wall}
        traj = self._trajectory(run, t, states, "interrupted",
                                "checkpoint of a run in progress", stats)
        checkpoints.save(self.checkpoint, traj, run.carry,
                         {"n_keep": len(raw_t), "carry_saved": carry_saved, "located": False,
                          **guard_state(run.member)})

    @staticmethod
    def _saved(run: Run, engine):
        """``(saved t, carry_saved, extra)``: the times of the points saved so far,
        whether the carry's point is the last of them, and ``(t, y)`` of the carry's
        point where it lies past them (else ``None``). The states stay in their chunks
        until :func:`gather` copies them once."""
        raw_t, last = np.concatenate(run.ts), run.ys[-1][-1]
        t_c, y_c = engine.point(run) if run.carry is not None else (raw_t[-1], last)
        carry_saved = bool(raw_t[-1] == t_c and np.array_equal(last, y_c))
        return raw_t, carry_saved, ((t_c, y_c) if t_c > raw_t[-1] else None)

    @staticmethod
    def _with_carry_point(run: Run, raw_t, extra):
        """``(t, states)``: every saved point, and the carry's point ``extra`` appended
        where :meth:`_saved` gave one."""
        if extra is None:
            return raw_t, gather(run.ys, len(raw_t))
        return np.append(raw_t, extra[0]), gather(run.ys, len(raw_t), extra[1])

    def _trajectory(self, run: Run, t, states, status: str, message: str, stats: dict):
        return trajectory_from_states(
            self.coords, run.member.mask, run.member.target, t, states, status=status,
            message=message, stats=stats, config=run.config)

    # -- verdicts --------------------------------------------------------------------
    def ends_at_start(self, run: Run, engine, loss0: float, field0) -> bool:
        """End runs that need no integration (:func:`.verdicts.at_start`)."""
        end = verdicts.at_start(run, loss0, field0)
        if end is not None:
            self.finish(run, engine, *end)
        return end is not None

    def handle(self, run: Run, engine, code: int) -> bool:
        """Act on why a chunk ended; ``True`` while the run goes on. A stop-loss crossing
        returns ``False`` without a trajectory (located by the caller, batched)."""
        if code == guards.STOP:
            return False
        end = verdicts.verdict(self.coords, self.options, self.spec, run, engine, code)
        if end is None:
            return True
        self.finish(run, engine, *end)
        return False

    # -- stop location ---------------------------------------------------------------
    def end_stop(self, runs: list[Run], engine):
        try:
            t_s, y_s, losses = locate(runs, engine)
        except FloatingPointError as error:  # keep the crossing step
            for run in runs:
                t, _ = engine.point(run)
                self.finish(run, engine, "stop_loss", f"{error}: the run ends at the first "
                            f"accepted step past stop_loss, t={t:.10g}, loss {run.loss:.6e}")
            return
        for run, t, y, loss in zip(runs, t_s, y_s, losses):
            self.finish(run, engine, "stop_loss", verdicts.stop_message(run, t, loss),
                        located=(t, y))

    # -- the loop ----------------------------------------------------------------------
    def run(self, runs: list[Run], started: bool = False):
        """Integrate every run (each already holding its first saved point)."""
        engine = self.engine
        start_wall = time.perf_counter()
        fresh = [r for r in runs if r.carry is None and r.trajectory is None]
        if fresh:
            for run, (loss0, field0) in zip(fresh, engine.start(fresh)):
                self.ends_at_start(run, engine, loss0, field0)
        queue = deque(r for r in runs if r.trajectory is None)
        bar = Bar(runs, f"flow {self.coords.name}/{self.options.solver}", self.progress)
        running: list[Run] = []
        crossed: list[Run] = []
        try:
            while queue or running:
                while queue and len(running) < engine.width:
                    running.append(queue.popleft())
                before = sum(engine.counters(r)["steps"] for r in running)
                chunk_start = time.perf_counter()
                outs = engine.chunk(self.paced(running))
                self.pace(running, engine, before, time.perf_counter() - chunk_start)
                still = []
                for run, out in zip(running, outs):
                    if len(out.ts):
                        run.ts.append(out.ts)
                        run.ys.append(out.ys)
                    if self.handle(run, engine, out.code):
                        still.append(run)
                    elif run.trajectory is None:
                        crossed.append(run)
                running = still
                if crossed and (len(crossed) >= engine.width
                                or not (queue or running)):
                    self.end_stop(crossed, engine)
                    crossed = []
                bar.update(engine)
                if self.checkpoint is not None and running:
                    self.checkpoint_now(running[0], engine,
                                        time.perf_counter() - start_wall)
        except KeyboardInterrupt:
            # keep what was computed (status "interrupted", never a finished status) and
            # let the interrupt go on: the caller saves it and stops, nothing records an
            # unfinished run as done
            for run in running + list(queue) + crossed:
                if run.trajectory is None:
                    self.finish(run, engine, "interrupted",
                                "interrupted by the user (KeyboardInterrupt)")
            raise
        finally:
            bar.close()
        return engine

    def pace(self, runs: list[Run], engine, before: int, seconds: float) -> None:
        """Set the next chunks' length so that one takes about :data:`CHUNK_SECONDS` at
        the pace of the last (at most ``chunk_steps``): a run of slow steps still moves
        its progress bar and writes its checkpoint every few seconds."""
        done = sum(engine.counters(r)["steps"] for r in runs) - before
        if done > 0 and seconds > 0:
            per_step = seconds * len(runs) / done  # a chunk advances every lane alike
            self.chunk_limit = int(min(self.options.chunk_steps,
                                       max(1, CHUNK_SECONDS / per_step)))

    def paced(self, runs: list[Run]) -> list[Run]:
        """``runs`` with the current chunk length (lanes that join a batch included, so
        that no lane idles through a chunk)."""
        for run in runs:
            if int(run.member.chunk_limit) != self.chunk_limit:
                run.member = replace_member(run.member, chunk_limit=self.chunk_limit)
        return runs


def gradient_flow(problem, model: Factorization, params, *, coordinates: str = AUTO,
                  stop_loss=None, t_max=math.inf, save_at="steps",
                  options: SolverOptions | dict | None = None,
                  progress: bool | None = None, checkpoint: str | Path | None = None,
                  **option_overrides):
    """Integrate gradient flow, Eq. (4), from one set of initial factors or many.

    **Arguments:**

    - `problem`: what is observed (:class:`~flowsim.MatrixCompletion` or
      :class:`~flowsim.TensorCompletion`); for a batch, one problem or one per member.
    - `model`: the factorization (:class:`~flowsim.DeepMatrixFactorization`,
      :class:`~flowsim.CPFactorization`).
    - `params`: the initial factors ``(W_1, ..., W_L)``, or a list of such tuples (a
      batch: one trajectory per member, integrated ``options.lanes`` at a time).
    - `coordinates`: ``"auto"`` (default: the most reliable formulation valid for the
      model and each start, :func:`flowsim.dynamics.choose_coordinates`; the choice and
      its reason are in ``traj.config``), or ``"factors"``, ``"product"``, ``"svd"``.
    - `stop_loss`: end where the loss first reaches this value (located exactly); for a
      batch one value or one per member. Default ``None``: no stop loss (as ``solve_ivp``
      has only its ``t_bound``); ``flowsim run`` and sweeps set their own (1e-8, 1e-6).
    - `t_max`: end at this flow time (one value or one per member).
    - `save_at`: ``"steps"`` (every accepted step, default), ``"ends"`` (initial and final
      point only) or an increasing sequence of times the solver steps onto (no
      interpolation; the run then ends at the last one unless `t_max` is given).
    - `options`: a :class:`~flowsim.SolverOptions` (solver, tolerances, chunk size, step
      budget, precision policy); keyword arguments named like its fields
      (``rtol=1e-8``, ``solver="Radau"``, ...) override single fields.
    - `progress`: show a progress bar (``None``: only if the solve takes over 2 s).
    - `checkpoint`: ``.npz`` path (single runs, diffrax solvers): written after every
      chunk with the solver's whole state; a rerun of the same call resumes from it and
      ends bit for bit where the uninterrupted run ends, a finished run is returned as
      is, and a finished run is *extended* by a call that asks for more (lower
      `stop_loss`, later `t_max`, more `max_steps`). Any other run is refused.

    **Returns:** a :class:`~flowsim.Trajectory` (a list of them for a batch). A run that
    cannot follow the flow ends with a failure status and a message (for a loss of
    precision: ``"precision_lost"``, where, and what would follow the flow there); every
    point computed is kept.

    ```python
    traj = gradient_flow(paper_problem(), model, balanced_init(model), stop_loss=1e-8)
    trajs = gradient_flow(paper_problem(), model, [balanced_init(model, seed=s)
                                                   for s in range(100)], stop_loss=1e-6)
    ```
    """
    plan = plan_call(problem, model, params, coordinates=coordinates, stop_loss=stop_loss,
                     t_max=t_max, save_at=save_at, options=options,
                     option_overrides=option_overrides, checkpoint=checkpoint)
    out: list[Trajectory | None] = [None] * plan.n
    for group in plan.groups:
        for run in solve_group(group, plan, progress):
            out[run.index] = run.trajectory
    return out if plan.batch else out[0]


def interrupted(runs: list[Run], checkpoint: Path | None) -> Interrupted:
    """Save the interrupted run where it has a checkpoint; the :class:`Interrupted` that
    says so and carries the runs' trajectories so far."""
    partial = [r.trajectory for r in runs]
    run = runs[0]
    if checkpoint is None or run.trajectory is None or run.carry is None:
        return Interrupted("nothing was saved (no checkpoint file)", partial)
    checkpoints.save(checkpoint, run.trajectory, run.carry, run.resume)
    return Interrupted(f"the run so far is saved in {checkpoint}; rerun the same command "
                       "to resume it", partial)


def solve_group(group: Group, plan: Plan, progress) -> list[Run]:
    """Integrate one group of a planned call (its checkpoint read, resumed and written);
    its runs, each holding its Trajectory."""
    path = plan.checkpoint
    solve = Solve(group.coords, group.options, plan.save_mode, len(plan.save_times), progress,
                  path, single=len(group.starts) == 1)
    runs = [solve.new_run(start, plan.save_times) for start in group.starts]
    if plan.stored is not None:
        stored = checkpoints.served(path, plan.stored, runs[0].config)
        if stored is not None:
            runs[0].trajectory = stored
            return runs
        solve.engine.start(runs)
        checkpoints.restore(path, plan.stored, runs[0])
    wall0 = runs[0].stats.pop("wall_s", 0.0) if not plan.batch else 0.0
    start = time.perf_counter()
    try:
        solve.run(runs)
    except KeyboardInterrupt as exc:
        raise interrupted(runs, path) from exc
    for run in runs:
        run.trajectory.stats["wall_s"] = wall0 + time.perf_counter() - start
    if path is not None:
        checkpoints.save(path, runs[0].trajectory, runs[0].carry, runs[0].resume)
    return runs
