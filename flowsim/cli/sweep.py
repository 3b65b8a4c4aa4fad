"""``flowsim sweep``: a grid of options x repetitions of gradient flow from a TOML file,
run as batched (vmapped) solves, locally or on Dask; results in one resumable file."""

from __future__ import annotations

from pathlib import Path

from ..experiments.sweep import SweepConfig, format_summary, run_sweep
from ..files import check_output, checked


def register(sub) -> None:
    p = sub.add_parser("sweep", help="run a grid of flows from a TOML config (resumable)",
                       description=__doc__)
    p.add_argument("config", help="TOML file with [sweep] settings and [grid] options "
                                  "(see notebooks/sweep_example.toml)")
    p.add_argument("--output", "-o",
                   help="results file (.npz); default: the config's name with .npz. An "
                        "existing file of the same sweep is resumed")
    p.add_argument("--dask", action="store_true",
                   help="run the batches on Dask (an embedded LocalCluster unless --scheduler)")
    p.add_argument("--scheduler", metavar="ADDRESS",
                   help="address of a running Dask scheduler, e.g. tcp://host:8786 "
                        "(implies --dask)")
    p.add_argument("--workers", type=int, default=None,
                   help="worker processes of the embedded LocalCluster (default: one per core)")
    p.add_argument("--no-progress", action="store_true", help="never show a progress bar")
    p.set_defaults(func=run)


def run(args) -> int:
    if args.workers is not None and args.workers < 1:
        raise ValueError(f"--workers must be an integer >= 1, got {args.workers}")
    if args.workers is not None and not (args.dask or args.scheduler):
        raise ValueError("--workers needs --dask")
    if args.scheduler is not None:
        check_scheduler(args.scheduler)
    config = SweepConfig.from_toml(args.config)
    output = Path(args.output) if args.output else Path(args.config).with_suffix(".npz")
    if output == Path(args.config):
        raise ValueError(f"--output {output} is the config file itself")
    check_output(output, "--output")
    checked(args.config, config.check_runs)
    progress = False if args.no_progress else None
    if args.dask or args.scheduler:
        from ..experiments.distributed import run_sweep_dask

        results = run_sweep_dask(config, output, scheduler=args.scheduler,
                                 n_workers=args.workers, progress=progress)
    else:
        results = run_sweep(config, output, progress=progress)
    varying = [k for k, v in config.grid.items() if len(v) > 1]
    print(f"sweep {args.config}: {int(results.done.sum())}/{config.n_tasks} runs done, "
          f"results in {output}")
    print(format_summary(results.summary(), varying))
    return 0 if results.done.all() else 1


def check_scheduler(address: str) -> None:
    """``ValueError`` naming ``--scheduler`` unless ``address`` reads as
    ``[protocol://]host:port`` with a port number."""
    rest = address.split("://", 1)[-1]
    host, sep, port = rest.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError(f"--scheduler must be an address such as tcp://host:8786 (a host "
                         f"and a port number from 1 to 65535), got {address!r}")
