"""Sweeps: grids of gradient flows (options x repetitions), from TOML, resumable.

:class:`SweepConfig` is a grid of options x repetitions (read from TOML);
:func:`run_sweep` runs it batch by batch, each batch one call of
:func:`flowsim.gradient_flow` on many initial factors (the core's vmapped solve, end
points only), records one row per run in a :class:`SweepResults` file (``.npz`` + JSON
metadata, no pickle) after every batch, and resumes from that file.
:mod:`flowsim.experiments.distributed` runs the same batches on Dask.
"""

from __future__ import annotations

import itertools
import math
import sys
import warnings
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from tqdm.auto import tqdm

from ..dynamics import AUTO, COORDINATES, make_coordinates
from ..files import (
    ArraySpec,
    FileFormatError,
    Format,
    Key,
    check_output,
    checked,
    read_npz,
    read_text,
    write_npz,
)
from ..integration import SolverOptions, gradient_flow
from ..parameterization import DeepMatrixFactorization
from ..problem import MatrixCompletion, check_distinct, check_integer, check_real
from ..runtime import Interrupted, check_fits
from ..trajectory import FAILURE_STATUSES, SUCCESS_STATUSES, versions
from . import named

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised on Python 3.10 only
    import tomli as tomllib


# -- grids of runs --------------------------------------------------------------------

#: options a sweep may vary (each a value or a list of values: a grid axis), and defaults
#: (``solver``, ``rtol``, ``atol``: those of :class:`~flowsim.SolverOptions`, where
#: ``None`` takes the coordinates' default tolerances). ``stop_loss`` 1e-6, not ``flowsim
#: run``'s 1e-8: a sweep's statistics (Proposition 3's sign, Theorem 1's ratio to 1e-6)
#: need many runs, and ``solver="auto"`` batches these with Rodas5P down to 1e-6
GRID_OPTIONS = {
    "depth": 3, "init": "balanced", "scale": 1e-3, "det_sign": "none",
    "b12": -2.0, "b21": 0.5, "b22": 0.1, "coordinates": "auto",
    "solver": SolverOptions.solver, "rtol": SolverOptions.rtol, "atol": SolverOptions.atol,
    "stop_loss": 1e-6, "t_max": math.inf,
}
#: fixed settings of a sweep, and defaults; the ``[solver]`` table holds
#: :class:`~flowsim.SolverOptions` (tolerances, chunk size, step budget, lanes, ...)
SWEEP_SETTINGS = {
    "problem": "paper", "d": 3, "d2": 3, "repetitions": 1, "seed": 0, "batch_size": 256,
}
PROBLEMS = tuple(named.PROBLEMS)
INITS = tuple(named.INITS)
#: options that share one compiled solve when equal (tasks are batched within a group)
_COMPILE_KEY = ("depth", "coordinates", "solver", "rtol", "atol")


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
      batch, the unit of work of a resumed or distributed sweep).
    - `solver`: the :class:`~flowsim.SolverOptions` of every run (a grid axis over
      ``solver``, ``rtol`` or ``atol`` overrides those fields per grid point).

    The same seed is used at every grid point (common random numbers).

    TOML form (:meth:`from_toml`): a ``[sweep]`` table of settings, a ``[solver]`` table
    of solver options and a ``[grid]`` table of options::

        [sweep]
        repetitions = 1000
        [solver]
        lanes = 256
        [grid]
        depth = 3
        scale = [1e-3, 1e-2]
        stop_loss = 1e-6
    """

    grid: dict
    settings: dict
    solver: SolverOptions = SolverOptions()

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
            grid[key] = check_distinct(f"grid option {key}",
                                       (self._check_option(key, v) for v in values))
        settings = {**SWEEP_SETTINGS, **self.settings}
        if settings["problem"] not in PROBLEMS:
            raise ValueError(f"problem must be one of {PROBLEMS}, got {settings['problem']!r}")
        for key, low in (("d", 2), ("d2", 2), ("repetitions", 1), ("batch_size", 1)):
            settings[key] = check_integer(key, settings[key], minimum=low)
        # the seeds seed .. seed + repetitions - 1 are stored as int64 in the results file
        settings["seed"] = check_integer("seed", settings["seed"], minimum=0,
                                         maximum=2**63 - settings["repetitions"])
        if not isinstance(self.solver, SolverOptions):
            raise TypeError(f"solver must be a SolverOptions, got {type(self.solver).__name__}")
        for point in itertools.product(grid["solver"], grid["rtol"], grid["atol"]):
            self.solver.replace(**dict(zip(("solver", "rtol", "atol"), point)))
        object.__setattr__(self, "grid", grid)
        object.__setattr__(self, "settings", settings)
        # the shape from the settings: building a huge problem is what must not happen
        d, d2 = ((settings["d"], settings["d2"]) if settings["problem"] == "padded"
                 else (2, 2))
        check_fits(f"repetitions {settings['repetitions']} x {math.prod(map(len, grid.values()))}"
                   f" grid points of {d}x{d2} products (the results' columns)",
                   self.n_tasks * (16 * d * d2 + 100))
        m = min(d, d2)
        check_fits(f"depth {max(grid['depth'])} at {d}x{d2} (one run's factors)",
                   8 * (max(grid["depth"]) * m * m + d * d2))

    @staticmethod
    def _check_option(key, value):
        if key == "det_sign":
            sign = named.det_sign(value)
            return "none" if sign is None else f"{sign:+d}"
        if key == "init":
            if value not in INITS:
                raise ValueError(f"init must be one of {INITS}, got {value!r}")
            return value
        if key == "coordinates":
            if not isinstance(value, str) or (value != AUTO and value not in COORDINATES):
                raise ValueError(f"coordinates must be one of {[AUTO, *sorted(COORDINATES)]}, "
                                 f"got {value!r}")
            return value
        if key == "solver":
            if not isinstance(value, str):
                raise TypeError(f"solver must be a string, got {value!r}")
            return value
        if key in ("rtol", "atol") and value is None:
            return None
        if key == "depth":
            return check_integer("depth", value, minimum=1)
        if key in ("scale", "stop_loss", "t_max"):
            return check_real(key, value, minimum=0, strict=True, allow_inf=key == "t_max")
        return check_real(key, value)

    @classmethod
    def from_dict(cls, data: dict) -> SweepConfig:
        if not isinstance(data, dict):
            raise ValueError(f"a sweep config is a table, got {type(data).__name__}")
        unknown = set(data) - {"sweep", "grid", "solver"}
        if unknown:
            raise ValueError(f"a sweep config has tables [sweep], [solver] and [grid], got "
                             f"{sorted(unknown)}")
        for table in ("sweep", "grid", "solver"):
            if not isinstance(data.get(table, {}), dict):
                raise ValueError(f"[{table}] must be a table, got {data[table]!r}")
        settings = dict(data.get("sweep", {}))
        solver = dict(data.get("solver", {}))
        # solver options in [sweep] (files written before [solver] existed) move over
        for key in [k for k in settings if k in SolverOptions.fields()]:
            solver.setdefault(key, settings.pop(key))
        return cls(grid=dict(data.get("grid", {})), settings=settings,
                   solver=SolverOptions.from_dict(solver, "[solver]"))

    @classmethod
    def from_toml(cls, path) -> SweepConfig:
        """The sweep of the TOML file at ``path``; a file that is not TOML or holds a bad
        setting raises :class:`~flowsim.files.FileFormatError` naming the file and the
        field."""
        text = read_text(path)
        try:
            data = tomllib.loads(text)
        except tomllib.TOMLDecodeError as exc:
            raise FileFormatError(path, f"is not valid TOML ({exc})") from exc
        return checked(path, lambda: cls.from_dict(data))

    def to_dict(self) -> dict:
        return {"sweep": dict(self.settings), "solver": self.solver.to_dict(),
                "grid": {k: list(v) for k, v in self.grid.items()}}

    @property
    def points(self) -> list[dict]:
        """Grid points (dicts of option values), in grid order."""
        keys = list(self.grid)
        return [dict(zip(keys, values)) for values in itertools.product(*self.grid.values())]

    @property
    def n_tasks(self) -> int:
        return math.prod(len(v) for v in self.grid.values()) * self.settings["repetitions"]

    def point(self, index: int) -> dict:
        """Grid point ``index`` (``points[index]``, found without listing the grid: a
        large grid's tasks are set up in linear time)."""
        values, rest = {}, index
        for key in reversed(list(self.grid)):  # itertools.product: the last axis fastest
            rest, i = divmod(rest, len(self.grid[key]))
            values[key] = self.grid[key][i]
        return {key: values[key] for key in self.grid}

    def task(self, index: int) -> dict:
        """Options of task ``index`` (point ``index // repetitions``) plus its ``seed``."""
        point, rep = divmod(index, self.settings["repetitions"])
        return {**self.point(point), "seed": self.settings["seed"] + rep, "point": point}

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
        return named.make_problem(self.settings["problem"],
                                  (task["b12"], task["b21"], task["b22"]),
                                  (self.settings["d"], self.settings["d2"]))

    def shape(self) -> tuple[int, int]:
        return self.problem(self.task(0)).shape

    def check_runs(self) -> None:
        """Build what every grid point needs before anything runs (its problem, its model,
        its coordinates, its solver options, the first repetition's initial factors), so
        that a bad combination (e.g. ``det_sign`` on a non-square ``"padded"`` problem)
        is refused before the first batch; ``ValueError`` naming the grid point."""
        for p, point in enumerate(self.points):
            task = self.task(p * self.settings["repetitions"])
            try:
                model = DeepMatrixFactorization(self.problem(task).shape, task["depth"])
                if task["coordinates"] != AUTO:
                    make_coordinates(task["coordinates"], model)
                self.solver.replace(solver=task["solver"], rtol=task["rtol"], atol=task["atol"])
                _initial_factors(model, task)
            except (ValueError, TypeError) as exc:
                shown = ", ".join(f"{k}={v!r}" for k, v in point.items()
                                  if len(self.grid[k]) > 1 or v != GRID_OPTIONS[k])
                raise ValueError(f"grid point {p} ({shown or 'the defaults'}): {exc}") from exc


def _initial_factors(model, task):
    return named.make_init(task["init"], model, task["seed"], task["scale"],
                           named.det_sign(task["det_sign"]))


#: per-run result columns written by :func:`run_batch`
RESULT_COLUMNS = ("status", "coordinates_used", "t_final", "loss_final", "w_initial",
                  "w_final", "det_sign_initial", "det_sign_final", "log_abs_det_final",
                  "steps", "rejected")


def run_batch(config: dict, task_ids: Sequence[int]) -> dict[str, np.ndarray]:
    """Run tasks ``task_ids`` of the sweep ``config`` (a :meth:`SweepConfig.to_dict`) as
    one batched :func:`flowsim.gradient_flow` (end points only); returns the
    :data:`RESULT_COLUMNS`, one row per task. A plain function of plain data, so that
    Dask can ship it to a worker."""
    sweep = SweepConfig.from_dict(config)
    tasks = [sweep.task(i) for i in task_ids]
    first = tasks[0]
    if any(tuple(t[k] for k in _COMPILE_KEY) != tuple(first[k] for k in _COMPILE_KEY)
           for t in tasks):
        raise ValueError(f"tasks of one batch must share {_COMPILE_KEY}")
    model = DeepMatrixFactorization(sweep.shape(), first["depth"])
    options = sweep.solver.replace(solver=first["solver"], rtol=first["rtol"],
                                   atol=first["atol"])
    trajs = gradient_flow(
        [sweep.problem(t) for t in tasks], model, [_initial_factors(model, t) for t in tasks],
        coordinates=first["coordinates"], options=options,
        stop_loss=[t["stop_loss"] for t in tasks], t_max=[t["t_max"] for t in tasks],
        save_at="ends", progress=False)
    return {
        "status": np.array([tr.status for tr in trajs]),
        "coordinates_used": np.array([tr.config["coordinates"] for tr in trajs]),
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
#: the columns of a results file (one row per task, ``n`` tasks; ``d x d2`` products)
RESULT_ARRAYS = (
    *(ArraySpec(key, "iu" if key == "depth" else "U" if isinstance(default, str) else "f",
                ("n",)) for key, default in GRID_OPTIONS.items()),
    ArraySpec("seed", "iu", ("n",)), ArraySpec("point", "iu", ("n",)),
    ArraySpec("status", "U", ("n",)), ArraySpec("coordinates_used", "U", ("n",), required=False),
    *(ArraySpec(key, "f", ("n",)) for key in ("t_final", "loss_final", "det_sign_initial",
                                              "det_sign_final", "log_abs_det_final")),
    ArraySpec("w_initial", "f", ("n", "d", "d2")), ArraySpec("w_final", "f", ("n", "d", "d2")),
    ArraySpec("steps", "iu", ("n",)), ArraySpec("rejected", "iu", ("n",)),
    ArraySpec("done", "b", ("n",)),
)
#: a sweep results file (``.npz``)
RESULTS_FORMAT = Format("flowsim.SweepResults", SWEEP_FORMAT_VERSION, arrays=RESULT_ARRAYS,
                        keys=(Key("config", (dict,)), Key("versions", (dict,))))


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
        columns = {k: np.array([np.nan if t[k] is None else t[k] for t in tasks])
                   for k in (*GRID_OPTIONS, "seed", "point")}
        columns.update(
            status=np.full(n, "", dtype="<U16"), coordinates_used=np.full(n, "", dtype="<U16"),
            t_final=np.full(n, np.nan),
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
        meta = {**RESULTS_FORMAT.tag(), "config": self.config.to_dict(),
                "versions": versions()}
        return write_npz(Path(path), {**self.columns, "done": self.done}, meta)

    @classmethod
    def load(cls, path) -> SweepResults:
        """The results file at ``path``, checked (:data:`RESULTS_FORMAT`,
        :func:`check_results_parts`); a bad file raises
        :class:`~flowsim.files.FileFormatError` naming it and what is wrong."""
        data, meta = read_npz(path, RESULTS_FORMAT, check_results_parts)
        done = data.pop("done")
        config = SweepConfig.from_dict(meta["config"])
        # columns added since format version 1 was first written
        data.setdefault("coordinates_used", np.where(done, data["coordinates"], ""))
        return cls(config, data, done)

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


def check_results_parts(data: dict, meta: dict, dims: dict) -> None:
    """What :data:`RESULTS_FORMAT`'s tables cannot say: the configuration in the metadata
    is a valid sweep, the file has one row per task of it with the products' shape, its
    option, ``seed`` and ``point`` columns are those of the configuration's tasks, and a
    row marked done has a run status and a finite ``t_final`` (``ValueError``)."""
    try:
        config = SweepConfig.from_dict(meta["config"])
    except (ValueError, TypeError) as exc:
        raise ValueError(f"metadata config is not a valid sweep configuration: {exc}") \
            from exc
    if dims["n"] != config.n_tasks or (dims["d"], dims["d2"]) != config.shape():
        raise ValueError(f"the file holds {dims['n']} rows of {dims['d']}x{dims['d2']} "
                         f"products; its configuration has {config.n_tasks} tasks of "
                         f"{config.shape()}")
    expected = SweepResults.empty(config).columns
    for key in (*GRID_OPTIONS, "seed", "point"):
        a, b = data[key], expected[key]
        if not np.array_equal(a, b, equal_nan=a.dtype.kind == b.dtype.kind == "f"):
            raise ValueError(f"column {key!r} does not match the sweep configuration in the "
                             "metadata")
    done = data["done"]
    if not np.all(np.isin(data["status"][done], SUCCESS_STATUSES + FAILURE_STATUSES)):
        raise ValueError("a row marked done lacks a run status in column 'status'")
    if not np.all(np.isfinite(data["t_final"][done])):
        raise ValueError("a row marked done has a non-finite 't_final'")


#: a results file this large (bytes) is worth a warning: it is rewritten after every batch
LARGE_RESULTS = 100 << 20

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
    check_output(output, "output")
    config.check_runs()
    results = open_results(config, output)
    todo = [ids for ids in config.batches() if not results.done[list(ids)].all()]
    size = sum(a.nbytes for a in results.columns.values())
    if size > LARGE_RESULTS and len(todo) > 1:
        warnings.warn(f"the results file {output} holds {config.n_tasks} runs "
                      f"({size / 2**20:.0f} MiB) and is rewritten after each of its "
                      f"{len(todo)} batches; a larger batch_size writes it less often",
                      stacklevel=2)
    bar = tqdm(total=config.n_tasks, initial=int(results.done.sum()), unit="run",
               disable=progress is False, delay=0.0 if progress else 2.0, desc="sweep")
    try:
        for ids, rows in runner(config.to_dict(), todo):
            results.record(ids, rows)
            results.save(output)
            bar.update(len(ids))
    except KeyboardInterrupt as exc:
        # the batch in progress is not recorded: its rows stay not done and run again
        bar.close()
        results.save(output)
        raise Interrupted(f"{int(results.done.sum())}/{config.n_tasks} runs done are saved "
                          f"in {output}; rerun the same command to resume (the "
                          "interrupted batch runs again)") from exc
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
