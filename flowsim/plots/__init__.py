"""Plots: figure builders (one module per figure) and the small helpers they share.

Helpers here are generic matplotlib pieces (no simulation): a line coloured by a third
quantity, a reversed log-loss axis, and saving one figure in several formats. Figures are
built as ``matplotlib.figure.Figure`` objects, not through ``pyplot``: no backend or
display is touched, so they work headless (CI) and display in notebooks alike.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from matplotlib.collections import LineCollection
from matplotlib.colors import Normalize

from ..files import save_figure_file

FORMATS = ("png", "pdf")


def colored_line(ax, x, y, c, *, cmap="viridis", norm: Normalize | None = None,
                 **kwargs) -> LineCollection:
    """Draw the polyline ``(x, y)`` with segment ``i`` coloured by ``c[i + 1]`` (e.g. the
    iteration reached); returns the collection (pass it to ``colorbar``)."""
    x, y, c = (np.asarray(v, dtype=np.float64) for v in (x, y, c))
    if not x.shape == y.shape == c.shape or x.ndim != 1:
        raise ValueError("x, y and c must be 1-d arrays of the same length")
    points = np.stack([x, y], axis=-1)
    segments = np.stack([points[:-1], points[1:]], axis=1)
    lines = LineCollection(segments, cmap=cmap, norm=norm, **kwargs)
    lines.set_array(c[1:])
    ax.add_collection(lines)
    ax.update_datalim(points)
    ax.autoscale_view()
    return lines


def reversed_loss_axis(ax, lowest: float, highest: float | None = None) -> None:
    """Log-scale loss on x, decreasing to the right (training moves left to right)."""
    ax.set_xscale("log")
    right = float(lowest)
    left = ax.get_xlim()[0] if highest is None else float(highest)
    ax.set_xlim(max(left, right), right)
    ax.set_xlabel("loss")


def save_figure(fig, out_dir, stem: str, formats=FORMATS) -> list[Path]:
    """Write ``fig`` as ``out_dir/stem.<fmt>`` for each format; returns the paths."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = []
    for fmt in formats:
        path = out_dir / f"{stem}.{fmt}"
        save_figure_file(fig, path, dpi=150, bbox_inches="tight")
        paths.append(path)
    return paths


__all__ = ["FORMATS", "colored_line", "reversed_loss_axis", "save_figure"]
