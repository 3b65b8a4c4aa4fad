import pytest

import flowsim as fs
from flowsim.cli import main


def test_run_prints_summary_and_saves(tmp_path, capsys):
    out = tmp_path / "traj.npz"
    code = main(["run", "--depth", "3", "--stop-loss", "1e-4", "--output", str(out),
                 "--no-progress"])
    text = capsys.readouterr().out
    assert code == 0
    assert "status: stop_loss" in text and "|W11| * sqrt(2 loss)" in text
    traj = fs.Trajectory.load(out)
    assert traj.loss[-1] == pytest.approx(1e-4, rel=1e-9)
    assert traj.config["model"]["depth"] == 3


@pytest.mark.parametrize("argv, field", [
    (["run", "--depth", "0"], "depth"),
    (["run", "--scale", "-1"], "scale"),
    (["run", "--stop-loss", "0"], "stop_loss"),
])
def test_run_bad_input_exits_2_naming_the_field(argv, field, capsys):
    assert main(argv + ["--no-progress"]) == 2
    assert field in capsys.readouterr().err


def test_run_rejects_unknown_solver():
    with pytest.raises(SystemExit):
        main(["run", "--solver", "Euler"])


def test_version(capsys):
    with pytest.raises(SystemExit) as exit_:
        main(["--version"])
    assert exit_.value.code == 0
    assert capsys.readouterr().out.strip() == f"flowsim {fs.__version__}"


def test_run_says_which_coordinates_and_why(capsys):
    assert main(["run", "--depth", "2", "--stop-loss", "1e-4", "--no-progress"]) == 0
    text = capsys.readouterr().out
    assert "coordinates svd (balanced 2x2 start" in text
    # Theorem 1's ratio printed by the run (the flow's, not a lost sign's 0.15)
    ratio = float(text.split("|W11| * sqrt(2 loss) = ")[1].split()[0])
    assert abs(ratio - 1) < 1e-2
    assert main(["run", "--depth", "2", "--stop-loss", "1e-4", "--coordinates", "factors",
                 "--no-progress"]) == 1
    assert "precision_lost" in capsys.readouterr().out
