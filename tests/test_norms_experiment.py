"""``flowsim norms`` / flowsim.experiments.norms on a small grid: the baseline against an
independent cvxpy program, depth 1 against its closed-form limit, resume, refusal of other
settings, bad files, the command line."""

import json

import numpy as np
import pytest

import flowsim as fs
from flowsim.cli import main
from flowsim.experiments import norms

cp = pytest.importorskip("cvxpy")  # in the test extra, so CI runs these

CONFIG = norms.NormsConfig(shape=(10, 8), rank=1, n_values=(40,), depths=(1, 2), seeds=(0,),
                           init=1e-2)


@pytest.fixture(scope="module")
def grid(tmp_path_factory):
    folder = tmp_path_factory.mktemp("norms")
    records, matrices = norms.run_grid(CONFIG, folder, progress=False)
    return folder, records, matrices


def test_grid_runs_and_saves(grid):
    folder, records, matrices = grid
    assert sorted(norms.run_name((r["kind"], r["n"], r["seed"], r["depth"])) for r in records) \
        == sorted(matrices) == sorted(norms.run_name(k) for k in CONFIG.runs())
    for r in records:
        assert r["status"] in ("stop_loss", "optimal"), r
    stored, again, arrays = norms.read_results(folder)
    assert stored == CONFIG.to_dict() and again == records
    for name, w in matrices.items():
        np.testing.assert_array_equal(arrays[name], w)


def test_baseline_matches_an_independent_cvxpy_solve(grid):
    _, records, matrices = grid
    problem, truth = fs.low_rank_completion(CONFIG.shape, CONFIG.rank, 40, seed=0)
    x = cp.Variable(CONFIG.shape)
    rows, cols = problem.indices.T
    prob = cp.Problem(cp.Minimize(cp.normNuc(x)),
                      [x[int(r), int(c)] == b for r, c, b in zip(rows, cols, problem.values)])
    prob.solve(solver="CLARABEL")
    record = next(r for r in records if r["kind"] == "nuclear")
    assert record["nuclear"] == pytest.approx(prob.value, rel=1e-4)
    assert record["max_violation"] <= 1e-7
    w = matrices[norms.run_name(("nuclear", 40, 0, None))]
    assert record["test_error"] == pytest.approx(fs.test_error(w, truth), rel=1e-12)


def test_depth_one_ends_at_its_closed_form(grid):
    """The linear model's flow moves only the observed entries: its limit is the start off
    the observations and b on them."""
    _, records, matrices = grid
    problem, _ = fs.low_rank_completion(CONFIG.shape, CONFIG.rank, 40, seed=0)
    model = fs.DeepMatrixFactorization(CONFIG.shape, 1)
    (w0,) = fs.gaussian_init(model, seed=0, std=CONFIG.layer_std(1))
    w = matrices[norms.run_name(("flow", 40, 0, 1))]
    off = problem.mask == 0
    np.testing.assert_allclose(w[off], w0[off], rtol=1e-9, atol=1e-14)
    r = w[tuple(problem.indices.T)] - problem.values
    assert 0.5 * np.sum(r * r) == pytest.approx(CONFIG.stop_mse * 40 / 2, rel=1e-6)


def test_resume_computes_nothing_again(grid, monkeypatch):
    folder, records, _ = grid

    def boom(*args):
        raise AssertionError("a finished run was recomputed")

    monkeypatch.setattr(norms, "run_one", boom)
    again, _ = norms.run_grid(CONFIG, folder, progress=False)
    assert again == records


def test_a_lost_matrix_is_redone(grid, tmp_path):
    folder, records, matrices = grid
    keep = {k: v for k, v in matrices.items() if "depth2" not in k}
    fs.files.write_npz(tmp_path / norms.MATRICES, keep, norms.MATRICES_FORMAT.tag())
    (tmp_path / norms.RESULTS).write_bytes((folder / norms.RESULTS).read_bytes())
    _, done, _ = norms.read_results(tmp_path)
    assert len(done) == len(records) - 1


def test_other_settings_are_refused(grid):
    folder, _, _ = grid
    other = norms.NormsConfig(**{**CONFIG.to_dict(), "init": 1e-3})
    with pytest.raises(ValueError, match="init"):
        norms.run_grid(other, folder, progress=False)


@pytest.mark.parametrize("content, what", [
    ({"config": {"rank": 0}, "records": []}, "rank"),
    ({"config": {}, "records": [{"kind": "flow"}]}, "records"),
    ({"config": {}}, "records"),
])
def test_a_bad_results_file_is_named(tmp_path, content, what):
    (tmp_path / norms.RESULTS).write_text(json.dumps({"format": "flowsim.norms", **content}))
    with pytest.raises(fs.FileFormatError, match=f"{norms.RESULTS}.*{what}"):
        norms.read_results(tmp_path)


@pytest.mark.parametrize("field, value", [("shape", (5,)), ("rank", 9), ("n_values", (0,)),
                                          ("depths", (0,)), ("seeds", (1, 1)),
                                          ("init", -1.0), ("stop_mse", 0.0),
                                          ("baseline", "mosek")])
def test_bad_settings_are_named(field, value):
    with pytest.raises(ValueError, match=field):
        norms.NormsConfig(**{**CONFIG.to_dict(), field: value})


def test_command_line(tmp_path, capsys):
    out = tmp_path / "cli"
    argv = ["norms", "--out", str(out), "--shape", "8", "8", "--rank", "1", "--n", "30",
            "--depths", "2", "--seeds", "0", "--baseline", "admm", "--no-progress"]
    assert main(argv) == 0
    text = capsys.readouterr().out
    assert "| flow, depth 2 | 30 |" in text and "| min nuclear norm | 30 |" in text
    assert (out / "norms.png").stat().st_size and (out / "norms.pdf").stat().st_size
    assert main(argv) == 0  # resumed: nothing left to compute
    assert main(argv[:-1] + ["--init", "0.5", "--no-progress"]) == 2
    assert "other settings" in capsys.readouterr().err
