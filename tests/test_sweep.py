"""Batched flows (gradient_flow on many starts) against one-at-a-time runs, closed-form
bounds and invariants; sweeps: config parsing, results files, resume, CLI.

Every batched solve here uses 4 lanes and the default options, so it compiles once per
coordinates for the whole module.
"""

import math
from pathlib import Path

import numpy as np
import pytest

import flowsim as fs
from flowsim.cli import main
from flowsim.experiments.sweep import (
    RESULT_COLUMNS,
    SweepConfig,
    SweepResults,
    run_locally,
    run_sweep,
)

LANES = 4
STOP = 1e-4
SEEDS = range(5)
PERTURBED_B22 = 0.05


def sweep_config(**solver):
    return SweepConfig(grid={"depth": 3, "scale": 1e-3, "stop_loss": STOP},
                       settings={"repetitions": 8, "batch_size": 4},
                       solver=fs.SolverOptions(lanes=LANES, **solver))


@pytest.fixture(scope="module")
def members(depth3):
    """Five paper-problem runs (random det sign) and one perturbed run (Theorem 2)."""
    inits = [fs.balanced_init(depth3, seed=s, scale=1e-3) for s in SEEDS]
    inits.append(fs.balanced_init(depth3, seed=7, scale=1e-3, det_sign=-1))
    problems = [fs.paper_problem()] * len(SEEDS) + [fs.perturbed_problem(-2, 0.5, PERTURBED_B22)]
    stops = [STOP] * len(SEEDS) + [None]
    t_maxes = [math.inf] * len(SEEDS) + [500.0]
    return problems, inits, stops, t_maxes


@pytest.fixture(scope="module", params=["auto", "factors"])
def batched_and_singles(request, members, depth3):
    problems, inits, stops, t_maxes = members
    batched = fs.gradient_flow(problems, depth3, inits, stop_loss=stops, t_max=t_maxes,
                               coordinates=request.param, lanes=LANES, progress=False)
    singles = [fs.gradient_flow(p, depth3, w, stop_loss=s, t_max=tm, progress=False,
                                coordinates=request.param)
               for p, w, s, tm in zip(problems, inits, stops, t_maxes)]
    return batched, singles


@pytest.fixture(scope="module")
def batched(batched_and_singles):
    return batched_and_singles[0]


@pytest.fixture(scope="module")
def singles(members, depth3):
    problems, inits, stops, t_maxes = members
    return [fs.gradient_flow(p, depth3, w, stop_loss=s, t_max=tm, progress=False)
            for p, w, s, tm in zip(problems, inits, stops, t_maxes)]


def agree(b, s, final_b=None):
    """What a batched run and its single run share on any CPU: the same algorithm on the
    same start, so the same status and coordinates, a step count within a few steps and
    an end within the solver's tolerance of the single run's. Not the same bits: a batch
    runs another compiled program than a single run (lanes, padding), and XLA vectorizes
    each for the machine it runs on, so their rounding differs by CPU (on one AMD EPYC
    with AVX-512 the step times differ by 1e-9 of t from step 202 on; elsewhere they are
    equal). ``final_b``: the batched run's last product, where ``b`` is a sweep row."""
    if final_b is None:
        assert b.status == s.status and b.config["coordinates"] == s.config["coordinates"]
        steps_b, final_b, t_b = b.stats["steps"], b.product[-1], b.t[-1]
    else:
        steps_b, t_b = b
    rtol = s.config["options"]["rtol"]
    assert abs(steps_b - s.stats["steps"]) <= 2 + s.stats["steps"] // 100
    assert abs(t_b - s.t[-1]) <= 100 * rtol * abs(s.t[-1])
    scale = np.abs(s.product).max()
    assert np.abs(final_b - s.product[-1]).max() <= 100 * rtol * scale


def test_batched_takes_the_single_runs_steps(batched_and_singles):
    """Each lane runs the single-run algorithm on the same carry: the same run to the
    solver's tolerance (``agree``: not bit for bit, the rounding of two compiled programs
    differs by CPU)."""
    batched, singles = batched_and_singles
    assert len(batched) == len(singles)
    for b, s in zip(batched, singles):
        agree(b, s)


def test_cp_batch_takes_the_single_runs_steps():
    data = fs.cp_dataset((3, 3, 3), rank=1, seed=0)
    model = fs.CPFactorization((3, 3, 3), rank=4)
    problem = data.problem(15)
    inits = [fs.cp_gaussian_init(model, seed=s, std=0.1) for s in range(3)]
    batched = fs.gradient_flow(problem, model, inits, stop_loss=1e-8, lanes=2,
                               progress=False)
    for w, b in zip(inits, batched):
        s = fs.gradient_flow(problem, model, w, stop_loss=1e-8, progress=False)
        assert b.status == s.status == "stop_loss"
        agree(b, s)


def test_stop_loss_is_located_exactly_for_every_member(batched):
    for traj in batched[:len(SEEDS)]:
        assert traj.status == "stop_loss"
        assert traj.loss[-1] == pytest.approx(STOP, rel=1e-9)
        assert traj.loss[-2] > STOP


def test_theorem1_and_invariants_per_member(batched):
    """det sign kept (balanced init), and for det > 0 the bound |W11| >= 1/sqrt(2 loss) - 2
    (appendix notes D2) at every saved point; balancedness conserved where the
    coordinates carry the factors."""
    signs = [int(t.det_sign[0]) for t in batched[:len(SEEDS)]]
    assert {1, -1} <= set(signs), "the seeds should cover both det signs"
    for traj in batched:
        assert np.all(traj.det_sign == traj.det_sign[0])
        if traj.factors is not None:
            assert np.max(fs.balancedness_defect(traj.factors)) < 1e-7
        assert np.all(np.diff(traj.loss) <= 0)
    for traj in batched[:len(SEEDS)]:
        if traj.det_sign[0] > 0:
            w11 = np.abs(traj.product[:, 0, 0])
            assert np.all(w11 >= 1 / np.sqrt(2 * traj.loss) - 2)
            assert w11[-1] * math.sqrt(2 * STOP) == pytest.approx(1.0, rel=2e-2)


def test_theorem2_bound_on_the_perturbed_member(batched):
    """b = (-2, 0.5, b22), det W(0) < 0: |W11| >= (2 - s)(0.5 - s)/(b22 + s) where s < 0.5."""
    traj = batched[-1]
    assert traj.status == "t_max" and traj.t[-1] == 500.0
    s = np.sqrt(2 * traj.loss)
    ok = s < 0.5
    assert ok.sum() > 10
    bound = (2 - s[ok]) * (0.5 - s[ok]) / (PERTURBED_B22 + s[ok])
    assert np.all(np.abs(traj.product[ok, 0, 0]) >= bound)


def test_save_at_ends_holds_the_same_end_points(members, depth3, batched_and_singles):
    problems, inits, stops, t_maxes = members
    batched, _ = batched_and_singles
    ends = fs.gradient_flow(problems, depth3, inits, stop_loss=stops, t_max=t_maxes,
                            coordinates=batched[0].config["requested_coordinates"],
                            lanes=LANES, save_at="ends", progress=False)
    for e, b in zip(ends, batched):
        assert len(e) == 2 and e.status == b.status
        np.testing.assert_array_equal(e.product[[0, -1]], b.product[[0, -1]])
        assert e.t[-1] == b.t[-1]


@pytest.mark.parametrize("kwargs, field", [
    (dict(save_at="some"), "save_at"),
    (dict(lanes=0), "lanes"),
    (dict(stop_loss=[1e-4, 1e-4]), "stop_loss"),
    (dict(rtol=-1.0), "rtol"),
    (dict(checkpoint="x.npz"), "checkpoint"),
])
def test_batched_bad_arguments(depth3, depth3_params, kwargs, field):
    with pytest.raises(ValueError, match=field):
        fs.gradient_flow(fs.paper_problem(), depth3, [depth3_params] * 3, **kwargs)


# -- sweep config ---------------------------------------------------------------------

def test_config_grid_tasks_and_batches(tmp_path):
    path = tmp_path / "s.toml"
    path.write_text('[sweep]\nrepetitions = 3\nseed = 10\nbatch_size = 4\n'
                    '[grid]\ndepth = [2, 3]\nscale = [1e-3, 1e-2]\ndet_sign = "+1"\n')
    config = SweepConfig.from_toml(path)
    assert config.n_tasks == 2 * 2 * 3 and len(config.points) == 4
    assert config.task(0) == {**config.points[0], "seed": 10, "point": 0}
    assert config.task(5)["seed"] == 12 and config.task(5)["point"] == 1
    batches = config.batches()
    assert sorted(i for b in batches for i in b) == list(range(12))
    for b in batches:
        assert len(b) <= 4 and len({config.task(i)["depth"] for i in b}) == 1
    assert SweepConfig.from_dict(config.to_dict()) == config


@pytest.mark.parametrize("data, field", [
    ({"grid": {"depht": 3}}, "depht"),
    ({"sweep": {"repetitions": 0}}, "repetitions"),
    ({"grid": {"det_sign": "positive"}}, "det_sign"),
    ({"grid": {"init": "orthogonal"}}, "init"),
    ({"sweep": {"problem": "tensor"}}, "problem"),
    ({"grid": {"depth": [3, 0]}}, "depth"),
    ({"other": {}}, "other"),
])
def test_config_rejects_bad_input_naming_the_field(data, field):
    with pytest.raises((ValueError, TypeError), match=field):
        SweepConfig.from_dict(data)


# -- sweeps: results, resume, CLI ------------------------------------------------------

@pytest.fixture(scope="module")
def full_sweep(tmp_path_factory):
    out = tmp_path_factory.mktemp("sweep") / "full.npz"
    return out, run_sweep(sweep_config(), out, progress=False)


def test_sweep_rows_match_independent_runs(full_sweep, depth3, singles):
    _, results = full_sweep
    c = results.columns
    assert results.done.all() and np.all(c["status"] == "stop_loss")
    np.testing.assert_array_equal(c["seed"], np.arange(8))
    # rows 0..4 are seeds 0..4 of the paper problem, like the first single runs
    for seed in SEEDS:
        ref = singles[seed]
        agree((c["steps"][seed], c["t_final"][seed]), ref, final_b=c["w_final"][seed])
    # initial products are the balanced draws (through the svd chart: to rounding);
    # Proposition 3 statistic from them
    w0 = np.stack([depth3.product(fs.balanced_init(depth3, seed=s, scale=1e-3))
                   for s in range(8)])
    np.testing.assert_allclose(c["w_initial"], w0, rtol=1e-12)
    (row,) = results.summary()
    assert row["p_det_positive"] == np.mean(np.linalg.det(w0) > 0)
    assert row["runs"] == 8 and row["stop_loss"] == 8 and row["sign_kept"] == 8
    assert row["median_w11_sqrt2l_pos"] == pytest.approx(1.0, rel=2e-2)


def test_results_file_round_trip_without_pickle(full_sweep):
    out, results = full_sweep
    loaded = SweepResults.load(out)
    assert loaded.config == results.config and loaded.done.all()
    for key in RESULT_COLUMNS:
        np.testing.assert_array_equal(loaded.columns[key], results.columns[key])
    with np.load(out, allow_pickle=False) as data:
        assert "metadata" in data.files


def test_sweep_resumes_after_an_interruption(tmp_path, full_sweep):
    out = tmp_path / "resumed.npz"
    config = sweep_config()
    calls = []

    def interrupted(cfg, batches):
        yield from run_locally(cfg, batches[:1])
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        run_sweep(config, out, runner=interrupted, progress=False)
    partial = SweepResults.load(out)
    assert partial.done.sum() == 4

    def counting(cfg, batches):
        calls.extend(batches)
        yield from run_locally(cfg, batches)

    resumed = run_sweep(config, out, runner=counting, progress=False)
    assert len(calls) == 1 and not set(calls[0]) & set(np.flatnonzero(partial.done))
    for key in RESULT_COLUMNS:
        np.testing.assert_array_equal(resumed.columns[key], full_sweep[1].columns[key])
    with pytest.raises(ValueError, match="another configuration"):
        run_sweep(sweep_config(max_steps=10), out, progress=False)


def test_old_sweep_settings_move_to_the_solver_table():
    """Files written before the [solver] table kept lanes, chunk_steps, max_steps and
    max_abs under [sweep]; they still parse, into the same options."""
    old = SweepConfig.from_dict({"sweep": {"repetitions": 2, "lanes": 8, "max_steps": 10},
                                 "grid": {"depth": 3}})
    assert old.solver.lanes == 8 and old.solver.max_steps == 10


def test_cli_sweep(tmp_path, capsys, full_sweep):
    config = tmp_path / "grid.toml"
    config.write_text(f'[sweep]\nrepetitions = 8\nbatch_size = 4\n[solver]\nlanes = {LANES}\n'
                      f'[grid]\ndepth = 3\nscale = 1e-3\nstop_loss = {STOP}\n')
    assert main(["sweep", str(config), "--no-progress"]) == 0
    text = capsys.readouterr().out
    assert "8/8 runs done" in text and "P(det>0)" in text
    loaded = SweepResults.load(tmp_path / "grid.npz")
    np.testing.assert_array_equal(loaded.columns["w_final"], full_sweep[1].columns["w_final"])
    bad = tmp_path / "bad.toml"
    bad.write_text("[grid]\ncolour = 1\n")
    assert main(["sweep", str(bad), "--no-progress"]) == 2
    assert "colour" in capsys.readouterr().err


def test_example_config_parses():
    path = Path(__file__).resolve().parent.parent / "notebooks" / "sweep_example.toml"
    config = SweepConfig.from_toml(path)
    assert config.n_tasks == 200 * 2 * 2
    assert all(len(b) == 200 for b in config.batches())
    assert config.grid["coordinates"] == ("auto",) and config.solver.lanes == 200
