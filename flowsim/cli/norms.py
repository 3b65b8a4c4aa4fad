"""``flowsim norms``: the norms question at the literature's sizes (Arora, Cohen, Hu & Luo
2019): gradient flow on deep matrix factorizations of depths 1-4 against the minimum
nuclear norm completion, on random low-rank ground truths.

Runs the grid (resumable: finished runs are read back from ``--out``, never recomputed),
writes ``norms_results.json``, ``norms_matrices.npz``, ``norms.png`` and ``norms.pdf``
in ``--out`` and prints the table. The cvxpy baseline needs ``pip install
'flowsim[convex]'``; ``--baseline admm`` needs nothing more.
"""

from __future__ import annotations


def register(sub) -> None:
    from ..experiments.norms import BASELINES, MEASUREMENTS

    p = sub.add_parser("norms", help="deep matrix factorization flows vs minimum nuclear "
                                     "norm (Arora et al. 2019 protocol)", description=__doc__)
    p.add_argument("--out", required=True, help="output folder")
    p.add_argument("--shape", type=int, nargs=2, default=[100, 100], metavar=("D", "D2"))
    p.add_argument("--rank", type=int, default=5, help="rank of the ground truth")
    p.add_argument("--n", "--n-values", type=int, nargs="+", dest="n_values",
                   default=[2000, 5000], help="numbers of observed entries")
    p.add_argument("--depths", type=int, nargs="+", default=[1, 2, 3, 4])
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2],
                   help="data seeds (each also seeds the flow's start)")
    p.add_argument("--init", type=float, default=1e-3,
                   help="init scale: per-layer std init^(1/L)/sqrt(min(D, D2))")
    p.add_argument("--stop-mse", type=float, default=1e-6, help="stop at this training MSE")
    p.add_argument("--baseline", choices=BASELINES, default="cvxpy",
                   help="minimum nuclear norm by cvxpy/SCS (default) or by ADMM")
    p.add_argument("--max-steps", type=int, default=200_000, help="flow steps per run")
    p.add_argument("--measurements", choices=MEASUREMENTS, default="completion",
                   help="observed entries (default) or Gaussian linear measurements "
                        "y_i = <A_i, W*> (matrix sensing); --n counts either")
    p.add_argument("--no-progress", action="store_true")
    p.set_defaults(func=run)


def run(args) -> int:
    from ..baselines import require_cvxpy
    from ..experiments.norms import (
        NormsConfig,
        format_table,
        plot,
        run_grid,
        run_name,
        summarize,
    )
    from ..files import check_output

    check_output(args.out, "--out", directory=True)
    config = NormsConfig(shape=tuple(args.shape), rank=args.rank,
                         n_values=tuple(args.n_values), depths=tuple(args.depths),
                         seeds=tuple(args.seeds), init=args.init, stop_mse=args.stop_mse,
                         baseline=args.baseline, max_steps=args.max_steps,
                         measurements=args.measurements)
    if config.baseline == "cvxpy":
        require_cvxpy()  # one line naming the extra, before any run
    records, _ = run_grid(config, args.out, progress=not args.no_progress)
    rows = summarize(records)
    print(format_table(rows))
    paths = plot(config, records, args.out)
    failed = [r for r in records if r["status"] not in ("stop_loss", "optimal", "converged")]
    print(f"figure: {', '.join(str(p) for p in paths)}\nruns: {len(records)}, not at their "
          f"stop: {len(failed)}")
    for r in failed:
        print(f"  {run_name((r['kind'], r['n'], r['seed'], r['depth']))}: {r['status']}")
    return 1 if failed else 0
