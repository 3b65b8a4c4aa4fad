"""The one solve loop: chunks of steps for one member or many, end conditions, the exact
stop point, precision verdicts, checkpoints, and the Trajectories.

:func:`gradient_flow` integrates one set of initial factors or many. Every member runs the
same algorithm: chunks of accepted steps from an engine (:mod:`.engines`; compiled and
vmapped over lanes for diffrax solvers, stepping in Python for scipy's), the end
conditions of :mod:`.guards` after every step, and at the end

- ``stop_loss``: the crossing is located by Newton's method on ``log loss(t) - log
  stop_loss`` with the exact ``d loss / dt``; each iterate is one step of the solver from
  the last accepted point before the crossing with the solver state stored there, i.e.
  exactly a continuous solve cut at that time (never dense interpolation, measured off by
  up to 5e-5 relative);
- a change of the sign of ``det W`` or a drift of a conserved quantity: the precision
  verdict of :mod:`.guards`.

A member of a batch takes exactly the steps of its single run (same carry, same
algorithm; only the arithmetic is vmapped). Members run ``options.lanes`` at a time;
when one ends, the next one from the queue takes its lane.
"""

from __future__ import annotations

import math
import time
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path

import jax.numpy as jnp
import numpy as np
from tqdm.auto import tqdm

from ..dynamics import AUTO, Coordinates, choose_coordinates, is_balanced, make_coordinates
from ..parameterization import CPFactorization, DeepMatrixFactorization, Factorization
from ..problem import EntryCompletion, MatrixCompletion, TensorCompletion
from ..runtime import Interrupted
from ..trajectory import Trajectory, trajectory_from_states
from . import checkpoint as checkpoints
from . import guards, loop
from .engines import JaxEngine, ScipyEngine
from .options import JAX_SOLVERS, SolverOptions, make_options, parse_save_at

#: wall seconds a chunk aims at once its steps are slow (``Solve.pace``), and the
#: accepted steps of a run's first chunk (before its pace is known)
CHUNK_SECONDS = 2.0
FIRST_CHUNK = 16

#: where the stop locator's Newton iteration stops (``|log loss - log stop_loss|``)
STOP_LOG_TOL = 1e-13


@dataclass(eq=False)
class Run:
    """Book-keeping of one member."""

    index: int
    y0: np.ndarray
    member: loop.Member
    stop_loss: float | None
    t_max: float
    config: dict
    ts: list = field(default_factory=list)
    ys: list = field(default_factory=list)
    carry: object = None
    prev: object = None
    loss: float = math.nan
    rate: float = math.nan
    prev_loss: float = math.nan
    stats: dict = field(default_factory=dict)
    failure: str | None = None
    trajectory: Trajectory | None = None
    resume: dict | None = None


def _check_problem(problem, model, name="problem"):
    if not isinstance(problem, EntryCompletion):
        raise TypeError(f"{name} must be a MatrixCompletion or TensorCompletion, "
                        f"got {type(problem).__name__}")
    kind = MatrixCompletion if isinstance(model, DeepMatrixFactorization) else TensorCompletion
    if not isinstance(problem, kind) or problem.shape != model.shape:
        raise ValueError(f"{name} must be a {kind.__name__} with shape {model.shape} (the "
                         f"model's), got a {type(problem).__name__} with shape "
                         f"{problem.shape}")


def _check_limits(stop_loss, t_max, name_suffix=""):
    if stop_loss is not None and (isinstance(stop_loss, bool) or not isinstance(
            stop_loss, (int, float, np.floating)) or not (stop_loss > 0
                                                          and math.isfinite(stop_loss))):
        raise ValueError(f"stop_loss{name_suffix} must be a finite number > 0 or None, "
                         f"got {stop_loss!r}")
    if isinstance(t_max, bool) or not isinstance(t_max, (int, float, np.floating)) \
            or not t_max > 0:
        raise ValueError(f"t_max{name_suffix} must be a number > 0 (inf allowed), "
                         f"got {t_max!r}")


def _is_batch(params) -> bool:
    """A list of factor tuples (many members), rather than one factor tuple."""
    return isinstance(params, list) and len(params) > 0 and all(
        isinstance(p, (tuple, list)) for p in params)


def _per_member(name: str, value, n: int, batch: bool) -> list:
    if batch and isinstance(value, (list, tuple, np.ndarray)) and not isinstance(
            value, EntryCompletion):
        if len(value) != n:
            raise ValueError(f"{name} must be one value or one per member ({n}), "
                             f"got {len(value)}")
        return list(value)
    return [value] * n


def _model_kind(model: Factorization) -> str:
    return "cp" if isinstance(model, CPFactorization) else "matrix"


def _follow_hint(coords: Coordinates, balanced: bool) -> str:
    """Which coordinates would follow the flow where ``coords`` lost the sign of det."""
    model = coords.model
    if (balanced and isinstance(model, DeepMatrixFactorization)
            and tuple(model.shape) == (2, 2) and model.depth >= 2):
        return "coordinates='svd' follow the flow there (the sign of det W is exact in them)"
    if balanced:
        return ("the exact flow keeps the sign of det W from a balanced start (Lemma 5); "
                "flowsim's sign-exact coordinates ('svd') exist for 2x2 products only, so "
                "follow this flow in extended precision (flowsim.extended_precision) or "
                "stop at a higher loss")
    return ("from an unbalanced start only extended precision resolves it "
            "(flowsim.extended_precision)")


class Solve:
    """One solve of a group of members sharing coordinates and options."""

    def __init__(self, coords: Coordinates, options: SolverOptions, save_mode: str,
                 n_save_times: int, progress, checkpoint: Path | None):
        self.coords, self.options = coords, options
        self.spec = loop.LoopSpec(
            coords=coords, solver=options.solver, rtol=options.rtol, atol=options.atol,
            newton_rtol=options.newton_rtol, newton_atol=options.newton_atol,
            chunk_steps=options.chunk_steps, save_mode=save_mode,
            watch_sign=not coords.sign_exact and _has_det(coords.model),
            watch_conserved=coords.watches_conserved)
        self.n_save_times = n_save_times
        self.progress, self.checkpoint = progress, checkpoint
        #: accepted steps per chunk now (``pace``): FIRST_CHUNK until a chunk was timed
        self.chunk_limit = min(options.chunk_steps, FIRST_CHUNK)

    def engine_for(self, runs):
        """The engine of this solve (made once)."""
        if getattr(self, "engine", None) is None:
            if self.options.solver in JAX_SOLVERS:
                self.engine = JaxEngine(self.spec, 1 if len(runs) == 1 else self.options.lanes)
            else:
                self.engine = ScipyEngine(self.spec)
        return self.engine

    # -- members ---------------------------------------------------------------------
    def make_run(self, index, problem, y0, stop_loss, t_max, save_times, config) -> Run:
        o = self.options
        times = np.full(max(self.n_save_times, 0), np.inf)
        times[:len(save_times)] = save_times
        member = loop.Member(
            mask=np.asarray(problem.mask, dtype=np.float64),
            target=np.asarray(problem.target, dtype=np.float64),
            t1=np.float64(t_max if math.isfinite(t_max) else 1e300),
            stop=np.float64(-1.0 if stop_loss is None else stop_loss),
            max_abs=np.float64(o.max_abs), max_steps=np.int64(o.max_steps),
            drift_tol=np.float64(o.conserved_rtol), rise_tol=np.float64(o.loss_rise_rtol),
            sign_check=np.bool_(True),
            conserved0=np.asarray(self.coords.conserved(jnp.asarray(y0))),
            save_times=times, chunk_limit=np.int64(self.chunk_limit))
        return Run(index, y0, member, stop_loss, t_max, config, ts=[np.zeros(1)],
                   ys=[y0[None, :]], stats={"det_crossings": [], "precision_events": []})

    # -- finishing -------------------------------------------------------------------
    def finish(self, run: Run, engine, status: str, message: str, located=None):
        """End ``run``: its saved points (plus the located stop point, or the last
        point if it was not saved) become its Trajectory."""
        raw_t, raw_y, carry_saved, t, states = self._points(run, engine)
        if located is not None:
            t_s, y_s = located
            keep = raw_t < t_s
            keep[0] = True
            t, states = (np.append(raw_t[keep], t_s),
                         np.concatenate([raw_y[keep], y_s[None, :]]))
            n_keep = int(keep.sum())
        else:
            n_keep = len(raw_t)
        stats = {**(engine.counters(run) if run.carry is not None else
                    {"steps": 0, "rejected": 0}), **run.stats}
        run.trajectory = self._trajectory(run, t, states, status, message, stats)
        run.resume = {"n_keep": n_keep, "carry_saved": carry_saved,
                      "located": located is not None, **_guard_state(run.member)}

    def checkpoint_now(self, run: Run, engine, wall: float):
        """Write the run in progress (status ``"interrupted"``) with its carry."""
        raw_t, _, carry_saved, t, states = self._points(run, engine)
        stats = {**engine.counters(run), **run.stats, "wall_s": wall}
        traj = self._trajectory(run, t, states, "interrupted",
                                "checkpoint of a run in progress", stats)
        checkpoints.save(self.checkpoint, traj, run.carry,
                         {"n_keep": len(raw_t), "carry_saved": carry_saved, "located": False,
                          **_guard_state(run.member)})

    @staticmethod
    def _points(run: Run, engine):
        """``(saved t, saved states, carry_saved, t, states)``: the points saved so far,
        whether the carry's point is the last of them, and the saved points with the
        carry's point appended where it lies past them."""
        raw_t, raw_y = np.concatenate(run.ts), np.concatenate(run.ys)
        t_c, y_c = engine.point(run) if run.carry is not None else (raw_t[-1], raw_y[-1])
        carry_saved = bool(raw_t[-1] == t_c and np.array_equal(raw_y[-1], y_c))
        t, states = raw_t, raw_y
        if t_c > raw_t[-1]:
            t, states = np.append(t, t_c), np.concatenate([states, y_c[None, :]])
        return raw_t, raw_y, carry_saved, t, states

    def _trajectory(self, run: Run, t, states, status: str, message: str, stats: dict):
        return trajectory_from_states(
            self.coords, run.member.mask, run.member.target, t, states, status=status,
            message=message, stats=stats, config=run.config)

    # -- verdicts --------------------------------------------------------------------
    def precision_event(self, run: Run, engine, kind: str, detail: str) -> bool:
        """Record a loss of precision; ``True`` when the run must end."""
        t, _ = engine.point(run)
        loss = run.loss
        message = (f"precision lost at t={t:.6g} (loss {loss:.3e}, step "
                   f"{engine.counters(run)['steps']}) in coordinates="
                   f"{self.coords.name!r}: {detail}")
        run.stats["precision_events"].append({"kind": kind, "t": t, "loss": loss,
                                              "message": message})
        if self.options.on_precision_loss == "stop":
            run.failure = message + ". Every point computed is kept; pass " \
                "on_precision_loss='continue' to go on regardless."
            return True
        # continued on request: this guard is not watched again for this member
        field = {"det_sign": ("sign_check", np.bool_(False)),
                 "conserved": ("drift_tol", np.float64(np.inf)),
                 "loss_rose": ("rise_tol", np.float64(np.inf))}[kind]
        run.member = _replace_member(run.member, **dict([field]))
        return False

    def sign_verdict(self, run: Run, engine) -> bool:
        """A change of sign of det W at the last step: the flow's own crossing (go on) or
        rounding (a precision event). ``True`` when the run must end."""
        t_b, y_b = engine.point(run)
        t_a, y_a = engine.prev_point(run)
        tol = (self.options.rtol, self.options.atol)
        res_a, res_b = self.coords.resolution(y_a, *tol), self.coords.resolution(y_b, *tol)
        sign_b = engine.sign(run)
        if min(res_a, res_b) >= guards.RESOLVED_DECADES:
            run.stats["det_crossings"].append(t_b)
            return False
        balanced = bool(run.config.get("balanced_start"))
        detail = (f"the sign of det W changed from {-sign_b:+.0f} to {sign_b:+.0f} between "
                  f"t={t_a:.6g} and t={t_b:.6g}, where sigma_min(W) stood only "
                  f"{min(res_a, res_b):.1f} decades above the error level of W in these "
                  f"coordinates (float64 rounding or rtol * |W| + atol, whichever is larger; "
                  f"a crossing of det W = 0 by the flow needs {guards.RESOLVED_DECADES:g}); "
                  f"{_follow_hint(self.coords, balanced)}")
        return self.precision_event(run, engine, "det_sign", detail)

    def drift_verdict(self, run: Run, engine) -> bool:
        _, y = engine.point(run)
        drift = float(guards.conserved_drift(self.coords, jnp.asarray(y),
                                             jnp.asarray(run.member.conserved0)))
        what = ("W_(l+1)^T W_(l+1) - W_l W_l^T" if isinstance(self.coords.model,
                                                           DeepMatrixFactorization)
                else "the differences of the CP components' squared norms")
        detail = (f"the conserved quantity {what} drifted by {drift:.2e} of its scale "
                  f"(conserved_rtol={self.options.conserved_rtol:g}): the integration no "
                  f"longer follows the flow to that accuracy; tighten rtol/atol (now "
                  f"{self.options.rtol:g}/{self.options.atol:g})")
        return self.precision_event(run, engine, "conserved", detail)

    def rise_verdict(self, run: Run, engine) -> bool:
        t_a, _ = engine.prev_point(run)
        t_b, _ = engine.point(run)
        detail = (f"the loss rose from {run.prev_loss:.6e} to {run.loss:.6e} between "
                  f"t={t_a:.6g} and t={t_b:.6g} (loss_rise_rtol="
                  f"{self.options.loss_rise_rtol:g}); gradient flow never raises the loss, "
                  f"so the integration no longer follows it here (the residuals are at the "
                  f"precision of W's entries in these coordinates, or the step error "
                  f"exceeds them; tighter rtol/atol may help)")
        return self.precision_event(run, engine, "loss_rose", detail)

    # -- stop location ---------------------------------------------------------------
    def locate(self, runs: list[Run], engine, max_iter: int = 8):
        """Stop points of ``runs`` whose last step crossed their stop loss (module doc),
        vectorized over the runs: ``(t, y, loss)`` rows."""
        stop = np.array([r.stop_loss for r in runs], dtype=np.float64)
        t_a = np.array([engine.prev_point(r)[0] for r in runs])
        t_b = np.array([engine.point(r)[0] for r in runs])
        y = np.stack([engine.point(r)[1] for r in runs])
        loss = np.array([r.loss for r in runs])
        f_a = np.log(np.array([r.prev_loss for r in runs]) / stop)
        f_b = np.log(loss / stop)
        lo, hi = t_a.copy(), t_b.copy()
        differ = f_a != f_b
        t = np.where(differ, t_a + (t_b - t_a) * f_a / np.where(differ, f_a - f_b, 1.0), t_b)
        active = np.ones(len(runs), dtype=bool)
        rate = np.array([r.rate for r in runs])
        for _ in range(max_iter):
            cut = active & (t < t_b)
            if cut.any():
                idx = np.flatnonzero(cut)
                y[idx], loss[idx], rate[idx] = engine.cut([runs[i] for i in idx], t[idx])
            f = np.log(loss / stop)
            # converged on the stop side (loss <= stop_loss), within STOP_LOG_TOL
            active &= ~((f <= 0) & (f > -STOP_LOG_TOL))
            lo = np.where(active & (f > 0), t, lo)
            hi = np.where(active & ~(f > 0), t, hi)
            mid = 0.5 * (lo + hi)
            with np.errstate(divide="ignore", invalid="ignore"):
                # Newton on log loss; just above the stop, aim a hair past it
                push = np.where((f > 0) & (f < STOP_LOG_TOL), 2.0, 1.0)
                t_new = np.where(rate < 0, t - push * f * loss / rate, mid)
            t_new = np.where((lo < t_new) & (t_new < hi), t_new, mid)
            active &= ~(np.abs(t_new - t) <= 1e-15 * np.abs(t))
            t = np.where(active, t_new, t)
            if not active.any():
                break
        return t, y, loss

    def end_stop(self, runs: list[Run], engine):
        try:
            t_s, y_s, losses = self.locate(runs, engine)
        except FloatingPointError as error:  # keep the crossing step
            for run in runs:
                t, _ = engine.point(run)
                self.finish(run, engine, "stop_loss", f"{error}: the run ends at the first "
                            f"accepted step past stop_loss, t={t:.10g}, loss {run.loss:.6e}")
            return
        for run, t, y, loss in zip(runs, t_s, y_s, losses):
            self.finish(run, engine, "stop_loss",
                        f"loss reached stop_loss={run.stop_loss:.3e} at t={t:.10g} (located "
                        f"by Newton on log-loss: loss {loss:.10e} there)", located=(t, y))

    # -- the loop ----------------------------------------------------------------------
    def run(self, runs: list[Run], started: bool = False):
        """Integrate every run (each already holding its first saved point)."""
        engine = self.engine_for(runs)
        start_wall = time.perf_counter()
        fresh = [r for r in runs if r.carry is None and r.trajectory is None]
        if fresh:
            for run, (loss0, field0) in zip(fresh, engine.start(fresh)):
                self.ends_at_start(run, engine, loss0, field0)
        queue = deque(r for r in runs if r.trajectory is None)
        single = len(runs) == 1
        bar = self._bar(runs, single)
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
                self._update_bar(bar, runs, single, engine)
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
                run.member = _replace_member(run.member,
                                             chunk_limit=np.int64(self.chunk_limit))
        return runs

    def ends_at_start(self, run: Run, engine, loss0: float, field0) -> bool:
        """End runs that need no integration: non-finite, already below stop_loss, or
        a stationary point of the flow."""
        y0 = run.y0
        if not (np.all(np.isfinite(y0)) and np.isfinite(loss0)
                and np.all(np.isfinite(field0))):
            self.finish(run, engine, "nonfinite", "loss or vector field is not finite at "
                        "the initial state (values too large for float64?)")
            return True
        if run.stop_loss is not None and loss0 <= run.stop_loss:
            self.finish(run, engine, "stop_loss", f"loss {loss0:.6e} <= stop_loss="
                        f"{run.stop_loss:.3e} at the initial state (t=0)")
            return True
        if not np.any(field0):
            if math.isfinite(run.t_max):
                run.ts.append(np.array([run.t_max]))
                run.ys.append(y0[None, :])
                self.finish(run, engine, "t_max", f"the initial state is a stationary point "
                            f"of the flow (vector field exactly 0): W(t) = W(0) up to "
                            f"t_max={run.t_max:g}")
            else:
                self.finish(run, engine, "stationary", "the initial state is a stationary "
                            "point of the flow (vector field exactly 0, e.g. zero factors "
                            "at depth >= 2): the flow stays there for all t, so "
                            + ("stop_loss is never reached" if run.stop_loss is not None
                               else "there is nothing to integrate"))
            return True
        return False

    def handle(self, run: Run, engine, code: int) -> bool:
        """Act on why a chunk ended; ``True`` while the run goes on. A stop-loss crossing
        returns ``False`` without a trajectory (located by the caller, batched)."""
        t, y = engine.point(run)
        loss = run.loss
        if code == guards.CONTINUE:
            return True
        verdict = {guards.SIGN: self.sign_verdict, guards.DRIFT: self.drift_verdict,
                   guards.ROSE: self.rise_verdict}.get(code)
        if verdict is not None:  # a precision guard: go on, or end "precision_lost"
            if not verdict(run, engine):
                return True
            self.finish(run, engine, "precision_lost", run.failure)
            return False
        if code == guards.STOP:
            return False
        if code == guards.T_MAX:
            if t < run.t_max:  # a requested save time, not t_max itself
                return True
            self.finish(run, engine, "t_max", f"reached t_max={run.t_max:g} (loss {loss:.3e})")
        elif code == guards.NORM:
            big = float(np.max(np.abs(np.asarray(self.coords.product(jnp.asarray(y))))))
            self.finish(run, engine, "norm_bound", f"max|W| = {big:.3e} reached max_abs="
                        f"{self.options.max_abs:g} at t={t:.6g} (loss {loss:.3e})")
        elif code == guards.NONFINITE:
            self.finish(run, engine, "nonfinite", f"non-finite state at t={t:.6g}")
        elif code == guards.MAX_STEPS:
            self.finish(run, engine, "max_steps", f"max_steps={self.options.max_steps} "
                        f"accepted steps reached at t={t:.6g} (loss {loss:.3e})")
        else:  # COLLAPSE
            why = run.failure or (f"the step size collapsed at t={t:.6g} (loss {loss:.3e}): "
                                  f"no step accepted in {8 * self.options.chunk_steps} tries")
            self.finish(run, engine, "solver_failure", why)
        return False

    # -- progress ----------------------------------------------------------------------
    def _bar(self, runs, single):
        desc = f"flow {self.coords.name}/{self.options.solver}"
        delay = 0.0 if self.progress else 2.0
        if single:
            run = runs[0]
            self._loss0 = run.loss if np.isfinite(run.loss) and run.loss > 0 else 1.0
            stop = run.stop_loss
            self._decades = (math.log10(self._loss0 / stop)
                             if stop is not None and self._loss0 > stop > 0 else 1.0)
            return tqdm(total=round(self._decades, 2), unit="dec", delay=delay,
                        disable=self.progress is False, desc=desc, leave=False)
        return tqdm(total=len(runs), unit="run", delay=delay, disable=self.progress is False,
                    desc=desc + " (batch)", leave=False)

    def _update_bar(self, bar, runs, single, engine):
        if single:
            run = runs[0]
            if run.carry is None:
                return
            t, _ = engine.point(run)
            cur = run.loss
            if run.stop_loss is not None and cur > 0:
                bar.n = round(min(self._decades, max(0.0, math.log10(self._loss0 / cur))), 2)
            bar.set_postfix_str(f"t={t:.3g} loss={cur:.3g}", refresh=False)
            bar.update(0)
        else:
            bar.n = sum(r.trajectory is not None for r in runs)
            bar.update(0)


def _interrupted(runs: list[Run], checkpoint) -> Interrupted:
    """Save the interrupted run where it has a checkpoint; the :class:`Interrupted` that
    says so and carries the runs' trajectories so far."""
    partial = [r.trajectory for r in runs]
    run = runs[0]
    if checkpoint is None or run.trajectory is None or run.carry is None:
        return Interrupted("nothing was saved (no checkpoint file)", partial)
    checkpoints.save(Path(checkpoint), run.trajectory, run.carry, run.resume)
    return Interrupted(f"the run so far is saved in {checkpoint}; rerun the same command "
                       "to resume it", partial)


def _has_det(model: Factorization) -> bool:
    return len(model.shape) == 2 and model.shape[0] == model.shape[1]


def _guard_state(member: loop.Member) -> dict:
    """The guards a member still watches (switched off after a continued event)."""
    return {"drift_tol": float(member.drift_tol), "rise_tol": float(member.rise_tol),
            "sign_check": bool(member.sign_check)}


def _replace_member(member: loop.Member, **changes) -> loop.Member:
    return loop.Member(**{**{k: getattr(member, k) for k in loop.Member.__annotations__},
                          **changes})


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
      batch one value or one per member.
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
    if not isinstance(model, Factorization):
        raise TypeError(f"model must be a DeepMatrixFactorization or CPFactorization, "
                        f"got {type(model).__name__}")
    options = make_options(options, option_overrides)
    batch = _is_batch(params)
    members = list(params) if batch else [params]
    n = len(members)
    problems = _per_member("problem", problem, n, batch)
    stops = _per_member("stop_loss", stop_loss, n, batch)
    t_maxes = _per_member("t_max", t_max, n, batch)
    save_mode, save_times = parse_save_at(save_at)
    for i, (p, s, tm) in enumerate(zip(problems, stops, t_maxes)):
        suffix = f"[{i}]" if batch and n > 1 else ""
        _check_problem(p, model, "problem" + (suffix if isinstance(problem, list) else ""))
        _check_limits(s, tm, suffix)
    if not isinstance(coordinates, str):
        raise TypeError(f"coordinates must be a string, got {coordinates!r}")
    if checkpoint is not None:
        if batch:
            raise ValueError("checkpoint is for single runs; batches resume through "
                             "flowsim sweep (flowsim.experiments.sweep)")
    checked = [model.check_params(w, f"params[{i}]" if batch else "params")
               for i, w in enumerate(members)]

    # coordinates: per member ("auto" may choose differently), one solve per choice
    chosen = []
    for w in checked:
        if coordinates == AUTO:
            chosen.append(choose_coordinates(model, w))
        else:
            make_coordinates(coordinates, model)
            chosen.append((coordinates, "requested"))
    groups: dict[str, list[int]] = {}
    for i, (name, _) in enumerate(chosen):
        groups.setdefault(name, []).append(i)

    # solver options: per member too ("auto" looks at the stop loss), one solve per choice;
    # a checkpoint's run goes on with the solver it was started with
    stored = None if checkpoint is None else checkpoints.read(Path(checkpoint))
    if options.solver == AUTO and checkpoints.stored_solver(stored) in JAX_SOLVERS:
        options = options.replace(solver=checkpoints.stored_solver(stored))
    coords_by_name = {name: make_coordinates(name, model) for name in groups}
    solves: dict[tuple, list[int]] = {}
    for name, idx in groups.items():
        state_size = len(coords_by_name[name].from_factors(checked[idx[0]]))
        for i in idx:
            resolved = options.resolve(name, _model_kind(model), state_size, stops[i])
            solves.setdefault((name, resolved), []).append(i)

    out: list[Trajectory | None] = [None] * n
    for (name, resolved), idx in solves.items():
        coords = coords_by_name[name]
        if checkpoint is not None and resolved.solver not in JAX_SOLVERS:
            raise ValueError(f"checkpoint needs a diffrax solver ({list(JAX_SOLVERS)}): "
                             f"scipy's {resolved.solver} cannot save its state to resume "
                             "exactly")
        solve = Solve(coords, resolved, save_mode, len(save_times), progress,
                      None if checkpoint is None else Path(checkpoint))
        runs = []
        for i in idx:
            y0 = np.asarray(coords.from_factors(checked[i]), dtype=np.float64)
            tm = float(t_maxes[i])
            if save_mode == "times" and not math.isfinite(tm):
                tm = float(save_times[-1])
            config = {
                "kind": "gradient_flow", "problem": problems[i].to_dict(),
                "model": model.to_dict(), "coordinates": name,
                "coordinates_reason": chosen[i][1], "requested_coordinates": coordinates,
                "balanced_start": bool(isinstance(model, DeepMatrixFactorization)
                                       and is_balanced(model, checked[i])),
                "options": resolved.to_dict(), "stop_loss": stops[i], "t_max": tm,
                "save_at": save_mode if save_mode != "times" else save_times.tolist(),
                "batched": batch, "initial_state": y0.tolist()}
            runs.append(solve.make_run(i, problems[i], y0, stops[i], tm,
                                       save_times, config))
        if checkpoint is not None:
            served = checkpoints.resume(Path(checkpoint), stored, runs[0], solve,
                                        _replace_member)
            if served is not None:
                out[idx[0]] = served
                continue
        wall0 = runs[0].stats.pop("wall_s", 0.0) if not batch else 0.0
        start = time.perf_counter()
        try:
            solve.run(runs)
        except KeyboardInterrupt as exc:
            raise _interrupted(runs, checkpoint) from exc
        for run in runs:
            run.trajectory.stats["wall_s"] = wall0 + time.perf_counter() - start
            out[run.index] = run.trajectory
        if checkpoint is not None:
            checkpoints.save(Path(checkpoint), runs[0].trajectory, runs[0].carry,
                             runs[0].resume)
    return out if batch else out[0]
