"""The minimum nuclear norm completion at scale: flowsim's ADMM (partial SVD) on a
d x d rank-r ground truth, with wall time, peak memory and the result's test error; at
100 x 100 also cvxpy/SCS on the same problem and the relative gap in objective.

    python bench/bench_nuclear.py --d 1000 --rank 10 --n 200000
    python bench/bench_nuclear.py --d 100 --rank 5 --n 2000 --cvxpy
"""

from __future__ import annotations

import argparse
import resource
import time
import tracemalloc

from scipy.sparse.linalg import svds

import flowsim as fs


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--d", type=int, default=1000)
    ap.add_argument("--rank", type=int, default=10)
    ap.add_argument("--n", type=int, default=200_000, help="observed entries")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--tol", type=float, default=1e-7)
    ap.add_argument("--max-iter", type=int, default=20_000)
    ap.add_argument("--rho-scale", type=float, default=None,
                    help="start ADMM at rho = this / sigma_max(observed); default: flowsim's")
    ap.add_argument("--cvxpy", action="store_true", help="also solve with cvxpy/SCS")
    ap.add_argument("--trace", action="store_true",
                    help="trace Python-level allocations (tracemalloc; slows the run)")
    args = ap.parse_args()
    problem, truth = fs.low_rank_completion((args.d, args.d), args.rank, args.n, seed=args.seed)
    if args.trace:
        tracemalloc.start()
    start = time.perf_counter()
    rho = None if args.rho_scale is None else args.rho_scale / float(
        svds(problem.target, k=1, return_singular_vectors=False)[0])
    fit = fs.nuclear_norm_admm(problem, tol=args.tol, progress=True, max_iter=args.max_iter,
                               rho=rho)
    seconds = time.perf_counter() - start
    peak = tracemalloc.get_traced_memory()[1] if args.trace else float("nan")
    tracemalloc.stop()
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"\n{args.d}x{args.d} rank {args.rank}, {args.n} observed: ADMM {fit.status} in "
          f"{fit.iterations} iterations, {seconds:.1f} s; peak numpy/python allocations "
          f"{peak / 2**20:.0f} MiB, process peak RSS {rss:.0f} MiB; nuclear norm "
          f"{fit.objective:.6f} (truth {fs.norm_summary(truth)['nuclear']:.6f}), max "
          f"violation {fit.max_violation:.1e}, test error {fs.test_error(fit.matrix, truth):.2e}, "
          f"rank of the last threshold {fit.info['rank']}")
    if args.cvxpy:
        ref = fs.min_nuclear_norm(problem)
        print(f"cvxpy/SCS: {ref.objective:.6f} in {ref.seconds:.1f} s; relative gap "
              f"{(fit.objective - ref.objective) / ref.objective:.1e}")


if __name__ == "__main__":
    main()
