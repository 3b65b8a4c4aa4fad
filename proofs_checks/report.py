"""Report of a verification: a plain-text table, and a folder with ``report.md``,
``report.json`` and figures (|W11| sqrt(2l) vs loss, bound margins vs loss)."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import numpy as np

from flowsim.files import save_figure_file, write_text

from . import norms, theorem1, theorem2
from .result import jsonable
from .runner import Outcome

COLUMNS = ("claim", "check", "margin", "result")


def _row(r) -> tuple[str, str, str, str]:
    return (r.claim, r.check + ("" if r.source == "paper" else f" [{r.source}]"),
            f"{r.margin:.3g}", "pass" if r.passed else "FAIL")


def format_table(outcome: Outcome, width: int = 160, evidence: bool = True) -> str:
    """Fixed-width table: claim, check, margin, pass/fail, with the evidence below."""
    rows = [_row(r) for r in outcome.results]
    widths = [max(len(c), *(len(row[k]) for row in rows)) if rows else len(c)
              for k, c in enumerate(COLUMNS)]
    widths[1] = min(widths[1], width - sum(widths) + widths[1] - 6)
    line = lambda cells: "  ".join(c.ljust(w)[:w] for c, w in zip(cells, widths))  # noqa: E731
    out = [line(COLUMNS), line(["-" * w for w in widths])]
    for r, row in zip(outcome.results, rows):
        out.append(line(row))
        if evidence:
            out += textwrap.wrap(r.evidence, width - 6, initial_indent="      ",
                                 subsequent_indent="      ")
    n_fail = sum(not r.passed for r in outcome.results)
    out.append(f"{len(rows) - n_fail}/{len(rows)} checks passed"
               + ("" if not n_fail else f", {n_fail} FAILED"))
    return "\n".join(out)


def _markdown(outcome: Outcome, figures: list[str]) -> str:
    plan = outcome.plan
    lines = ["# flowsim verify: Razin & Cohen (2020), claim by claim", "",
             f"Mode: {'quick' if plan.quick else 'full'}; trajectory coordinates by depth: "
             f"{plan.coordinates}; {sum(r.passed for r in outcome.results)}/"
             f"{len(outcome.results)} checks passed.", "",
             "Margin = smallest slack of the checked statement (>= 0 iff it holds), in the "
             "statement's units. Source: paper = statement/constant as printed in the main "
             "text; derived = docs/derivations.md's derived bound (the paper's own constant is "
             "unknown or garbled in our copy); numeric = cross-check.", "",
             "| claim | check | source | evidence | margin | result |",
             "|---|---|---|---|---|---|"]
    for r in outcome.results:
        cells = [r.claim, r.check, r.source, r.evidence, f"{r.margin:.3g}",
                 "pass" if r.passed else "**FAIL**"]
        lines.append("| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |")
    lines += ["", "Seconds per claim: " + ", ".join(f"{k} {v:.1f}" for k, v in
                                                    outcome.seconds.items()), ""]
    if outcome.warnings:
        lines += ["Warnings the runs raised (recorded, not failures):", ""]
        lines += [f"- {claim}: {w}" for claim, ws in outcome.warnings.items() for w in ws]
        lines += [""]
    lines += [f"![{f}]({f})" for f in figures]
    return "\n".join(lines) + "\n"


def _figures(outcome: Outcome, folder: Path) -> list[str]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = []
    runs = outcome.runs.get("theorem1", [])
    if runs:
        fig, ax = plt.subplots(figsize=(7, 4.5))
        for run in runs:
            tr = run.traj
            ax.plot(tr.loss, np.abs(tr.product[:, 0, 0]) * np.sqrt(2 * tr.loss), lw=1,
                    label=run.label)
        ax.set(xscale="log", xlabel="loss l", ylabel="|W11| sqrt(2 l)",
               title="Theorem 1: |W11| sqrt(2l) -> 1 (bound: >= 1 - 2 sqrt(2l))")
        ax.invert_xaxis()
        ax.axhline(1.0, color="k", ls=":")
        ax.legend(fontsize=6)
        fig.tight_layout()
        save_figure_file(fig, folder / "w11_vs_loss.png", dpi=120)
        plt.close(fig)
        names.append("w11_vs_loss.png")

        fig, ax = plt.subplots(figsize=(7, 4.5))
        nuclear = norms.schatten(1.0)
        a, b = theorem1.paper_constants(nuclear)
        bounds = (("|W11| (D2)", theorem1.unobserved_entry_slack),
                  ("nuclear (8), paper a, b",
                   lambda loss, w: theorem1.norm_slack(loss, w, nuclear, a, b)),
                  ("D(W, M1) (10)", theorem1.distance_slack),
                  ("erank (9)", theorem1.erank_slack))
        for color, (key, fn) in enumerate(bounds):
            for k, run in enumerate(runs):
                ax.plot(run.traj.loss, fn(run.traj.loss, run.traj.product), lw=0.8,
                        color=f"C{color}", label=key if k == 0 else None)
        ax.set(xscale="log", xlabel="loss l", ylabel="slack (>= 0: holds)",
               title="Theorem 1: bound margins along every run")
        ax.set_yscale("symlog", linthresh=1e-8)  # the rank bounds' slack shrinks like sqrt(l)
        ax.invert_xaxis()
        ax.axhline(0.0, color="k", lw=0.8)
        ax.legend(fontsize=7)
        fig.tight_layout()
        save_figure_file(fig, folder / "margins_vs_loss.png", dpi=120)
        plt.close(fig)
        names.append("margins_vs_loss.png")
    runs2 = outcome.runs.get("theorem2", [])
    if runs2:
        fig, ax = plt.subplots(figsize=(7, 4.5))
        for k, run in enumerate(runs2):
            b = tuple(run.problem.values)
            tr = run.traj
            ax.plot(tr.loss, np.abs(tr.product[:, 0, 0]), lw=1, color=f"C{k // 2}",
                    ls="-" if k % 2 == 0 else "--",
                    label=f"{run.label} [{theorem2.outcome(tr.product, b)}]")
            bound = theorem2.entry_bound(tr.loss, b)
            ax.plot(tr.loss, bound, lw=0.6, color=f"C{k // 2}", ls=":")
        ax.set(xscale="log", yscale="log", xlabel="loss l", ylabel="|W11|",
               title="Theorem 2: |W11| (solid/dashed) vs its lower bound (dotted)")
        ax.invert_xaxis()
        ax.legend(fontsize=5)
        fig.tight_layout()
        save_figure_file(fig, folder / "theorem2_w11_vs_loss.png", dpi=120)
        plt.close(fig)
        names.append("theorem2_w11_vs_loss.png")
    return names


def write_report(outcome: Outcome, folder) -> Path:
    """Write ``report.md``, ``report.json`` and the figures into ``folder``."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    figures = _figures(outcome, folder)
    plan = {k: (list(v) if isinstance(v, tuple) else v) for k, v in vars(outcome.plan).items()}
    plan["coordinates"] = {str(d): c for d, c in outcome.plan.coordinates.items()}
    payload = {"passed": outcome.passed, "plan": plan, "seconds": outcome.seconds,
               "warnings": outcome.warnings,
               "results": [r.to_dict() for r in outcome.results], "figures": figures}
    write_text(folder / "report.json", json.dumps(jsonable(payload), indent=1))
    write_text(folder / "report.md", _markdown(outcome, figures))
    return folder
