"""``flowsim run``: one gradient-flow trajectory on a matrix completion or sensing problem."""

from __future__ import annotations

import argparse
import math

import numpy as np

from .. import metrics
from ..accuracy import check_accuracy
from ..dynamics import AUTO, COORDINATES
from ..experiments import named
from ..files import check_output
from ..integration import SOLVERS, SolverOptions, gradient_flow
from ..parameterization import DeepMatrixFactorization
from ..problem import MatrixSensing
from ..runtime import check_fits


def _det_sign(text: str) -> int | None:
    try:
        return named.det_sign(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"det sign must be +1, -1 or none, got {text!r}"
                                         ) from None


class _Default(int):
    """The default ``--det-sign`` (+1), told apart from a ``--det-sign`` given."""


_DEFAULT_SIGN = _Default(1)


def register(sub) -> None:
    p = sub.add_parser("run", help="integrate gradient flow once and print a summary",
                       description=__doc__)
    p.add_argument("--problem", choices=tuple(named.PROBLEMS), default="paper",
                   help="paper: Eq. (6); perturbed: Theorem 2 with --b; padded: App. E with "
                        "--dims; sensing: D*D2//2 Gaussian measurements of a rank-1 "
                        "--dims matrix")
    p.add_argument("--b", type=float, nargs=3, metavar=("B12", "B21", "B22"),
                   default=(-2, 0.5, 0.1),
                   help="observations of --problem perturbed")
    p.add_argument("--dims", type=int, nargs=2, metavar=("D", "D2"), default=(3, 3),
                   help="shape for --problem padded or sensing")
    p.add_argument("--depth", type=int, default=3)
    p.add_argument("--init", choices=tuple(named.INITS), default="balanced")
    p.add_argument("--scale", type=float, default=1e-3,
                   help="product scale (balanced, identity) or per-entry std (gaussian)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--det-sign", type=_det_sign, default=_DEFAULT_SIGN,
                   help="+1 (default), -1 or none; paper and perturbed problems only")
    # a summary run, unlike the API (no stop loss unless asked): deep enough into Theorem 1's
    # regime for |W11| sqrt(2 loss) to be near 1, a few seconds at the default depth
    p.add_argument("--stop-loss", type=float, default=1e-8)
    p.add_argument("--t-max", type=float, default=math.inf)
    p.add_argument("--coordinates", choices=[AUTO, *sorted(COORDINATES)], default=AUTO,
                   help="formulation of the flow (default auto: the most reliable valid one "
                        "for the model and the start; the choice is printed)")
    p.add_argument("--solver", choices=[AUTO, *SOLVERS], default=SolverOptions.solver)
    p.add_argument("--rtol", type=float, default=SolverOptions.rtol,
                   help="controller rtol (default: the coordinates' default)")
    p.add_argument("--atol", type=float, default=SolverOptions.atol,
                   help="controller atol (default: the coordinates' default)")
    p.add_argument("--escape-rtol", type=float, default=SolverOptions.escape_rtol,
                   help="rtol while the loss is above 1e-2 of its value at W = 0 (default: "
                        "rtol, or 100x tighter with the default tolerances of svd "
                        "coordinates and Kvaerno5)")
    p.add_argument("--max-steps", type=int, default=SolverOptions.max_steps)
    p.add_argument("--continue-on-precision-loss", action="store_true",
                   help="go on where precision is lost (recorded), instead of ending the run")
    p.add_argument("--check-accuracy", action="store_true",
                   help="then solve the run again at tolerances 100x tighter and print the "
                        "relative difference in W at every saved point (flowsim.check_accuracy)")
    p.add_argument("--output", "-o", help="save the trajectory here (.npz); resumes if it exists")
    p.add_argument("--no-progress", action="store_true", help="never show a progress bar")
    p.set_defaults(func=run)


def make_params(args, model):
    det_sign = args.det_sign if model.shape[0] == model.shape[1] else None
    return named.make_init(args.init, model, args.seed, args.scale, det_sign)


def run(args) -> int:
    args.det_sign_given = args.det_sign is not _DEFAULT_SIGN
    if args.output:
        check_output(args.output, "--output")
    if args.problem == "sensing" and min(args.dims) >= 1:
        d, d2 = args.dims
        check_fits(f"--problem sensing with --dims {d} {d2} ({d * d2 // 2} measurement "
                   f"matrices {d}x{d2})", 8 * (d * d2 // 2) * d * d2)
    if args.depth >= 1 and args.problem in ("padded", "sensing") and min(args.dims) >= 1:
        d, d2 = args.dims
        m = min(d, d2)  # every factor is at least m x m
        check_fits(f"--depth {args.depth} with --dims {d} {d2} ({args.depth} factors of "
                   f"at least {m}x{m}, and the {d}x{d2} product)",
                   8 * (args.depth * m * m + d * d2))
    elif args.depth >= 1:
        check_fits(f"--depth {args.depth} ({args.depth} factors of 2x2)", 32 * args.depth)
    if (args.det_sign_given and args.det_sign is not None
            and args.problem in ("padded", "sensing")
            and args.dims[0] != args.dims[1]):
        raise ValueError(f"--det-sign {args.det_sign:+d} needs a square W, but --dims "
                         f"{args.dims[0]} {args.dims[1]} is not square (W has no "
                         "determinant); pass --det-sign none")
    problem = named.make_problem(args.problem, args.b, args.dims)
    model = DeepMatrixFactorization(problem.shape, args.depth)
    params = make_params(args, model)
    options = SolverOptions(solver=args.solver, rtol=args.rtol, atol=args.atol,
                            escape_rtol=args.escape_rtol,
                            max_steps=args.max_steps,
                            on_precision_loss="continue" if args.continue_on_precision_loss
                            else "stop")
    traj = gradient_flow(problem, model, params, coordinates=args.coordinates,
                         stop_loss=args.stop_loss, t_max=args.t_max, options=options,
                         progress=False if args.no_progress else None, checkpoint=args.output)
    used = traj.config.get("options", {})
    print(f"problem {args.problem} {problem.shape}, depth {args.depth}, {args.init} init "
          f"(scale {args.scale:g}, seed {args.seed})")
    print(f"coordinates {traj.config['coordinates']} ({traj.config['coordinates_reason']}); "
          f"solver {used.get('solver')}, rtol {used.get('rtol'):g}, atol {used.get('atol'):g}")
    print(traj.summary())
    if len(traj):
        w = traj.product[-1]
        if isinstance(problem, MatrixSensing):
            print(f"{problem.n_observed} measurements, largest residual "
                  f"{np.max(np.abs(problem.measure(w) - problem.values)):.3e}")
        else:
            unobs = metrics.unobserved_entries(problem, w)
            print(f"unobserved entries (0-based {problem.unobserved_indices.tolist()}): "
                  f"{np.array2string(unobs, precision=8)}")
        s = np.sqrt(2 * traj.loss[-1])
        if problem.shape == (2, 2):
            print(f"|W11| * sqrt(2 loss) = {abs(w[0, 0]) * s:.8f}  (Theorem 1: -> 1)")
        print(f"effective rank {metrics.effective_rank(w):.8f}, "
              f"distance to rank {min(problem.shape) - 1}: "
              f"{metrics.distance_to_rank(w, min(problem.shape) - 1):.3e}, "
              f"nuclear norm {metrics.schatten_norm(w, 1):.6g}")
    if args.check_accuracy and len(traj) > 1:
        print(check_accuracy(traj))
    if args.output:
        print(f"saved {args.output}")
    return 0 if traj.success else 1
