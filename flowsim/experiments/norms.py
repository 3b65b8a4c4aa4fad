"""The norms question at the literature's sizes (Arora, Cohen, Hu & Luo 2019): matrix
completion (or Gaussian matrix sensing) of a random low-rank ground truth by gradient flow
on deep matrix factorizations of depths 1-4, beside the minimum nuclear norm solution.

``measurements="completion"`` observes ``n`` entries (:func:`~flowsim.low_rank_completion`);
``"sensing"`` takes ``n`` Gaussian measurements ``y_i = <A_i, W*>`` of the same ground
truth (:func:`~flowsim.low_rank_sensing`, entries of ``A_i`` i.i.d. ``N(0, 1/n)``).

One *run* is one point of the grid: ``("flow", n, seed, depth)`` integrates gradient flow
from a layer-wise Gaussian start (per-layer std ``init^(1/L) / sqrt(min(d, d2))``, seed
``seed``) on :func:`~flowsim.low_rank_completion` with ``n`` observed entries (data seed
``seed``) until the training MSE over the observations reaches ``stop_mse`` (flowsim loss
``stop_mse * n / 2``); depth 1 is the plain linear model. ``("nuclear", n, seed)`` is the
minimum nuclear norm completion of the same problem (:func:`flowsim.baselines.
min_nuclear_norm`, cvxpy/SCS, or :func:`~flowsim.baselines.nuclear_norm_admm`). Every
run records the test error ``||W - W*||_F^2 / ||W*||_F^2``, the nuclear, Frobenius,
spectral and Schatten-1/2 values and the effective rank of its matrix.

Files, in the output folder: ``norms_results.json`` (the grid's settings and one record
per finished run) and ``norms_matrices.npz`` (each finished run's matrix), both rewritten
atomically after every run, the archive first: a rerun with the same settings reads them
back and computes only the runs missing; other settings are refused. ``norms.png`` and
``norms.pdf``: test error against the number of observations, one line per depth, and the
minimum nuclear norm line.
"""

from __future__ import annotations

import math
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
from tqdm.auto import tqdm

from ..baselines import min_nuclear_norm, norm_summary, nuclear_norm_admm
from ..files import Format, Key, check_keys, read_json, read_npz, write_json, write_npz
from ..initialization import gaussian_init
from ..integration import gradient_flow
from ..parameterization import DeepMatrixFactorization
from ..plots import save_figure
from ..problem import (
    check_distinct,
    check_integer,
    check_real,
    low_rank_completion,
    low_rank_sensing,
)

BASELINES = ("cvxpy", "admm")
#: what the problems observe (module doc)
MEASUREMENTS = ("completion", "sensing")
RESULTS = "norms_results.json"
MATRICES = "norms_matrices.npz"
RESULTS_FORMAT = Format("flowsim.norms", 1, keys=(Key("config", (dict,)),
                                                   Key("records", (list,))))
MATRICES_FORMAT = Format("flowsim.norms_matrices", 1)
RECORD_KEYS = (Key("kind", (str,)), Key("n", (int,)), Key("seed", (int,)),
               Key("depth", (int, type(None))), Key("status", (str,)),
               Key("test_error", (float,)), Key("nuclear", (float,)),
               Key("effective_rank", (float,)), Key("seconds", (float,)))


@dataclass(frozen=True)
class NormsConfig:
    """The grid (module doc). `baseline`: ``"cvxpy"`` (SCS) or ``"admm"``; `max_steps`:
    the flow's step budget per run; `measurements`: ``"completion"`` or ``"sensing"``."""

    shape: tuple[int, int] = (100, 100)
    rank: int = 5
    n_values: tuple[int, ...] = (2000, 5000)
    depths: tuple[int, ...] = (1, 2, 3, 4)
    seeds: tuple[int, ...] = (0, 1, 2)
    init: float = 1e-3
    stop_mse: float = 1e-6
    baseline: str = "cvxpy"
    max_steps: int = 200_000
    measurements: str = "completion"

    def __post_init__(self):
        if isinstance(self.shape, (str, bytes)) or not hasattr(self.shape, "__len__"):
            raise ValueError(f"shape must be (d, d2), got {self.shape!r}")
        shape = tuple(check_integer(f"shape[{i}]", s, minimum=2)
                      for i, s in enumerate(self.shape))
        if len(shape) != 2:
            raise ValueError(f"shape must be (d, d2), got {self.shape!r}")
        rank = check_integer("rank", self.rank, 1, min(shape))
        most = shape[0] * shape[1] if self.measurements == "completion" else None
        n_values = tuple(check_integer("n_values", n, 1, most)
                         for n in _listed("n_values", self.n_values))
        depths = tuple(check_integer("depths", d, 1) for d in _listed("depths", self.depths))
        seeds = tuple(check_integer("seeds", s, 0) for s in _listed("seeds", self.seeds))
        if self.baseline not in BASELINES:
            raise ValueError(f"baseline must be one of {list(BASELINES)}, "
                             f"got {self.baseline!r}")
        if self.measurements not in MEASUREMENTS:
            raise ValueError(f"measurements must be one of {list(MEASUREMENTS)}, "
                             f"got {self.measurements!r}")
        if self.measurements == "sensing" and self.baseline == "admm":
            raise ValueError("baseline 'admm' solves completion only; use baseline "
                             "'cvxpy' for sensing")
        for name, value in (("shape", shape), ("rank", rank), ("n_values", n_values),
                            ("depths", depths), ("seeds", seeds),
                            ("init", check_real("init", self.init, minimum=0, strict=True)),
                            ("stop_mse", check_real("stop_mse", self.stop_mse, minimum=0,
                                                    strict=True)),
                            ("max_steps", check_integer("max_steps", self.max_steps, 1))):
            object.__setattr__(self, name, value)

    def to_dict(self) -> dict:
        out = asdict(self)
        return {k: list(v) if isinstance(v, tuple) else v for k, v in out.items()}

    def runs(self) -> list[tuple]:
        """Keys of every run: per ``(n, seed)``, the baseline then the depths."""
        return [key for n in self.n_values for seed in self.seeds
                for key in [("nuclear", n, seed, None)]
                + [("flow", n, seed, depth) for depth in self.depths]]

    def layer_std(self, depth: int) -> float:
        return self.init ** (1.0 / depth) / math.sqrt(min(self.shape))


def _listed(name: str, values) -> tuple:
    if isinstance(values, (str, bytes)) or not hasattr(values, "__len__") or not len(values):
        raise ValueError(f"{name} must be a non-empty list, got {values!r}")
    return check_distinct(name, values)


def run_name(key: tuple) -> str:
    kind, n, seed, depth = key
    return f"{kind}_n{n}_seed{seed}" + ("" if depth is None else f"_depth{depth}")


def flow_to_mse(problem, model, params, stop_mse: float, max_steps: int):
    """Gradient flow (flowsim's defaults) until the training MSE is ``stop_mse``; only the
    end point is kept."""
    return gradient_flow(problem, model, params, stop_loss=stop_mse * problem.n_observed / 2,
                         max_steps=max_steps, save_at="ends", progress=False)


def run_one(config: NormsConfig, key: tuple) -> tuple[np.ndarray, dict]:
    """The matrix of one grid point and its record (module doc)."""
    kind, n, seed, depth = key
    make = low_rank_sensing if config.measurements == "sensing" else low_rank_completion
    problem, truth = make(config.shape, config.rank, n, seed=seed)
    record = {"kind": kind, "n": n, "seed": seed, "depth": depth}
    start = time.perf_counter()
    if kind == "nuclear":
        fit = (min_nuclear_norm(problem) if config.baseline == "cvxpy"
               else nuclear_norm_admm(problem))
        w = fit.matrix
        record.update(status=fit.status, method=fit.method,
                      max_violation=fit.max_violation, iterations=fit.iterations)
    else:
        model = DeepMatrixFactorization(config.shape, depth)
        params = gaussian_init(model, seed=seed, std=config.layer_std(depth))
        traj = flow_to_mse(problem, model, params, config.stop_mse, config.max_steps)
        w = np.asarray(traj.product[-1])
        record.update(status=traj.status, t=float(traj.t[-1]),
                      steps=int(traj.stats.get("steps", len(traj) - 1)),
                      mse=float(2 * traj.loss[-1] / n),
                      precision_events=len(traj.stats.get("precision_events", ())),
                      sign_events=len(traj.stats.get("sign_events", ())))
    record["seconds"] = time.perf_counter() - start
    finite = bool(np.all(np.isfinite(w)))
    if finite:
        record.update(norm_summary(w, truth))
    else:
        record.update(test_error=math.nan, nuclear=math.nan, effective_rank=math.nan)
    return w, record


def read_results(folder) -> tuple[dict, list[dict], dict]:
    """``(config dict, records, matrices)`` stored in ``folder`` (checked; a record without
    its matrix is dropped, so that run is redone)."""
    folder = Path(folder)
    path = folder / RESULTS

    def check(obj):
        NormsConfig(**obj["config"])
        for k, record in enumerate(obj["records"]):
            check_keys(record, RECORD_KEYS, f"records[{k}]")

    obj = read_json(path, RESULTS_FORMAT, check)
    matrices = {}
    if (folder / MATRICES).exists():
        arrays, _ = read_npz(folder / MATRICES, MATRICES_FORMAT)
        matrices = dict(arrays)
    records = [r for r in obj["records"]
               if run_name((r["kind"], r["n"], r["seed"], r["depth"])) in matrices]
    return obj["config"], records, matrices


def run_grid(config: NormsConfig, folder, progress: bool = True) -> tuple[list[dict], dict]:
    """Run every grid point not yet stored in ``folder``; returns ``(records, matrices)``."""
    folder = Path(folder)
    records, matrices = [], {}
    if (folder / RESULTS).exists():
        stored, records, matrices = read_results(folder)
        stored = {"measurements": "completion", **stored}  # folders written before sensing
        if stored != config.to_dict():
            diff = sorted(k for k in stored if stored[k] != config.to_dict().get(k))
            raise ValueError(f"{folder / RESULTS} holds a grid with other settings "
                             f"({', '.join(diff)}); use another output folder")
    done = {run_name((r["kind"], r["n"], r["seed"], r["depth"])) for r in records}
    todo = [k for k in config.runs() if run_name(k) not in done]
    bar = tqdm(todo, desc="norms", unit="run", disable=not progress)
    for key in bar:
        bar.set_postfix_str(run_name(key))
        w, record = run_one(config, key)
        matrices[run_name(key)] = w
        records.append(record)
        write_npz(folder / MATRICES, matrices, MATRICES_FORMAT.tag())
        write_json(folder / RESULTS, {**RESULTS_FORMAT.tag(), "config": config.to_dict(),
                                      "records": records})
    return records, matrices


def label(kind: str, depth) -> str:
    return "min nuclear norm" if kind == "nuclear" else f"flow, depth {depth}"


def summarize(records: list[dict]) -> list[dict]:
    """One row per ``(method, n)``: test error range over seeds, mean effective rank and
    nuclear norm, runs."""
    groups: dict = {}
    for r in records:
        groups.setdefault((r["kind"] != "nuclear", r["depth"] or 0, r["n"]), []).append(r)
    rows = []
    for (_, depth, n), rs in sorted(groups.items()):
        err = np.array([r["test_error"] for r in rs])
        rows.append({"method": label(rs[0]["kind"], depth), "kind": rs[0]["kind"],
                     "depth": rs[0]["depth"], "n": n, "runs": len(rs),
                     "test_error": [float(err.min()), float(np.median(err)), float(err.max())],
                     "effective_rank": float(np.mean([r["effective_rank"] for r in rs])),
                     "nuclear": float(np.mean([r["nuclear"] for r in rs])),
                     "statuses": sorted({r["status"] for r in rs})})
    return rows


def format_table(rows: list[dict]) -> str:
    """The summary as a markdown table."""
    lines = ["| method | observed | test error (min-max over seeds) | effective rank | "
             "nuclear norm | runs |", "|---|---|---|---|---|---|"]
    for r in rows:
        lo, _, hi = r["test_error"]
        lines.append(f"| {r['method']} | {r['n']:,} | {lo:.2g} - {hi:.2g} | "
                     f"{r['effective_rank']:.1f} | {r['nuclear']:.1f} | {r['runs']} |")
    return "\n".join(lines)


#: the figure's lowest test error: below it (an exact recovery to the solver's rounding)
#: points are drawn on this line
FLOOR = 1e-10


def plot(config: NormsConfig, records: list[dict], folder) -> list:
    """Test error against the number of observations (median and range over seeds), one
    line per depth and the minimum nuclear norm line; PNG and PDF."""
    from matplotlib.figure import Figure  # no pyplot: library code picks no backend

    rows = summarize(records)
    fig = Figure(figsize=(7.5, 4.2))
    ax = fig.subplots()
    series: dict = {}
    for r in rows:
        series.setdefault((r["kind"], r["depth"]), []).append(r)
    floored = False
    for (kind, depth), rs in sorted(series.items(), key=lambda s: (s[0][0] == "nuclear",
                                                                    s[0][1] or 0)):
        n = np.array([r["n"] for r in rs])
        q = np.maximum(np.array([r["test_error"] for r in rs]), FLOOR)
        floored |= bool(np.any(q == FLOOR))
        style = dict(fmt="k--s", lw=1.5) if kind == "nuclear" else dict(fmt="-o")
        ax.errorbar(n, q[:, 1], yerr=[q[:, 1] - q[:, 0], q[:, 2] - q[:, 1]], capsize=3,
                    markersize=4, label=label(kind, depth), **style)
    ax.set_yscale("log")
    if floored:
        ax.axhline(FLOOR, color="gray", lw=0.8, ls=":")
        ax.text(ax.get_xlim()[0], FLOOR, f" errors below {FLOOR:g} drawn at {FLOOR:g}",
                fontsize=7, va="bottom", color="gray")
    ax.set_xlabel("number of observed entries" if config.measurements == "completion"
                  else "number of Gaussian measurements")
    ax.set_ylabel(r"test error $\|W-W^*\|_F^2/\|W^*\|_F^2$")
    d, d2 = config.shape
    what = "completion" if config.measurements == "completion" else "Gaussian sensing"
    ax.set_title(f"{d}x{d2}, rank {config.rank}, {what}: flow from init {config.init:g} to train "
                 f"MSE {config.stop_mse:g}\nmedian and range over {len(config.seeds)} seeds",
                 fontsize=9)
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=8, loc="center left", bbox_to_anchor=(1.01, 0.5))
    fig.tight_layout()
    return save_figure(fig, folder, "norms")
