"""The minimum nuclear norm completion at scale: flowsim's ADMM (threshold continuation,
partial SVD by block power iteration) on a d x d rank-r ground truth. One command
reports the wall time, the iterations, how many thresholds came from partial and from
dense SVDs, the process's peak RSS (and with --trace the peak of Python/numpy
allocations traced by tracemalloc), the test error against the ground truth and the
nuclear norm against the truth's; with --cvxpy also cvxpy/SCS on the same problem and
the relative gap in objective (100 x 100 sizes: SCS does not fit 1000 x 1000).

    python bench/bench_nuclear.py --d 1000 --rank 10 --n 200000
    python bench/bench_nuclear.py --d 100 --rank 5 --n 2000 --cvxpy
"""

from __future__ import annotations

import argparse
import resource
import time
import tracemalloc

import flowsim as fs


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--d", type=int, default=1000)
    ap.add_argument("--rank", type=int, default=10)
    ap.add_argument("--n", type=int, default=200_000, help="observed entries")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--delta", type=float, default=0.0, help="slack of each observation")
    ap.add_argument("--tol", type=float, default=1e-7)
    ap.add_argument("--max-iter", type=int, default=20_000)
    ap.add_argument("--partial-svd", choices=("auto", "yes", "no"), default="auto",
                    help="auto: flowsim's default (partial from min(d, d2) >= 300)")
    ap.add_argument("--cvxpy", action="store_true", help="also solve with cvxpy/SCS")
    ap.add_argument("--trace", action="store_true",
                    help="trace Python-level allocations, numpy's included (tracemalloc; "
                         "slows the run)")
    ap.add_argument("--no-progress", action="store_true")
    args = ap.parse_args()
    problem, truth = fs.low_rank_completion((args.d, args.d), args.rank, args.n, seed=args.seed)
    partial = {"auto": None, "yes": True, "no": False}[args.partial_svd]
    if args.trace:
        tracemalloc.start()
    start = time.perf_counter()
    fit = fs.nuclear_norm_admm(problem, args.delta, tol=args.tol, max_iter=args.max_iter,
                               partial_svd=partial, progress=not args.no_progress)
    seconds = time.perf_counter() - start
    traced = tracemalloc.get_traced_memory()[1] / 2**20 if args.trace else None
    tracemalloc.stop()
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    dense = args.d * args.d * 8 / 2**20
    info = fit.info
    print(f"\n{args.d}x{args.d} rank {args.rank}, {args.n} observed, delta {args.delta:g}: "
          f"ADMM {fit.status} ({info['message']})")
    print(f"  wall time {seconds:.1f} s (the method's own clock {fit.seconds:.1f} s), "
          f"{fit.iterations} iterations; SVDs: {info['svd_partial']} partial (block "
          f"power), {info['svd_full']} dense; rank of the last threshold {info['rank']}, "
          f"last rho {info['rho']:.3g}")
    print(f"  memory: process peak RSS {rss:.0f} MiB"
          + ("" if traced is None else f", peak traced allocations {traced:.0f} MiB")
          + f" (one {args.d}x{args.d} float64 array is {dense:.0f} MiB)")
    print(f"  test error {fs.test_error(fit.matrix, truth):.2e}; nuclear norm "
          f"{fit.objective:.6f} (truth {fs.norm_summary(truth)['nuclear']:.6f}); max "
          f"violation {fit.max_violation:.1e}")
    if args.cvxpy:
        ref = fs.min_nuclear_norm(problem, args.delta)
        print(f"  cvxpy/SCS: {ref.objective:.6f} ({ref.status}) in {ref.seconds:.1f} s; "
              f"relative gap {(fit.objective - ref.objective) / ref.objective:.1e}")


if __name__ == "__main__":
    main()
