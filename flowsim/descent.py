"""Descent: discrete gradient descent, the process the flow idealizes (step ``k`` <-> ``t = k lr``).

:func:`descend` is a generic full-batch engine over any pytree of parameters and any
scalar loss; :func:`gradient_descent` runs it on a matrix completion problem and returns
the same :class:`~flowsim.trajectory.Trajectory` as :func:`flowsim.gradient_flow`.

Step rules (``theta <- theta - eta_k grad phi(theta_k)``):

- ``"constant"``: ``eta_k = lr``, plain GD (the paper's matrix experiments, App. F.1).
- ``"adaptive"``: one global step size ``eta_k = lr / (sqrt(v_k / (1 - beta^k)) + eps)``
  with ``v_k = beta v_{k-1} + (1 - beta) ||grad_k||^2``, ``v_0 = 0`` and ``||.||`` the
  norm of the whole gradient (the tensor experiments' GroupRMSprop, App. F.2). The bias
  correction makes the first step ``lr / (||grad_0|| + eps)``.

The loop is compiled with jax: a ``lax.while_loop`` runs until the next save point (a
log-spaced iteration, a log-spaced loss level, or an explicitly requested iteration), so
millions of steps cost one host round trip per saved point, not per step. The gradient
at the current point is carried, so each step evaluates the loss and its gradient once.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from functools import partial

import jax
import jax.numpy as jnp
import numpy as np
from tqdm.auto import tqdm

from .dynamics import Coordinates, FactorCoordinates
from .parameterization import DeepMatrixFactorization, Factorization, Params
from .problem import (
    MATRIX_PROBLEMS,
    EntryCompletion,
    MatrixCompletion,
    MatrixSensing,
    check_problem_and_model,
    check_real,
    observation_loss,
)
from .runtime import Interrupted
from .statuses import DESCENT_STATUSES as DESCENT_STATUSES  # the statuses descend ends with
from .trajectory import Trajectory, trajectory_from_states

STEP_RULES = ("constant", "adaptive")
DTYPES = ("float64", "float32")


@dataclass(frozen=True, eq=False)
class DescentResult:
    """Saved iterates of one :func:`descend` run, in iteration order.

    **Attributes:**

    - `steps`: iteration ``k`` of each saved point, ``(n,)`` int64 (0 is the start).
    - `time`: ``sum_{i<k} eta_i``, the flow time the iterate stands for, ``(n,)`` float64
      (``k * lr`` for the constant rule).
    - `params`: the parameter pytree with a leading axis ``n`` on every leaf (numpy, in
      the run's dtype).
    - `loss`: loss at each saved point, ``(n,)`` float64 (computed in the run's dtype).
    - `step_size`: the step ``eta_{k-1}`` that led to each saved iterate (NaN at ``k = 0``).
    - `status`: ``"stop_loss"``, ``"max_iterations"`` or ``"nonfinite"``; ``"interrupted"``
      only in the result that :class:`~flowsim.runtime.Interrupted` carries (Ctrl-C raises).
    - `message`: why the run ended, in words.
    - `stats`: ``iterations`` (steps taken), ``wall_s``, ``chunks`` (host round trips).
    """

    steps: np.ndarray
    time: np.ndarray
    params: object
    loss: np.ndarray
    step_size: np.ndarray
    status: str
    message: str
    stats: dict


def _check_dtype(dtype) -> jnp.dtype:
    try:
        name = np.dtype(dtype).name
    except TypeError:
        name = None
    if name not in DTYPES:
        raise ValueError(f"dtype must be one of {list(DTYPES)}, got {dtype!r}")
    return jnp.dtype(name)


def _check_positive_finite(name: str, value) -> float:
    # a TypeError for what is not a number at all (a string lr is a caller's type error)
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise TypeError(f"{name} must be a real number, got {type(value).__name__}")
    return check_real(name, value, minimum=0.0, strict=True)


def _validate(lr, step_rule, beta, eps, stop_loss, max_iterations, saves_per_decade):
    lr = _check_positive_finite("lr", lr)
    if step_rule not in STEP_RULES:
        raise ValueError(f"step_rule must be one of {list(STEP_RULES)}, got {step_rule!r}")
    beta = float(beta)
    if not 0 <= beta < 1:
        raise ValueError(f"beta must be in [0, 1), got {beta!r}")
    eps = float(eps)
    if not (eps >= 0 and math.isfinite(eps)):
        raise ValueError(f"eps must be a finite number >= 0, got {eps!r}")
    if stop_loss is not None:
        stop_loss = _check_positive_finite("stop_loss", stop_loss)
    if isinstance(max_iterations, bool) or int(max_iterations) != max_iterations \
            or max_iterations < 0:
        raise ValueError(f"max_iterations must be an integer >= 0, got {max_iterations!r}")
    check_real("saves_per_decade", saves_per_decade, minimum=0.0, strict=True)
    return lr, beta, eps, stop_loss, int(max_iterations)


def _sum_of_squares(tree):
    return sum(jnp.sum(jnp.square(leaf)) for leaf in jax.tree_util.tree_leaves(tree))


def _evaluate(loss_fn, params, args):
    """``(loss, grad, finite)`` at ``params``: one loss-and-gradient evaluation per step."""
    loss, grad = jax.value_and_grad(loss_fn)(params, *args)
    return loss, grad, jnp.isfinite(loss) & jnp.isfinite(_sum_of_squares(grad))


@partial(jax.jit, static_argnames=("loss_fn",))
def _initial_carry(loss_fn, params, args):
    loss, grad, finite = _evaluate(loss_fn, params, args)
    # k, params_k, loss_k, grad_k, finite_k, v_k, beta^k, sum_{i<k} eta_i (float64), eta_{k-1}
    return (jnp.zeros((), jnp.int64), params, loss, grad, finite, jnp.zeros((), loss.dtype),
            jnp.ones((), loss.dtype), jnp.zeros((), jnp.float64),
            jnp.full((), jnp.nan, loss.dtype))


def _step_size(adaptive, lr, beta, eps, v, beta_pow, grad):
    """``(eta_k, v_{k+1}, beta^{k+1})`` of the step leaving iterate k."""
    if not adaptive:
        return lr, v, beta_pow
    v = beta * v + (1 - beta) * _sum_of_squares(grad)
    beta_pow = beta_pow * beta
    return lr / (jnp.sqrt(v / (1 - beta_pow)) + eps), v, beta_pow


@partial(jax.jit, static_argnames=("loss_fn", "adaptive"))
def _advance(loss_fn, adaptive, carry, args, lr, beta, eps, k_target, loss_target):
    """Step until ``k == k_target``, ``loss_k <= loss_target`` or a non-finite loss/gradient."""

    def cond(c):
        k, _, loss, _, finite, *_ = c
        return (k < k_target) & (loss > loss_target) & finite

    def body(c):
        k, params, _, grad, _, v, beta_pow, t, _ = c
        eta, v, beta_pow = _step_size(adaptive, lr, beta, eps, v, beta_pow, grad)
        params = jax.tree_util.tree_map(lambda p, g: p - eta * g, params, grad)
        loss, grad, finite = _evaluate(loss_fn, params, args)
        return k + 1, params, loss, grad, finite, v, beta_pow, t + eta.astype(jnp.float64), eta

    return jax.lax.while_loop(cond, body, carry)


def _cast_tree(tree, dtype):
    """Floating leaves of ``tree`` as jax arrays of ``dtype`` (other leaves unchanged)."""
    def cast(x):
        x = jnp.asarray(x)
        return x.astype(dtype) if jnp.issubdtype(x.dtype, jnp.floating) else x
    return jax.tree_util.tree_map(cast, tree)


def _check_loss_dtype(loss_fn, params, args, dtype):
    """The loss and every gradient leaf must come out in ``dtype``: a float32 run whose
    loss silently promotes to float64 (e.g. float64 constants in ``loss_fn``) would not be
    a float32 run."""
    try:
        loss, grad = jax.eval_shape(jax.value_and_grad(loss_fn), params, *args)
    except TypeError as exc:
        raise TypeError(f"loss_fn(params, *args) must return a real scalar: {exc}") from exc
    if loss.shape != ():
        raise ValueError(f"loss_fn must return a scalar, got shape {loss.shape}")
    bad = [leaf.dtype for leaf in [loss, *jax.tree_util.tree_leaves(grad)] if leaf.dtype != dtype]
    if bad:
        raise TypeError(f"loss_fn computes in {bad[0]} for dtype={dtype.name} inputs: cast its "
                        f"constants (or pass them through args) so the run stays in {dtype.name}")


def _log_step_schedule(max_iterations: int, per_decade: float) -> np.ndarray:
    n = int(math.ceil(per_decade * math.log10(max(max_iterations, 1)))) + 2
    return np.unique(np.round(np.geomspace(1, max(max_iterations, 1), n)).astype(np.int64))


def descend(loss_fn, params0, *, lr: float, args: tuple = (), step_rule: str = "constant",
            beta: float = 0.99, eps: float = 1e-6, stop_loss: float | None = None,
            max_iterations: int = 1_000_000, dtype="float64", saves_per_decade: float = 20,
            save_steps=None, progress: bool | None = None) -> DescentResult:
    """Full-batch gradient descent on ``loss_fn(params, *args)`` from ``params0``.

    Gradient descent is the explicit Euler discretization of gradient flow (Eq. 4) with
    step ``eta_k``; with the constant rule, iterate ``k`` stands for flow time ``k * lr``.

    **Arguments:**

    - `loss_fn`: ``loss_fn(params, *args) -> scalar``, written in jax. Pass a module-level
      function or a hashable object that compares equal across calls (e.g. a frozen
      dataclass with ``__call__``), not a fresh lambda or a bound method: the compiled
      loop is cached on it, so repeated runs (other lr, inits, data) do not recompile.
    - `params0`: the initial parameters, any pytree of float arrays.
    - `lr`: base step size ``> 0``.
    - `args`: extra arrays (pytrees) passed to `loss_fn` as traced data (e.g. a mask and
      targets), cast to `dtype` when floating.
    - `step_rule`: ``"constant"`` (``eta_k = lr``) or ``"adaptive"`` (see the module doc;
      App. F.2's global GroupRMSprop step), with `beta` and `eps`.
    - `stop_loss`: stop at the first iterate whose loss is ``<= stop_loss``.
    - `max_iterations`: stop after this many steps.
    - `dtype`: ``"float64"`` (default) or ``"float32"`` (the authors' PyTorch default).
      Parameters, data, gradients, step sizes and the loss are all in this dtype; the
      cumulative time is kept in float64. A `loss_fn` that promotes to another dtype is
      refused (``TypeError``).
    - `saves_per_decade`: saved iterates per decade of iterations (log-spaced) and per
      decade of loss; the first and last iterates are always saved.
    - `save_steps`: iterations that must be saved as well (e.g. those compared with the flow).
    - `progress`: progress bar (``None``: only if the run takes over 2 s).

    **Returns:** a :class:`DescentResult`. A non-finite loss or gradient ends the run with
    status ``"nonfinite"``; the offending iterate is the last one saved.

    ```python
    def loss_fn(params, target):
        return 0.5 * jnp.sum((params["a"] * params["b"] - target) ** 2)

    res = descend(loss_fn, {"a": jnp.ones(3), "b": jnp.ones(3)}, args=(jnp.zeros(3),),
                  lr=0.1, stop_loss=1e-10)
    res.status, res.steps[-1], res.loss[-1]
    ```
    """
    lr, beta, eps, stop_loss, max_iterations = _validate(
        lr, step_rule, beta, eps, stop_loss, max_iterations, saves_per_decade)
    dtype = _check_dtype(dtype)
    if not isinstance(args, tuple):
        raise TypeError(f"args must be a tuple, got {type(args).__name__}")
    leaves = jax.tree_util.tree_leaves(params0)
    if not leaves or not all(jnp.issubdtype(jnp.asarray(x).dtype, jnp.floating)
                             or jnp.issubdtype(jnp.asarray(x).dtype, jnp.integer)
                             for x in leaves):
        raise TypeError("params0 must be a non-empty pytree of real arrays")
    params = jax.tree_util.tree_map(lambda x: jnp.asarray(x, dtype=dtype), params0)
    args = _cast_tree(args, dtype)
    _check_loss_dtype(loss_fn, params, args, dtype)
    adaptive = step_rule == "adaptive"
    lr_, beta_, eps_ = (jnp.asarray(v, dtype) for v in (lr, beta, eps))

    schedule = _log_step_schedule(max_iterations, saves_per_decade)
    if save_steps is not None:
        extra = np.asarray(save_steps)
        if extra.ndim > 1 or (extra.size and (extra.min() < 0 or np.any(extra != np.round(extra)))):
            raise ValueError("save_steps must be a 1-d list of integer iterations >= 0")
        schedule = np.union1d(schedule, extra.astype(np.int64))
    schedule = schedule[(schedule > 0) & (schedule <= max_iterations)]
    schedule = np.union1d(schedule, [max_iterations]) if max_iterations > 0 else schedule
    level_ratio = 10.0 ** (-1.0 / saves_per_decade)

    start = time.perf_counter()
    carry = _initial_carry(loss_fn, params, args)
    saved = [_host(carry)]
    loss0 = saved[0]["loss"]
    by_loss = stop_loss is not None and loss0 > stop_loss
    bar_total = round(math.log10(loss0 / stop_loss), 2) if by_loss else max_iterations
    bar = tqdm(total=bar_total, unit="dec" if by_loss else "it", delay=0.0 if progress else 2.0,
               disable=progress is False, desc=f"descent {step_rule} lr={lr:g}", leave=False)
    chunks = 0
    interrupt = False
    try:
        while True:
            k, loss = saved[-1]["k"], saved[-1]["loss"]
            if not saved[-1]["finite"]:
                status, message = "nonfinite", f"non-finite loss or gradient at iteration {k}"
                break
            if stop_loss is not None and loss <= stop_loss:
                status, message = "stop_loss", (f"loss {loss:.6e} <= stop_loss={stop_loss:g} "
                                                f"at iteration {k}")
                break
            if k >= max_iterations:
                status, message = "max_iterations", (f"max_iterations={max_iterations} reached "
                                                     f"(loss {loss:.6e})")
                break
            k_target = int(schedule[np.searchsorted(schedule, k, side="right")])
            # next log-spaced loss level, never below the stopping level; none when it
            # would not lie below the current loss (loss 0 or subnormal), so steps are taken
            level = np.asarray(loss * level_ratio, dtype)
            level = level if level < np.asarray(loss, dtype) else np.asarray(-np.inf, dtype)
            loss_target = level if stop_loss is None else np.maximum(level, stop_loss)
            carry = _advance(loss_fn, adaptive, carry, args, lr_, beta_, eps_,
                             jnp.asarray(k_target, jnp.int64), jnp.asarray(loss_target, dtype))
            chunks += 1
            saved.append(_host(carry))
            cur = saved[-1]["loss"]
            if not by_loss:
                bar.n = saved[-1]["k"]
            elif cur > 0 and math.isfinite(cur):
                bar.n = round(min(bar_total, max(0.0, math.log10(loss0 / cur))), 2)
            bar.set_postfix_str(f"k={saved[-1]['k']} loss={cur:.3g}", refresh=False)
            bar.update(0)
    except KeyboardInterrupt:
        status, message = "interrupted", "interrupted by the user (KeyboardInterrupt)"
        interrupt = True
    finally:
        bar.close()
    column = lambda key, dt: np.array([s[key] for s in saved], dtype=dt)  # noqa: E731
    result = DescentResult(
        steps=column("k", np.int64), time=column("t", np.float64),
        params=jax.tree_util.tree_map(lambda *xs: np.stack(xs), *[s["params"] for s in saved]),
        loss=column("loss", np.float64), step_size=column("eta", np.float64), status=status,
        message=message, stats={"iterations": saved[-1]["k"], "chunks": chunks,
                                "wall_s": time.perf_counter() - start})
    if interrupt:
        # what was computed goes with the interrupt; nothing records it as a finished run
        raise Interrupted("nothing was saved (gradient descent keeps no file)", result)
    return result


def _host(carry) -> dict:
    """One saved point of the loop state, copied to the host."""
    k, params, loss, _, finite, _, _, t, eta = jax.device_get(carry)
    return {"k": int(k), "params": params, "loss": float(loss), "finite": bool(finite),
            "t": float(t), "eta": float(eta)}


@dataclass(frozen=True)
class FactorLoss:
    """``loss_fn`` for :func:`descend`: Eq. (1)'s loss of the model's factors (a tuple,
    one array per factor), ``(params, mask, target)``. Hashable by value, so every run on
    the same model shares one compiled loop. The factors stay separate arrays (not one
    flat vector): measured at 100x100, depth 3, a loop over the flat vector took 2.5x as
    long per step."""

    model: Factorization

    def __call__(self, params, mask, target):
        return observation_loss(self.model.product(params), mask, target)


def gradient_descent(problem: MatrixCompletion | MatrixSensing, model: DeepMatrixFactorization,
                     params: Params, lr: float, *, stop_loss: float | None = None,
                     max_iterations: int = 10_000_000, step_rule: str = "constant",
                     beta: float = 0.99, eps: float = 1e-6, dtype="float64",
                     saves_per_decade: float = 20, save_steps=None,
                     progress: bool | None = None) -> Trajectory:
    """Gradient descent on the factors, the discrete counterpart of Eq. (4), as in the
    paper's experiments (App. F.1: full batch, no momentum; the reference used float32).

    ``W_l(k+1) = W_l(k) - lr * dphi/dW_l (W_1(k), ..., W_L(k))``, ``phi = l(W_L ... W_1)``.
    The saved states are the flat factor vectors of
    :class:`flowsim.dynamics.FactorCoordinates`, so the saved observables (``det_sign``
    as the product of the layers' signs, ``log_abs_det``, ``product``) are the same code
    the flow uses.

    **Arguments:** `problem`, `model`, `params` as for :func:`flowsim.gradient_flow`; `lr`
    and the rest as for :func:`descend` (default budget 10^7 iterations, not
    :func:`descend`'s 10^6: the paper's depth-3 runs at lr 1e-3 take about 4.8e6 steps to
    loss 1e-4).

    **Returns:** a :class:`~flowsim.trajectory.Trajectory` with ``steps`` = iteration ``k``
    and ``t = k * lr`` (for ``step_rule="adaptive"``, ``t`` = the sum of the steps taken);
    status ``"stop_loss"``, ``"max_iterations"`` or ``"nonfinite"`` (Ctrl-C raises
    :class:`~flowsim.runtime.Interrupted`, carrying the run so far).
    Observables (``loss`` included) are evaluated in float64 from the saved iterates; the
    stopping rule used the run's own loss, so in float32 the last saved loss can differ
    from `stop_loss`'s side by the float32 rounding of the loss.

    ```python
    traj = gradient_descent(paper_problem(), model, balanced_init(model), 3e-3, stop_loss=1e-4)
    traj.steps[-1], traj.product[-1, 0, 0]
    ```
    """
    check_problem_and_model(problem, model, MATRIX_PROBLEMS, DeepMatrixFactorization)
    params = model.check_params(params)
    coords = FactorCoordinates(model)
    y0 = coords.from_factors(params)
    config = descent_config("gradient_descent", problem, model, coords, y0, lr=lr,
                            step_rule=step_rule, beta=beta, eps=eps,
                            dtype=_check_dtype(dtype).name, limit=("stop_loss", stop_loss),
                            max_iterations=max_iterations)
    return descend_trajectory(coords, problem, params, config=config, lr=lr, step_rule=step_rule,
                              beta=beta, eps=eps, stop_loss=stop_loss,
                              max_iterations=max_iterations, dtype=dtype,
                              saves_per_decade=saves_per_decade, save_steps=save_steps,
                              progress=progress)


def descent_config(kind: str, problem, model, coords, y0, *, lr, step_rule, beta, eps,
                   dtype: str, limit: tuple[str, object], max_iterations) -> dict:
    """The config a descent trajectory records (what reruns it); ``limit``: the stop
    criterion's name and value."""
    return {"kind": kind, "problem": problem.to_dict(), "model": model.to_dict(),
            "coordinates": coords.name, "lr": float(lr), "step_rule": step_rule,
            "beta": float(beta), "eps": float(eps), "dtype": dtype, limit[0]: limit[1],
            "max_iterations": int(max_iterations), "initial_state": y0.tolist()}


def descend_trajectory(coords: Coordinates, problem: EntryCompletion, params0, *,
                       config: dict, loss_fn=None, time_scale: float = 1.0,
                       **descend_kwargs) -> Trajectory:
    """:func:`descend` on the factors of a coordinate system's model (a tuple of arrays),
    returned as a :class:`~flowsim.trajectory.Trajectory` whose states are the
    coordinates' flat factor vectors and whose observables are the coordinates' own
    (in float64 from the saved iterates), so GD and the flow are measured by the same
    code. Shared by every descent wrapper (matrix, tensor).

    **Arguments:**

    - `coords`, `problem`, `params0`: factor coordinates, what is observed, the initial
      factors.
    - `config`: the run's description, stored in the Trajectory.
    - `loss_fn`: ``loss_fn(params, mask, target)``; default Eq. (1)'s loss
      (:class:`FactorLoss`).
    - `time_scale`: ``t`` of an iterate is ``time_scale * sum_{i<k} eta_i`` (exactly
      ``time_scale * k * lr`` for the constant rule); use it when `loss_fn` is a multiple
      of Eq. (1)'s loss, so that ``t`` stays the time of the flow of Eq. (1).
    - `descend_kwargs`: passed to :func:`descend` (``lr`` is required).
    """
    loss_fn = FactorLoss(coords.model) if loss_fn is None else loss_fn
    result = descend(loss_fn, tuple(params0), args=(problem.mask, problem.target),
                     **descend_kwargs)
    n = len(result.steps)
    states = np.concatenate([np.asarray(f, dtype=np.float64).reshape(n, -1)
                             for f in result.params], axis=1)
    if descend_kwargs.get("step_rule", "constant") == "constant":
        t = result.steps * (float(descend_kwargs["lr"]) * time_scale)
    else:
        t = result.time * time_scale
    return trajectory_from_states(coords, problem.mask, problem.target, t, states,
                                  status=result.status, message=result.message,
                                  stats=dict(result.stats), config=config,
                                  steps=result.steps)
