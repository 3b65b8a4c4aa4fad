"""Sweeps: many gradient flows through one compiled, vmapped solve, and grids of them.

:func:`batched_gradient_flow` is :func:`flowsim.gradient_flow` for a batch of initial
factors (and, optionally, one problem per member: e.g. a grid of perturbed observations,
Theorem 2). It runs the core's compiled chunk solve (``integration._diffrax_chunk``)
under ``jax.vmap`` on a fixed number of *lanes*: each lane carries one member; when a
member ends, the next one from the queue takes its lane, so one compiled shape serves any
batch size and no lane idles waiting for the slowest member. Each member keeps the
semantics of a single run: its chunks of accepted steps, its step size carried between
chunks, its end conditions (``integration._end_reason``), its exact ``stop_loss`` point
(``integration._locate_stop``, vectorized over the members that crossed) and its
:class:`~flowsim.trajectory.Trajectory`.

:class:`SweepConfig` is a grid of options x repetitions (read from TOML);
:func:`run_sweep` runs it batch by batch, records one row per run in a
:class:`SweepResults` file (``.npz`` + JSON metadata, no pickle) after every batch, and
resumes from that file. :mod:`flowsim.distributed` runs the same batches on Dask.
"""

from __future__ import annotations

import itertools
import math
import sys
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import diffrax
import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from tqdm.auto import tqdm

from . import initialization
from . import problem as problems
from .dynamics import make_coordinates
from .integration import (
    _CONTINUE,
    _FAILED,
    _T_MAX,
    DEFAULT_COORDINATES,
    DIFFRAX_SOLVERS,
    _assemble,
    _chunk_outcome,
    _config,
    _diffrax_chunk,
    _DiffraxSpec,
    _end_reason,
    _initial_step,
    _locate_stop,
    _observe,
    _validate,
    _vector_field,
)
from .parameterization import DeepMatrixFactorization
from .problem import MatrixCompletion
from .trajectory import Trajectory, _versions, read_npz, write_npz

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised on Python 3.10 only
    import tomli as tomllib

KEEP = ("all", "ends")
_EVENT = diffrax.RESULTS.event_occurred._value

# The core's chunk solve and event quantities, vmapped over lanes: state, times, step,
# mask/target (one problem per member) and stop_loss; the spec and max_abs are shared.
_lanes_chunk = eqx.filter_jit(eqx.filter_vmap(
    _diffrax_chunk, in_axes=(None, 0, 0, 0, 0, 0, 0, 0, None)))
_lanes_observe = eqx.filter_jit(eqx.filter_vmap(_observe, in_axes=(None, 0, 0, 0)))
# ... and over the saved steps of every lane, ``(width, chunk_steps, k)``.
_lanes_observe_steps = eqx.filter_jit(eqx.filter_vmap(
    eqx.filter_vmap(_observe, in_axes=(None, 0, None, None)), in_axes=(None, 0, 0, 0)))
_lanes_field = eqx.filter_jit(eqx.filter_vmap(_vector_field, in_axes=(None, 0, 0, 0)))
_lanes_loss_and_rate = eqx.filter_jit(eqx.filter_vmap(
    lambda coords, y, mask, target: (coords.loss(y, mask, target),
                                     coords.loss_rate(y, mask, target)),
    in_axes=(None, 0, 0, 0)))


def _pad(a: np.ndarray, width: int) -> np.ndarray:
    """``a`` with its first row repeated up to ``width`` rows (a fixed compiled shape)."""
    a = np.asarray(a, dtype=np.float64)
    return np.concatenate([a, np.repeat(a[:1], width - len(a), axis=0)]) if len(a) < width else a


#: fewest lanes a call is padded to (see _Lanes.padded_width)
_MIN_LANES = 16


class _Lanes:
    """Up to ``width`` lanes of the vmapped chunk solve. A call on ``n`` rows is padded
    (copies of the first row, dropped afterwards) to the next power of two >= ``n``, at
    least 16 and at most ``width``: a few compiled shapes, and when a batch runs out, its
    last slow members no longer drag ``width`` lanes of padding through every chunk
    (the cost of a chunk grows linearly with its lanes on CPU)."""

    def __init__(self, coords, solver, rtol, atol, chunk_steps, width):
        self.coords, self.width = coords, width
        self.spec = _DiffraxSpec(coords, solver, rtol, atol, chunk_steps, events=False)

    def padded_width(self, n: int) -> int:
        return min(self.width, max(_MIN_LANES, 1 << max(n - 1, 0).bit_length()))

    def _call(self, fn, n, *arrays):
        width = self.padded_width(n)
        out = fn(self.coords, *(jnp.asarray(_pad(a, width)) for a in arrays))
        return jax.tree_util.tree_map(lambda v: np.asarray(v)[:n], out)

    def observe(self, y, mask, target):
        return self._call(_lanes_observe, len(y), y, mask, target)

    def initial_step(self, t, y, mask, target):
        return _initial_step(t, y, self._call(_lanes_field, len(y), y, mask, target))

    def loss_and_rate(self, y, mask, target):
        return self._call(_lanes_loss_and_rate, len(y), y, mask, target)

    def chunk(self, t, y, t1, dt, mask, target, stop, max_abs):
        """One chunk on up to ``width`` rows: ``(ts, ys, result, rejected)`` per row, as
        ``_diffrax_chunk`` with its event returns them: each row's steps end at the first
        one with ``loss <= stop`` or ``not max|W| < max_abs`` (result "event occurred")."""
        n = len(y)
        width = self.padded_width(n)
        padded = [jnp.asarray(_pad(a, width)) for a in (y, t, t1, dt, mask, target)]
        out = _lanes_chunk(self.spec, *padded, jnp.asarray(_pad(stop, width)),
                           jnp.asarray(max_abs, dtype=jnp.float64))
        loss, big = (np.asarray(v)[:n] for v in _lanes_observe_steps(
            self.coords, out[1], padded[4], padded[5]))
        ts, ys, result, rejected = (np.array(v)[:n] for v in out)
        with np.errstate(invalid="ignore"):
            hit = np.isfinite(ts) & ((loss <= np.asarray(stop)[:, None]) | ~(big < max_abs))
        for i in np.flatnonzero(hit.any(axis=1)):
            first = int(np.argmax(hit[i]))
            ts[i, first + 1:] = np.inf
            result[i] = _EVENT
        return ts, ys, result, rejected


@dataclass(frozen=True, eq=False)
class _Crossings:
    """The ``_locate_stop`` stepper interface for a batch of members (their own problems),
    integrated on the lanes."""

    lanes: _Lanes
    mask: np.ndarray
    target: np.ndarray

    def loss_and_rate(self, ys):
        w = self.lanes.width
        out = [self.lanes.loss_and_rate(ys[i:i + w], self.mask[i:i + w], self.target[i:i + w])
               for i in range(0, len(ys), w)]
        return tuple(np.concatenate(parts) for parts in zip(*out))

    def integrate_batch(self, t0, y0, t1, which):
        """Like ``_DiffraxStepper.integrate_to`` for every row in ``which``: a fresh first
        step, chunks until ``t1``, no events."""
        out = np.array(y0, dtype=np.float64)
        for start in range(0, len(y0), self.lanes.width):
            rows = np.arange(start, min(start + self.lanes.width, len(y0)))
            rows = rows[np.asarray(which)[rows]]
            if len(rows):
                out[rows] = self._integrate(t0[rows], out[rows], t1[rows], self.mask[rows],
                                            self.target[rows])
        return out

    def _integrate(self, t, y, t1, mask, target):
        # autonomous flow: from time 0, as in _DiffraxStepper.integrate_to
        t1 = np.asarray(t1, dtype=np.float64) - np.asarray(t, dtype=np.float64)
        t, y = np.zeros(len(t1)), np.array(y, dtype=np.float64)
        # first trial step: the whole interval (it lies inside one accepted step); a row
        # whose steps collapse from there retries once from the usual initial step
        dt, retried = t1.copy(), np.zeros(len(t1), dtype=bool)
        running = np.ones(len(t), dtype=bool)
        while running.any():
            ts, ys, result, _ = self.lanes.chunk(t, y, t1, np.minimum(dt, t1 - t), mask,
                                                 target, np.where(running, -1.0, np.inf),
                                                 np.inf)
            for i in np.flatnonzero(running):
                new_ts, new_ys, reason, message, dt[i] = _chunk_outcome(
                    t[i], ts[i], ys[i], result[i], dt[i])
                moved = len(new_ts) and new_ts[-1] > t[i]
                if len(new_ts):
                    t[i], y[i] = new_ts[-1], new_ys[-1]
                if reason == _T_MAX:
                    running[i] = False
                elif reason == _CONTINUE and not moved and not retried[i]:
                    retried[i] = True
                    dt[i] = self.lanes.initial_step(t[i:i + 1], y[i:i + 1], mask[i:i + 1],
                                                    target[i:i + 1])[0]
                elif reason != _CONTINUE or not moved:
                    raise FloatingPointError(
                        f"re-integration to the stop_loss time failed: {message}")
        return y


@dataclass(eq=False)
class _Member:
    """Book-keeping of one run of a batch."""

    index: int
    y0: np.ndarray
    mask: np.ndarray
    target: np.ndarray
    stop_loss: float | None
    t_max: float
    config: dict
    t: float = 0.0
    y: np.ndarray = None
    dt: float = math.nan
    stats: dict = field(default_factory=lambda: {"steps": 0, "rejected": 0})
    ts: list = field(default_factory=list)
    ys: list = field(default_factory=list)

    @property
    def t1(self) -> float:
        return self.t_max if math.isfinite(self.t_max) else 1e300

    @property
    def stop(self) -> float:
        return -1.0 if self.stop_loss is None else float(self.stop_loss)


def _column(members: Sequence[_Member], key: str) -> np.ndarray:
    return np.array([getattr(m, key) for m in members])


def _per_member(name: str, value, n: int) -> list:
    if isinstance(value, (str, bytes)) or not isinstance(value, Sequence | np.ndarray):
        return [value] * n
    if len(value) != n:
        raise ValueError(f"{name} must be one value or one per member ({n}), got {len(value)}")
    return list(value)


def batched_gradient_flow(problem: MatrixCompletion | Sequence[MatrixCompletion],
                          model: DeepMatrixFactorization, params: Sequence, *,
                          coordinates: str = DEFAULT_COORDINATES,
                          stop_loss: float | None | Sequence = None,
                          t_max: float | Sequence = math.inf, solver: str = "Kvaerno5",
                          rtol: float = 1e-10, atol: float = 1e-14, max_steps: int = 100_000,
                          max_abs: float = 1e12, chunk_steps: int = 64, lanes: int = 256,
                          keep: str = "all", progress: bool | None = None) -> list[Trajectory]:
    """Integrate gradient flow, Eq. (4), from each member of a batch of initial factors.

    **Arguments:** as :func:`flowsim.gradient_flow` (diffrax solvers only), plus:

    - `problem`: one problem for every member, or a sequence of problems of one shape,
      one per member (e.g. perturbed observations, Theorem 2).
    - `params`: a sequence of factor tuples ``(W_1, ..., W_L)``, one per member.
    - `stop_loss`, `t_max`: one value, or one per member.
    - `lanes`: how many members are integrated at once (the vmapped width; it is compiled
      once per width, model, coordinates, solver and tolerances).
    - `keep`: ``"all"`` saves every accepted step as ``gradient_flow`` does; ``"ends"``
      saves only the initial and the final point of each member (for large sweeps).

    **Returns:** one :class:`~flowsim.trajectory.Trajectory` per member, in order. Each
    follows the single-run algorithm (same accepted steps, same located stop point, up to
    rounding of the vmapped arithmetic); ``stats["rejected"]`` may also count rejections
    after the stop point inside its last chunk (the vmapped solve has no in-solve event).

    ```python
    inits = [balanced_init(model, seed=s) for s in range(1000)]
    trajs = batched_gradient_flow(paper_problem(), model, inits, stop_loss=1e-6, keep="ends")
    ```
    """
    params = list(params)
    n = len(params)
    if n == 0:
        raise ValueError("params must hold at least one member's factors")
    if solver not in DIFFRAX_SOLVERS:
        raise ValueError(f"solver must be one of the diffrax solvers {list(DIFFRAX_SOLVERS)} "
                         f"(scipy solvers cannot be vmapped), got {solver!r}")
    if keep not in KEEP:
        raise ValueError(f"keep must be one of {KEEP}, got {keep!r}")
    if isinstance(lanes, bool) or int(lanes) != lanes or lanes < 1:
        raise ValueError(f"lanes must be an integer >= 1, got {lanes!r}")
    member_problems = _per_member("problem", problem, n)
    stops = _per_member("stop_loss", stop_loss, n)
    t_maxes = [float(v) for v in _per_member("t_max", t_max, n)]
    checked = set()
    for p, s, tm in zip(member_problems, stops, t_maxes):
        if (id(p), s, tm) not in checked:
            _validate(p, model, solver, coordinates, s, tm, rtol, atol, max_steps, max_abs,
                      chunk_steps)
            checked.add((id(p), s, tm))
    coords = make_coordinates(coordinates, model)
    members = []
    for i, (p, w, s, tm) in enumerate(zip(member_problems, params, stops, t_maxes)):
        y0 = np.asarray(coords.from_factors(model.check_params(w, f"params[{i}]")),
                        dtype=np.float64)
        config = _config(p, model, coordinates, solver, float(rtol), float(atol), y0)
        config.update(stop_loss=s, t_max=tm, max_steps=int(max_steps), max_abs=float(max_abs),
                      batched=True)
        members.append(_Member(i, y0, np.asarray(p.mask), np.asarray(p.target), s, tm, config,
                               y=y0, ts=[np.zeros(1)], ys=[y0[None, :]]))
    width = int(min(lanes, n))
    engine = _Lanes(coords, solver, float(rtol), float(atol), int(min(chunk_steps, max_steps)),
                    width)
    return _run_members(engine, coords, members, keep, max_abs, max_steps, progress)


def _run_members(engine: _Lanes, coords, members: list[_Member], keep, max_abs, max_steps,
                 progress) -> list[Trajectory]:
    """The chunk loop of ``gradient_flow``, for every member at once (see module doc)."""
    out: list[Trajectory | None] = [None] * len(members)
    versions = _versions()  # once: reading package metadata per run cost ~25 ms each
    bar = tqdm(total=len(members), unit="run", delay=0.0 if progress else 2.0,
               disable=progress is False, desc="batched flow", leave=False)

    def finish(m: _Member, status: str, message: str):
        out[m.index] = _assemble(coords, m.mask, m.target, m.stats, m.ts, m.ys, status,
                                 message, m.config, versions=dict(versions))
        bar.update(1)

    def save(m: _Member, new_ts, new_ys):
        if len(new_ts):
            if keep == "all":
                m.ts.append(new_ts)
                m.ys.append(new_ys)
            else:
                m.ts[1:], m.ys[1:] = [new_ts[-1:]], [new_ys[-1:]]
            m.t, m.y = float(new_ts[-1]), coords.rechart(new_ys[-1])

    def ended(group) -> list[_Member]:
        """Apply the end conditions at each member's current point; the ones still running."""
        alive = []
        for start in range(0, len(group), engine.width):
            part = group[start:start + engine.width]
            loss, big = engine.observe(*(_column(part, k) for k in ("y", "mask", "target")))
            for m, lo, bi in zip(part, loss, big):
                end = _end_reason(float(lo), float(bi), m.t, m.t1, m.t_max, m.stats["steps"],
                                  m.stop_loss, max_abs, max_steps)
                if end is None:
                    alive.append(m)
                else:
                    finish(m, *end)
        return alive

    def locate(crossed):
        """Exact stop_loss points of the members whose last chunk crossed it."""
        who = [c[0] for c in crossed]
        view = _Crossings(engine, _column(who, "mask"), _column(who, "target"))
        t_b, y_b = np.array([c[3] for c in crossed]), np.array([c[4] for c in crossed])
        try:
            t_s, y_s = _locate_stop(view, [c[1] for c in crossed], [c[2] for c in crossed],
                                    t_b, y_b, [c[0].stop for c in crossed])
        except FloatingPointError as error:  # as gradient_flow: keep the crossing step
            for (m, *_), t, y, loss in zip(crossed, t_b, y_b, view.loss_and_rate(y_b)[0]):
                save(m, np.array([t]), y[None, :])
                finish(m, "stop_loss", f"{error}: the run ends at the first accepted step "
                       f"past stop_loss, t={t:.10g}, loss {loss:.6e}")
            return
        losses = view.loss_and_rate(y_s)[0]
        for (m, *_), t, y, loss in zip(crossed, t_s, y_s, losses):
            save(m, np.array([t]), y[None, :])
            finish(m, "stop_loss", f"loss reached stop_loss={m.stop:.3e} at t={t:.10g} "
                   f"(located by Newton on log-loss: loss {loss:.10e} there)")

    try:
        queue = deque(ended(members))
        running: list[_Member] = []
        crossed: list[tuple] = []
        while queue or running:
            fresh = [queue.popleft() for _ in range(min(engine.width - len(running), len(queue)))]
            if fresh:
                dts = engine.initial_step(*(_column(fresh, k) for k in ("t", "y", "mask",
                                                                         "target")))
                for m, dt in zip(fresh, dts):
                    m.dt = float(dt)
                running += fresh
            t, t1 = _column(running, "t"), _column(running, "t1")
            ts, ys, result, rejected = engine.chunk(
                t, _column(running, "y"), t1, np.minimum(_column(running, "dt"), t1 - t),
                _column(running, "mask"), _column(running, "target"), _column(running, "stop"),
                max_abs)
            moved = []
            for i, m in enumerate(running):
                t0, y0 = m.t, m.y
                new_ts, new_ys, reason, message, m.dt = _chunk_outcome(
                    t0, ts[i], ys[i], result[i], m.dt)
                m.stats["steps"] += len(new_ts)
                m.stats["rejected"] += int(rejected[i])
                if reason is None and len(new_ts) and m.stop_loss is not None:
                    last_loss, last_big = engine.observe(new_ys[-1:], m.mask[None],
                                                         m.target[None])
                    if last_loss[0] <= m.stop and last_big[0] < max_abs:
                        t_a, y_a = (t0, y0) if len(new_ts) == 1 else (new_ts[-2], new_ys[-2])
                        save(m, new_ts[:-1], new_ys[:-1])
                        crossed.append((m, t_a, y_a, new_ts[-1], new_ys[-1]))
                        continue
                save(m, new_ts, new_ys)
                if reason == _FAILED:
                    finish(m, "solver_failure", message)
                elif reason == _CONTINUE and (len(new_ts) == 0 or not new_ts[-1] > t0):
                    finish(m, "solver_failure", f"no progress in {engine.spec.chunk_steps} "
                           f"solver steps at t={t0:.6g}: the step size collapsed (blow-up?)")
                elif reason == _T_MAX and m.t >= m.t1:
                    finish(m, "t_max", f"reached t_max={m.t_max:g}")
                else:
                    moved.append(m)
            running = ended(moved)
            # Crossings are located together, a full set of lanes at a time.
            if len(crossed) >= engine.width or (crossed and not queue and not running):
                locate(crossed)
                crossed = []
        if crossed:
            locate(crossed)
    finally:
        bar.close()
    return out


# -- grids of runs --------------------------------------------------------------------

#: options a sweep may vary (each a value or a list of values: a grid axis), and defaults
GRID_OPTIONS = {
    "depth": 3, "init": "balanced", "scale": 1e-3, "det_sign": "none",
    "b12": -2.0, "b21": 0.5, "b22": 0.1, "coordinates": DEFAULT_COORDINATES,
    "solver": "Kvaerno5", "rtol": 1e-10, "atol": 1e-14, "stop_loss": 1e-6, "t_max": math.inf,
}
#: fixed settings of a sweep, and defaults
SWEEP_SETTINGS = {
    "problem": "paper", "d": 3, "d2": 3, "repetitions": 1, "seed": 0, "batch_size": 256,
    "lanes": 256, "chunk_steps": 64, "max_steps": 100_000, "max_abs": 1e12,
}
PROBLEMS = ("paper", "perturbed", "padded")
INITS = ("balanced", "gaussian", "identity")
#: options that share one compiled solve when equal (tasks are batched within a group)
_COMPILE_KEY = ("depth", "coordinates", "solver", "rtol", "atol")
_DET_SIGNS = {"none": None, "+1": 1, "1": 1, "-1": -1, 1: 1, -1: -1}


def _det_sign(value) -> int | None:
    key = value.lower() if isinstance(value, str) else value
    if isinstance(key, bool) or key not in _DET_SIGNS:
        raise ValueError(f"det_sign must be 'none', '+1' or '-1', got {value!r}")
    return _DET_SIGNS[key]


@dataclass(frozen=True)
class SweepConfig:
    """A grid of options x repetitions (seeds ``seed, seed + 1, ...``) of gradient flow.

    **Arguments:**

    - `grid`: option name -> tuple of values (one value: fixed). Names and defaults:
      :data:`GRID_OPTIONS` (``b12, b21, b22`` are the observations of
      ``problem = "perturbed"``; ``scale`` is the product scale, or the per-entry std of
      ``init = "gaussian"``).
    - `settings`: fixed settings, :data:`SWEEP_SETTINGS` (``problem`` in
      :data:`PROBLEMS`; ``d, d2`` the shape of ``"padded"``; ``batch_size`` tasks per
      batch, the unit of work of a resumed or distributed sweep; ``lanes`` members
      integrated at once).

    The same seed is used at every grid point (common random numbers).

    TOML form (:meth:`from_toml`): a ``[sweep]`` table of settings and a ``[grid]`` table
    of options::

        [sweep]
        repetitions = 1000
        [grid]
        depth = 3
        scale = [1e-3, 1e-2]
        stop_loss = 1e-6
    """

    grid: dict
    settings: dict

    def __post_init__(self):
        unknown = set(self.grid) - set(GRID_OPTIONS)
        if unknown:
            raise ValueError(f"grid has unknown options {sorted(unknown)}; allowed: "
                             f"{sorted(GRID_OPTIONS)}")
        unknown = set(self.settings) - set(SWEEP_SETTINGS)
        if unknown:
            raise ValueError(f"sweep has unknown settings {sorted(unknown)}; allowed: "
                             f"{sorted(SWEEP_SETTINGS)}")
        grid = {}
        for key, default in GRID_OPTIONS.items():
            values = self.grid.get(key, default)
            values = tuple(values) if isinstance(values, list | tuple) else (values,)
            if not values:
                raise ValueError(f"grid option {key} is an empty list")
            grid[key] = tuple(self._check_option(key, v) for v in values)
        settings = {**SWEEP_SETTINGS, **self.settings}
        if settings["problem"] not in PROBLEMS:
            raise ValueError(f"problem must be one of {PROBLEMS}, got {settings['problem']!r}")
        for key in ("d", "d2", "repetitions", "batch_size", "lanes", "chunk_steps",
                    "max_steps"):
            v = settings[key]
            if isinstance(v, bool) or not isinstance(v, int) or v < 1:
                raise ValueError(f"{key} must be an integer >= 1, got {v!r}")
        if isinstance(settings["seed"], bool) or not isinstance(settings["seed"], int):
            raise ValueError(f"seed must be an integer, got {settings['seed']!r}")
        if not float(settings["max_abs"]) > 0:
            raise ValueError(f"max_abs must be > 0, got {settings['max_abs']!r}")
        object.__setattr__(self, "grid", grid)
        object.__setattr__(self, "settings", settings)

    @staticmethod
    def _check_option(key, value):
        if key == "det_sign":
            sign = _det_sign(value)
            return "none" if sign is None else f"{sign:+d}"
        if key == "init":
            if value not in INITS:
                raise ValueError(f"init must be one of {INITS}, got {value!r}")
            return value
        if key in ("coordinates", "solver"):
            if not isinstance(value, str):
                raise TypeError(f"{key} must be a string, got {value!r}")
            return value
        if key == "depth":
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"depth must be an integer >= 1, got {value!r}")
            return value
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise TypeError(f"{key} must be a number, got {value!r}")
        return float(value)

    @classmethod
    def from_dict(cls, data: dict) -> SweepConfig:
        unknown = set(data) - {"sweep", "grid"}
        if unknown:
            raise ValueError(f"a sweep config has tables [sweep] and [grid], got {sorted(unknown)}")
        return cls(grid=dict(data.get("grid", {})), settings=dict(data.get("sweep", {})))

    @classmethod
    def from_toml(cls, path) -> SweepConfig:
        with open(path, "rb") as fh:
            return cls.from_dict(tomllib.load(fh))

    def to_dict(self) -> dict:
        return {"sweep": dict(self.settings), "grid": {k: list(v) for k, v in self.grid.items()}}

    @property
    def points(self) -> list[dict]:
        """Grid points (dicts of option values), in grid order."""
        keys = list(self.grid)
        return [dict(zip(keys, values)) for values in itertools.product(*self.grid.values())]

    @property
    def n_tasks(self) -> int:
        return len(self.points) * self.settings["repetitions"]

    def task(self, index: int) -> dict:
        """Options of task ``index`` (point ``index // repetitions``) plus its ``seed``."""
        point, rep = divmod(index, self.settings["repetitions"])
        return {**self.points[point], "seed": self.settings["seed"] + rep, "point": point}

    def batches(self) -> list[tuple[int, ...]]:
        """Task ids in batches of at most ``batch_size`` that share one compiled solve."""
        groups: dict[tuple, list[int]] = {}
        for i in range(self.n_tasks):
            task = self.task(i)
            groups.setdefault(tuple(task[k] for k in _COMPILE_KEY), []).append(i)
        size = self.settings["batch_size"]
        return [tuple(ids[s:s + size]) for ids in groups.values()
                for s in range(0, len(ids), size)]

    def problem(self, task: dict) -> MatrixCompletion:
        kind = self.settings["problem"]
        if kind == "paper":
            return problems.paper_problem()
        if kind == "perturbed":
            return problems.perturbed_problem(task["b12"], task["b21"], task["b22"])
        return problems.padded_problem(self.settings["d"], self.settings["d2"])

    def shape(self) -> tuple[int, int]:
        return self.problem(self.task(0)).shape


def _initial_factors(model, task):
    det_sign = _det_sign(task["det_sign"])
    if task["init"] == "balanced":
        return initialization.balanced_init(model, task["seed"], task["scale"], det_sign)
    if task["init"] == "gaussian":
        return initialization.gaussian_init(model, task["seed"], task["scale"], det_sign)
    return initialization.identity_init(model, task["scale"], det_sign)


#: per-run result columns written by :func:`run_batch`
RESULT_COLUMNS = ("status", "t_final", "loss_final", "w_initial", "w_final", "det_sign_initial",
                  "det_sign_final", "log_abs_det_final", "steps", "rejected")


def run_batch(config: dict, task_ids: Sequence[int]) -> dict[str, np.ndarray]:
    """Run tasks ``task_ids`` of the sweep ``config`` (a :meth:`SweepConfig.to_dict`) as
    one batched solve; returns the :data:`RESULT_COLUMNS`, one row per task. A plain
    function of plain data, so that Dask can ship it to a worker."""
    sweep = SweepConfig.from_dict(config)
    tasks = [sweep.task(i) for i in task_ids]
    first = tasks[0]
    if any(tuple(t[k] for k in _COMPILE_KEY) != tuple(first[k] for k in _COMPILE_KEY)
           for t in tasks):
        raise ValueError(f"tasks of one batch must share {_COMPILE_KEY}")
    model = DeepMatrixFactorization(sweep.shape(), first["depth"])
    s = sweep.settings
    trajs = batched_gradient_flow(
        [sweep.problem(t) for t in tasks], model, [_initial_factors(model, t) for t in tasks],
        coordinates=first["coordinates"], solver=first["solver"], rtol=first["rtol"],
        atol=first["atol"], stop_loss=[t["stop_loss"] for t in tasks],
        t_max=[t["t_max"] for t in tasks], max_steps=s["max_steps"], max_abs=s["max_abs"],
        chunk_steps=s["chunk_steps"], lanes=s["lanes"], keep="ends", progress=False)
    return {
        "status": np.array([tr.status for tr in trajs]),
        "t_final": np.array([tr.t[-1] for tr in trajs]),
        "loss_final": np.array([tr.loss[-1] for tr in trajs]),
        "w_initial": np.stack([tr.product[0] for tr in trajs]),
        "w_final": np.stack([tr.product[-1] for tr in trajs]),
        "det_sign_initial": np.array([tr.det_sign[0] for tr in trajs]),
        "det_sign_final": np.array([tr.det_sign[-1] for tr in trajs]),
        "log_abs_det_final": np.array([tr.log_abs_det[-1] for tr in trajs]),
        "steps": np.array([tr.stats["steps"] for tr in trajs], dtype=np.int64),
        "rejected": np.array([tr.stats["rejected"] for tr in trajs], dtype=np.int64),
    }


SWEEP_FORMAT_VERSION = 1


@dataclass(frozen=True, eq=False)
class SweepResults:
    """One row per task of a sweep: its options, its ``seed``, and the
    :data:`RESULT_COLUMNS` (NaN / empty until ``done``).

    **Attributes:** `config` (the :class:`SweepConfig`), `columns` (name -> array with
    one row per task), `done` (bool per task).
    """

    config: SweepConfig
    columns: dict
    done: np.ndarray

    @classmethod
    def empty(cls, config: SweepConfig) -> SweepResults:
        n = config.n_tasks
        tasks = [config.task(i) for i in range(n)]
        d, d2 = config.shape()
        columns = {k: np.array([t[k] for t in tasks]) for k in (*GRID_OPTIONS, "seed", "point")}
        columns.update(
            status=np.full(n, "", dtype="<U16"), t_final=np.full(n, np.nan),
            loss_final=np.full(n, np.nan), w_initial=np.full((n, d, d2), np.nan),
            w_final=np.full((n, d, d2), np.nan), det_sign_initial=np.full(n, np.nan),
            det_sign_final=np.full(n, np.nan), log_abs_det_final=np.full(n, np.nan),
            steps=np.zeros(n, dtype=np.int64), rejected=np.zeros(n, dtype=np.int64))
        return cls(config, columns, np.zeros(n, dtype=bool))

    def record(self, task_ids: Sequence[int], rows: dict) -> None:
        """Store the rows :func:`run_batch` returned for ``task_ids``."""
        ids = np.asarray(task_ids)
        for key in RESULT_COLUMNS:
            self.columns[key][ids] = rows[key]
        self.done[ids] = True

    def save(self, path) -> Path:
        """``.npz`` of the columns + JSON metadata (no pickle), written atomically."""
        path = Path(path)
        meta = {"format": "flowsim.SweepResults", "format_version": SWEEP_FORMAT_VERSION,
                "config": self.config.to_dict(), "versions": _versions()}
        return write_npz(path, {**self.columns, "done": self.done}, meta)

    @classmethod
    def load(cls, path) -> SweepResults:
        data, meta = read_npz(path, "flowsim.SweepResults", "flowsim sweep results")
        done = data.pop("done")
        return cls(SweepConfig.from_dict(meta["config"]), data, done)

    def summary(self) -> list[dict]:
        """Per grid point: runs done, Proposition 3's ``P(det W(0) > 0)``, how many ended
        at ``stop_loss``, how many kept the sign of det, and the median final ``|W11|`` and
        ``|W11| sqrt(2 loss)`` (Theorem 1: -> 1 when det > 0) for each initial sign."""
        rows = []
        c = self.columns
        for p, point in enumerate(self.config.points):
            sel = (c["point"] == p) & self.done
            n = int(sel.sum())
            row = {**point, "runs": n}
            if n:
                sign0 = c["det_sign_initial"][sel]
                w11 = np.abs(c["w_final"][sel][:, 0, 0])
                scaled = w11 * np.sqrt(2 * c["loss_final"][sel])
                row.update(p_det_positive=float(np.mean(sign0 > 0)),
                           stop_loss=int(np.sum(c["status"][sel] == "stop_loss")),
                           sign_kept=int(np.sum(c["det_sign_final"][sel] == sign0)))
                for name, which in (("pos", sign0 > 0), ("neg", sign0 < 0)):
                    row[f"median_w11_{name}"] = (float(np.median(w11[which])) if which.any()
                                                 else math.nan)
                    row[f"median_w11_sqrt2l_{name}"] = (float(np.median(scaled[which]))
                                                        if which.any() else math.nan)
            rows.append(row)
        return rows


BatchRunner = Callable[[dict, list[tuple[int, ...]]], Iterator[tuple[tuple[int, ...], dict]]]


def run_locally(config: dict, batches: list[tuple[int, ...]]):
    """Run the batches one after the other in this process."""
    for ids in batches:
        yield ids, run_batch(config, ids)


def open_results(config: SweepConfig, output) -> SweepResults:
    """The results file ``output`` if it holds this sweep (to resume), else a new one."""
    output = Path(output)
    if not output.exists():
        return SweepResults.empty(config)
    old = SweepResults.load(output)
    if old.config.to_dict() != config.to_dict():
        raise ValueError(f"output {output} holds a sweep with another configuration; "
                         "use another output path")
    return old


def run_sweep(config: SweepConfig, output, *, runner: BatchRunner = run_locally,
              progress: bool | None = None) -> SweepResults:
    """Run every task of ``config`` that ``output`` does not hold yet, saving ``output``
    after each batch (so an interrupted sweep resumes where it stopped).

    `runner` maps ``(config dict, batches)`` to ``(task ids, rows)`` pairs as batches
    finish: :func:`run_locally` (default) or :func:`flowsim.distributed.dask_runner`.
    """
    if not isinstance(config, SweepConfig):
        raise TypeError(f"config must be a SweepConfig, got {type(config).__name__}")
    results = open_results(config, output)
    todo = [ids for ids in config.batches() if not results.done[list(ids)].all()]
    bar = tqdm(total=config.n_tasks, initial=int(results.done.sum()), unit="run",
               disable=progress is False, delay=0.0 if progress else 2.0, desc="sweep")
    try:
        for ids, rows in runner(config.to_dict(), todo):
            results.record(ids, rows)
            results.save(output)
            bar.update(len(ids))
    finally:
        bar.close()
    if not Path(output).exists():
        results.save(output)
    return results


def format_summary(rows: Iterable[dict], varying: Sequence[str]) -> str:
    """A plain-text table of :meth:`SweepResults.summary` rows."""
    head = [*varying, "runs", "P(det>0)", "stop_loss", "sign kept", "|W11| det>0",
            "|W11|sqrt(2l) det>0", "|W11| det<0"]
    lines = ["  ".join(f"{h:>12s}" for h in head)]
    for r in rows:
        cells = [str(r[k]) for k in varying] + [str(r["runs"])]
        if r["runs"]:
            cells += [f"{r['p_det_positive']:.3f}", str(r["stop_loss"]), str(r["sign_kept"]),
                      f"{r['median_w11_pos']:.4g}", f"{r['median_w11_sqrt2l_pos']:.6f}",
                      f"{r['median_w11_neg']:.4g}"]
        lines.append("  ".join(f"{c:>12s}" for c in cells))
    return "\n".join(lines)
