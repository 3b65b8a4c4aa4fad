"""Ctrl-C as a real signal to a real process: ``flowsim run`` and ``flowsim sweep`` exit
130 with one line saying what was saved and how to resume; nothing interrupted is ever
recorded as finished, and the rerun finishes the work.

The SIGINT is sent by the process to itself at a chosen point of the solve (inside a
chunk of the run, inside a batch of the sweep), so each test interrupts what it means to,
on any machine and at any speed.
"""

import json
import os
import subprocess
import sys
import textwrap

import numpy as np

import flowsim as fs
from flowsim.experiments.sweep import SweepResults

#: the process: sends itself SIGINT at the C-th chunk after the S-th start of a solve
#: (``argv[1]`` is ``"S:C"``; ``"0:0"`` never), then runs the command line with ``argv``
SCRIPT = textwrap.dedent("""
    import os, signal, sys
    from flowsim.integration import engines

    # a terminal's Ctrl-C reaches the process whatever its parent did: a process started
    # in the background by a non-interactive shell inherits SIGINT ignored, and Python
    # then installs no KeyboardInterrupt handler
    signal.signal(signal.SIGINT, signal.default_int_handler)

    at_start, at_chunk = map(int, sys.argv[1].split(":"))
    starts = chunks = 0
    real_start, real_chunk = engines.JaxEngine.start, engines.JaxEngine.chunk

    def start(self, runs):
        global starts, chunks
        starts, chunks = starts + 1, 0
        return real_start(self, runs)

    def chunk(self, runs):
        global chunks
        chunks += 1
        if (starts, chunks) == (at_start, at_chunk):
            os.kill(os.getpid(), signal.SIGINT)  # Ctrl-C, mid-solve
        return real_chunk(self, runs)

    engines.JaxEngine.start, engines.JaxEngine.chunk = start, chunk
    from flowsim.cli import main
    sys.exit(main(sys.argv[2:]))
""")


def flowsim(tmp_path, at: str, *argv):
    script = tmp_path / "interrupt.py"
    script.write_text(SCRIPT)
    return subprocess.run([sys.executable, str(script), at, *argv], cwd=tmp_path,
                          capture_output=True, text=True, timeout=600,
                          env={**os.environ, "PYTHONUNBUFFERED": "1"})


RUN = ["run", "--depth", "3", "--stop-loss", "1e-8", "--no-progress"]


def test_ctrl_c_during_flowsim_run_exits_130_and_the_rerun_resumes(tmp_path):
    out = tmp_path / "run.npz"
    first = flowsim(tmp_path, "1:3", *RUN, "-o", str(out))
    assert first.returncode == 130, first.stderr
    last = first.stderr.strip().splitlines()[-1]
    assert last == (f"flowsim run: interrupted; the run so far is saved in {out}; rerun "
                    "the same command to resume it")
    assert "saved" not in first.stdout  # no summary of a run that did not end
    assert fs.Trajectory.load(out).status == "interrupted"
    again = flowsim(tmp_path, "0:0", *RUN, "-o", str(out))  # 0: never interrupted
    assert again.returncode == 0, again.stderr
    assert fs.Trajectory.load(out).status == "stop_loss"


def test_ctrl_c_without_an_output_file_says_nothing_was_saved(tmp_path):
    first = flowsim(tmp_path, "1:2", *RUN)
    assert first.returncode == 130, first.stderr
    assert first.stderr.strip().splitlines()[-1] == \
        "flowsim run: interrupted; nothing was saved (no checkpoint file)"


SWEEP = """
[sweep]
repetitions = 8
batch_size = 4
[solver]
lanes = 4
[grid]
depth = 3
scale = 1e-3
stop_loss = 1e-4
"""


def test_ctrl_c_during_a_sweep_batch_records_nothing_of_it_and_the_rerun_finishes(tmp_path):
    config = tmp_path / "s.toml"
    config.write_text(SWEEP)
    out = tmp_path / "s.npz"
    probe = flowsim(tmp_path, "0:0", "sweep", str(config), "--no-progress", "-o",
                    str(tmp_path / "probe.npz"))
    assert probe.returncode == 0, probe.stderr
    whole = SweepResults.load(tmp_path / "probe.npz")
    # the first chunk of the second batch (the first batch is saved by then)
    first = flowsim(tmp_path, "2:1", "sweep", str(config), "--no-progress", "-o", str(out))
    assert first.returncode == 130, first.stderr
    assert first.stderr.strip().splitlines()[-1].startswith("flowsim sweep: interrupted; ")
    assert "rerun the same command to resume" in first.stderr
    assert "runs done" not in first.stdout  # no summary of an unfinished sweep
    partial = SweepResults.load(out)
    assert partial.done.sum() == 4
    # every row marked done is a finished run, with the uninterrupted sweep's result
    assert set(partial.columns["status"][partial.done]) <= {"stop_loss"}
    assert "interrupted" not in set(partial.columns["status"])
    np.testing.assert_array_equal(partial.columns["loss_final"][partial.done],
                                  whole.columns["loss_final"][partial.done])
    again = flowsim(tmp_path, "0:0", "sweep", str(config), "--no-progress", "-o", str(out))
    assert again.returncode == 0, again.stderr
    assert "8/8 runs done" in again.stdout
    done = SweepResults.load(out)
    assert done.done.all()
    np.testing.assert_array_equal(done.columns["loss_final"], whole.columns["loss_final"])


def test_ctrl_c_during_figure2_keeps_the_finished_runs_and_records_none_interrupted(tmp_path):
    out = tmp_path / "f2"
    argv = ["figure2", "--order", "3", "--dim", "4", "--n-values", "20", "--inits", "0.1",
            "--trials", "2", "--stop-mse", "1e-4", "--no-progress", "--out", str(out)]
    # the second flow's first chunk: the baseline and the first flow are finished
    first = flowsim(tmp_path, "2:1", *argv)
    assert first.returncode == 130, first.stderr
    results = out / "figure2_order3_results.jsonl"
    last = first.stderr.strip().splitlines()[-1]
    assert last.startswith("flowsim figure2: interrupted; ") and str(results) in last
    records = [json.loads(line) for line in results.read_text().splitlines()[1:]]
    assert records and all(r["status"] != "interrupted" for r in records)
    assert len(records) < 3  # the interrupted run is not among them


def test_ctrl_c_during_gradient_descent_raises_with_the_run_so_far(monkeypatch):
    """Gradient descent (Figure 1, verify, Figure 2's "gd") used to return an
    "interrupted" result that callers recorded like a finished one; it raises now."""
    import jax.numpy as jnp

    import flowsim.descent as descent
    from flowsim.runtime import Interrupted

    real, calls = descent._advance, []

    def advance(*args, **kwargs):
        calls.append(1)
        if len(calls) == 3:
            raise KeyboardInterrupt  # what Ctrl-C raises between two chunks
        return real(*args, **kwargs)

    monkeypatch.setattr(descent, "_advance", advance)
    loss = lambda p: 0.5 * jnp.sum((p - 1.0) ** 2)  # noqa: E731
    try:
        fs.descend(loss, jnp.zeros(3), lr=1e-3, stop_loss=1e-30, max_iterations=10**7,
                   progress=False)
    except Interrupted as exc:
        assert exc.partial.status == "interrupted" and len(exc.partial.loss) >= 2
    else:
        raise AssertionError("no Interrupted raised")
