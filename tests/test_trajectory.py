import json

import numpy as np
import pytest

import flowsim as fs
from flowsim.trajectory import trajectory_from_states


def _toy(status="stop_loss", with_factors=True):
    n = 4
    rng = np.random.default_rng(0)
    factors = (rng.standard_normal((n, 2, 2)), rng.standard_normal((n, 2, 2)))
    return fs.Trajectory(t=np.arange(n, dtype=float), loss=np.linspace(1, 0.1, n),
                         product=rng.standard_normal((n, 2, 2)), det_sign=np.ones(n),
                         log_abs_det=rng.standard_normal(n), states=rng.standard_normal((n, 8)),
                         status=status, message="m", stats={"steps": 3},
                         config={"solver": "Kvaerno5", "rtol": 1e-10},
                         factors=factors if with_factors else None)


@pytest.mark.parametrize("with_factors", [True, False])
def test_save_load_round_trip_without_pickle(tmp_path, with_factors):
    traj = _toy(with_factors=with_factors)
    path = traj.save(tmp_path / "a.npz")
    with np.load(path, allow_pickle=False) as data:
        meta = json.loads(str(data["metadata"]))
    assert meta["config"]["solver"] == "Kvaerno5" and meta["versions"]["numpy"]
    back = fs.Trajectory.load(path)
    for name in ("t", "loss", "product", "det_sign", "log_abs_det", "states"):
        np.testing.assert_array_equal(getattr(back, name), getattr(traj, name))
    assert back.status == traj.status and back.stats == traj.stats
    assert (back.factors is None) == (not with_factors)


def test_status_and_lengths_are_validated():
    with pytest.raises(ValueError, match="status"):
        _toy(status="done")
    traj = _toy()
    with pytest.raises(ValueError, match="loss"):
        traj.replace(loss=traj.loss[:2])
    assert not _toy(status="max_steps").success


def test_first_below():
    traj = _toy()
    assert traj.first_below(0.5) == 2
    with pytest.raises(ValueError, match="never reached"):
        traj.first_below(1e-3)


@pytest.mark.parametrize("depth", [2, 3])
def test_observables_of_factor_states_are_their_layers_and_product(depth):
    # the Trajectory of factor coordinates: its layers are the states' slices, its
    # products and losses those of the layers, each written here per point
    problem, _ = fs.low_rank_completion((7, 5), 2, 20, seed=3)
    model = fs.DeepMatrixFactorization((7, 5), depth)
    states = np.random.default_rng(depth).standard_normal((9, model.n_params))
    traj = trajectory_from_states(fs.make_coordinates("factors", model), problem.mask,
                                  problem.target, np.arange(9.0), states,
                                  status="t_max", message="", stats={}, config={})
    for i, y in enumerate(states):
        layers, start = [], 0
        for rows, cols in model.param_shapes:
            layers.append(y[start:start + rows * cols].reshape(rows, cols))
            start += rows * cols
        w = layers[0]
        for layer in layers[1:]:
            w = layer @ w
        r = problem.mask * (w - problem.target)
        for got, want in zip(traj.factors, layers):
            assert np.array_equal(got[i], want)
        assert np.allclose(traj.product[i], w, rtol=1e-14, atol=1e-14 * np.abs(w).max())
        assert traj.loss[i] == pytest.approx(0.5 * np.sum(r * r), rel=1e-13)
