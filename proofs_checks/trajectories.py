"""Trajectory generation for the checks (kept apart from the checks themselves, which
are pure functions of the arrays produced here).

Which coordinates: flowsim's default, ``"auto"``, which takes the singular-value
coordinates (sign of det exact) for these balanced 2x2 starts. In factor coordinates
float64 loses the sign of det W near loss 1.3e-2 at depth 2 and before 1e-12 at depth 3
(such runs end with status ``"precision_lost"``), so the deepest loss asked for depends on
the coordinates (:data:`DEEPEST_LOSS`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

import flowsim as fs

#: deepest stop loss per coordinates and depth. Factors keep det's sign down to these.
#: "svd" (what "auto" takes here) keeps it always and reaches 1e-12 at depths 2-6, 16
#: seeds each (bench/bench_theorem_regime.py).
DEEPEST_LOSS = {
    "svd": {2: 1e-12, 3: 1e-12, 4: 1e-12},
    "factors": {2: 3e-2, 3: 1e-8, 4: 1e-8},
}
DEEPEST_LOSS["auto"] = DEEPEST_LOSS["svd"]


def default_coordinates() -> str:
    """flowsim's default, ``"auto"``."""
    return "auto"


def deepest_loss(coordinates: str, depth: int) -> float:
    table = DEEPEST_LOSS.get(coordinates, DEEPEST_LOSS["factors"])
    return table.get(depth, min(table.values()))


@dataclass(frozen=True, eq=False)
class Run:
    """One trajectory and what produced it."""

    label: str
    problem: fs.MatrixCompletion
    depth: int
    scale: float
    seed: int
    det_sign: int
    traj: fs.Trajectory


def flow_run(problem, depth: int, *, scale: float, seed: int, det_sign: int,
             coordinates: str, stop_loss: float | None, t_max: float = math.inf,
             label: str = "", params=None) -> Run:
    """Gradient flow from a balanced init (or the given ``params``)."""
    model = fs.DeepMatrixFactorization((2, 2), depth)
    if params is None:
        params = fs.balanced_init(model, seed=seed, scale=scale, det_sign=det_sign)
    traj = fs.gradient_flow(problem, model, params, coordinates=coordinates,
                            stop_loss=stop_loss, t_max=t_max, progress=False)
    label = label or f"depth {depth}, scale {scale:g}, seed {seed}, {traj.config['coordinates']}"
    return Run(label, problem, depth, scale, seed, det_sign, traj)


def theorem1_runs(depths, scales, seeds, coordinates) -> list[Run]:
    """Paper problem (Eq. 6), balanced init with det W(0) > 0, to the deepest loss the
    coordinates allow at each depth; ``coordinates`` is a name or ``{depth: name}``."""
    problem = fs.paper_problem()
    pick = coordinates.get if isinstance(coordinates, dict) else lambda d: coordinates
    return [flow_run(problem, d, scale=s, seed=k, det_sign=+1, coordinates=pick(d),
                     stop_loss=deepest_loss(pick(d), d))
            for d in depths for s in scales for k in seeds]


def seed_with_w22_sign(scale: float, sign: int, start: int = 0) -> int:
    """First seed >= ``start`` whose balanced init has ``sign(W22(0)) = sign``; the
    det-sign reflection only touches the first row, so W22(0) is the raw draw's."""
    model = fs.DeepMatrixFactorization((2, 2), 2)
    seed = start
    while np.sign(fs.product(fs.balanced_init(model, seed=seed, scale=scale))[1, 1]) != sign:
        seed += 1
    return seed


def theorem2_runs(b22s, depth: int, scale: float, coordinates: str, t_max: float,
                  b12: float = -2.0, b21: float = 0.5) -> list[Run]:
    """Perturbed problems (Theorem 2), det W(0) of the sign of b12 b21, one init with
    W22(0) > 0 and one with W22(0) < 0 per b22 (they end in different outcomes,
    docs/derivations.md)."""
    sign = int(np.sign(b12 * b21))
    seeds = {w22: seed_with_w22_sign(scale, w22) for w22 in (+1, -1)}
    runs = []
    for b22 in b22s:
        problem = fs.perturbed_problem(b12, b21, b22)
        for w22, seed in seeds.items():
            runs.append(flow_run(
                problem, depth, scale=scale, seed=seed, det_sign=sign, coordinates=coordinates,
                stop_loss=deepest_loss(coordinates, depth), t_max=t_max,
                label=f"b22 {b22:g}, W22(0) {'>' if w22 > 0 else '<'} 0, depth {depth}, "
                      f"seed {seed}, {coordinates}"))
    return runs


def factor_runs(depths, seeds, scale: float, stop_loss: float) -> list[Run]:
    """Factor-coordinate runs (they carry the layers, for Lemmas 4 and 5)."""
    problem = fs.paper_problem()
    return [flow_run(problem, d, scale=scale, seed=k, det_sign=+1, coordinates="factors",
                     stop_loss=stop_loss) for d in depths for k in seeds]
