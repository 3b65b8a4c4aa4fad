"""Figure 1 of the paper: |unobserved entry| against loss for GD on the 2x2 problem (Eq. 6),
depths 2, 3, 4, with the exact gradient-flow curve from the same initialization overlaid.

Runs (App. F.1, the legends of the authors' plots; "(b)" = balanced):

- depths 2 and 3: lr 6e-3 init 1e-5, lr 3e-3 init 1e-6, each unbalanced and balanced;
- depth 4: lr 3e-3 init 1e-3, lr 1.5e-3 init 1e-4, each unbalanced and balanced.

"init" is read as the scale of the *product* matrix (App. F.1's ambiguity note: per-layer
stds of 1e-5/1e-6 cannot escape the origin within the plotted iteration counts). Balanced
runs draw the product as ``init * N(0, 1)`` and factor it (:func:`flowsim.balanced_init`);
unbalanced runs draw every layer i.i.d. ``N(0, s^2)`` with ``s = init^(1/depth)`` (our
choice: the reference code's exact per-layer rule is not known). Both impose
``det W(0) > 0`` as the reference does (its ``enforce_pos_det``; here by reflecting a row
of ``W_L``, which samples the same conditional distribution). GD stops at loss 1e-4 or
5e6 iterations, as in the reference (which checked every 50 iterations).

The flow from the same initialization is integrated in singular-value coordinates
(``"svd"``, which keep the sign of ``det W`` exactly) for the balanced runs; those
coordinates need a balanced start, so the unbalanced runs' flow uses factor coordinates.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from matplotlib.colors import Normalize
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from tqdm.auto import tqdm

from ..compare import unobserved_at_loss
from ..descent import gradient_descent
from ..dynamics import COORDINATES
from ..files import Format, Key, check_keys, read_json, write_json
from ..initialization import balanced_init, gaussian_init
from ..integration import gradient_flow
from ..parameterization import DeepMatrixFactorization, Params
from ..plots import colored_line, reversed_loss_axis
from ..problem import MatrixCompletion, paper_problem
from ..trajectory import Trajectory

#: loss levels of the markers on the paper's curves (App. F.1: markers at ~1.3 * 10^-j)
MARKER_LEVELS = (1.3e-1, 1.3e-2, 1.3e-3, 1.3e-4)
MARKERS = ("o", "s", "^", "D")


@dataclass(frozen=True)
class Figure1Run:
    """One curve of Figure 1: GD with `lr` from an init of product scale `init`."""

    depth: int
    lr: float
    init: float
    balanced: bool

    @property
    def label(self) -> str:
        """The paper's legend text, e.g. ``"lr 6e-3 init 1e-5 (b)"``."""
        return f"lr {_short(self.lr)} init {_short(self.init)}" + (" (b)" if self.balanced else "")

    @property
    def model(self) -> DeepMatrixFactorization:
        return DeepMatrixFactorization((2, 2), self.depth)


def _short(x: float) -> str:
    """``6e-3``, ``1.5e-3``: scientific notation without padding zeros."""
    mantissa, exponent = f"{x:.6e}".split("e")
    return f"{float(mantissa):g}e{int(exponent)}"


def _pair(depth, lr, init):
    return (Figure1Run(depth, lr, init, False), Figure1Run(depth, lr, init, True))


#: App. F.1's legends, per depth
PAPER_RUNS: dict[int, tuple[Figure1Run, ...]] = {
    2: _pair(2, 6e-3, 1e-5) + _pair(2, 3e-3, 1e-6),
    3: _pair(3, 6e-3, 1e-5) + _pair(3, 3e-3, 1e-6),
    4: _pair(4, 3e-3, 1e-3) + _pair(4, 1.5e-3, 1e-4),
}


def initial_factors(run: Figure1Run, seed: int = 0) -> Params:
    """The run's initialization, with ``det W(0) > 0`` (see the module doc)."""
    if run.balanced:
        return balanced_init(run.model, seed=seed, scale=run.init, det_sign=+1)
    return gaussian_init(run.model, seed=seed, std=run.init ** (1.0 / run.depth), det_sign=+1)


def flow_coordinates(run: Figure1Run) -> str:
    """Sign-safe ``"svd"`` coordinates where they apply (balanced starts), else factors."""
    return "svd" if run.balanced and "svd" in COORDINATES else "factors"


@dataclass(frozen=True)
class Figure1Result:
    run: Figure1Run
    descent: Trajectory
    flow: Trajectory


def simulate_run(run: Figure1Run, *, problem: MatrixCompletion | None = None, seed: int = 0,
                 stop_loss: float = 1e-4, max_iterations: int = 5_000_000,
                 dtype: str = "float64", flow_stop_loss: float | None = None) -> Figure1Result:
    """GD (the paper's protocol) and the exact flow from the same initialization."""
    problem = paper_problem() if problem is None else problem
    params = initial_factors(run, seed)
    descent = gradient_descent(problem, run.model, params, run.lr, stop_loss=stop_loss,
                               max_iterations=max_iterations, dtype=dtype, progress=False)
    flow = gradient_flow(problem, run.model, params, coordinates=flow_coordinates(run),
                         stop_loss=stop_loss if flow_stop_loss is None else flow_stop_loss,
                         progress=False)
    return Figure1Result(run, descent, flow)


def simulate_figure1(depths=(2, 3, 4), *, progress: bool = True, **kwargs) -> list[Figure1Result]:
    """Every run of :data:`PAPER_RUNS` at `depths` (keyword arguments: :func:`simulate_run`),
    with a progress bar over runs."""
    bad = [d for d in depths if d not in PAPER_RUNS]
    if bad:
        raise ValueError(f"depths must be among {sorted(PAPER_RUNS)}, got {bad}")
    runs = [run for d in depths for run in PAPER_RUNS[d]]
    results = []
    with tqdm(runs, desc="figure1", unit="run", disable=not progress) as bar:
        for run in bar:
            bar.set_postfix_str(f"depth {run.depth} {run.label}")
            results.append(simulate_run(run, **kwargs))
    return results


def draw_panel(ax, problem: MatrixCompletion, results: list[Figure1Result], *,
               lowest_loss: float = 1e-4, cmap: str = "viridis"):
    """One depth's panel; returns the iteration colour mappable (for a colorbar)."""
    top = max(int(r.descent.steps[-1]) for r in results)
    norm = Normalize(0, top)
    mappable = None
    handles = []
    for i, (r, marker) in enumerate(zip(results, MARKERS)):
        gd, flow = r.descent, r.flow
        keep = gd.loss >= lowest_loss * (1 - 1e-9)
        mappable = colored_line(ax, gd.loss[keep], np.abs(gd.product[keep, 0, 0]),
                                gd.steps[keep], cmap=cmap, norm=norm, lw=3.0, zorder=2)
        # the flow on top, thin: where GD follows it, the two curves coincide
        keep = flow.loss >= lowest_loss * (1 - 1e-9)
        ax.plot(flow.loss[keep], np.abs(flow.product[keep, 0, 0]), color="black", lw=0.9,
                ls="--" if r.run.balanced else ":", zorder=4)
        # markers staggered by a fifth of a decade per run, so that overlapping runs stay
        # distinguishable (the paper puts all runs' markers at the same losses)
        levels = [lv * 10 ** (-0.2 * i) for lv in MARKER_LEVELS]
        levels = [lv for lv in levels if gd.loss.min() <= lv <= gd.loss[0]]
        if levels:
            y = np.abs(unobserved_at_loss(problem, gd, levels)[:, 0])
            ax.scatter(levels, y, marker=marker, s=36, facecolor="white", edgecolor="black",
                       zorder=5)
        handles.append(Line2D([], [], ls="none", marker=marker, markerfacecolor="white",
                              markeredgecolor="black", label=f"GD {r.run.label}"))
    handles += [Line2D([], [], color="black", ls="--", lw=1.0,
                       label=f"gradient flow, same init ({flow_coordinates(results[-1].run)})"),
                Line2D([], [], color="black", ls=":", lw=1.0,
                       label="gradient flow, unbalanced init (factors)")]
    reversed_loss_axis(ax, lowest_loss, highest=max(r.descent.loss[0] for r in results) * 1.2)
    ax.set_ylim(bottom=-0.02 * ax.get_ylim()[1])  # curves at |W11| ~ 0 stay visible
    ax.set_ylabel("|unobserved entry|  $|W_{11}|$")
    ax.set_title(f"depth {results[0].run.depth}")
    ax.legend(handles=handles, loc="upper left", fontsize=7, frameon=True)
    ax.grid(alpha=0.3)
    return mappable


def plot_figure1(results: list[Figure1Result], *, problem: MatrixCompletion | None = None,
                 lowest_loss: float = 1e-4) -> dict[str, Figure]:
    """Figure 1: one panel per depth (``"depth2"``, ...) and all panels side by side
    (``"all"``). Colour = GD iteration; markers at loss ~1.3e-j as in the paper; black
    lines = the exact flow from the same initialization."""
    problem = paper_problem() if problem is None else problem
    depths = sorted({r.run.depth for r in results})
    figures = {}
    combined = Figure(figsize=(5.2 * len(depths), 4.2), layout="constrained")
    axes = np.atleast_1d(combined.subplots(1, len(depths)))
    for depth, ax in zip(depths, axes):
        group = [r for r in results if r.run.depth == depth]
        mappable = draw_panel(ax, problem, group, lowest_loss=lowest_loss)
        combined.colorbar(mappable, ax=ax, label="iteration")
        single = Figure(figsize=(5.6, 4.4), layout="constrained")
        ax1 = single.subplots()
        single.colorbar(draw_panel(ax1, problem, group, lowest_loss=lowest_loss), ax=ax1,
                        label="iteration")
        figures[f"depth{depth}"] = single
    combined.suptitle("Figure 1: GD on Eq. (6) (colour = iteration) and the exact gradient "
                      "flow from the same initialization (black). init = scale of the product "
                      "matrix; unbalanced runs: layers i.i.d. N(0, init^(2/depth)); det W(0) > 0",
                      fontsize=10)
    figures["all"] = combined
    return figures


def summary(results: list[Figure1Result], problem: MatrixCompletion | None = None) -> list[dict]:
    """Per run: GD status, iterations, final loss and |W11|; |W11| at the marker levels;
    the flow's coordinates and |W11| where it stopped (JSON-ready)."""
    problem = paper_problem() if problem is None else problem
    rows = []
    for r in results:
        gd, flow = r.descent, r.flow
        levels = [lv for lv in MARKER_LEVELS if gd.loss.min() <= lv]
        at = np.abs(unobserved_at_loss(problem, gd, levels)[:, 0]) if levels else []
        rows.append({
            "depth": r.run.depth, "label": r.run.label, "lr": r.run.lr, "init": r.run.init,
            "balanced": r.run.balanced, "gd_status": gd.status,
            "gd_iterations": int(gd.steps[-1]), "gd_final_loss": float(gd.loss[-1]),
            "gd_final_abs_w11": float(abs(gd.product[-1, 0, 0])),
            "gd_det_sign_final": float(gd.det_sign[-1]),
            "gd_abs_w11_at": {f"{lv:g}": float(v) for lv, v in zip(levels, at)},
            "flow_coordinates": flow.config.get("coordinates"), "flow_status": flow.status,
            "flow_final_loss": float(flow.loss[-1]),
            "flow_final_abs_w11": float(abs(flow.product[-1, 0, 0])),
            "flow_det_sign_final": float(flow.det_sign[-1]),
            "inverse_sqrt_2loss_at_flow_end": 1.0 / math.sqrt(2 * float(flow.loss[-1])),
        })
    return rows


#: the keys of one run of the summary file (:func:`summary`)
SUMMARY_RUN_KEYS = (
    Key("depth", (int,)), Key("label", (str,)), Key("lr", (float,)), Key("init", (float,)),
    Key("balanced", (bool,)), Key("gd_status", (str,)), Key("gd_iterations", (int,)),
    Key("gd_final_loss", (float,)), Key("gd_final_abs_w11", (float,)),
    Key("flow_status", (str,)), Key("flow_final_loss", (float,)),
    Key("flow_final_abs_w11", (float,)))
#: ``figure1_summary.json`` (files written before formats were named have no ``format``)
SUMMARY_FORMAT = Format(
    "flowsim.figure1_summary", 1, untagged=True,
    keys=(Key("dtype", (str,)), Key("seed", (int,)), Key("stop_loss", (float,)),
          Key("max_iterations", (int,)), Key("runs", (list,))))


def save_summary(path, rows: list[dict], **settings):
    """Write the :func:`summary` rows and the run's settings (``dtype``, ``seed``,
    ``stop_loss``, ``max_iterations``) as ``figure1_summary.json``, atomically."""
    return write_json(path, {**SUMMARY_FORMAT.tag(), **settings, "runs": rows})


def _check_summary(obj: dict) -> None:
    for i, row in enumerate(obj["runs"]):
        check_keys(row, SUMMARY_RUN_KEYS, f"runs[{i}]")


def load_summary(path) -> dict:
    """The summary file at ``path`` (:func:`save_summary`), checked; a bad file raises
    :class:`~flowsim.files.FileFormatError` naming it and what is wrong."""
    return read_json(path, SUMMARY_FORMAT, _check_summary)
