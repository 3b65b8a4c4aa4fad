"""Execute the teaching notebooks and export them as HTML pages for the documentation site.

Each ``notebooks/0*.py`` (jupytext percent format) is converted to a notebook, executed
with nbclient in a ``python3`` kernel of this interpreter (quick mode,
``FLOWSIM_NOTEBOOK_QUICK=1``; figures go to a temporary folder, never into
``notebooks/figures``) and exported by nbconvert to ``docs/notebooks/<name>.html``, which
``docs/notebooks.md`` links to. The HTML files are generated, not committed.

    .venv/bin/python docs/build_notebooks.py [--out docs/notebooks] [--timeout 900]
        [NAME ...]                      # e.g. 01_norms_to_infinity (default: all)

Exits non-zero if any cell raises. Prints the seconds each notebook took.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOKS = ROOT / "notebooks"
KERNEL = "python3"


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


def build(path: Path, out: Path, timeout: int) -> float:
    """Execute one notebook script and write its HTML export; returns the seconds taken."""
    import jupytext
    import nbformat
    from nbclient import NotebookClient
    from nbconvert import HTMLExporter

    start = time.perf_counter()
    notebook = jupytext.read(path)
    notebook.metadata["kernelspec"] = {"name": KERNEL, "display_name": "Python 3",
                                       "language": "python"}
    client = NotebookClient(notebook, timeout=timeout, kernel_name=KERNEL,
                            # quiet the kernel's start-up warnings (cell errors still raise)
                            extra_arguments=["--IPKernelApp.log_level=ERROR"],
                            resources={"metadata": {"path": str(NOTEBOOKS)}})
    client.execute()
    nbformat.validate(notebook)
    body, _ = HTMLExporter(template_name="lab").from_notebook_node(
        notebook, resources={"metadata": {"name": path.stem}})
    (out / f"{path.stem}.html").write_text(body, encoding="utf-8")
    return time.perf_counter() - start


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("names", nargs="*", help="notebook names (default: all 0*.py)")
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "notebooks")
    parser.add_argument("--timeout", type=int, default=900, help="seconds per cell")
    args = parser.parse_args(argv)

    paths = sorted(NOTEBOOKS.glob("0*.py"))
    if args.names:
        wanted = {Path(name).stem for name in args.names}
        paths = [p for p in paths if p.stem in wanted]
        missing = wanted - {p.stem for p in paths}
        if missing:
            parser.error(f"no such notebook: {', '.join(sorted(missing))}")
    if not paths:
        parser.error(f"no notebooks found in {NOTEBOOKS}")

    ensure_kernel()
    args.out.mkdir(parents=True, exist_ok=True)
    total = 0.0
    with tempfile.TemporaryDirectory(prefix="flowsim-notebook-figures-") as figures:
        # The kernel inherits these: quick mode, and figures kept out of notebooks/figures.
        os.environ["FLOWSIM_NOTEBOOK_QUICK"] = "1"
        os.environ["FLOWSIM_FIGURES"] = figures
        os.environ["MPLBACKEND"] = "module://matplotlib_inline.backend_inline"  # figures inline
        for path in paths:
            seconds = build(path, args.out, args.timeout)
            total += seconds
            print(f"{path.name}: executed and exported in {seconds:.1f} s", flush=True)
    print(f"notebooks: {len(paths)} in {total:.1f} s -> {args.out}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
