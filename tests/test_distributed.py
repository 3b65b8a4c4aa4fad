"""The same sweep on a Dask LocalCluster of 2 workers gives the same rows as locally.

An explicit solver (Tsit5) on depth 2 keeps the compile on each worker process short;
the batching and the driver are the ones every sweep uses.
"""

import numpy as np
import pytest

from flowsim import SolverOptions
from flowsim.experiments.distributed import dask_client, run_sweep_dask
from flowsim.experiments.sweep import RESULT_COLUMNS, SweepConfig, SweepResults, run_sweep


def config():
    return SweepConfig(grid={"depth": 2, "scale": 0.1, "solver": "Tsit5", "rtol": 1e-8,
                             "atol": 1e-12, "stop_loss": 1e-3, "b22": [0.0, 0.1]},
                       settings={"problem": "perturbed", "repetitions": 4, "batch_size": 4},
                       solver=SolverOptions(lanes=4))


@pytest.fixture(scope="module")
def local(tmp_path_factory):
    return run_sweep(config(), tmp_path_factory.mktemp("local") / "r.npz", progress=False)


def test_dask_local_cluster_gives_identical_results(tmp_path, local):
    out = tmp_path / "dask.npz"
    dist = run_sweep_dask(config(), out, n_workers=2, progress=False)
    assert dist.done.all() and local.done.all()
    assert np.any(local.columns["status"] == "stop_loss")
    for key in RESULT_COLUMNS:
        np.testing.assert_array_equal(dist.columns[key], local.columns[key], err_msg=key)
    # two batches, one per worker; the file on disk is the finished sweep
    assert len(config().batches()) == 2
    assert SweepResults.load(out).done.all()


def test_dask_client_arguments():
    with pytest.raises(ValueError, match="n_workers"):
        with dask_client(n_workers=0):
            pass
    with pytest.raises(ValueError, match="n_workers"):
        with dask_client("tcp://127.0.0.1:1", n_workers=2):
            pass
