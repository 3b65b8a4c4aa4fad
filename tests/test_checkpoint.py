"""Checkpoints resume exactly: a run killed with SIGKILL and rerun ends bit for bit where
the uninterrupted run ends; a checkpoint serves only its own run, or extends a finished
one."""

import signal

import numpy as np
import pytest
from hard_kill import killed_run

import flowsim as fs
from flowsim.cli import main

#: the run of every test here: depth 3, balanced 1e-3, det > 0, default coordinates (svd),
#: small chunks so that the kill lands mid-run
CHUNK = 8


def run(path=None, stop_loss=1e-10, **kwargs):
    model = fs.DeepMatrixFactorization((2, 2), 3)
    params = fs.balanced_init(model, seed=1, scale=1e-3, det_sign=+1)
    return fs.gradient_flow(fs.paper_problem(), model, params, stop_loss=stop_loss,
                            chunk_steps=CHUNK, checkpoint=path, progress=False, **kwargs)


@pytest.fixture(scope="module")
def uninterrupted():
    return run()


KILLED_AFTER = 40  # checkpoint writes (chunks) before the process kills itself

def test_sigkill_and_resume_is_bit_identical(tmp_path, uninterrupted):
    path = tmp_path / "run.npz"
    proc = killed_run("test_checkpoint", "run", path, KILLED_AFTER)
    assert proc.returncode == -signal.SIGKILL, proc.stderr[-2000:]
    partial = fs.Trajectory.load(path)
    assert partial.status == "interrupted"
    assert 0 < len(partial) < len(uninterrupted)
    resumed = run(path)
    assert resumed.status == uninterrupted.status == "stop_loss"
    np.testing.assert_array_equal(resumed.t, uninterrupted.t)
    np.testing.assert_array_equal(resumed.states, uninterrupted.states)
    assert resumed.stats["steps"] == uninterrupted.stats["steps"]
    assert resumed.stats["rejected"] == uninterrupted.stats["rejected"]


def test_finished_run_is_served_and_extended_exactly(tmp_path, uninterrupted):
    path = tmp_path / "run.npz"
    first = run(path, stop_loss=1e-4)
    assert first.status == "stop_loss"
    again = run(path, stop_loss=1e-4)
    np.testing.assert_array_equal(again.states, first.states)
    assert again.stats["wall_s"] == first.stats["wall_s"]  # served from the file
    # a lower stop_loss extends the finished run: the same run as one made directly with
    # its solver (solver="auto" took Rodas5P for stop_loss 1e-4, Kvaerno5 for 1e-10 as
    # the direct run `uninterrupted` shows; the extension keeps the run's own solver)
    assert first.config["options"]["solver"] == "Rodas5P"
    assert uninterrupted.config["options"]["solver"] == "Kvaerno5"
    extended = run(path)
    assert extended.config["options"]["solver"] == "Rodas5P"
    direct = run(solver="Rodas5P")
    np.testing.assert_array_equal(extended.t, direct.t)
    np.testing.assert_array_equal(extended.states, direct.states)
    assert fs.Trajectory.load(path).loss[-1] == pytest.approx(1e-10, rel=1e-9)


def test_checkpoint_serves_only_its_own_run(tmp_path):
    path = tmp_path / "run.npz"
    run(path, stop_loss=1e-4)
    with pytest.raises(ValueError, match="neither that run nor an extension"):
        run(path, stop_loss=1e-2)
    with pytest.raises(ValueError, match="another run"):
        run(path, stop_loss=1e-4, rtol=1e-9)
    model = fs.DeepMatrixFactorization((2, 2), 3)
    other = fs.balanced_init(model, seed=2, scale=1e-3, det_sign=+1)
    with pytest.raises(ValueError, match="initial_state"):
        fs.gradient_flow(fs.paper_problem(), model, other, stop_loss=1e-4, checkpoint=path,
                         chunk_steps=CHUNK)
    with pytest.raises(ValueError, match="scipy"):
        run(tmp_path / "scipy.npz", solver="Radau")


def test_cli_refuses_another_runs_checkpoint(tmp_path, capsys):
    path = tmp_path / "c.npz"
    assert main(["run", "--depth", "3", "--stop-loss", "1e-4", "-o", str(path),
                 "--no-progress"]) == 0
    capsys.readouterr()
    assert main(["run", "--depth", "3", "--stop-loss", "1e-2", "-o", str(path),
                 "--no-progress"]) == 2
    assert "neither that run nor an extension" in capsys.readouterr().err


def test_slow_chunks_are_shortened_and_steps_do_not_change(monkeypatch, tmp_path):
    """A run whose chunks take longer than CHUNK_SECONDS gets shorter chunks (the progress
    bar and the checkpoint move every few seconds however slow a step is), and takes the
    same steps: with a pace of "1 ns per chunk" every chunk is one accepted step."""
    from flowsim.integration import driver

    model = fs.DeepMatrixFactorization((2, 2), 3)
    params = fs.balanced_init(model, seed=1, scale=1e-3, det_sign=+1)
    kwargs = dict(stop_loss=1e-6, solver="Kvaerno5", progress=False)
    normal = fs.gradient_flow(fs.paper_problem(), model, params, **kwargs)
    writes = []
    original = driver.Solve.checkpoint_now

    def counting(self, run, engine, wall):
        writes.append(int(engine.counters(run)["steps"]))
        return original(self, run, engine, wall)

    monkeypatch.setattr(driver, "CHUNK_SECONDS", 1e-9)
    monkeypatch.setattr(driver.Solve, "checkpoint_now", counting)
    paced = fs.gradient_flow(fs.paper_problem(), model, params,
                             checkpoint=tmp_path / "paced.npz", **kwargs)
    np.testing.assert_array_equal(paced.t, normal.t)
    np.testing.assert_array_equal(paced.states, normal.states)
    steps = paced.stats["steps"]
    # the first chunk takes FIRST_CHUNK steps, every later one a single step
    assert writes[0] == driver.FIRST_CHUNK
    assert np.all(np.diff(writes) == 1) and len(writes) >= steps - driver.FIRST_CHUNK - 1


def test_a_checkpoint_without_rise_tol_resumes_with_that_guard_on(tmp_path):
    """A checkpoint written before the loss-rise guard existed has no ``rise_tol``: the
    guard was never switched off there, so the extended run watches it (it was read back
    as infinity, the guard silently off)."""
    from flowsim.integration import checkpoint

    path = tmp_path / "old.npz"
    model = fs.DeepMatrixFactorization((2, 2), 3)
    params = fs.balanced_init(model, seed=0, scale=1e-3, det_sign=+1)
    kwargs = dict(solver="Kvaerno5", checkpoint=path, progress=False)
    fs.gradient_flow(fs.paper_problem(), model, params, stop_loss=1e-3, **kwargs)
    traj, leaves, info = checkpoint.load(path)
    assert info["rise_tol"] == fs.SolverOptions.loss_rise_rtol
    older = {k: v for k, v in info.items() if k not in ("rise_tol", "n_carry")}
    checkpoint.save(path, traj, leaves, older)
    assert "rise_tol" not in checkpoint.load(path)[2]
    extended = fs.gradient_flow(fs.paper_problem(), model, params, stop_loss=1e-4, **kwargs)
    assert extended.status == "stop_loss"
    assert checkpoint.load(path)[2]["rise_tol"] == fs.SolverOptions.loss_rise_rtol
