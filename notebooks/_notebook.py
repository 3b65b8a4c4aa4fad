"""Shared set-up of the teaching notebooks (jupytext percent scripts in this folder).

- ``FLOWSIM_NOTEBOOK_QUICK=1``: a small, fast version of every computation (used by the
  test suite, tests/test_notebooks.py).
- ``FLOWSIM_FIGURES=DIR``: where figures are written (default: ``notebooks/figures``).

Outside a Jupyter kernel (run as a plain script) matplotlib draws headless (Agg) and the
widget cells are skipped.
"""

from __future__ import annotations

import os
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


def save(fig, name: str) -> Path:
    """Write ``fig`` to ``FIGURES/name`` (PNG) and return the path."""
    FIGURES.mkdir(parents=True, exist_ok=True)
    path = FIGURES / name
    fig.savefig(path, dpi=110, bbox_inches="tight")
    return path
