"""``flowsim figure2``: the tensor-completion experiment of Figure 2 (Section 4.2, App. F.2).

Runs the grid (resumable: finished runs are read back from the results file, never
recomputed), writes ``figure2_order{N}_results.jsonl`` and ``figure2_order{N}.png`` in
``--out`` and prints the medians.
"""

from __future__ import annotations

from pathlib import Path

from ..files import check_output
from ..integration import SOLVERS


def register(sub) -> None:
    from ..experiments.figure2 import METHODS

    p = sub.add_parser("figure2", help="tensor completion grid of Figure 2 (CP flow vs n)",
                       description=__doc__)
    p.add_argument("--order", type=int, default=3, help="tensor order (3: 8x8x8, 4: 8x8x8x8)")
    p.add_argument("--dim", type=int, default=8)
    p.add_argument("--out", required=True, help="output directory (results file + PNG)")
    p.add_argument("--method", choices=METHODS, default="flow")
    p.add_argument("--n", "--n-values", type=int, nargs="+", dest="n_values",
                   help="numbers of observations (default: the paper's grid for the order)")
    p.add_argument("--inits", "--init-stds", type=float, nargs="+", default=[1e-2, 1e-3],
                   help="init stds of the factor entries")
    p.add_argument("--trials", type=int, default=5)
    p.add_argument("--truth-rank", type=int, default=1)
    p.add_argument("--stop-mse", type=float, default=1e-10,
                   help="stop at this training MSE (reference: 1e-6, see the module doc)")
    p.add_argument("--solver", choices=["auto", *SOLVERS], default="auto",
                   help="flow solver (default auto: the matrix-free RKC2 for these sizes)")
    p.add_argument("--max-steps", type=int, default=100_000)
    p.add_argument("--rank-rtol", type=_optional_float, default=1e-2,
                   help="relative tolerance of the rank estimate ('none': skip it and "
                        "show the reference-criterion rank)")
    p.add_argument("--rank-mse", type=_optional_float, default=1e-6,
                   help="reference rank criterion: fit MSE over all entries ('none': skip)")
    p.add_argument("--rank-restarts", type=int, default=3, help="ALS starts per rank")
    p.add_argument("--rank-max-sweeps", type=int, default=1000, help="ALS sweeps per start")
    p.add_argument("--no-progress", action="store_true")
    p.set_defaults(func=run)


def _optional_float(text: str) -> float | None:
    return None if text.lower() == "none" else float(text)


def run(args) -> int:
    from ..experiments.figure2 import Figure2Config, plot, run_grid, summarize

    check_output(args.out, "--out", directory=True)
    config = Figure2Config(order=args.order, dim=args.dim, truth_rank=args.truth_rank,
                           n_values=args.n_values, init_stds=tuple(args.inits),
                           trials=args.trials, method=args.method, stop_mse=args.stop_mse,
                           solver=args.solver, max_steps=args.max_steps,
                           rank_rtol=args.rank_rtol, rank_mse=args.rank_mse,
                           rank_restarts=args.rank_restarts,
                           rank_max_sweeps=args.rank_max_sweeps)
    out = Path(args.out)
    results = out / f"figure2_order{args.order}_results.jsonl"
    records = run_grid(config, results, progress=not args.no_progress)
    png = plot(config, records, out / f"figure2_order{args.order}.png")
    print(f"{'series':>14s} {'n':>5s} {'runs':>4s} {'error 25/50/75 %':>32s} "
          f"{'rank 25/50/75 %':>18s} {'rank_ref 25/50/75 %':>20s}")
    for series, rows in summarize(records).items():
        name = "linear" if series == "linear" else f"tf {series[1]:g}"
        for r in rows:
            e, k = r["error"], r["rank"]
            print(f"{name:>14s} {r['n']:5d} {r['runs']:4d} {e[0]:10.2e} {e[1]:10.2e} "
                  f"{e[2]:10.2e} {k[0]:5.1f} {k[1]:5.1f} {k[2]:5.1f}"
                  + (" {:6.1f} {:6.1f} {:6.1f}".format(*r["rank_ref"]) if "rank_ref" in r
                     else ""))
    failed = [r for r in records if r.get("status") not in ("exact", "stop_loss")]
    total = sum(r["solve_s"] + r["rank_s"] for r in records)
    print(f"time (sum over runs): solves {sum(r['solve_s'] for r in records):.0f} s, rank "
          f"estimates {sum(r['rank_s'] for r in records):.0f} s, total {total:.0f} s")
    print(f"results: {results}\nfigure: {png}\nruns: {len(records)}, not at stop_mse: "
          f"{len(failed)}")
    return 0
