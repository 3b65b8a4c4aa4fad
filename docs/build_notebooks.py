"""Execute the teaching notebooks in a Jupyter kernel, check them, and export them as HTML
pages for the documentation site.

Each ``notebooks/0*.py`` (jupytext percent format) is converted to a notebook and executed
with nbclient in a ``python3`` kernel of this interpreter, in quick mode
(``FLOWSIM_NOTEBOOK_QUICK=1``), Explore cells included: their widgets are rendered and
draw their first figure. Figures go to a temporary folder, never into
``notebooks/figures``. Each executed notebook is then checked (:func:`check`: no cell
error, at least :data:`MIN_IMAGES` inline images, a figure in every widget, no printed
``PosixPath(`` or ``np.float64(``), written to ``build/notebooks/<name>.ipynb`` and
exported to ``docs/notebooks/<name>.ipynb``, which mkdocs-jupyter renders as a page of the
site (its theme, navigation and search; ``mkdocs.yml``); on those static pages each widget
becomes a line naming its controls and the figure it drew first, and the notebooks' links
to ``../docs/*.md`` point at the site's pages. The exported files are generated, not
committed.

The test suite (tests/test_notebooks.py) runs the same execution and checks and leaves its
executed notebooks in ``build/notebooks``; this script reuses one whose recorded source
hash (the notebook, ``notebooks/_notebook.py`` and the ``flowsim`` package) matches the
checkout, instead of executing it again (``--fresh`` always executes).

    .venv/bin/python docs/build_notebooks.py [--out docs/notebooks] [--timeout 900]
        [--fresh] [--full] [NAME ...]   # e.g. 01_norms_to_infinity (default: all)

``--full`` executes the full version instead (minutes; never reused, its figures written
to ``notebooks/figures``): how the figures in the repository are made.

Exits non-zero if a cell raises or a check fails. Prints the seconds each notebook took.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOKS = ROOT / "notebooks"
EXECUTED = ROOT / "build" / "notebooks"
KERNEL = "python3"

#: inline images each notebook must show when executed in quick mode: figures in cell
#: outputs (PNG, and 01's animated GIF) and the first figure of each Explore widget
MIN_IMAGES = {
    "01_norms_to_infinity": {"cells": 3, "widgets": 1},
    "02_flow_vs_descent": {"cells": 2, "widgets": 1},
    "03_depth_matters": {"cells": 2, "widgets": 1},
    "04_tensor_rank": {"cells": 2, "widgets": 1},
}
#: text that must not appear in any output: raw reprs instead of formatted values
FORBIDDEN = ("PosixPath(", "np.float64(", "Traceback (most recent call last)")
IMAGE_TYPES = ("image/png", "image/gif", "image/jpeg", "image/svg+xml")
WIDGET_VIEW = "application/vnd.jupyter.widget-view+json"
WIDGET_STATE = "application/vnd.jupyter.widget-state+json"


def notebook_paths(names=()) -> list[Path]:
    """The notebook scripts, all or those named (``ValueError`` for an unknown name)."""
    paths = sorted(NOTEBOOKS.glob("[0-9][0-9]_*.py"))
    if names:
        wanted = {Path(name).stem for name in names}
        missing = wanted - {p.stem for p in paths}
        if missing:
            raise ValueError(f"no such notebook: {', '.join(sorted(missing))}")
        paths = [p for p in paths if p.stem in wanted]
    return paths


def source_hash(path: Path) -> str:
    """SHA-256 of what an executed notebook depends on: the notebook script, the shared
    helper and every file of the flowsim package."""
    digest = hashlib.sha256()
    files = [path, NOTEBOOKS / "_notebook.py", *sorted((ROOT / "flowsim").rglob("*.py"))]
    for file in files:
        digest.update(str(file.relative_to(ROOT)).encode() + b"\0" + file.read_bytes() + b"\0")
    return digest.hexdigest()


def ensure_kernel() -> None:
    """Make the ``python3`` kernel start this interpreter (the one with flowsim)."""
    from jupyter_client.kernelspec import KernelSpecManager, NoSuchKernel

    try:
        argv = KernelSpecManager().get_kernel_spec(KERNEL).argv
    except NoSuchKernel:
        argv = []
    # jupyter_client runs a bare "python" as sys.executable; anything else must be us.
    if argv and (argv[0] in ("python", "python3")
                 or Path(argv[0]).resolve() == Path(sys.executable).resolve()):
        return
    print(f"installing the {KERNEL} kernel spec into {sys.prefix}", flush=True)
    subprocess.run([sys.executable, "-m", "ipykernel", "install", "--sys-prefix",
                    "--name", KERNEL], check=True)


def _in_slices(get_msg, slice_s: float = 0.5):
    """``get_msg(timeout)`` of a kernel channel, polling in slices of ``slice_s`` seconds.

    Measured here (nbclient 0.11, jupyter_client 8.10, pyzmq 27.3): now and then the
    asyncio poll of the shell channel is not woken by a reply that has arrived (it is
    found only when the poll's timeout expires), so a cell whose widget sent comm messages
    stalled for the whole cell timeout (600-900 s) and then went on normally (the same as
    jupyter/nbclient#312). Short polls find the message within ``slice_s``."""
    from queue import Empty

    async def get_msg_in_slices(timeout: float | None = None):
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            left = slice_s if deadline is None else \
                min(slice_s, max(0.0, deadline - time.monotonic()))
            try:
                return await get_msg(timeout=left)
            except Empty:
                if deadline is not None and time.monotonic() >= deadline:
                    raise

    return get_msg_in_slices


def _client_class():
    from nbclient import NotebookClient

    class Client(NotebookClient):
        """nbclient's NotebookClient with its channels polled in slices (:func:`_in_slices`)."""

        async def async_start_new_kernel_client(self):
            kc = await super().async_start_new_kernel_client()
            for channel in (kc.shell_channel, kc.iopub_channel):
                channel.get_msg = _in_slices(channel.get_msg)
            return kc

    return Client


#: printed by the slider-timing cell (:data:`TIME_SLIDERS`) before its JSON
SLIDER_MARK = "FLOWSIM_SLIDER_SECONDS "

#: how often the slider-timing cell (:data:`TIME_SLIDERS`) repeats each move
SLIDER_REPEATS = 3

#: a cell run after the notebook's last cell when ``execute(time_sliders=True)``: each
#: slider of the Explore panel (``panel``) is moved by one step from its starting value,
#: as a student releasing it one notch further, and moved back, SLIDER_REPEATS times; the
#: seconds of each callback (``Explorer._update``: the computation, the figure and its PNG,
#: measured in the kernel as wall time) are printed as JSON, with the part spent computing,
#: drawing, and the kernel's processor time. The last move back restores the first figure
#: for the page.
TIME_SLIDERS = """\
import json as _json

def _neighbour(_control):
    _kind = type(_control).__name__
    if _kind == "FloatLogSlider":
        _up = _control.value * _control.base ** _control.step
        _top = _control.base ** _control.max * (1 + 1e-9)
        return _up if _up <= _top else _control.value / _control.base ** _control.step
    _up = _control.value + _control.step
    return _up if _up <= _control.max else _control.value - _control.step

_moves = {}
for _key, _control in panel.controls.items():
    _start = _control.value
    _move = _moves[_key] = {"from": _start, "to": _neighbour(_control), "seconds": [],
                            "computing": [], "drawing": [], "cpu": [], "back_seconds": []}
    for _ in range(REPEATS):
        _move["seconds"].append(panel.set(**{_key: _move["to"]}))
        for _part, _value in zip(("computing", "drawing", "cpu"), panel.timings[-1][1:]):
            _move[_part].append(_value)
        _move["back_seconds"].append(panel.set(**{_key: _start}))
print(SLIDER_MARK + _json.dumps(_moves))
""".replace("SLIDER_MARK", repr(SLIDER_MARK)).replace("REPEATS", str(SLIDER_REPEATS))


def execute(path: Path, *, figures: Path, jax_cache: Path | None = None,
            timeout: int = 900, quick: bool = True, time_sliders: bool = False):
    """Execute one notebook script in a fresh kernel, quick mode unless ``quick=False``;
    returns the executed notebook (the source hash, the mode and the seconds taken in
    ``metadata["flowsim"]``). A cell that raises raises
    ``nbclient.exceptions.CellExecutionError`` here.

    ``time_sliders=True`` then moves each slider of the Explore panel one notch and back,
    :data:`SLIDER_REPEATS` times, in the same kernel (:data:`TIME_SLIDERS`; the cell is
    removed again) and records the moves in ``metadata["flowsim"]["sliders"]``: name ->
    from, to, and lists of seconds (each move; of which computing and drawing; cpu, the
    kernel's processor time) and back_seconds (each move back)."""
    import json

    import jupytext
    import nbformat

    notebook = jupytext.read(path)
    if time_sliders:
        notebook.cells.append(nbformat.v4.new_code_cell(TIME_SLIDERS))
    notebook.metadata["kernelspec"] = {"name": KERNEL, "display_name": "Python 3",
                                       "language": "python"}
    env = {**os.environ, "FLOWSIM_NOTEBOOK_QUICK": "1" if quick else "0",
           "FLOWSIM_FIGURES": str(figures),
           "MPLBACKEND": "module://matplotlib_inline.backend_inline",  # figures inline
           "PYDEVD_DISABLE_FILE_VALIDATION": "1"}  # no debugger warning on stderr
    if jax_cache is not None:
        env["FLOWSIM_CACHE_DIR"] = str(jax_cache)
    client = _client_class()(notebook, timeout=timeout, kernel_name=KERNEL,
                            # quiet the kernel's start-up warnings (cell errors still raise)
                            extra_arguments=["--IPKernelApp.log_level=ERROR"],
                            # every output is in; a graceful shutdown only waits
                            shutdown_kernel="immediate",
                            resources={"metadata": {"path": str(NOTEBOOKS)}})
    start = time.perf_counter()
    client.execute(env=env)
    seconds = time.perf_counter() - start
    sliders = None
    if time_sliders:
        timing = notebook.cells.pop()
        text = "".join(o.get("text", "") for o in timing.outputs
                       if o.get("output_type") == "stream")
        sliders = json.loads(text.split(SLIDER_MARK, 1)[1].splitlines()[0])
    nbformat.validate(notebook)
    notebook.metadata["flowsim"] = {"source_sha256": source_hash(path), "quick": quick,
                                    "seconds": round(seconds, 1)}
    if sliders is not None:
        notebook.metadata["flowsim"]["sliders"] = sliders
    return notebook


def _texts(output) -> list[str]:
    if output.get("output_type") == "stream":
        return [output.get("text", "")]
    if output.get("output_type") == "error":
        return ["\n".join(output.get("traceback", []))]
    data = output.get("data", {})
    return [str(data[key]) for key in ("text/plain", "text/html", "text/markdown")
            if key in data and not _is_image(output)]


def _is_image(output) -> bool:
    """An image output, or an HTML one that embeds an image (``<img src="data:image/``:
    how the notebooks show their animated GIF)."""
    data = output.get("data", {})
    return any(key in data for key in IMAGE_TYPES) \
        or '<img src="data:image/' in str(data.get("text/html", ""))


def _images(outputs) -> int:
    return sum(1 for o in outputs if _is_image(o))


def inspect(notebook) -> dict:
    """What an executed notebook shows: ``cells`` (inline images in cell outputs),
    ``widgets`` (one entry per displayed widget: the images its Output areas hold),
    ``texts`` (every text output, widget outputs included) and ``errors``."""
    state = notebook.metadata.get("widgets", {}).get(WIDGET_STATE, {}).get("state", {})

    def outputs_under(model_id, seen=None) -> list:
        """The outputs of every Output widget in the widget tree below ``model_id``."""
        seen = set() if seen is None else seen
        if model_id in seen or model_id not in state:
            return []
        seen.add(model_id)
        model = state[model_id]
        found = list(model["state"].get("outputs", [])) if model["model_name"] == "OutputModel" \
            else []
        for child in model["state"].get("children", []):
            found += outputs_under(str(child).removeprefix("IPY_MODEL_"), seen)
        return found

    cells, widgets, texts, errors = 0, [], [], []
    for cell in notebook.cells:
        if cell.cell_type != "code":
            continue
        for output in cell.get("outputs", []):
            texts += _texts(output)
            if output.get("output_type") == "error":
                errors.append(f"{output.get('ename')}: {output.get('evalue')}")
            data = output.get("data", {})
            if _is_image(output):
                cells += 1
            if WIDGET_VIEW in data:
                inner = outputs_under(data[WIDGET_VIEW]["model_id"])
                widgets.append(_images(inner))
                for o in inner:
                    texts += _texts(o)
    return {"cells": cells, "widgets": widgets, "texts": texts, "errors": errors}


def check(notebook, name: str) -> list[str]:
    """Problems of an executed notebook (an empty list when it passes): cell errors,
    fewer inline images than :data:`MIN_IMAGES`, a widget without a figure, no widget at
    all, or :data:`FORBIDDEN` text in an output."""
    seen = inspect(notebook)
    problems = [f"cell error {e}" for e in seen["errors"]]
    want = MIN_IMAGES.get(name, {"cells": 1, "widgets": 1})
    if seen["cells"] < want["cells"]:
        problems.append(f"{seen['cells']} inline images in cell outputs, expected at least "
                        f"{want['cells']}")
    if len(seen["widgets"]) < want["widgets"]:
        problems.append(f"{len(seen['widgets'])} widgets shown, expected at least "
                        f"{want['widgets']}")
    problems += [f"widget {i + 1} shows no figure" for i, n in enumerate(seen["widgets"])
                 if n == 0]
    for text in seen["texts"]:
        for bad in FORBIDDEN:
            if bad in text:
                at = text.index(bad)
                problems.append(f"output contains {bad!r}: ...{text[max(0, at - 60):at + 80]}...")
    return problems


def write_executed(notebook, name: str, folder: Path = EXECUTED) -> Path:
    import nbformat

    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{name}.ipynb"
    nbformat.write(notebook, path)
    return path


def reusable(path: Path, folder: Path = EXECUTED):
    """The executed notebook in ``folder`` for this script if it is current (same source
    hash) and passes :func:`check`; else ``None``."""
    import nbformat

    executed = folder / f"{path.stem}.ipynb"
    if not executed.is_file():
        return None
    try:
        notebook = nbformat.read(executed, as_version=4)
    except Exception:  # a broken file is simply executed again
        return None
    meta = notebook.metadata.get("flowsim", {})
    if meta.get("source_sha256") != source_hash(path) or not meta.get("quick") \
            or check(notebook, path.stem):
        return None
    return notebook


def _control(model: dict) -> str | None:
    """``"description = value"`` of a slider's widget state, formatted as it reads out."""
    state = model["state"]
    if "value" not in state or not state.get("description") \
            or not model["model_name"].endswith("SliderModel"):
        return None
    value = state["value"]
    try:
        shown = format(value, state.get("readout_format") or "")
    except (TypeError, ValueError):
        shown = str(value)
    return f"{state['description']} = {shown}"


def static_widgets(notebook):
    """A copy of an executed notebook for a static page: each widget is replaced by a line
    naming its controls and their starting values, and the figure it drew (no widget
    JavaScript is needed to read the page, and no control pretends to work)."""
    import copy

    import nbformat

    notebook = copy.deepcopy(notebook)
    state = notebook.metadata.pop("widgets", {}).get(WIDGET_STATE, {}).get("state", {})

    def walk(model_id, controls, outputs):
        model = state.get(model_id)
        if model is None:
            return
        control = _control(model)
        if control:
            controls.append(control)
        if model["model_name"] == "OutputModel":
            outputs += model["state"].get("outputs", [])
        for child in model["state"].get("children", []):
            walk(str(child).removeprefix("IPY_MODEL_"), controls, outputs)

    for cell in notebook.cells:
        if cell.cell_type != "code":
            continue
        new = []
        for output in cell.get("outputs", []):
            view = output.get("data", {}).get(WIDGET_VIEW)
            if view is None:
                new.append(output)
                continue
            controls, outputs = [], []
            walk(view["model_id"], controls, outputs)
            note = ("<p><em>Interactive controls (they need a running Jupyter kernel with "
                    "ipywidgets; this page shows the figure at their starting values): "
                    f"{', '.join(controls)}</em></p>")
            new.append(nbformat.v4.new_output("display_data", data={"text/html": note,
                                                                    "text/plain": note}))
            new += [nbformat.from_dict(o) for o in outputs]
        cell.outputs = new
    return notebook


#: a link from a notebook to a documentation page, as written in the notebooks (relative
#: to notebooks/, so that it works in Jupyter): ``](../docs/concepts/coordinates.md#x)``
_DOC_LINK = re.compile(r"\]\(\.\./docs/([^)#\s]*?)(index)?\.md(#[^)\s]*)?\)")


def site_links(text: str) -> str:
    """Links to ``../docs/PAGE.md`` rewritten for the site, where the notebook page is
    ``notebooks/NAME/`` and the documentation page ``PAGE/`` (directory URLs)."""
    def page(match) -> str:
        folder = match[1] if match[2] else f"{match[1]}/"  # PAGE.md -> PAGE/, index.md -> ./
        return f"](../../{folder}{match[3] or ''})"

    return _DOC_LINK.sub(page, text)


def export_page(notebook, name: str, out: Path) -> Path:
    """Write ``out/<name>.ipynb``, the notebook as the site shows it (mkdocs-jupyter renders
    it in the site's theme and navigation): widgets made static (:func:`static_widgets`),
    links to the documentation rewritten for the site (:func:`site_links`), the source
    hash and run time kept in the metadata."""
    import nbformat

    page = static_widgets(notebook)
    for cell in page.cells:
        if cell.cell_type == "markdown":
            cell.source = site_links(cell.source)
    out.mkdir(parents=True, exist_ok=True)
    path = out / f"{name}.ipynb"
    nbformat.write(page, path)
    return path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("names", nargs="*", help="notebook names (default: all 0*.py)")
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "notebooks")
    parser.add_argument("--timeout", type=int, default=900, help="seconds per cell")
    parser.add_argument("--fresh", action="store_true",
                        help="execute every notebook, even where build/notebooks has a "
                             "current executed copy")
    parser.add_argument("--full", action="store_true",
                        help="the full version instead of the quick one (minutes; its "
                             "figures go to notebooks/figures, or FLOWSIM_FIGURES)")
    args = parser.parse_args(argv)
    try:
        paths = notebook_paths(args.names)
    except ValueError as exc:
        parser.error(str(exc))
    if not paths:
        parser.error(f"no notebooks found in {NOTEBOOKS}")

    ensure_kernel()
    total, failed = 0.0, []
    with tempfile.TemporaryDirectory(prefix="flowsim-notebooks-") as tmp:
        figures, jax_cache = Path(tmp) / "figures", Path(tmp) / "jax-cache"
        if args.full:
            figures = Path(os.environ.get("FLOWSIM_FIGURES", NOTEBOOKS / "figures"))
        for path in paths:
            start = time.perf_counter()
            notebook = None if args.fresh or args.full else reusable(path)
            how = "reused from build/notebooks (executed by the tests)"
            if notebook is None:
                notebook = execute(path, figures=figures, jax_cache=jax_cache,
                                   timeout=args.timeout, quick=not args.full)
                how = (f"executed ({'full' if args.full else 'quick'} version) in "
                       f"{notebook.metadata['flowsim']['seconds']:.1f} s")
            problems = check(notebook, path.stem)
            if problems:
                failed.append(path.stem)
                print(f"{path.name}: FAILED its checks:\n  " + "\n  ".join(problems),
                      flush=True)
                continue
            if not args.full:  # build/notebooks holds the quick version (the tests' copy)
                write_executed(notebook, path.stem)
            export_page(notebook, path.stem, args.out)
            seconds = time.perf_counter() - start
            total += seconds
            seen = inspect(notebook)
            print(f"{path.name}: {how}; {seen['cells']} inline images, widgets with "
                  f"{seen['widgets']} figures; exported in {seconds:.1f} s in all", flush=True)
    if failed:
        print(f"notebooks failing their checks: {', '.join(failed)}", flush=True)
        return 1
    print(f"notebooks: {len(paths)} in {total:.1f} s -> {args.out}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
