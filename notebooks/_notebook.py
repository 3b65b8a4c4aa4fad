"""Shared set-up of the teaching notebooks (jupytext percent scripts in this folder).

Environment variables:

- ``FLOWSIM_NOTEBOOK_QUICK=1``: a small, fast version of every computation, showing the same
  phenomena (used by the test suite, tests/test_notebooks.py, and the docs build).
- ``FLOWSIM_FIGURES=DIR``: where figures are written (default: ``notebooks/figures``).
- ``FLOWSIM_CACHE_DIR=DIR``: flowsim's persistent caches (set up by flowsim itself on
  import, :mod:`flowsim.runtime`; default ``~/.cache/flowsim``, ``off`` disables them).
  flowsim compiles its solver once per model and settings; with the caches a later
  session, or another notebook, loads the compiled code instead.

In a Jupyter kernel figures are shown inline and the Explore cells show sliders. Run as a
plain script (``python notebooks/01_norms_to_infinity.py``) matplotlib draws headless
(Agg) and each Explore cell draws its first figure into ``FIGURES`` instead.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import matplotlib

QUICK = os.environ.get("FLOWSIM_NOTEBOOK_QUICK", "") == "1"
FIGURES = Path(os.environ.get("FLOWSIM_FIGURES", Path(__file__).resolve().parent / "figures"))


def in_kernel() -> bool:
    """True inside a running IPython kernel (Jupyter), where widgets can be shown."""
    try:
        from IPython import get_ipython
    except ImportError:
        return False
    shell = get_ipython()
    return shell is not None and hasattr(shell, "kernel")


if not in_kernel():
    matplotlib.use("Agg")




def save(fig, name: str) -> None:
    """Write ``fig`` to ``FIGURES/name`` (PNG). In a kernel the figure is also shown below
    the cell (matplotlib's inline backend does that at the end of the cell)."""
    FIGURES.mkdir(parents=True, exist_ok=True)
    fig.savefig(FIGURES / name, dpi=110, bbox_inches="tight")


def show_file(path, alt: str = "") -> None:
    """Show an image file (e.g. an animated GIF) below the cell; nothing outside a kernel.

    It is embedded as an HTML ``<img>``: Jupyter shows it, and so do the HTML pages that
    nbconvert makes for the docs (which drop ``image/gif`` outputs)."""
    if in_kernel():
        import base64

        from IPython.display import HTML, display

        path = Path(path)
        kind = {".gif": "gif", ".png": "png", ".jpg": "jpeg", ".jpeg": "jpeg"}[path.suffix]
        data = base64.b64encode(path.read_bytes()).decode("ascii")
        display(HTML(f'<img src="data:image/{kind};base64,{data}" alt="{alt}">'))


class Timer:
    """``with Timer("preparing depths 2-4"):`` prints how long the block took."""

    def __init__(self, what: str):
        self.what = what

    def __enter__(self):
        self.start = time.perf_counter()
        return self

    def __exit__(self, *exc):
        self.seconds = time.perf_counter() - self.start
        if exc[0] is None:
            print(f"{self.what}: {self.seconds:.1f} s")


class Fixed:
    """What a slider is outside a kernel, or without ipywidgets: its starting value."""

    def __init__(self, value):
        self.value = value


def _widgets():
    if not in_kernel():
        return None
    try:
        import ipywidgets
    except ImportError:
        return None
    return ipywidgets


def int_slider(description: str, value: int, low: int, high: int):
    widgets = _widgets()
    if widgets is None:
        return Fixed(value)
    return widgets.IntSlider(value=value, min=low, max=high, description=description,
                             continuous_update=False, style={"description_width": "initial"})


def log_slider(description: str, value: float, low: float, high: float, step: float = 0.5,
               fmt: str = ".0e"):
    """A slider over ``10**low ... 10**high`` in steps of ``step`` decades."""
    widgets = _widgets()
    if widgets is None:
        return Fixed(value)
    return widgets.FloatLogSlider(value=value, base=10, min=low, max=high, step=step,
                                  description=description, readout_format=fmt,
                                  continuous_update=False,
                                  style={"description_width": "initial"})


def decade(x: float) -> float:
    """``log10 x`` rounded to 1e-6: a clean cache key for a log-slider's value."""
    import math

    return round(math.log10(x), 6)


#: resolution of the Explore figures in a kernel (dots per inch); the saved first figure
#: uses :func:`save`'s
EXPLORE_DPI = 72


def render_png(fig, dpi: int = EXPLORE_DPI) -> bytes:
    """``fig`` as PNG bytes, without a tight bounding box (which draws the figure twice)."""
    import io

    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=dpi)
    return buffer.getvalue()


class Explorer:
    """Sliders above a figure that ``draw(fig, **values)`` fills (module doc of
    :func:`explore`).

    One figure is made once and kept: ``draw`` builds its axes and lines on the first call
    (``fig.axes`` is empty) and afterwards only updates them (``set_data``, titles, limits),
    so a move of a slider re-renders existing artists instead of building a figure (most
    of matplotlib's time goes into making the tick marks of new log axes). The layout is
    computed once, on the first figure. Each answer is rendered to a PNG by
    :func:`render_png` and shown in the output area.

    ``explorer.set(name=value, ...)`` moves sliders as a student would (one redraw per
    slider moved) and returns the seconds the last redraw took; ``explorer.timings`` holds
    ``(seconds, computing, drawing, cpu)`` of every answer (computing: ``draw``; drawing:
    the PNG and its display; cpu: the kernel's processor time, all its threads, which is
    below ``seconds`` when the machine is busy with other work).
    """

    def __init__(self, draw, controls: dict, name: str | None, figsize):
        import ipywidgets as widgets
        import matplotlib.pyplot as plt
        from IPython.display import display

        self.draw, self.controls, self.name = draw, controls, name
        self.output = widgets.Output()
        self.status = widgets.HTML()
        self.seconds: list[float] = []
        self.timings: list[tuple[float, float, float]] = []
        # (at the resolution it is rendered at: the renderer and its text layouts are reused)
        self.fig = plt.figure(figsize=figsize, dpi=EXPLORE_DPI)
        plt.close(self.fig)  # kept here, never shown by the inline backend on its own
        for control in controls.values():
            control.observe(self._update, names="value")
        display(widgets.VBox([widgets.HBox(list(controls.values())), self.status,
                              self.output]))
        self._update()

    def values(self) -> dict:
        return {key: control.value for key, control in self.controls.items()}

    def _update(self, change=None) -> None:
        from IPython.display import Image, clear_output, display

        self.status.value = "<i>computing ...</i>"
        start, first, error = time.perf_counter(), not self.seconds, None
        cpu = time.process_time()
        computed = start
        with self.output:  # shows an exception's traceback in the output area
            try:
                self.draw(self.fig, **self.values())
                computed = time.perf_counter()
                if first:
                    for ax in self.fig.axes:  # a third of the drawing time, on log axes
                        ax.minorticks_off()
                    self.fig.tight_layout()
                    self.fig.set_layout_engine("none")  # the layout of the first figure
                    if self.name:
                        save(self.fig, self.name)  # the first figure, as a file too
                png = render_png(self.fig)
                clear_output(wait=True)
                display(Image(data=png, format="png"))
            except Exception as exc:
                error = exc
                clear_output(wait=True)
                raise
        end = time.perf_counter()
        self.seconds.append(end - start)
        self.timings.append((end - start, computed - start, end - computed,
                             time.process_time() - cpu))
        if error is not None:
            self.status.value = "<b>failed</b> (the error is shown below)"
            if first:  # the cell itself fails, not only the output area
                raise error
        else:
            self.status.value = (f"<small>answered in {end - start:.2f} s (computing "
                                 f"{computed - start:.2f} s, drawing {end - computed:.2f} s)"
                                 "</small>")

    def set(self, **values) -> float:
        for key, value in values.items():
            self.controls[key].value = value
        return self.seconds[-1]


def explore(draw, controls: dict, name: str | None = None, figsize=(11, 3.8)):
    """The Explore cells: ``controls`` (name -> slider, built with :func:`int_slider` /
    :func:`log_slider`) above one figure of size ``figsize`` that ``draw(fig, **values)``
    fills: its axes and artists made on the first call, updated on later ones (see
    :class:`Explorer`).

    Sliders recompute when released, not while dragged. In a kernel the first figure is
    drawn at once (so an executed notebook holds it) and the status line under the sliders
    says how long each answer took. Outside a kernel ``draw`` runs once with the sliders'
    starting values and its figure is written to ``FIGURES/name``.
    """
    if _widgets() is not None:
        return Explorer(draw, controls, name, figsize)
    import matplotlib.pyplot as plt

    fig = plt.figure(figsize=figsize)
    draw(fig, **{key: control.value for key, control in controls.items()})
    fig.tight_layout()
    if name:
        save(fig, name)
    plt.close("all")
    return None
