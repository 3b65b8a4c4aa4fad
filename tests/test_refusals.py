"""Sizes that cannot fit, addresses that are not addresses, options that would be
ignored, outputs that are not files: each refused before any work, in one line naming
the option and what is allowed (exit 2), and nothing created on the way. This machine's
memory is taken to be 16 GiB here, so the answers do not depend on the machine."""

import os
import warnings

import numpy as np
import pytest

import flowsim as fs
from flowsim import runtime
from flowsim.cli import main
from flowsim.experiments.sweep import SweepConfig, run_sweep

GIB16 = 16 << 30


@pytest.fixture(autouse=True)
def memory_16_gib(monkeypatch):
    monkeypatch.setattr(runtime, "memory_bytes", lambda: GIB16)


TOMLS = {
    "padded.toml": '[sweep]\nproblem = "padded"\nd = 100000\nd2 = 100000\n',
    "seed.toml": "[sweep]\nseed = 99999999999999999999\n",
    "paper.toml": "[grid]\nstop_loss = 1e-2\n",
}

#: ``(argv, fragment of the one error line, a path that must not be created)``
ROWS = [
    (["figure2", "--order", "30", "--out", "f2"], "order 30 with dim 8", "f2"),
    (["figure2", "--dim", "100000", "--out", "f3"], "needs at least", "f3"),
    (["run", "--depth", "1000000000"], "--depth 1000000000 (1000000000 factors of 2x2) "
     "needs at least 29.8 GiB", None),
    (["run", "--problem", "padded", "--dims", "100000", "100000"],
     "--depth 3 with --dims 100000 100000", None),
    (["run", "--problem", "padded", "--dims", "3", "4", "--det-sign", "-1"],
     "--det-sign -1 needs a square W", None),
    (["sweep", "paper.toml", "--scheduler", "tcp://127.0.0.1:notaport"],
     "--scheduler must be an address such as tcp://host:8786", "paper.npz"),
    (["sweep", "padded.toml"], "100000x100000 products", "padded.npz"),
    (["sweep", "seed.toml"], "seed must be an integer between 0 and 9223372036854775807",
     "seed.npz"),
    (["run", "--output", "fifo.npz"], "is not a regular file", None),
]


@pytest.mark.parametrize("argv, fragment, absent", ROWS, ids=[" ".join(r[0]) for r in ROWS])
def test_refused_in_one_line_naming_the_option(argv, fragment, absent, tmp_path, capsys,
                                               monkeypatch):
    monkeypatch.chdir(tmp_path)
    for name, text in TOMLS.items():
        (tmp_path / name).write_text(text)
    os.mkfifo(tmp_path / "fifo.npz")
    assert main([*argv, "--no-progress"] if argv[0] != "figure2" else
                [*argv, "--no-progress"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and fragment in err[0], err
    assert err[0].startswith(f"flowsim {argv[0]}: error: ")
    if absent is not None:
        assert not (tmp_path / absent).exists()


def test_det_sign_none_on_a_non_square_padded_problem_is_accepted(tmp_path):
    args = ["run", "--problem", "padded", "--dims", "3", "4", "--det-sign", "none",
            "--stop-loss", "1e-1", "--no-progress"]
    assert main(args) == 0


def test_a_large_results_file_rewritten_every_batch_is_warned_about(tmp_path, monkeypatch):
    import flowsim.experiments.sweep as sweep

    monkeypatch.setattr(sweep, "LARGE_RESULTS", 1000)
    config = SweepConfig(grid={"stop_loss": 1e-2}, settings={"repetitions": 40,
                                                           "batch_size": 4})
    with pytest.warns(UserWarning, match=r"rewritten after each of its 10 batches"):
        run_sweep(config, tmp_path / "r.npz", runner=lambda c, b: iter(()), progress=False)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        monkeypatch.setattr(sweep, "LARGE_RESULTS", 100 << 20)
        run_sweep(config, tmp_path / "q.npz", runner=lambda c, b: iter(()), progress=False)


def test_a_large_grid_is_set_up_in_linear_time(monkeypatch):
    """A million tasks: each task's options are found without listing the grid (the old
    lookup listed all million points for each task). Checked by what it reads, not by a
    clock: the list of points may not be touched, and the tasks are those of the grid in
    itertools.product order."""
    import itertools

    axes = {"scale": [1e-3 * (1 + i / 1000) for i in range(1000)],
            "stop_loss": [1e-2 * (1 + i / 1000) for i in range(1000)]}
    config = SweepConfig(grid=axes, settings={})
    listed = list(itertools.product(*config.grid.values()))

    def no_listing(self):
        raise AssertionError("the grid was listed to find one task")

    monkeypatch.setattr(SweepConfig, "points", property(no_listing))
    for i in (0, 1, 999, 1000, 1001, 123_456, 999_999):
        task = config.task(i)
        assert task == {**dict(zip(config.grid, listed[i])), "seed": 0, "point": i}
    assert config.n_tasks == 10**6


def test_run_output_without_npz_is_the_file_written_and_resumed(tmp_path, capsys):
    out = tmp_path / "run.ckpt"
    base = ["run", "--depth", "3", "--stop-loss", "1e-3", "--no-progress", "-o", str(out)]
    assert main(base) == 0
    assert out.exists() and not (tmp_path / "run.ckpt.npz").exists()
    first = fs.Trajectory.load(out)
    assert main(base) == 0  # served from the file
    assert fs.Trajectory.load(out).stats == first.stats
    capsys.readouterr()
    assert main([*base, "--seed", "1"]) == 2  # another run: refused, the file kept
    assert "holds another run" in capsys.readouterr().err
    assert fs.Trajectory.load(out).stats == first.stats


#: ``(call, fragment)``: API inputs that were silently converted, now refused by name
API_ROWS = [
    (lambda: fs.DeepMatrixFactorization((2, 2), 2).check_params(
        (np.array([["1", "0"], ["0", "1"]]), np.eye(2))),
     "params[0] (W_1) must hold real numbers (float or integer), got <U1"),
    (lambda: fs.DeepMatrixFactorization((2, 2), 2).check_params(
        (np.eye(2), np.eye(2, dtype=bool))),
     "params[1] (W_2) must hold real numbers (float or integer), got bool"),
    (lambda: fs.MatrixCompletion((2, 2), [[0, 1], [1, 0]], [[1.0], [1.0]]),
     "values must be a 1-d list of numbers, one per index, got an array of shape (2, 1)"),
]


@pytest.mark.parametrize("row", range(len(API_ROWS)), ids=["str factor", "bool factor",
                                                           "2-d values"])
def test_api_inputs_that_were_converted_are_refused(row):
    call, fragment = API_ROWS[row]
    with pytest.raises(ValueError) as info:
        call()
    assert fragment in str(info.value)
