"""The planning of a :func:`~flowsim.gradient_flow` call: its inputs checked, broadcast to
the members, and the members grouped into solves.

Every input is checked here, before anything is integrated; the coordinates (``"auto"``
may choose per member) and the solver options (``"auto"`` looks at each member's stop loss,
and a checkpoint's run keeps its solver) are resolved here, once, and a solver that
cannot do what the call asks (a checkpoint with scipy's) is refused here. Members that
share coordinates and resolved options form one :class:`Group`, integrated by one solve.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..dynamics import AUTO, Coordinates, choose_coordinates, is_balanced, make_coordinates
from ..parameterization import CPFactorization, DeepMatrixFactorization, Factorization
from ..problem import (
    MATRIX_PROBLEMS,
    EntryCompletion,
    MatrixSensing,
    TensorCompletion,
    class_names,
    det_sign_decides,
)
from . import checkpoint as checkpoints
from .options import SolverOptions, make_options, parse_save_at
from .solvers import check_resumable


@dataclass
class Start:
    """One member of a group: what its run starts from."""

    index: int
    problem: EntryCompletion | MatrixSensing
    y0: np.ndarray
    stop_loss: float | None
    t_max: float
    config: dict


@dataclass
class Group:
    """Members integrated by one solve: the same coordinates and resolved options."""

    coords: Coordinates
    options: SolverOptions
    starts: list[Start] = field(default_factory=list)


@dataclass
class Plan:
    """What a call integrates (:func:`plan_call`)."""

    batch: bool
    n: int
    save_mode: str
    save_times: np.ndarray
    groups: list[Group]
    #: the checkpoint file's path and what it holds (:func:`.checkpoint.read`)
    checkpoint: Path | None
    stored: tuple | None


def is_batch(params) -> bool:
    """A list of factor tuples (many members), rather than one factor tuple."""
    return isinstance(params, list) and len(params) > 0 and all(
        isinstance(p, (tuple, list)) for p in params)


def per_member(name: str, value, n: int, batch: bool) -> list:
    """``value`` for each of ``n`` members: one value for all, or one per member."""
    if batch and isinstance(value, (list, tuple, np.ndarray)) and not isinstance(
            value, (EntryCompletion, MatrixSensing)):
        if len(value) != n:
            raise ValueError(f"{name} must be one value or one per member ({n}), "
                             f"got {len(value)}")
        return list(value)
    return [value] * n


def check_problem(problem, model, name="problem"):
    if not isinstance(problem, (EntryCompletion, MatrixSensing)):
        raise TypeError(f"{name} must be a MatrixCompletion, MatrixSensing or "
                        f"TensorCompletion, got {type(problem).__name__}")
    kind = MATRIX_PROBLEMS if isinstance(model, DeepMatrixFactorization) \
        else (TensorCompletion,)
    if not isinstance(problem, kind) or problem.shape != model.shape:
        raise ValueError(f"{name} must be a {class_names(kind)} with shape {model.shape} (the "
                         f"model's), got a {type(problem).__name__} with shape "
                         f"{problem.shape}")


def check_limits(stop_loss, t_max, suffix=""):
    """``stop_loss`` a finite number > 0 or ``None``, ``t_max`` a number > 0 (``inf``
    allowed), else ``ValueError``."""
    if stop_loss is not None and (isinstance(stop_loss, bool) or not isinstance(
            stop_loss, (int, float, np.floating)) or not (stop_loss > 0
                                                          and math.isfinite(stop_loss))):
        raise ValueError(f"stop_loss{suffix} must be a finite number > 0 or None, "
                         f"got {stop_loss!r}")
    if isinstance(t_max, bool) or not isinstance(t_max, (int, float, np.floating)) \
            or not t_max > 0:
        raise ValueError(f"t_max{suffix} must be a number > 0 (inf allowed), "
                         f"got {t_max!r}")


def model_kind(model: Factorization) -> str:
    return "cp" if isinstance(model, CPFactorization) else "matrix"


def plan_call(problem, model: Factorization, params, *, coordinates, stop_loss, t_max,
              save_at, options, option_overrides: dict, checkpoint) -> Plan:
    """Check a call's inputs and group its members into solves (module doc); reads the
    checkpoint file, if any."""
    if not isinstance(model, Factorization):
        raise TypeError(f"model must be a DeepMatrixFactorization or CPFactorization, "
                        f"got {type(model).__name__}")
    options = make_options(options, option_overrides)
    batch = is_batch(params)
    members = list(params) if batch else [params]
    n = len(members)
    problems = per_member("problem", problem, n, batch)
    stops = per_member("stop_loss", stop_loss, n, batch)
    t_maxes = per_member("t_max", t_max, n, batch)
    save_mode, save_times = parse_save_at(save_at)
    for i, (p, s, tm) in enumerate(zip(problems, stops, t_maxes)):
        suffix = f"[{i}]" if batch and n > 1 else ""
        check_problem(p, model, "problem" + (suffix if isinstance(problem, list) else ""))
        check_limits(s, tm, suffix)
    if not isinstance(coordinates, str):
        raise TypeError(f"coordinates must be a string, got {coordinates!r}")
    if checkpoint is not None:
        if batch:
            raise ValueError("checkpoint is for single runs; batches resume through "
                             "flowsim sweep (flowsim.experiments.sweep)")
    checked = [model.check_params(w, f"params[{i}]" if batch else "params")
               for i, w in enumerate(members)]

    # coordinates: per member ("auto" may choose differently), one solve per choice
    chosen = []
    for w in checked:
        if coordinates == AUTO:
            chosen.append(choose_coordinates(model, w))
        else:
            make_coordinates(coordinates, model)
            chosen.append((coordinates, "requested"))
    by_name: dict[str, list[int]] = {}
    for i, (name, _) in enumerate(chosen):
        by_name.setdefault(name, []).append(i)

    # solver options: per member too ("auto" looks at the stop loss), one solve per choice;
    # a checkpoint's run goes on with the solver it was started with
    path = None if checkpoint is None else Path(checkpoint)
    stored = None if path is None else checkpoints.read(path)
    groups: dict[tuple, Group] = {}
    for name, idx in by_name.items():
        coords = make_coordinates(name, model)
        state_size = len(coords.from_factors(checked[idx[0]]))
        for i in idx:
            resolved = options.resolve(name, model_kind(model), state_size, stops[i],
                                       checkpoints.stored_solver(stored),
                                       det_sign_decides=det_sign_decides(problems[i]))
            if path is not None:
                check_resumable(resolved.solver)
            group = groups.setdefault((name, resolved), Group(coords, resolved))
            y0 = np.asarray(coords.from_factors(checked[i]), dtype=np.float64)
            tm = float(t_maxes[i])
            if save_mode == "times" and not math.isfinite(tm):
                tm = float(save_times[-1])
            config = {
                "kind": "gradient_flow", "problem": problems[i].to_dict(),
                "model": model.to_dict(), "coordinates": name,
                "coordinates_reason": chosen[i][1], "requested_coordinates": coordinates,
                "balanced_start": bool(isinstance(model, DeepMatrixFactorization)
                                       and is_balanced(model, checked[i])),
                "options": resolved.to_dict(), "stop_loss": stops[i], "t_max": tm,
                "save_at": save_mode if save_mode != "times" else save_times.tolist(),
                "batched": batch, "initial_state": y0.tolist()}
            group.starts.append(Start(i, problems[i], y0, stops[i], tm, config))
    return Plan(batch, n, save_mode, save_times, list(groups.values()), path, stored)
