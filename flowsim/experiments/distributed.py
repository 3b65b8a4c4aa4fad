"""Distributed sweeps: the batches of :func:`flowsim.sweep.run_sweep` as Dask tasks.

Each Dask task is one batch (:func:`flowsim.sweep.run_batch`: one vmapped solve of up to
``batch_size`` runs), so a worker compiles the solve once and reuses it for every batch
it gets. Results come back as batches finish and are recorded and saved by the same
driver as a local sweep, so a distributed sweep resumes from the same file and gives the
same rows as a local one (same batches, same compiled solve, deterministic on CPU).

By default an embedded ``LocalCluster`` is started (one single-threaded worker process
per core); ``scheduler="tcp://host:8786"`` uses a running cluster instead.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager

from .sweep import BatchRunner, SweepConfig, SweepResults, run_batch, run_sweep


@contextmanager
def dask_client(scheduler: str | None = None, n_workers: int | None = None):
    """A ``distributed.Client``: connected to ``scheduler`` if given, else to an embedded
    ``LocalCluster`` of ``n_workers`` single-threaded processes (default: one per core),
    closed on exit."""
    from distributed import Client, LocalCluster

    if scheduler is not None:
        if n_workers is not None:
            raise ValueError("n_workers applies to the embedded LocalCluster only, not to "
                             f"scheduler={scheduler!r}")
        with Client(scheduler) as client:
            yield client
        return
    n_workers = (os.cpu_count() or 1) if n_workers is None else n_workers
    if isinstance(n_workers, bool) or int(n_workers) != n_workers or n_workers < 1:
        raise ValueError(f"n_workers must be an integer >= 1, got {n_workers!r}")
    with LocalCluster(n_workers=int(n_workers), threads_per_worker=1, processes=True,
                      dashboard_address=None) as cluster, Client(cluster) as client:
        yield client


def dask_runner(client) -> BatchRunner:
    """A batch runner for :func:`flowsim.sweep.run_sweep` that submits every batch to
    ``client`` and yields ``(task ids, rows)`` in the order batches finish."""
    from distributed import as_completed

    def run(config: dict, batches) -> Iterator:
        futures = {client.submit(run_batch, config, ids, pure=False): ids for ids in batches}
        for future in as_completed(futures):
            yield futures[future], future.result()

    return run


def run_sweep_dask(config: SweepConfig, output, *, scheduler: str | None = None,
                   n_workers: int | None = None, progress: bool | None = None) -> SweepResults:
    """:func:`flowsim.sweep.run_sweep` with every batch run as a Dask task (see module
    doc for `scheduler` and `n_workers`)."""
    with dask_client(scheduler, n_workers) as client:
        return run_sweep(config, output, runner=dask_runner(client), progress=progress)
