"""Integration: ``gradient_flow`` solves the flow with a stiff adaptive solver.

The solve runs in *chunks* of accepted steps. Between chunks the points computed so far
are appended to the trajectory, the progress bar moves and (optionally) a checkpoint
file is written, so a long run can be watched, survives a crash and can resume. Every
accepted step end is saved: late in the run the steps grow geometrically in ``t`` and the
loss falls like a power of ``t``, so these points are evenly spread against log-time and
log-loss. Values at step ends are the solver's own (dense interpolation was measured to
be off by up to 5e-5 relative here, see NUMERICS.md), and the ``stop_loss`` point is not
interpolated either: it is re-integrated from the last step before it, at the time found
by Newton's method on ``log loss(t) - log stop_loss`` (the slope ``d loss/dt`` is exact).

Two backends share that loop: diffrax (default ``Kvaerno5`` with an
``optimistix.Newton`` root finder and a PID controller; compiled once per model shape,
coordinates and tolerances) and scipy's ``OdeSolver`` classes (``Radau``, ``BDF``,
``LSODA``, ...; jax supplies the right-hand side and its Jacobian), an independent
cross-check.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from pathlib import Path

import diffrax
import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import optimistix as optx
import scipy.integrate
from tqdm.auto import tqdm

from .dynamics import Coordinates, CPFactorCoordinates, make_coordinates
from .parameterization import DeepMatrixFactorization, Params
from .problem import EntryCompletion, MatrixCompletion, TensorCompletion
from .tensor.cp import CPFactorization
from .trajectory import Trajectory

DIFFRAX_SOLVERS = {
    "Kvaerno5": diffrax.Kvaerno5, "Kvaerno4": diffrax.Kvaerno4, "Kvaerno3": diffrax.Kvaerno3,
    "Tsit5": diffrax.Tsit5, "Dopri5": diffrax.Dopri5, "Dopri8": diffrax.Dopri8,
}
SCIPY_SOLVERS = ("Radau", "BDF", "LSODA", "DOP853", "RK45")
SOLVERS = tuple(DIFFRAX_SOLVERS) + SCIPY_SOLVERS

DEFAULT_COORDINATES = "factors"

# Reasons a chunk of steps ends.
_CONTINUE, _STOP_LOSS, _T_MAX, _NORM, _NONFINITE, _FAILED = range(6)


@dataclass(frozen=True)
class _DiffraxSpec:
    """Static part of a compiled chunk solve (the jit cache key)."""

    coords: Coordinates
    solver: str
    rtol: float
    atol: float
    chunk_steps: int
    newton_rtol: float = 1e-6
    newton_atol: float = 1e-8
    #: stop at the stop_loss / max_abs event inside the solve. Batched (vmapped) solves
    #: turn it off: under vmap diffrax's event handling doubled the cost of every step,
    #: so they find the first saved step past the event afterwards instead.
    events: bool = True

    def make_solver(self):
        cls = DIFFRAX_SOLVERS[self.solver]
        if issubclass(cls, diffrax.AbstractImplicitSolver):
            # Newton, not the default VeryChord: NUMERICS.md measured 10-500x fewer steps.
            # Its tolerances are on the stage equations, not on the solution: tighter
            # ones (e.g. the controller's) made every step fail to converge.
            return cls(root_finder=optx.Newton(rtol=self.newton_rtol, atol=self.newton_atol))
        return cls()

    def make_controller(self):
        return diffrax.PIDController(rtol=self.rtol, atol=self.atol)

    def term(self, mask, target):
        coords = self.coords
        return diffrax.ODETerm(lambda t, y, args: coords.vector_field(y, mask, target))


@eqx.filter_jit
def _observe(coords, y, mask, target):
    """Loss and max|W| of a state (the event quantities), jitted per coordinates."""
    w = coords.product(y)
    return coords.loss(y, mask, target), jnp.max(jnp.abs(w))


def _diffrax_solve(spec: _DiffraxSpec, y0, t0, t1, dt0, mask, target, stop_loss, max_abs,
                   solver_state=None, controller_state=None):
    coords = spec.coords

    def stop(t, y, args, **kwargs):
        loss, big = _observe(coords, y, mask, target)
        # "not (big < max_abs)" is also True for NaN: a non-finite state stops the chunk.
        return (loss <= stop_loss) | jnp.logical_not(big < max_abs)

    return diffrax.diffeqsolve(
        spec.term(mask, target), spec.make_solver(), t0, t1, dt0, y0,
        saveat=diffrax.SaveAt(steps=True, solver_state=True, controller_state=True),
        stepsize_controller=spec.make_controller(),
        event=diffrax.Event(stop) if spec.events else None, max_steps=spec.chunk_steps,
        throw=False, solver_state=solver_state, controller_state=controller_state)


@eqx.filter_jit
def _diffrax_chunk(spec: _DiffraxSpec, y0, t0, t1, dt0, mask, target, stop_loss, max_abs):
    """One chunk of at most ``spec.chunk_steps`` steps from a fresh solver state."""
    sol = _diffrax_solve(spec, y0, t0, t1, dt0, mask, target, stop_loss, max_abs)
    return sol.ts, sol.ys, sol.result._value, sol.stats["num_rejected_steps"]


@eqx.filter_jit
def _diffrax_chunk_carry(spec: _DiffraxSpec, y0, t0, t1, dt0, mask, target, stop_loss,
                         max_abs, solver_state, controller_state):
    """One chunk continuing a previous one: its solver state (Kvaerno5's first-same-as-last
    stage derivative) and controller state carry over, so a run of chunks takes the steps of
    one continuous solve. A fresh start evaluates the vector field at the saved state
    instead; deep in the stiff regime that state sits off the slow manifold by about the
    Newton tolerance, the field there is that offset times the fast rate (~1e8), and the
    first step is rejected down to zero width (measured: depth 3-4, loss < 1e-11)."""
    sol = _diffrax_solve(spec, y0, t0, t1, dt0, mask, target, stop_loss, max_abs,
                         solver_state, controller_state)
    return (sol.ts, sol.ys, sol.result._value, sol.stats["num_rejected_steps"],
            sol.solver_state, sol.controller_state)


@eqx.filter_jit
def _diffrax_start(spec: _DiffraxSpec, y0, t0, t1, dt0, mask, target):
    """The solver and controller states a fresh solve from ``(t0, y0)`` starts with."""
    term, solver = spec.term(mask, target), spec.make_solver()
    tnext, controller_state = spec.make_controller().init(
        term, t0, t1, y0, dt0, None, solver.func, solver.error_order(term))
    return solver.init(term, t0, jnp.minimum(tnext, t1), y0, None), controller_state


@eqx.filter_jit
def _vector_field(coords: Coordinates, y, mask, target):
    return coords.vector_field(y, mask, target)


@eqx.filter_jit
def _batched_observables(coords: Coordinates, ys, mask, target):
    return jax.vmap(lambda y: coords.observables(y, mask, target))(ys)


@eqx.filter_jit
def _batched_loss_and_rate(coords: Coordinates, ys, mask, target):
    return jax.vmap(lambda y: (coords.loss(y, mask, target),
                               coords.loss_rate(y, mask, target)))(ys)


def _initial_step(t, y, f):
    """First trial step from the state ``y`` and its vector field ``f`` (vectorized over
    leading axes): 1% of the state's scale over the field's, at most 1."""
    scale = np.maximum(np.linalg.norm(y, axis=-1), 1e-8)
    return (np.minimum(1e-2 * scale / np.maximum(np.linalg.norm(f, axis=-1), 1e-300), 1.0)
            + 1e-12 * np.abs(t))


class _Stepper:
    """Advance a state by up to ``n`` accepted steps; one subclass per backend."""

    def __init__(self, coords, mask, target, solver, rtol, atol, chunk_steps):
        self.coords, self.mask, self.target = coords, jnp.asarray(mask), jnp.asarray(target)
        self.solver, self.rtol, self.atol, self.chunk_steps = solver, rtol, atol, chunk_steps
        self.stats = {"steps": 0}

    def observe(self, y) -> tuple[float, float]:
        loss, big = _observe(self.coords, jnp.asarray(y), self.mask, self.target)
        return float(loss), float(big)

    def initial_step(self, t, y) -> float:
        f = np.asarray(_vector_field(self.coords, jnp.asarray(y), self.mask, self.target))
        return float(_initial_step(t, np.asarray(y), f))

    def loss_and_rate(self, ys) -> tuple[np.ndarray, np.ndarray]:
        """Loss and ``d loss/dt`` of a batch of states ``(B, k)``."""
        loss, rate = _batched_loss_and_rate(self.coords, jnp.asarray(ys), self.mask, self.target)
        return np.asarray(loss), np.asarray(rate)

    def integrate_batch(self, t0, y0, t1, which) -> np.ndarray:
        """States at times ``t1[i]`` from ``(t0[i], y0[i])`` for the rows where ``which`` is
        True (other rows: ``y0``); batched steppers override it."""
        out = np.array(y0, dtype=np.float64)
        for i in np.flatnonzero(which):
            out[i] = self.integrate_to(t0[i], y0[i], t1[i])
        return out


def _chunk_outcome(t, ts, ys, result, dt):
    """One diffrax chunk from time ``t``, read back: its accepted steps (the finite entries
    of ``ts``), the step size to continue with (the last accepted one) and why it ended
    (``_T_MAX``, ``None`` for an event, ``_CONTINUE`` or ``_FAILED``) with a message."""
    ts, ys, result = np.asarray(ts), np.asarray(ys), int(result)
    keep = np.isfinite(ts)
    ts, ys = ts[keep], ys[keep]
    if len(ts) >= 1:
        prev = t if len(ts) == 1 else ts[-2]
        if ts[-1] > prev:
            dt = float(ts[-1] - prev)
    results = diffrax.RESULTS
    if result == results.successful._value:
        return ts, ys, _T_MAX, "reached t_max", dt
    if result == results.event_occurred._value:
        return ts, ys, None, "event", dt
    if result == results.max_steps_reached._value:
        return ts, ys, _CONTINUE, "", dt
    message = [str(m) for m in results if m._value == result]
    return ts, ys, _FAILED, f"diffrax: {message[0] if message else result}", dt


class _DiffraxStepper(_Stepper):
    def __init__(self, *args):
        super().__init__(*args)
        self.spec = _DiffraxSpec(self.coords, self.solver, self.rtol, self.atol, self.chunk_steps)
        self.stats.update(rejected=0)
        self.dt = None
        self.carry = None  # (t, y, solver state, controller state) where the last chunk ended
        self.chunk_start = None  # (t, y, (solver state, controller state), dt0) of that chunk

    def _solve(self, t, y, t1, dt0, stop_loss, max_abs, states):
        f64 = lambda v: jnp.asarray(v, dtype=jnp.float64)  # noqa: E731 (dynamic, not static)
        y, t, t1, dt0 = jnp.asarray(y), f64(t), f64(t1), f64(dt0)
        if states is None:
            states = _diffrax_start(self.spec, y, t, t1, dt0, self.mask, self.target)
        return states, _diffrax_chunk_carry(self.spec, y, t, t1, dt0, self.mask, self.target,
                                            f64(stop_loss), f64(max_abs), *states)

    def advance(self, t, y, t1, stop_loss, max_abs):
        if self.dt is None:
            self.dt = self.initial_step(t, y)
        dt0 = min(self.dt, t1 - t)
        continues = (self.carry is not None and self.carry[0] == t
                     and np.array_equal(self.carry[1], y))  # not after a change of chart
        states, (ts, ys, result, rejected, *end_states) = self._solve(
            t, y, t1, dt0, stop_loss, max_abs, self.carry[2:] if continues else None)
        self.chunk_start = (t, np.array(y), states, dt0)
        ts, ys, reason, message, self.dt = _chunk_outcome(t, ts, ys, result, self.dt)
        self.carry = (ts[-1], ys[-1], *end_states) if len(ts) else None
        self.stats["steps"] += len(ts)
        self.stats["rejected"] += int(rejected)
        return ts, ys, reason, message

    def integrate_to(self, t0, y0, t1) -> np.ndarray:
        """State at ``t1`` from ``(t0, y0)``, integrated without events; ``[t0, t1]`` lies
        inside the last chunk's steps. The chunk is solved again from its own start, with
        the same solver state, up to ``t1``: the same steps as before up to ``t0`` and a
        last one cut at ``t1``, i.e. exactly a continuous solve stopped at ``t1``. (A fresh
        solve from ``(t0, y0)`` fails deep in the stiff regime: see
        :func:`_diffrax_chunk_carry`.)"""
        t_c, y_c, states, dt0 = self.chunk_start
        if not t_c <= t0 <= t1:
            raise FloatingPointError(f"re-integration to t={t1:.10g}: not inside the last "
                                     "chunk")
        _, (ts, ys, result, *_) = self._solve(t_c, y_c, t1, min(dt0, t1 - t_c), -1.0, np.inf,
                                              states)
        ts, ys, reason, message, _ = _chunk_outcome(t_c, ts, ys, result, dt0)
        if reason != _T_MAX:
            raise FloatingPointError(f"re-integration to the stop_loss time failed: {message}")
        return ys[-1]


class _ScipyStepper(_Stepper):
    def __init__(self, *args):
        super().__init__(*args)
        c, m, tg = self.coords, self.mask, self.target
        field = jax.jit(lambda y: c.vector_field(y, m, tg))
        jac = jax.jit(jax.jacfwd(lambda y: c.vector_field(y, m, tg)))
        self._fun = lambda t, y: np.asarray(field(jnp.asarray(y)))
        self._jac = lambda t, y: np.asarray(jac(jnp.asarray(y)))
        self.stats.update(nfev=0, njev=0, nlu=0)
        self._solver = None

    def _make(self, t, y, t1):
        cls = getattr(scipy.integrate, self.solver)
        kwargs = {"rtol": self.rtol, "atol": self.atol}
        if self.solver in ("Radau", "BDF", "LSODA"):
            kwargs["jac"] = self._jac
        return cls(self._fun, float(t), np.asarray(y, dtype=np.float64), float(t1), **kwargs)

    def _count(self, solver):
        for key in ("nfev", "njev", "nlu"):
            self.stats[key] += int(getattr(solver, key, 0) or 0)

    def advance(self, t, y, t1, stop_loss, max_abs):
        if self._solver is None or self._solver.t != t:
            self._solver = self._make(t, y, t1)
        solver, ts, ys = self._solver, [], []
        before = {k: int(getattr(solver, k, 0) or 0) for k in ("nfev", "njev", "nlu")}
        reason, message = _CONTINUE, ""
        for _ in range(self.chunk_steps):
            msg = solver.step()
            if solver.status == "failed":
                reason, message = _FAILED, f"scipy {self.solver}: {msg}"
                break
            ts.append(solver.t)
            ys.append(solver.y.copy())
            loss, big = self.observe(solver.y)
            if loss <= stop_loss or not big < max_abs:
                reason, message = None, "event"
                break
            if solver.status == "finished":
                reason, message = _T_MAX, "reached t_max"
                break
        for k, v in before.items():
            self.stats[k] += int(getattr(solver, k, 0) or 0) - v
        self.stats["steps"] += len(ts)
        return np.asarray(ts), np.asarray(ys).reshape(len(ts), -1), reason, message

    def integrate_to(self, t0, y0, t1) -> np.ndarray:
        solver = self._make(t0, y0, t1)
        while solver.status == "running":
            msg = solver.step()
            if solver.status == "failed":
                raise FloatingPointError(f"re-integration to the stop_loss time failed: {msg}")
        self._count(solver)
        return solver.y.copy()


def _locate_stop(stepper, t_a, y_a, t_b, y_b, stop_loss, max_iter=8):
    """Times where the loss crosses ``stop_loss`` inside the steps ``[t_a, t_b]`` and the
    states there, by Newton's method on ``log loss(t) - log stop_loss`` with exact
    ``d loss/dt`` and re-integration from ``(t_a, y_a)`` (safeguarded to stay inside the
    bracket). Vectorized over a batch of crossings: ``t_a, t_b, stop_loss`` have shape
    ``(B,)`` and ``y_a, y_b`` shape ``(B, k)``; each member iterates until its own
    convergence."""
    t_a, t_b, stop_loss = (np.asarray(v, dtype=np.float64) for v in (t_a, t_b, stop_loss))
    y_a, y_b = np.asarray(y_a, dtype=np.float64), np.asarray(y_b, dtype=np.float64)
    f_a = np.log(stepper.loss_and_rate(y_a)[0] / stop_loss)
    f_b = np.log(stepper.loss_and_rate(y_b)[0] / stop_loss)
    lo, hi = t_a.copy(), t_b.copy()
    differ = f_a != f_b
    t = np.where(differ, t_a + (t_b - t_a) * f_a / np.where(differ, f_a - f_b, 1.0), t_b)
    y = y_b.copy()
    active = np.ones(t.shape, dtype=bool)
    for _ in range(max_iter):
        y[active] = y_b[active]
        run = active & (t < t_b)
        if run.any():
            y[run] = stepper.integrate_batch(t_a, y_a, t, run)[run]
        loss, rate = stepper.loss_and_rate(y)
        f = np.log(loss / stop_loss)
        active &= ~(np.abs(f) < 1e-13)
        lo = np.where(active & (f > 0), t, lo)
        hi = np.where(active & ~(f > 0), t, hi)
        mid = 0.5 * (lo + hi)
        with np.errstate(divide="ignore", invalid="ignore"):
            t_new = np.where(rate < 0, t - f * loss / rate, mid)
        t_new = np.where((lo < t_new) & (t_new < hi), t_new, mid)
        active &= ~(np.abs(t_new - t) <= 1e-15 * np.abs(t))
        t = np.where(active, t_new, t)
        if not active.any():
            break
    return t, y


def _end_reason(loss, big, t, t1, t_max, steps, stop_loss, max_abs, max_steps):
    """``(status, message)`` when a run standing at ``(t, loss, max|W| = big)`` after
    ``steps`` accepted steps must end, else ``None``."""
    if stop_loss is not None and loss <= stop_loss:
        return "stop_loss", f"loss {loss:.3e} <= stop_loss at t={t:.6g}"
    if not big < max_abs:
        if not np.isfinite(big):
            return "nonfinite", f"non-finite state at t={t:.6g}"
        return "norm_bound", f"max|W| = {big:.3e} exceeded max_abs={max_abs:g} at t={t:.6g}"
    if t >= t1:
        return "t_max", f"reached t_max={t_max:g}"
    if steps >= max_steps:
        return "max_steps", (f"max_steps={max_steps} accepted steps reached at t={t:.6g} "
                             f"(loss {loss:.3e})")
    return None


def _validate(problem, model, solver, coordinates, stop_loss, t_max, rtol, atol, max_steps,
              max_abs, chunk_steps):
    if not isinstance(problem, EntryCompletion):
        raise TypeError(f"problem must be a MatrixCompletion or TensorCompletion, "
                        f"got {type(problem).__name__}")
    if not isinstance(model, (DeepMatrixFactorization, CPFactorization)):
        raise TypeError(f"model must be a DeepMatrixFactorization or CPFactorization, "
                        f"got {type(model).__name__}")
    kind = MatrixCompletion if isinstance(model, DeepMatrixFactorization) else TensorCompletion
    if not isinstance(problem, kind) or problem.shape != model.shape:
        raise ValueError(f"problem must be a {kind.__name__} with shape {model.shape} (the "
                         f"model's), got a {type(problem).__name__} with shape {problem.shape}")
    if solver not in SOLVERS:
        raise ValueError(f"solver must be one of {list(SOLVERS)}, got {solver!r}")
    if stop_loss is not None and not (stop_loss > 0 and math.isfinite(stop_loss)):
        raise ValueError(f"stop_loss must be a finite number > 0 or None, got {stop_loss!r}")
    if not t_max > 0:
        raise ValueError(f"t_max must be > 0, got {t_max!r}")
    for name, v in (("rtol", rtol), ("atol", atol)):
        if not (v > 0 and math.isfinite(v)):
            raise ValueError(f"{name} must be a finite number > 0, got {v!r}")
    for name, v in (("max_steps", max_steps), ("chunk_steps", chunk_steps)):
        if int(v) != v or v < 1:
            raise ValueError(f"{name} must be an integer >= 1, got {v!r}")
    if not max_abs > 0:
        raise ValueError(f"max_abs must be > 0, got {max_abs!r}")
    make_coordinates(coordinates, model)


def _config(problem, model, coordinates, solver, rtol, atol, y0) -> dict:
    return {"kind": "gradient_flow", "problem": problem.to_dict(), "model": model.to_dict(),
            "coordinates": coordinates, "solver": solver, "rtol": rtol, "atol": atol,
            "initial_state": np.asarray(y0).tolist()}


def _resume(checkpoint: Path, config: dict):
    """Points of an earlier run with the same configuration, or None."""
    if checkpoint is None or not checkpoint.exists():
        return None
    old = Trajectory.load(checkpoint)
    keys = ("kind", "problem", "model", "coordinates", "solver", "rtol", "atol")
    for key in keys:
        if old.config.get(key) != config[key]:
            raise ValueError(f"checkpoint {checkpoint} holds a run with another {key} "
                             f"({old.config.get(key)!r}); use another checkpoint path")
    if not np.allclose(old.config["initial_state"], config["initial_state"], rtol=0, atol=0):
        raise ValueError(f"checkpoint {checkpoint} starts from another initial state")
    return old


def gradient_flow(problem: MatrixCompletion | TensorCompletion,
                  model: DeepMatrixFactorization | CPFactorization, params: Params, *,
                  coordinates: str | None = None, stop_loss: float | None = None,
                  t_max: float = math.inf, solver: str = "Kvaerno5", rtol: float = 1e-10,
                  atol: float = 1e-14, max_steps: int = 100_000, max_abs: float = 1e12,
                  chunk_steps: int = 256, progress: bool | None = None,
                  checkpoint: str | Path | None = None) -> Trajectory:
    """Integrate gradient flow, Eq. (4), from the factors ``params``.

    **Arguments:**

    - `problem`, `model`, `params`: what is observed, the factorization, the initial
      factors ``(W_1, ..., W_L)`` (e.g. from :func:`flowsim.balanced_init`).
    - `coordinates`: which formulation to integrate (:data:`flowsim.dynamics.COORDINATES`;
      default :data:`DEFAULT_COORDINATES`). A :class:`~flowsim.tensor.CPFactorization`
      with a :class:`~flowsim.TensorCompletion` (Section 4.2) integrates the flow on its
      factors, ``"factors"`` of :data:`flowsim.dynamics.CP_COORDINATES`.
    - `stop_loss`: end at the first time the loss reaches this value (located exactly).
    - `t_max`: end at this flow time. Without `stop_loss` and `t_max` the run goes on
      until `max_steps`.
    - `solver`: a diffrax solver (``Kvaerno5`` default, stiff; ``Kvaerno3/4``; explicit
      ``Tsit5``, ``Dopri5``, ``Dopri8``) or a scipy one (``Radau``, ``BDF``, ``LSODA``,
      ``DOP853``, ``RK45``).
    - `rtol`, `atol`: step-size controller tolerances.
    - `max_steps`: accepted-step budget (checked after each chunk of `chunk_steps`).
    - `max_abs`: stop (status ``"norm_bound"``) when ``max |W_ij|`` exceeds this.
    - `progress`: show a progress bar (``None``: only if the solve takes over 2 s).
    - `checkpoint`: ``.npz`` path written after every chunk; if it already holds a run of
      the same configuration, the solve resumes from its last point.

    **Returns:** a :class:`~flowsim.trajectory.Trajectory`. Numerical failures end it with
    a failure status and a message; every point computed so far is kept.

    ```python
    traj = gradient_flow(paper_problem(), model, balanced_init(model), stop_loss=1e-8)
    ```
    """
    t_max = float(t_max)
    if coordinates is None:
        coordinates = (CPFactorCoordinates.name if isinstance(model, CPFactorization)
                       else DEFAULT_COORDINATES)
    _validate(problem, model, solver, coordinates, stop_loss, t_max, rtol, atol, max_steps,
              max_abs, chunk_steps)
    params = model.check_params(params)
    coords = make_coordinates(coordinates, model)
    y0 = np.asarray(coords.from_factors(params), dtype=np.float64)
    config = _config(problem, model, coordinates, solver, float(rtol), float(atol), y0)
    config.update(stop_loss=stop_loss, t_max=t_max, max_steps=int(max_steps),
                  max_abs=float(max_abs))
    checkpoint = None if checkpoint is None else Path(checkpoint)
    previous = _resume(checkpoint, config)

    backend = _DiffraxStepper if solver in DIFFRAX_SOLVERS else _ScipyStepper
    stepper = backend(coords, problem.mask, problem.target, solver, float(rtol), float(atol),
                      int(min(chunk_steps, max_steps)))
    if previous is not None:
        ts, ys = [previous.t], [previous.states]
        for k, v in previous.stats.items():
            if k in stepper.stats:
                stepper.stats[k] = v
        wall0 = previous.stats.get("wall_s", 0.0)
    else:
        ts, ys = [np.zeros(1)], [y0[None, :]]
        wall0 = 0.0
    t1 = t_max if math.isfinite(t_max) else 1e300
    stop = -1.0 if stop_loss is None else float(stop_loss)
    start = time.perf_counter()

    def finish(status, message):
        traj = _assemble(coords, stepper.mask, stepper.target, stepper.stats, ts, ys, status,
                         message, config)
        traj.stats["wall_s"] = wall0 + time.perf_counter() - start
        if checkpoint is not None:
            traj.save(checkpoint)
        return traj

    loss0, _ = stepper.observe(ys[0][0])
    field0 = np.asarray(_vector_field(coords, jnp.asarray(ys[-1][-1]), stepper.mask,
                                      stepper.target))
    if not (np.isfinite(loss0) and np.all(np.isfinite(field0))):
        return finish("nonfinite", "loss or vector field is not finite at the initial state "
                      "(values too large for float64?)")
    decades = math.log10(loss0 / stop) if stop_loss is not None and loss0 > stop else 1.0
    bar = tqdm(total=round(decades, 2), unit="dec", delay=0.0 if progress else 2.0,
               disable=progress is False,
               desc=f"flow {coordinates}/{solver}", leave=False)
    try:
        while True:
            t, y = float(ts[-1][-1]), coords.rechart(ys[-1][-1])
            loss, big = stepper.observe(y)
            end = _end_reason(loss, big, t, t1, t_max, stepper.stats["steps"], stop_loss,
                              max_abs, max_steps)
            if end is not None:
                return finish(*end)
            new_ts, new_ys, reason, message = stepper.advance(t, y, t1, stop, max_abs)
            if reason is None and len(new_ts) and stop_loss is not None:
                last_loss, last_big = stepper.observe(new_ys[-1])
                if last_loss <= stop and last_big < max_abs:
                    t_a, y_a = (t, y) if len(new_ts) == 1 else (new_ts[-2], new_ys[-2])
                    try:
                        t_s, y_s = _locate_stop(stepper, [t_a], [y_a], [new_ts[-1]],
                                                [new_ys[-1]], [stop])
                    except FloatingPointError as error:
                        ts.append(new_ts)
                        ys.append(new_ys)
                        return finish("stop_loss", f"{error}: the run ends at the first "
                                      f"accepted step past stop_loss, t={new_ts[-1]:.10g}, "
                                      f"loss {last_loss:.6e}")
                    t_s, y_s = float(t_s[0]), y_s[0]
                    new_ts, new_ys = new_ts.copy(), new_ys.copy()
                    new_ts[-1], new_ys[-1] = t_s, y_s
                    ts.append(new_ts)
                    ys.append(new_ys)
                    return finish("stop_loss", f"loss reached stop_loss={stop:.3e} at "
                                  f"t={t_s:.10g} (located by Newton on log-loss: loss "
                                  f"{stepper.observe(y_s)[0]:.10e} there)")
            if len(new_ts):
                ts.append(new_ts)
                ys.append(new_ys)
                cur = stepper.observe(new_ys[-1])[0]
                if stop_loss is not None and cur > 0:
                    bar.n = round(min(decades, max(0.0, math.log10(loss0 / cur))), 2)
                bar.set_postfix_str(f"t={new_ts[-1]:.3g} loss={cur:.3g}", refresh=False)
                bar.update(0)
            if reason == _FAILED:
                return finish("solver_failure", message)
            if reason == _CONTINUE and (len(new_ts) == 0 or not new_ts[-1] > t):
                # a whole chunk of rejected (or zero-length) steps: the step size collapsed
                return finish("solver_failure", f"no progress in {stepper.chunk_steps} solver "
                              f"steps at t={t:.6g}: the step size collapsed (blow-up?)")
            if reason == _T_MAX and float(ts[-1][-1]) >= t1:
                return finish("t_max", f"reached t_max={t_max:g}")
            if checkpoint is not None and reason == _CONTINUE:
                _assemble(coords, stepper.mask, stepper.target, stepper.stats, ts, ys,
                          "interrupted",
                          "checkpoint of a run in progress", config).save(checkpoint)
    except KeyboardInterrupt:
        return finish("interrupted", "interrupted by the user (KeyboardInterrupt)")
    finally:
        bar.close()


def _assemble(coords, mask, target, stats, ts, ys, status, message, config,
              **fields) -> Trajectory:
    """The Trajectory of the saved points ``ts``/``ys`` (lists of chunks) of one run;
    ``fields`` are passed on (e.g. ``versions``, computed once for a batch)."""
    t = np.concatenate(ts)
    states = np.concatenate(ys, axis=0)
    # Pad to a power of two so runs of different lengths share a few compiled shapes.
    n = len(states)
    padded = np.concatenate([states, np.repeat(states[-1:], (1 << (n - 1).bit_length()) - n,
                                               axis=0)])
    obs = {k: np.asarray(v)[:n] for k, v in _batched_observables(
        coords, jnp.asarray(padded), jnp.asarray(mask), jnp.asarray(target)).items()}
    factors = None
    if coords.factors(states[0]) is not None:
        split = jax.vmap(coords.factors)(jnp.asarray(states))
        factors = tuple(np.asarray(f) for f in split)
    return Trajectory(t=t, loss=obs["loss"], product=obs["product"], det_sign=obs["det_sign"],
                      log_abs_det=obs["log_abs_det"], states=states, status=status,
                      message=message, stats=dict(stats), config=dict(config),
                      factors=factors, **fields)
