"""Figure 2 (Section 4.2, protocol App. F.2): tensor completion by the CP flow vs number of
observations -- reconstruction error and estimated CP rank, against the "linear"
memorizer baseline.

One *run* is one point of the grid: ``("tf", n, std, trial)`` fits a CP factorization
(``R = prod(d) / max(d)`` components, Gaussian init with that std) to the first ``n``
entries of a fixed unit-norm rank-1 ground truth, with exact gradient flow (default) or
the reference's adaptive-step gradient descent, and records the relative
reconstruction error ``||W - W*||_F / ||W*||_F`` and :func:`~flowsim.tensor.cp_rank` of
the result; ``("linear", n)`` does the same for the memorizer. Each finished run is
appended to a JSON-lines results file at once, so an interrupted grid resumes where it
stopped (finished runs are never recomputed). The figure shows, per ``(n, std)``, the
median over trials with 25-75 % bars.

Stopping. The reference stops when the training MSE is below 1e-6 at 3 checks in a row,
and its adaptive step ends far deeper meanwhile. Stopped *exactly* at MSE 1e-6 no method
can show the figure's errors: the observed residual alone is ``sqrt(n * 1e-6)`` (1.4e-2
at n = 200). The grid therefore stops at ``stop_mse = 1e-10`` by default (flowsim loss
``stop_mse * n / 2``); ``stop_mse = 1e-6`` is one option away.

Cost: ``solver="auto"`` takes Dopri8EXPRB43 (Dopri8, then an exponential Rosenbrock
method once the flow is stiff) through the stiff stretch of order 3 from init 1e-2, where
explicit steps are limited by stability; the flows of the order-3 grid then cost about
what the reference's descent does, and the grid's time is the rank estimates'.
Measurements, order 4 and its command: docs/numerics.md, "Figure 2: what the grid
costs".
"""

from __future__ import annotations

import math
import os
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
from tqdm.auto import tqdm

from ..files import (
    Format,
    Key,
    check_keys,
    checked,
    dumps_json,
    read_jsonl,
    replace_atomically,
    save_figure_file,
)
from ..initialization import cp_gaussian_init
from ..integration import SOLVERS, gradient_flow
from ..parameterization import CPFactorization, max_cp_rank
from ..problem import check_distinct, check_integer, check_real
from ..runtime import Interrupted, check_fits
from ..tensor.descent import cp_gradient_descent, mse_to_loss
from ..tensor.rank import cp_rank, reference_atol
from ..tensor.truth import CompletionDataset, cp_dataset, linear_baseline

#: number-of-observations grids per tensor order (order 3: App. F.2; order 4: read off the
#: paper's axis, the exact list was not found)
N_VALUES = {3: (50, 100, 150, 200, 250, 300, 350, 400, 450, 511),
            4: (100, 500, 1000, 1500, 2000, 2500, 3000, 3500, 4095)}
METHODS = ("flow", "gd")


@dataclass(frozen=True)
class Figure2Config:
    """Everything that defines a Figure 2 grid (stored in the results file's header).

    - `order`, `dim`: tensor shape ``(dim,) * order``; `truth_rank`: CP rank of the ground
      truth (1 in Figure 2, 3 in Figure 6); `dataset_seed`: seed of truth and order.
    - `n_values`: numbers of observations (default :data:`N_VALUES` of the order).
    - `init_stds`, `trials`: init scales and repetitions; trial ``k`` uses init seed
      ``k + 1`` for every std (same directions, different scale).
    - `method`: ``"flow"`` (:func:`flowsim.gradient_flow` with `solver`, `rtol`, `atol`,
      `max_steps`; ``"auto"`` and ``None``: the flow's defaults, Dopri8EXPRB43 here)
      or ``"gd"`` (:func:`~flowsim.tensor.descent.cp_gradient_descent`, lr 1e-2,
      `max_iterations`).
    - `stop_mse`: stop at this training MSE over the observations (module doc).
    - `rank_rtol`: relative tolerance of the rank estimate (``"rank"`` of a record);
      ``None`` skips it and the figure shows ``"rank_ref"`` (order 4: the memorizer's
      rtol 1e-2 rank needs fits of ~200 components, >10 min per tensor).
    - `rank_mse`: the reference's rank criterion, fit MSE over all entries below this
      (``"rank_ref"`` of a record, :func:`~flowsim.tensor.rank.reference_atol`); ``None``
      skips it.
    - `rank_restarts`, `rank_max_sweeps`: ALS starts per rank and sweeps per start.
    """

    order: int = 3
    dim: int = 8
    truth_rank: int = 1
    dataset_seed: int = 0
    n_values: tuple[int, ...] | None = None
    init_stds: tuple[float, ...] = (1e-2, 1e-3)
    trials: int = 5
    method: str = "flow"
    stop_mse: float = 1e-10
    solver: str = "auto"
    rtol: float | None = None
    atol: float | None = None
    max_steps: int = 100_000
    max_iterations: int = 1_000_000
    rank_rtol: float | None = 1e-2
    rank_mse: float | None = 1e-6
    rank_restarts: int = 3
    rank_max_sweeps: int = 1000
    shape: tuple[int, ...] = field(init=False)

    def __post_init__(self):
        for name in ("order", "dim", "truth_rank", "dataset_seed", "trials", "max_steps",
                     "max_iterations", "rank_restarts", "rank_max_sweeps"):
            low = {"order": 2, "dataset_seed": 0}.get(name, 1)
            object.__setattr__(self, name, check_integer(name, getattr(self, name), low))
        # the truth, the mask and the model's product, each dim^order float64 entries
        check_fits(f"order {self.order} with dim {self.dim} (tensors of {self.dim}^"
                   f"{self.order} entries)", 3 * 8 * self.dim ** self.order)
        shape = (self.dim,) * self.order
        total = math.prod(shape)
        n_values = self.n_values
        if n_values is None:
            n_values = N_VALUES.get(self.order) or tuple(
                int(v) for v in np.unique(np.linspace(total // 10, total - 1, 10).astype(int)))
        n_values = tuple(check_integer("n_values", n, 1, total) for n in _listed(
            "n_values", n_values))
        stds = tuple(check_real("init_stds", s, minimum=0, strict=True)
                     for s in _listed("init_stds", self.init_stds))
        if self.method not in METHODS:
            raise ValueError(f"method must be one of {list(METHODS)}, got {self.method!r}")
        if self.solver != "auto" and self.solver not in SOLVERS:
            raise ValueError(f"solver must be 'auto' or one of {list(SOLVERS)}, "
                             f"got {self.solver!r}")
        if self.rank_rtol is None and self.rank_mse is None:
            raise ValueError("rank_rtol and rank_mse cannot both be None (no rank estimate)")
        for name in ("stop_mse", "rtol", "atol", "rank_rtol", "rank_mse"):
            value = getattr(self, name)
            if value is not None or name == "stop_mse":
                value = check_real(name, value, minimum=0, strict=True)
                object.__setattr__(self, name, value)
        if self.rtol is not None and not self.rtol < 1:
            raise ValueError(f"rtol must be < 1 (a relative tolerance), got {self.rtol!r}")
        object.__setattr__(self, "n_values", n_values)
        object.__setattr__(self, "init_stds", stds)
        object.__setattr__(self, "shape", shape)

    @property
    def cp_rank(self) -> int:
        """Components of the CP factorization, ``prod(d) / max(d)`` (App. F.2)."""
        return max_cp_rank(self.shape)

    def to_dict(self) -> dict:
        out = asdict(self)
        out.pop("shape")
        out["n_values"], out["init_stds"] = list(self.n_values), list(self.init_stds)
        return out

    def runs(self) -> list[tuple]:
        """Keys of every run: the memorizer per ``n``, then the tf runs."""
        keys = [("linear", n, None, None) for n in self.n_values]
        keys += [("tf", n, std, k) for n in self.n_values for std in self.init_stds
                 for k in range(self.trials)]
        return keys


def _listed(name: str, values) -> tuple:
    """``values`` as a non-empty tuple without repeats (``ValueError`` naming ``name``)."""
    if isinstance(values, (str, bytes)) or not hasattr(values, "__len__") or not len(values):
        raise ValueError(f"{name} must be a non-empty list, got {values!r}")
    return check_distinct(name, values)


def dataset(config: Figure2Config) -> CompletionDataset:
    return cp_dataset(config.shape, config.truth_rank, config.dataset_seed)


def _relative_error(w, truth) -> float:
    return float(np.linalg.norm(w - truth) / np.linalg.norm(truth))


def solve_one(config: Figure2Config, data: CompletionDataset, key: tuple
              ) -> tuple[np.ndarray, dict]:
    """The completed tensor of one grid point (module doc) and its record so far
    (``status``, ``steps``, ``solve_s``, ...).

    The flow is :func:`flowsim.gradient_flow` with ``save_at="ends"``: the same solve,
    end conditions and exact stop point as any run, without keeping every accepted step
    (the stiff runs take 15-30k of them); one run at a time, because vmapped lanes wait
    for the slowest member (docs/numerics.md, "Figure 2: what the grid costs").
    """
    kind, n, std, trial = key
    problem = data.problem(n)
    record = {"kind": kind, "n": n, "std": std, "trial": trial}
    start = time.perf_counter()
    if kind == "linear":
        w = linear_baseline(problem)
        record.update(status="exact", steps=0, mse=0.0)
    else:
        model = CPFactorization(config.shape, config.cp_rank)
        params = cp_gaussian_init(model, seed=trial + 1, std=std)
        if config.method == "flow":
            tolerances = {k: v for k, v in (("rtol", config.rtol), ("atol", config.atol))
                          if v is not None}
            traj = gradient_flow(
                problem, model, params, solver=config.solver,
                stop_loss=mse_to_loss(config.stop_mse, n), max_steps=config.max_steps,
                save_at="ends", **tolerances,
                progress=False)
            steps = int(traj.stats.get("steps", len(traj) - 1))
        else:
            traj = cp_gradient_descent(problem, model, params, stop_mse=config.stop_mse,
                                       max_iterations=config.max_iterations, progress=False)
            steps = int(traj.steps[-1])
        w = traj.product[-1]
        record.update(seed=trial + 1, status=traj.status, message=traj.message, steps=steps,
                      t=float(traj.t[-1]), mse=float(2 * traj.loss[-1] / n))
    record["solve_s"] = time.perf_counter() - start
    return np.asarray(w), record


def evaluate(config: Figure2Config, data: CompletionDataset, w, record: dict) -> dict:
    """Add the relative error and the rank estimates of ``w`` (and their time) to a
    record: ``"rank"`` at `rank_rtol`, ``"rank_ref"`` at the reference's criterion."""
    start = time.perf_counter()
    record["error"] = _relative_error(w, data.truth)
    finite = bool(np.all(np.isfinite(w)))
    kw = {"seed": 0, "restarts": config.rank_restarts, "max_sweeps": config.rank_max_sweeps}
    if config.rank_rtol is not None:
        record["rank"] = cp_rank(w, rtol=config.rank_rtol, **kw) if finite else -1
    if config.rank_mse is not None:
        record["rank_ref"] = cp_rank(w, atol=reference_atol(config.shape, config.rank_mse),
                                     **kw) if finite else -1
    record["rank_s"] = time.perf_counter() - start
    return record


def run_one(config: Figure2Config, data: CompletionDataset, key: tuple) -> dict:
    """One grid point (module doc) as a JSON-ready record."""
    w, record = solve_one(config, data, key)
    return evaluate(config, data, w, record)


def _key(record: dict) -> tuple:
    return record["kind"], record["n"], record["std"], record["trial"]


#: a Figure 2 results file (JSON lines): the header's keys
RESULTS_FORMAT = Format("flowsim.figure2", 1, keys=(Key("config", (dict,)),))
#: the keys of one run's record (``rank`` / ``rank_ref`` where the grid estimates them)
RECORD_KEYS = (Key("kind", (str,)), Key("n", (int,)), Key("std", (float, type(None))),
               Key("trial", (int, type(None))), Key("status", (str,)), Key("steps", (int,)),
               Key("mse", (float,)), Key("error", (float,)), Key("solve_s", (float,)),
               Key("rank_s", (float,)), Key("rank", (int,), required=False),
               Key("rank_ref", (int,), required=False))


def read_results(path) -> tuple[dict, list[dict], bool]:
    """``(config dict, records, cut)`` of a results file, checked: a header naming the
    format with a valid :class:`Figure2Config`, then one record per line for a run of
    that grid (:data:`RECORD_KEYS`), no run twice. A last line cut short by a crash is
    dropped (``cut``; that run is redone). A bad file raises
    :class:`~flowsim.files.FileFormatError` naming it and the line."""
    header, lines, cut = read_jsonl(path, RESULTS_FORMAT)

    def check():
        try:
            config = Figure2Config(**header["config"])
        except (TypeError, ValueError) as exc:
            raise ValueError(f"line 1 (the header): config is not a valid Figure 2 grid: "
                             f"{exc}") from exc
        runs, seen = set(config.runs()), {}
        needed = [k for k, on in (("rank", config.rank_rtol), ("rank_ref", config.rank_mse))
                  if on is not None]
        for number, record in lines:
            check_keys(record, RECORD_KEYS, f"line {number}")
            missing = [k for k in needed if k not in record]
            if missing:
                raise ValueError(f"line {number} lacks {missing}")
            key = _key(record)
            if key not in runs:
                raise ValueError(f"line {number} is a run outside the grid in the header "
                                 f"({key})")
            if key in seen:
                raise ValueError(f"line {number} repeats the run of line {seen[key]} ({key})")
            seen[key] = number
        return header["config"], [record for _, record in lines], cut

    return checked(path, check)


def load_results(path) -> tuple[dict, list[dict]]:
    """``(config dict, records)`` of a results file (:func:`read_results`)."""
    config, records, _ = read_results(path)
    return config, records


def _write_lines(path: Path, lines: list[dict]) -> None:
    text = "".join(dumps_json(line) + "\n" for line in lines)
    replace_atomically(path, lambda fh: fh.write(text.encode()))


def run_grid(config: Figure2Config, path, progress: bool = True) -> list[dict]:
    """Run every grid point not yet in the results file ``path`` (JSON lines), appending
    each record as soon as it is finished; returns all records."""
    path = Path(path)
    done: list[dict] = []
    header = {**RESULTS_FORMAT.tag(), "config": config.to_dict()}
    if path.exists() and path.stat().st_size:
        stored, done, cut = read_results(path)
        if stored != config.to_dict():
            diff = sorted(k for k in stored if stored[k] != config.to_dict().get(k))
            raise ValueError(f"{path} holds a grid with other settings ({', '.join(diff)}); "
                             "use another output directory")
        if cut:  # drop the line a crash cut short before appending
            _write_lines(path, [header, *done])
    else:
        _write_lines(path, [header])
    finished = {_key(r) for r in done}
    todo = [k for k in config.runs() if k not in finished]
    data = dataset(config)
    bar = tqdm(todo, desc=f"figure2 order {config.order}", unit="run", disable=not progress)
    with path.open("a") as f:
        try:
            for key in bar:
                bar.set_postfix_str(f"{key[0]} n={key[1]}" + (f" std={key[2]:g} trial={key[3]}"
                                                              if key[0] == "tf" else ""))
                record = run_one(config, data, key)
                f.write(dumps_json(record) + "\n")
                f.flush()
                os.fsync(f.fileno())
                done.append(record)
        except KeyboardInterrupt as exc:
            # the run in progress is not recorded: it runs again on the rerun
            raise Interrupted(f"{len(done)} finished runs are saved in {path}; rerun the "
                              "same command to resume") from exc
    return done


def summarize(records: list[dict]) -> dict:
    """Per series (``"linear"`` or ``("tf", std)``) and ``n``: the 25/50/75 percentiles of
    the error and of the rank over trials (and of ``rank_ref`` when every run has it)."""
    groups: dict = {}
    for r in records:
        series = "linear" if r["kind"] == "linear" else ("tf", r["std"])
        groups.setdefault(series, {}).setdefault(r["n"], []).append(r)
    out = {}
    for series, by_n in groups.items():
        rows = []
        for n in sorted(by_n):
            err = np.array([r["error"] for r in by_n[n]])
            rank = np.array([r.get("rank", r.get("rank_ref")) for r in by_n[n]], dtype=float)
            row = {"n": n, "runs": len(err),
                   "error": np.percentile(err, [25, 50, 75]).tolist(),
                   "rank": np.percentile(rank, [25, 50, 75]).tolist()}
            if all("rank_ref" in r for r in by_n[n]):
                ref = np.array([r["rank_ref"] for r in by_n[n]], dtype=float)
                row["rank_ref"] = np.percentile(ref, [25, 50, 75]).tolist()
            rows.append(row)
        out[series] = rows
    return out


def plot(config: Figure2Config, records: list[dict], path) -> Path:
    """Figure 2's two panels (error, estimated rank vs n) as a PNG."""
    from matplotlib.figure import Figure  # no pyplot: library code picks no backend

    summary = summarize(records)
    fig = Figure(figsize=(11, 4.2))
    axes = fig.subplots(1, 2)
    order = sorted((s for s in summary if s != "linear"), key=lambda s: -s[1])
    styles = [("o-", f"tf, init {s[1]:g}", s) for s in order]
    if "linear" in summary:
        styles.append(("s--", "linear (memorizer)", "linear"))
    for marker, label, series in styles:
        rows = summary[series]
        n = np.array([r["n"] for r in rows])
        for ax, metric in zip(axes, ("error", "rank")):
            q = np.array([r[metric] for r in rows])
            ax.errorbar(n, q[:, 1], yerr=[q[:, 1] - q[:, 0], q[:, 2] - q[:, 1]], fmt=marker,
                        capsize=3, label=label, markersize=4)
    # the memorizer's rank at the reference's own criterion (rank.py module doc)
    rows = summary.get("linear", [])
    if rows and config.rank_rtol is not None and all("rank_ref" in r for r in rows):
        q = np.array([r["rank_ref"] for r in rows])
        axes[1].errorbar([r["n"] for r in rows], q[:, 1],
                         yerr=[q[:, 1] - q[:, 0], q[:, 2] - q[:, 1]], fmt="s:", capsize=3,
                         markersize=4, color="gray",
                         label=f"linear, reference tol (MSE {config.rank_mse:g})")
    axes[1].axhline(config.truth_rank, color="k", lw=0.8, ls=":", label="ground truth")
    axes[0].set_yscale("log")
    axes[0].set_ylabel(r"reconstruction error $\|W-W^*\|_F/\|W^*\|_F$")
    crit = (f"rtol {config.rank_rtol:g}" if config.rank_rtol is not None
            else f"fit MSE < {config.rank_mse:g}")
    axes[1].set_ylabel(f"estimated CP rank ({crit})")
    how = (f"gradient flow ({config.solver})" if config.method == "flow"
           else "GD, adaptive step")
    for ax in axes:
        ax.set_xlabel("number of observations")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    shape = "x".join(str(d) for d in config.shape)
    fig.suptitle(f"Figure 2, order {config.order} ({shape}, R={config.cp_rank}, rank-"
                 f"{config.truth_rank} truth): {how} to MSE {config.stop_mse:g}; median "
                 f"and 25-75% of {config.trials} trial{'s' if config.trials != 1 else ''}",
                 fontsize=10)
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    save_figure_file(fig, path, dpi=120)
    return path
