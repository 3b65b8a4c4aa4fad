"""``flowsim figure1``: the paper's Figure 1 (GD at depths 2-4) with the exact flow overlaid."""

from __future__ import annotations

from pathlib import Path

from ..files import check_output
from ..problem import check_distinct, check_integer, check_real


def register(sub) -> None:
    p = sub.add_parser("figure1", help="reproduce Figure 1 (GD vs loss, exact flow overlaid)",
                       description=__doc__)
    p.add_argument("--out", required=True, help="directory for figure1*.png/pdf and a summary")
    p.add_argument("--depths", type=int, nargs="+", default=[2, 3, 4], choices=[2, 3, 4])
    p.add_argument("--stop-loss", type=float, default=1e-4,
                   help="GD and flow stop here; also the right end of the loss axis")
    p.add_argument("--max-iterations", type=float, default=5e6,
                   help="GD iteration budget (the reference's 5e6)")
    p.add_argument("--dtype", choices=["float64", "float32"], default="float64",
                   help="GD precision (the reference code ran float32)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(func=run)


def run(args) -> int:
    from ..experiments.figure1 import plot_figure1, save_summary, simulate_figure1, summary
    from ..plots import save_figure

    check_real("--stop-loss", args.stop_loss, minimum=0.0, strict=True)
    # a float option (so that 5e6 parses), whose value must be a whole number
    if not (args.max_iterations >= 1 and float(args.max_iterations).is_integer()):
        raise ValueError(f"--max-iterations must be an integer >= 1, got {args.max_iterations}")
    check_integer("--seed", args.seed, minimum=0)
    check_distinct("--depths", args.depths)
    check_output(args.out, "--out", directory=True)
    results = simulate_figure1(args.depths, progress=not args.no_progress, seed=args.seed,
                               stop_loss=args.stop_loss,
                               max_iterations=int(args.max_iterations), dtype=args.dtype)
    out = Path(args.out)
    written = []
    for name, fig in plot_figure1(results, lowest_loss=args.stop_loss).items():
        stem = "figure1" if name == "all" else f"figure1_{name}"
        written += save_figure(fig, out, stem)
    rows = summary(results)
    written.append(save_summary(out / "figure1_summary.json", rows, dtype=args.dtype,
                                seed=args.seed, stop_loss=args.stop_loss,
                                max_iterations=int(args.max_iterations)))
    for row in rows:
        print(f"depth {row['depth']} {row['label']:<24} GD {row['gd_status']:<14} "
              f"k={row['gd_iterations']:>8d} |W11|={row['gd_final_abs_w11']:8.3f}   "
              f"flow ({row['flow_coordinates']}) |W11|={row['flow_final_abs_w11']:8.3f}")
    print("wrote " + ", ".join(str(p) for p in written))
    return 0
