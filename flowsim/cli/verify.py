"""``flowsim verify``: check every claim of the paper we can check, claim by claim,
with the evidence (sympy for the exact parts, simulated trajectories for the rest).
Prints a table and writes a report folder (markdown, JSON, figures); exits with status
1 when any check fails."""

from __future__ import annotations


def register(sub) -> None:
    p = sub.add_parser("verify", help="check the paper's claims and write a report",
                       description=__doc__)
    p.add_argument("--quick", action="store_true",
                   help="fewer runs and samples (about 2 minutes on 2 cores)")
    p.add_argument("--out", default="out/verify", help="report folder (default: %(default)s)")
    p.add_argument("--only", action="append", metavar="CLAIM",
                   help="run only this claim (repeatable), e.g. --only 'Proposition 3'")
    p.add_argument("--coordinates", default=None,
                   help="coordinates for the trajectories (default: auto, which takes the "
                        "sign-exact svd coordinates for these balanced 2x2 starts)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(func=run)


def run(args) -> int:
    from proofs_checks import report, runner

    from ..dynamics import COORDINATES
    from ..files import check_output

    check_output(args.out, "--out", directory=True)
    if args.coordinates is not None and args.coordinates not in (*COORDINATES, "auto"):
        raise ValueError(f"coordinates must be one of {['auto', *sorted(COORDINATES)]}, "
                         f"got {args.coordinates!r}")
    outcome = runner.run_checks(quick=args.quick, only=args.only, coordinates=args.coordinates,
                                progress=not args.no_progress)
    print(report.format_table(outcome))
    folder = report.write_report(outcome, args.out)
    if outcome.warnings:
        count = sum(len(w) for w in outcome.warnings.values())
        print(f"{count} distinct warning(s) from the runs of {', '.join(outcome.warnings)} "
              f"(recorded, not failures): listed in report.md")
    print(f"report: {folder / 'report.md'} (and report.json, figures)")
    return 0 if outcome.passed else 1
