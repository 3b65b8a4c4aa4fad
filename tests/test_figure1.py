"""Figure 1: the runs' specification (App. F.1), initializations, and the CLI end to end
on a shortened protocol (depth 2 to loss 1e-2)."""

import json
import math

import numpy as np
import pytest
from matplotlib.figure import Figure

import flowsim as fs
from flowsim.cli import main
from flowsim.experiments.figure1 import PAPER_RUNS, Figure1Run, flow_coordinates, initial_factors
from flowsim.plots import colored_line, save_figure


def test_runs_carry_the_papers_legends():
    labels = {d: [r.label for r in runs] for d, runs in PAPER_RUNS.items()}
    assert labels[2] == labels[3] == ["lr 6e-3 init 1e-5", "lr 6e-3 init 1e-5 (b)",
                                      "lr 3e-3 init 1e-6", "lr 3e-3 init 1e-6 (b)"]
    assert labels[4] == ["lr 3e-3 init 1e-3", "lr 3e-3 init 1e-3 (b)",
                         "lr 1.5e-3 init 1e-4", "lr 1.5e-3 init 1e-4 (b)"]
    assert all(r.depth == d for d, runs in PAPER_RUNS.items() for r in runs)


@pytest.mark.parametrize("depth, init", [(2, 1e-5), (3, 1e-6), (4, 1e-3)])
def test_initializations(depth, init):
    balanced = [initial_factors(Figure1Run(depth, 1e-3, init, True), seed=s) for s in range(200)]
    unbalanced = [initial_factors(Figure1Run(depth, 1e-3, init, False), seed=s)
                  for s in range(200)]
    for params in balanced + unbalanced:
        assert np.linalg.det(fs.product(params)) > 0  # det W(0) > 0, as the reference enforces
    # balanced: exactly balanced, product entries ~ N(0, init^2)
    assert max(fs.balancedness_defect(p) for p in balanced) < 1e-12 * init ** (2 / depth)
    entries = np.array([fs.product(p) for p in balanced]).ravel()
    assert np.std(entries) == pytest.approx(init, rel=0.1)
    # unbalanced: layer entries ~ N(0, init^(2/depth)), not balanced
    layers = np.array([p for p in unbalanced]).ravel()
    assert np.std(layers) == pytest.approx(init ** (1 / depth), rel=0.1)
    assert min(fs.balancedness_defect(p) for p in unbalanced) > 1e-3 * init ** (2 / depth)


def test_flow_coordinates_keep_the_det_sign_where_they_apply():
    assert "svd" in fs.COORDINATES
    assert flow_coordinates(Figure1Run(3, 1e-3, 1e-3, True)) == "svd"
    assert flow_coordinates(Figure1Run(3, 1e-3, 1e-3, False)) == "factors"


def test_colored_line_and_save_figure(tmp_path):
    fig = Figure()
    ax = fig.subplots()
    lines = colored_line(ax, [1, 2, 3], [1, 4, 9], [0, 1, 2])
    np.testing.assert_array_equal(lines.get_array(), [1, 2])
    with pytest.raises(ValueError, match="same length"):
        colored_line(ax, [1, 2], [1, 2, 3], [0, 1, 2])
    paths = save_figure(fig, tmp_path / "sub", "demo")
    assert [p.name for p in paths] == ["demo.png", "demo.pdf"]
    assert all(p.stat().st_size > 0 for p in paths)


@pytest.fixture(scope="module")
def figure_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("figure1")
    rc = main(["figure1", "--out", str(out), "--depths", "2", "--stop-loss", "1e-2",
               "--max-iterations", "200000", "--no-progress"])
    assert rc == 0
    return out


def test_cli_writes_png_pdf_and_summary(figure_dir):
    for stem in ("figure1", "figure1_depth2"):
        assert (figure_dir / f"{stem}.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        assert (figure_dir / f"{stem}.pdf").read_bytes()[:5] == b"%PDF-"
    summary = json.loads((figure_dir / "figure1_summary.json").read_text())
    assert [r["label"] for r in summary["runs"]] == [r.label for r in PAPER_RUNS[2]]


def test_cli_runs_agree_with_theory(figure_dir):
    runs = json.loads((figure_dir / "figure1_summary.json").read_text())["runs"]
    for r in runs:
        assert r["gd_status"] == "stop_loss" and r["flow_status"] == "stop_loss"
        assert r["gd_final_loss"] <= 1e-2 and r["flow_final_loss"] == pytest.approx(1e-2)
        if r["balanced"]:
            # the flow keeps det W > 0 and obeys (D2): |W11| >= 1/sqrt(2 l) - 2
            assert r["flow_coordinates"] == "svd" and r["flow_det_sign_final"] == 1
            assert r["flow_final_abs_w11"] >= 1 / math.sqrt(2e-2) - 2
            # at this loss GD still follows the flow (its depth-2 plateau comes later)
            assert r["gd_final_abs_w11"] == pytest.approx(r["flow_final_abs_w11"], rel=0.05)


def test_cli_rejects_bad_options(tmp_path, capsys):
    assert main(["figure1", "--out", str(tmp_path), "--stop-loss", "0"]) == 2
    assert "--stop-loss" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["figure1", "--out", str(tmp_path), "--depths", "5"])
