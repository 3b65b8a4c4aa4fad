"""Compare: gradient descent against the exact flow it discretizes.

Two ways of matching a GD iterate with a point of the flow:

- *equal time* (GD iterate ``k`` against the flow at ``t = k * lr``): the distance between
  the factors and between the product matrices. GD is the explicit Euler method for
  Eq. (4), so on a fixed time interval the distance is ``O(lr)``; :func:`measure_order`
  fits that order from several learning rates.
- *equal loss* (|unobserved entries| when both reach the same loss): the comparison of
  the paper's Figure 1 and Theorem 1 (``|W11| sqrt(2 l) -> 1``).

The flow at prescribed times comes from :func:`flowsim.gradient_flow` with
``save_at=times``: the solver steps onto each time (never dense interpolation, measured
off by up to 5e-5 relative; see docs/numerics.md).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from .descent import gradient_descent
from .integration import gradient_flow
from .integration.options import check_times
from .metrics import unobserved_entries
from .parameterization import DeepMatrixFactorization, Params
from .problem import MatrixCompletion
from .trajectory import Trajectory


def flow_at_times(problem: MatrixCompletion, model: DeepMatrixFactorization, params: Params,
                  times, **flow_kwargs) -> Trajectory:
    """Gradient flow from ``params`` at the increasing ``times > 0``: one
    :func:`flowsim.gradient_flow` run with ``save_at=times`` (the solver steps onto each
    time; no interpolation). Returns its Trajectory without the initial point: one point
    per time reached, status ``"t_max"`` when all were reached (else the run's failure,
    the points before it kept). `flow_kwargs` go to :func:`flowsim.gradient_flow`; the
    coordinates must carry the factors (``"factors"``, the default here)."""
    times = check_times(times, "times")
    if "t_max" in flow_kwargs or "stop_loss" in flow_kwargs or "save_at" in flow_kwargs:
        raise ValueError("flow_at_times sets t_max and save_at itself and takes no stop_loss")
    flow_kwargs.setdefault("progress", False)
    flow_kwargs.setdefault("coordinates", "factors")
    traj = gradient_flow(problem, model, params, save_at=times, **flow_kwargs)
    if traj.factors is None:
        raise ValueError(f"coordinates={traj.config['coordinates']!r} do not carry the "
                         "factors; use coordinates='factors'")
    on_time = np.isin(traj.t, times)
    on_time[0] = False
    return traj.select(on_time).replace(
        config={**traj.config, "kind": "flow_at_times", "times": times.tolist()})


@dataclass(frozen=True)
class TimeComparison:
    """GD iterates against the flow at the same time ``t = k * lr``.

    - `steps`, `t`: the iterations compared and their flow times, ``(n,)``.
    - `param_distance`: ``sqrt(sum_l ||W_l^GD - W_l^flow||_F^2)``, ``(n,)``.
    - `product_distance`: ``||W^GD - W^flow||_F`` of the product matrices, ``(n,)``.
    - `product_relative`: `product_distance` over ``||W^flow||_F``, ``(n,)``.
    """

    steps: np.ndarray
    t: np.ndarray
    param_distance: np.ndarray
    product_distance: np.ndarray
    product_relative: np.ndarray


def compare_at_times(descent: Trajectory, flow: Trajectory, rtol: float = 1e-12) -> TimeComparison:
    """Match every point of `flow` with the GD point of the same time (within `rtol`) and
    measure their distances. Raises ``ValueError`` if a flow time has no GD iterate."""
    if descent.steps is None or descent.factors is None or flow.factors is None:
        raise ValueError("compare_at_times needs a gradient_descent Trajectory (with steps) "
                         "and a flow Trajectory with factors")
    idx = np.searchsorted(descent.t, flow.t)
    idx = np.minimum(idx, len(descent.t) - 1)
    lower = np.maximum(idx - 1, 0)
    idx = np.where(np.abs(descent.t[lower] - flow.t) < np.abs(descent.t[idx] - flow.t), lower, idx)
    off = np.abs(descent.t[idx] - flow.t) > rtol * np.maximum(np.abs(flow.t), 1.0)
    if np.any(off):
        raise ValueError(f"no saved GD iterate at flow times {flow.t[off][:5].tolist()}: "
                         "run gradient_descent with save_steps covering them")
    param_sq = sum(np.sum((gd[idx] - fl) ** 2, axis=(-1, -2))
                   for gd, fl in zip(descent.factors, flow.factors))
    diff = np.linalg.norm(descent.product[idx] - flow.product, axis=(-1, -2))
    return TimeComparison(steps=descent.steps[idx], t=flow.t.copy(),
                          param_distance=np.sqrt(param_sq), product_distance=diff,
                          product_relative=diff / np.linalg.norm(flow.product, axis=(-1, -2)))


def descent_vs_flow(problem: MatrixCompletion, model: DeepMatrixFactorization, params: Params,
                    lr: float, steps, *, descent_kwargs: dict | None = None,
                    **flow_kwargs) -> TimeComparison:
    """Run GD (saving the iterations `steps`) and the flow at ``t = steps * lr`` from the
    same `params`, and compare them at equal time (:func:`compare_at_times`)."""
    steps = np.asarray(steps)
    if steps.ndim != 1 or steps.size == 0 or np.any(steps != np.round(steps)) \
            or steps.min() < 1 or np.any(np.diff(steps) <= 0):
        raise ValueError("steps must be a non-empty increasing 1-d array of integers >= 1")
    steps = steps.astype(np.int64)
    descent = gradient_descent(problem, model, params, lr, max_iterations=int(steps[-1]),
                               save_steps=steps, progress=False, **(descent_kwargs or {}))
    if descent.status != "max_iterations":
        raise FloatingPointError(f"gradient descent ended early: {descent.message}")
    flow = flow_at_times(problem, model, params, steps * float(lr), **flow_kwargs)
    if flow.status != "t_max":
        raise FloatingPointError(f"gradient flow ended early: {flow.message}")
    return compare_at_times(descent, flow)


def convergence_order(step_sizes, errors) -> tuple[float, float]:
    """Least-squares fit ``log error = order * log step + log C``; returns ``(order, C)``."""
    step_sizes = np.asarray(step_sizes, dtype=np.float64)
    errors = np.asarray(errors, dtype=np.float64)
    if step_sizes.shape != errors.shape or step_sizes.ndim != 1 or step_sizes.size < 2:
        raise ValueError("step_sizes and errors must be 1-d arrays of the same length >= 2")
    if np.any(step_sizes <= 0) or np.any(errors <= 0) or len(np.unique(step_sizes)) < 2:
        raise ValueError("step_sizes must be > 0 with at least two distinct values, errors > 0")
    order, log_c = np.polyfit(np.log(step_sizes), np.log(errors), 1)
    return float(order), float(math.exp(log_c))


@dataclass(frozen=True)
class OrderEstimate:
    """Deviation of GD from the flow at one flow time `t`, for several learning rates.

    - `lrs`, `steps`: the learning rates and the iterations ``k = t / lr``.
    - `product_deviation`, `param_deviation`: distances at ``t`` (see :class:`TimeComparison`).
    - `order`, `param_order`: fitted slopes of log-deviation against log-lr (Euler: 1).
    """

    t: float
    lrs: np.ndarray
    steps: np.ndarray
    product_deviation: np.ndarray
    param_deviation: np.ndarray
    order: float
    param_order: float


def measure_order(problem: MatrixCompletion, model: DeepMatrixFactorization, params: Params,
                  lrs, t: float, *, descent_kwargs: dict | None = None,
                  **flow_kwargs) -> OrderEstimate:
    """Empirical convergence order of GD to the flow in the learning rate: GD with each
    ``lr`` in `lrs` runs ``k = t / lr`` steps (``t`` must be a multiple of every lr, to
    1e-12), the flow runs to ``t`` once, and the deviations are fitted by
    :func:`convergence_order`."""
    lrs = np.asarray(lrs, dtype=np.float64)
    t = float(t)
    if not (t > 0 and math.isfinite(t)):
        raise ValueError(f"t must be a finite time > 0, got {t!r}")
    steps = np.round(t / lrs).astype(np.int64)
    if np.any(steps < 1) or np.any(np.abs(steps * lrs - t) > 1e-12 * t):
        raise ValueError(f"t={t:g} must be a positive integer multiple of every lr in "
                         f"{lrs.tolist()}")
    flow = flow_at_times(problem, model, params, [t], **flow_kwargs)
    if flow.status != "t_max":
        raise FloatingPointError(f"gradient flow ended early: {flow.message}")
    comparisons = []
    for lr, k in zip(lrs, steps):
        descent = gradient_descent(problem, model, params, float(lr), max_iterations=int(k),
                                   progress=False, **(descent_kwargs or {}))
        if descent.status != "max_iterations":
            raise FloatingPointError(f"gradient descent (lr={lr:g}) ended early: "
                                     f"{descent.message}")
        comparisons.append(compare_at_times(descent, flow, rtol=1e-12))
    product_dev = np.array([c.product_distance[0] for c in comparisons])
    param_dev = np.array([c.param_distance[0] for c in comparisons])
    return OrderEstimate(t=t, lrs=lrs, steps=steps, product_deviation=product_dev,
                         param_deviation=param_dev,
                         order=convergence_order(lrs, product_dev)[0],
                         param_order=convergence_order(lrs, param_dev)[0])


def unobserved_at_loss(problem: MatrixCompletion, traj: Trajectory, levels) -> np.ndarray:
    """Unobserved entries of `traj` where its loss first reaches each level, ``(n, k')``.

    Between the two saved points that bracket a level, ``log|entry|`` is interpolated
    linearly in ``log loss`` (exact for the late-time law ``|W11| ~ (2 l)^{-1/2}`` of
    Theorem 1, and exact at a saved point such as a located ``stop_loss``); the sign is the
    later point's. Raises ``ValueError`` for a level the run never reaches.
    """
    levels = np.atleast_1d(np.asarray(levels, dtype=np.float64))
    if np.any(~(levels > 0)):
        raise ValueError("levels must be > 0")
    values = unobserved_entries(problem, traj.product)
    out = []
    for level in levels:
        i = traj.first_below(level)
        if i == 0 or traj.loss[i] == level:
            out.append(values[i])
            continue
        la, lb = np.log(traj.loss[i - 1]), np.log(traj.loss[i])
        w = (np.log(level) - la) / (lb - la)
        with np.errstate(divide="ignore"):
            mag = np.exp((1 - w) * np.log(np.abs(values[i - 1])) + w * np.log(np.abs(values[i])))
        out.append(np.sign(values[i]) * mag)
    return np.array(out)


@dataclass(frozen=True)
class LossComparison:
    """Unobserved entries of GD and of the flow at the same loss levels.

    - `levels`: the loss levels, ``(n,)``.
    - `descent`, `flow`: unobserved entries at each level, ``(n, k')``.
    - `relative_difference`: ``| |descent| - |flow| | / |flow|``, ``(n, k')``.
    """

    levels: np.ndarray
    descent: np.ndarray
    flow: np.ndarray
    relative_difference: np.ndarray


def compare_at_loss(problem: MatrixCompletion, descent: Trajectory, flow: Trajectory,
                    levels) -> LossComparison:
    """|Unobserved entries| of two runs (typically GD and the flow) at equal loss."""
    a = unobserved_at_loss(problem, descent, levels)
    b = unobserved_at_loss(problem, flow, levels)
    return LossComparison(levels=np.atleast_1d(np.asarray(levels, dtype=np.float64)),
                          descent=a, flow=b,
                          relative_difference=np.abs(np.abs(a) - np.abs(b)) / np.abs(b))
