"""The Figure 2 grid (flowsim.tensor.figure2) and its CLI (flowsim.cli.figure2): records,
resuming without recomputation, summary statistics, the plot."""

import json

import numpy as np
import pytest

import flowsim as fs
import flowsim.experiments.figure2 as fig2
from flowsim.cli import main
from flowsim.tensor import CPFactorization, cp_dataset, cp_gaussian_init

TINY = {"order": 3, "dim": 3, "n_values": (22,), "init_stds": (1e-3,), "trials": 2,
        "stop_mse": 1e-8}


@pytest.fixture(scope="module")
def grid(tmp_path_factory):
    path = tmp_path_factory.mktemp("fig2") / "results.jsonl"
    config = fig2.Figure2Config(**TINY)
    return config, path, fig2.run_grid(config, path, progress=False)


def test_records_cover_the_grid(grid):
    config, path, records = grid
    assert len(records) == len(config.runs()) == 1 + 2
    truth = cp_dataset((3, 3, 3), 1, 0).truth
    for r in records:
        if r["kind"] == "linear":
            # the memorizer's error is the unobserved part of the unit-norm truth
            order = cp_dataset((3, 3, 3), 1, 0).order[r["n"]:]
            assert r["error"] == pytest.approx(np.linalg.norm(truth[tuple(order.T)]), rel=1e-12)
        else:
            assert r["status"] == "stop_loss" and r["mse"] == pytest.approx(1e-8, rel=1e-6)
            assert r["rank"] >= 1
        assert r["rank_ref"] >= 1
    _, stored = fig2.load_results(path)
    assert stored == json.loads(json.dumps(records))


def test_grid_engine_is_the_flow(grid):
    """The grid solves with the one-lane ``batched_gradient_flow`` (keep="ends"); the
    same run through ``gradient_flow`` (every step saved) ends at the same tensor."""
    config, _, records = grid
    data = fig2.dataset(config)
    r = next(r for r in records if r["kind"] == "tf")
    model = CPFactorization(config.shape, config.cp_rank)
    traj = fs.gradient_flow(data.problem(r["n"]), model,
                            cp_gaussian_init(model, seed=r["trial"] + 1, std=r["std"]),
                            solver=config.solver, rtol=config.rtol, atol=config.atol,
                            stop_loss=config.stop_mse * r["n"] / 2, progress=False)
    assert traj.stats["steps"] == r["steps"]
    assert fig2._relative_error(traj.product[-1], data.truth) == pytest.approx(
        r["error"], rel=1e-9)


def test_resume_recomputes_nothing(grid, monkeypatch):
    config, path, records = grid

    def refuse(*args):
        raise AssertionError("a finished run was recomputed")

    monkeypatch.setattr(fig2, "run_one", refuse)
    assert fig2.run_grid(config, path, progress=False) == json.loads(json.dumps(records))
    with pytest.raises(ValueError, match="trials"):
        fig2.run_grid(fig2.Figure2Config(**{**TINY, "trials": 3}), path, progress=False)


def test_a_run_cut_short_is_redone(grid, tmp_path, monkeypatch):
    config, path, records = grid
    lines = path.read_text().splitlines()
    cut = tmp_path / "cut.jsonl"
    cut.write_text("\n".join(lines[:-1] + [lines[-1][:20]]) + "\n")
    redone = []
    monkeypatch.setattr(fig2, "run_one", lambda c, d, key: redone.append(key) or records[-1])
    fig2.run_grid(config, cut, progress=False)
    assert redone == [fig2._key(records[-1])]


def test_summary_is_median_and_quartiles():
    records = [{"kind": "tf", "n": 10, "std": 0.1, "trial": k, "error": e, "rank": q}
               for k, (e, q) in enumerate([(1.0, 1), (2.0, 1), (3.0, 2), (4.0, 5), (5.0, 1)])]
    row = fig2.summarize(records)[("tf", 0.1)][0]
    assert row["error"] == [2.0, 3.0, 4.0] and row["rank"] == [1.0, 1.0, 2.0]
    assert "rank_ref" not in row
    # without a rank at rtol (order 4) the summary's rank is the reference-criterion one
    for r in records:
        r["rank_ref"] = r.pop("rank") + 1
    row = fig2.summarize(records)[("tf", 0.1)][0]
    assert row["rank"] == row["rank_ref"] == [2.0, 2.0, 3.0]


def test_config_rejects_bad_values():
    for kwargs, field in (({"order": 1}, "order"), ({"n_values": (0,)}, "n_values"),
                          ({"method": "adam"}, "method"), ({"init_stds": (-1,)}, "init_stds"),
                          ({"stop_mse": 0}, "stop_mse"), ({"solver": "Euler"}, "solver"),
                          ({"rank_rtol": None, "rank_mse": None}, "rank_rtol"),
                          ({"rank_mse": -1.0}, "rank_mse"), ({"rank_restarts": 0}, "restarts")):
        with pytest.raises(ValueError, match=field):
            fig2.Figure2Config(**kwargs)
    assert fig2.Figure2Config(order=3).n_values == fig2.N_VALUES[3]
    assert fig2.Figure2Config(order=4).cp_rank == 512


def test_cli_writes_results_and_figure(grid, tmp_path, capsys):
    _, path, _ = grid
    out = tmp_path / "out"
    out.mkdir()
    # the module fixture's grid is the CLI's grid: reuse it (nothing is recomputed)
    (out / "figure2_order3_results.jsonl").write_text(path.read_text())
    code = main(["figure2", "--order", "3", "--dim", "3", "--n", "22", "--inits",
                 "1e-3", "--trials", "2", "--stop-mse", "1e-8", "--out", str(out),
                 "--no-progress"])
    assert code == 0
    png = out / "figure2_order3.png"
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    text = capsys.readouterr().out
    assert "linear" in text and "tf 0.001" in text and "not at stop_mse: 0" in text
    assert main(["figure2", "--order", "3", "--out", str(out), "--trials", "0"]) == 2
