"""The teaching notebooks (jupytext percent scripts in notebooks/) execute in their quick
mode, and every figure they promise is written, non-empty and a real image."""

import runpy
import sys
from pathlib import Path

import matplotlib.pyplot as plt
import pytest
from PIL import Image

NOTEBOOKS = Path(__file__).resolve().parent.parent / "notebooks"

FIGURES = {
    "01_norms_to_infinity.py": ["01_figure1_exact_flow.png", "01_norms_and_erank.png",
                                "01_phase_portrait.png", "01_phase_portrait.gif"],
    "02_flow_vs_descent.py": ["02_deviation_vs_lr.png", "02_where_gd_diverts.png"],
    "03_depth_matters.py": ["03_singular_values.png", "03_det_sign_depth2.png"],
    "04_tensor_rank.py": ["04_error_and_rank.png", "04_unfolding_spectrum.png"],
}


def test_every_notebook_is_listed():
    assert sorted(p.name for p in NOTEBOOKS.glob("[0-9][0-9]_*.py")) == sorted(FIGURES)


@pytest.mark.parametrize("name", sorted(FIGURES))
def test_notebook_runs_and_writes_its_figures(name, tmp_path, monkeypatch):
    monkeypatch.setenv("FLOWSIM_NOTEBOOK_QUICK", "1")
    monkeypatch.setenv("FLOWSIM_FIGURES", str(tmp_path))
    monkeypatch.syspath_prepend(str(NOTEBOOKS))
    monkeypatch.delitem(sys.modules, "_notebook", raising=False)  # re-read the env vars
    try:
        runpy.run_path(str(NOTEBOOKS / name), run_name="__main__")
    finally:
        plt.close("all")
    for figure in FIGURES[name]:
        path = tmp_path / figure
        assert path.is_file() and path.stat().st_size > 1000, figure
        with Image.open(path) as image:
            assert image.width > 100 and image.height > 100
            if figure.endswith(".gif"):
                assert image.n_frames > 1
            # not a blank canvas: more than one colour is drawn
            assert len(image.convert("RGB").getcolors(maxcolors=1 << 20) or [None] * 2) > 1
