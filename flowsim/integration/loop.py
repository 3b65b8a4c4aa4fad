"""The compiled step loop: one chunk of accepted steps of one member, vmapped over lanes.

flowsim runs its own adaptive step loop around diffrax's building blocks (a solver's
``step`` and the PID controller's ``adapt_step_size``) instead of calling
``diffrax.diffeqsolve`` once per chunk. The loop state (:class:`Carry`) holds everything a
continuous solve holds between two steps: the point, the controller's proposal for the
next step (``tnext``), the solver's stored stage derivative (Kvaerno5 and Tsit5 reuse the
last stage of a step as the first of the next) and the controller's error history. A run
of chunks therefore takes exactly the steps of one continuous solve, whatever the chunk
size, and a checkpoint of the carry resumes bit for bit.

After every accepted step the loop

- changes chart where the coordinates have several (:meth:`Coordinates.rechart`), carrying
  the stored stage derivative through the chart map's Jacobian, so the step sequence goes
  on undisturbed (re-evaluating the vector field at a state that sits off the slow
  manifold by the Newton tolerance fails deep in the stiff regime: the field there is that
  offset times the fast rate, ~1e8);
- evaluates the end conditions of :mod:`.guards` (stop loss, norm bound, non-finite state,
  a change of the sign of ``det W``, a rise of the loss, ``t_max``, the step budget) and
  ends the chunk at the first one that holds (the conserved quantities' drift is checked
  once per chunk);
- saves the step into the chunk's buffer where the user asked for it (every step, or the
  steps that land on requested times: the controller's proposal is clipped to the next
  requested time, so those are accepted steps, never interpolated).

Under ``jax.vmap`` each lane runs exactly its single-run sequence: a finished lane's body
results are discarded by the batched loop. The stored stage derivative of a fresh member
is evaluated when it is created (:func:`initial_carry`), never inside a batched step: a
solver asked to re-evaluate it for one lane does so for every lane (diffrax decides that
with an ``unvmap_any``).
"""

from __future__ import annotations

from dataclasses import dataclass

import diffrax
import equinox as eqx
import jax
import jax.numpy as jnp

from ..dynamics import Coordinates
from ..problem import observation_loss
from . import guards
from .control import make_controller
from .solvers import REGISTRY

#: end codes of a chunk (:data:`guards.CODES` names them)
CONTINUE = guards.CONTINUE
#: attempts per accepted step a chunk allows (``LoopSpec.max_attempts``)
ATTEMPTS_PER_STEP = 8
#: the escape from a small start, for ``escape_rtol``: while the loss is above this
#: fraction of its value at ``W = 0`` (a start near 0 begins there; the escape ends with
#: the loss a hundredfold down)
ESCAPE_LOSS = 1e-2


@dataclass(frozen=True)
class LoopSpec:
    """Static part of the compiled chunk (the jit cache key)."""

    coords: Coordinates
    solver: str
    rtol: float
    atol: float
    newton_rtol: float
    newton_atol: float
    chunk_steps: int
    #: "steps", "ends" or "times"
    save_mode: str
    #: watch the sign of det W / the conserved quantities (static: skipped where moot)
    watch_sign: bool
    watch_conserved: bool
    #: the tolerances' factor during the escape (``escape_rtol / rtol``; 1: none)
    escape_factor: float = 1.0

    @property
    def buffer_size(self) -> int:
        return 1 if self.save_mode == "ends" else self.chunk_steps

    @property
    def max_attempts(self) -> int:
        """Attempted steps a chunk may take (rejections included) before its step size is
        said to have collapsed."""
        return ATTEMPTS_PER_STEP * self.chunk_steps

    def make_solver(self):
        """The solver object (:data:`.solvers.REGISTRY`'s builder)."""
        return REGISTRY[self.solver].build(self)

    def make_controller(self):
        """The step-size controller the registry names for the solver."""
        return make_controller(REGISTRY[self.solver].controller, self.rtol, self.atol)

    def term(self):
        coords = self.coords
        return diffrax.ODETerm(lambda t, y, args: coords.vector_field(y, *args))


class Carry(eqx.Module):
    """Everything a continuous solve holds between two accepted steps."""

    t: jax.Array
    y: jax.Array
    tnext: jax.Array
    solver_state: object
    controller_state: object
    steps: jax.Array
    rejected: jax.Array
    sign: jax.Array
    save_index: jax.Array
    loss: jax.Array
    #: vector-field evaluations and Jacobian-vector products so far, accepted steps or
    #: not (solvers that count them: RKC2; zeros otherwise)
    work: jax.Array


class Member(eqx.Module):
    """What stays fixed along one member's run (traced, not static)."""

    mask: jax.Array
    target: jax.Array
    t1: jax.Array
    stop: jax.Array
    max_abs: jax.Array
    max_steps: jax.Array
    drift_tol: jax.Array
    rise_tol: jax.Array
    sign_check: jax.Array
    conserved0: jax.Array
    save_times: jax.Array
    #: accepted steps the next chunk may take (at most ``LoopSpec.chunk_steps``): the
    #: driver shortens chunks whose steps are slow, so the progress bar and the checkpoint
    #: keep moving (the steps themselves do not depend on it)
    chunk_limit: jax.Array


class Chunk(eqx.Module):
    """One chunk's outcome: the carry after it and the loss and ``d loss/dt`` there, the
    carry before its last accepted step and the loss there (``prev``, what the stop
    locator cuts from), why it ended, the saved steps (the first ``saved`` rows of ``ts``
    and ``ys``; the rows after them are scratch)."""

    carry: Carry
    loss: jax.Array
    rate: jax.Array
    prev: Carry
    prev_loss: jax.Array
    code: jax.Array
    ts: jax.Array
    ys: jax.Array
    saved: jax.Array
    attempts: jax.Array





def _arrays(tree):
    """Every leaf as a jax array (diffrax keeps some flags as Python bools; the loop's
    carry and the host's stacking of members need arrays throughout)."""
    return jax.tree.map(jnp.asarray, tree)


def _work(solver_state):
    """``[vector-field evaluations, Jacobian-vector products]`` a solver state counts."""
    if hasattr(solver_state, "fevals"):
        return jnp.stack([solver_state.fevals, solver_state.jvps])
    return jnp.zeros(2)


def _fresh_solver_state(spec: LoopSpec, solver, term, t, y, args):
    """The solver state at ``(t, y)`` with its stored stage derivative evaluated now."""
    state = solver.init(term, t, t, y, args)
    if isinstance(state, tuple) and len(state) == 2:  # diffrax RK: (first_step, f0)
        return jnp.asarray(False), solver.func(term, t, y, args)
    return state


def _carry_rechart(coords: Coordinates, y, solver_state):
    """``(y, solver_state)`` in the chart :meth:`Coordinates.rechart` picks, the stored
    stage derivative mapped by the chart map's Jacobian."""
    if not coords.has_charts:
        return y, solver_state
    if isinstance(solver_state, tuple) and len(solver_state) == 2:
        first, f0 = solver_state
        y_new, f_new = jax.jvp(coords.rechart, (y,), (f0,))
        return y_new, (first, f_new)
    return coords.rechart(y), solver_state


def initial_carry(spec: LoopSpec, y0, dt0, member: Member) -> Carry:
    """The carry a fresh run starts from at ``t = 0`` with first trial step ``dt0``."""
    solver, term = spec.make_solver(), spec.term()
    args = (member.mask, member.target)
    t0 = jnp.asarray(0.0, jnp.float64)
    _, controller_state = spec.make_controller().init(term, t0, t0 + dt0, y0, dt0, args,
                                                      solver.func, solver.error_order(term))
    y, solver_state = _carry_rechart(
        spec.coords, y0, _fresh_solver_state(spec, solver, term, t0, y0, args))
    return Carry(t=t0, y=y, tnext=t0 + dt0, solver_state=_arrays(solver_state),
                 controller_state=_arrays(controller_state), steps=jnp.asarray(0),
                 rejected=jnp.asarray(0), sign=spec.coords.watch_sign(y),
                 save_index=jnp.asarray(0), loss=spec.coords.loss(y, *args),
                 work=_work(solver_state))


def start_point(spec: LoopSpec, y0, member: Member):
    """The loss and the vector field at a start (what the first trial step and the end
    conditions at ``t = 0`` need)."""
    args = (member.mask, member.target)
    return spec.coords.loss(y0, *args), spec.coords.vector_field(y0, *args)


def _target_time(carry: Carry, member: Member):
    """The time the next step may not pass: ``t_max`` or the next requested save time."""
    times = member.save_times
    n = times.shape[0]
    nxt = times[jnp.minimum(carry.save_index, n - 1)] if n else jnp.inf
    nxt = jnp.where(carry.save_index < n, nxt, jnp.inf)
    return jnp.minimum(member.t1, nxt), nxt


def _clip(tnext, target):
    """Clip a proposed step end to ``target``, snapping to it from 100 ulps below (as
    diffrax does) so a step never ends a rounding error short of it."""
    floor = target - 100.0 * jnp.finfo(jnp.float64).eps * jnp.abs(target)
    return jnp.where(tnext >= floor, target, tnext)


class _Step(eqx.Module):
    """One attempted step of one lane, before the lane-level book-keeping."""

    carry: Carry
    prev: Carry
    code: jax.Array
    accepted: jax.Array
    store: jax.Array


def _attempt(spec: LoopSpec, c: Carry, member: Member) -> _Step:
    """Try one step from ``c``: the solver's step, the controller's verdict, the change of
    chart and the end conditions of the accepted point."""
    coords = spec.coords
    solver, controller, term = spec.make_solver(), spec.make_controller(), spec.term()
    args = (member.mask, member.target)
    target, next_save = _target_time(c, member)
    tnext = c.tnext
    if REGISTRY[spec.solver].step_limit:  # an explicit method's stability limit
        tnext = jnp.minimum(tnext, c.t + solver.step_limit(c.solver_state))
    tn = _clip(tnext, target)
    y1, y_error, _, ss1, _ = solver.step(term, c.t, tn, c.y, args, c.solver_state, False)
    y_error = jnp.where(jnp.isnan(y_error), jnp.inf, y_error)
    if spec.escape_factor != 1.0:  # tighter tolerances during the escape (ESCAPE_LOSS)
        at_zero = observation_loss(jnp.zeros(coords.model.shape), *args)
        y_error = y_error / jnp.where(c.loss > ESCAPE_LOSS * at_zero, spec.escape_factor, 1.0)
    # a solver that changes method along the run says the order of its estimate
    order = (solver.current_error_order(c.solver_state)
             if hasattr(solver, "current_error_order") else solver.error_order(term))
    keep, _, tprop, _, cs1, _ = controller.adapt_step_size(
        c.t, tn, c.y, y1, args, y_error, order, c.controller_state)
    keep = keep & (tn > c.t)
    y1, ss1 = _carry_rechart(coords, y1, ss1)
    sign1 = coords.watch_sign(y1) if spec.watch_sign else c.sign
    step_code, loss1 = guards.step_code(spec, coords, y1, tn, sign1, c, member)
    collapsed = ~keep & ~(tprop > c.t)
    code = jnp.where(keep, step_code, jnp.where(collapsed, guards.COLLAPSE, CONTINUE))
    landed = keep & (tn == next_save)
    store = keep & ((spec.save_mode == "steps") | landed) & (spec.save_mode != "ends")
    pick = lambda a, b: jax.tree.map(lambda u, v: jnp.where(keep, u, v), a, b)  # noqa: E731
    new = Carry(t=jnp.where(keep, tn, c.t), y=jnp.where(keep, y1, c.y), tnext=tprop,
                solver_state=pick(_arrays(ss1), c.solver_state),
                controller_state=_arrays(cs1), steps=c.steps + keep,
                rejected=c.rejected + (~keep), sign=jnp.where(keep, sign1, c.sign),
                save_index=c.save_index + landed, loss=jnp.where(keep, loss1, c.loss),
                work=c.work + _work(ss1) - _work(c.solver_state))
    return _Step(carry=new, prev=c, code=code, accepted=keep, store=store)


def run_chunk(spec: LoopSpec, carry: Carry, member: Member) -> Chunk:
    """Up to ``member.chunk_limit`` (at most ``spec.chunk_steps``) accepted steps from
    ``carry`` for every lane (module doc): every leaf of ``carry``, ``member`` and the
    result has a leading lane axis.

    The loop is written over lanes (a step vmapped over them, then a per-lane select),
    not as a vmapped loop: one code path, and so the same arithmetic, for a single run (one
    lane) and for a batch (vmap of a loop would also select over the whole save buffer at
    every step)."""
    coords = spec.coords
    size = spec.buffer_size
    lanes, k = carry.y.shape
    max_attempts = spec.max_attempts
    limit = jnp.clip(member.chunk_limit, 1, spec.chunk_steps)
    attempt = jax.vmap(lambda c, m: _attempt(spec, c, m))
    rows = jnp.arange(lanes)

    def cond(s):
        return jnp.any(s[2] == CONTINUE) & (s[6] < max_attempts)

    def body(s):
        c, prev, code, ts, ys, saved, attempts, accepted = s
        active = code == CONTINUE
        out = attempt(c, member)
        take = active & out.accepted

        def pick(mask, a, b):
            return jax.tree.map(lambda u, v: jnp.where(
                mask.reshape(mask.shape + (1,) * (u.ndim - 1)), u, v), a, b)

        slot = jnp.where(active & out.store, jnp.minimum(saved, size - 1), size)
        ts = ts.at[rows, slot].set(out.carry.t)
        ys = ys.at[rows, slot].set(out.carry.y)
        accepted = accepted + take
        code = jnp.where(active, out.code, code)
        code = jnp.where((code == CONTINUE) & (accepted >= limit), -1, code)
        return (pick(active, out.carry, c), pick(take, out.prev, prev), code, ts, ys,
                saved + (active & out.store), attempts + 1, accepted)

    init = (carry, carry, jnp.full(lanes, CONTINUE), jnp.full((lanes, size + 1), jnp.inf),
            jnp.zeros((lanes, size + 1, k)), jnp.zeros(lanes, int), jnp.asarray(0),
            jnp.zeros(lanes, int))
    c, prev, code, ts, ys, saved, attempts, accepted = jax.lax.while_loop(cond, body, init)
    code = jnp.where(code == -1, CONTINUE, code)  # a full chunk
    code = jnp.where((code == CONTINUE) & (accepted == 0), guards.COLLAPSE, code)
    if spec.watch_conserved:  # once per chunk (guards module doc)
        drift = jax.vmap(lambda y, m: guards.conserved_drift(coords, y, m.conserved0))(
            c.y, member)
        code = jnp.where((code == CONTINUE) & (drift > member.drift_tol), guards.DRIFT, code)
    # d loss/dt is read only by the stop locator: after a stop crossing and at the end of
    # its cuts (which end at their t_max). Elsewhere it is skipped: it costs one evaluation
    # and a jvp of the loss (measured at d = 1000, depth 3: 17 evaluations' time), and a
    # chunk is a single step once steps take over CHUNK_SECONDS (driver.py)
    wanted = jnp.any((code == guards.STOP) | (code == guards.T_MAX))
    rate = jax.lax.cond(
        wanted,
        lambda: jax.vmap(lambda y, m: coords.loss_rate(y, m.mask, m.target))(c.y, member),
        lambda: jnp.full(lanes, jnp.nan, c.loss.dtype))
    # the buffers whole: their last row (where steps not saved are written) is past
    # ``saved``, and a slice without it would copy the buffer
    return Chunk(carry=c, loss=c.loss, rate=rate, prev=prev, prev_loss=prev.loss, code=code,
                 ts=ts, ys=ys, saved=saved, attempts=jnp.full(lanes, attempts))


#: the loop's pieces, compiled once per spec and number of lanes (a single run is one
#: lane: the same code, hence the same arithmetic, as a batch)
lanes_start_point = eqx.filter_jit(eqx.filter_vmap(start_point, in_axes=(None, 0, 0)))
lanes_initial_carry = eqx.filter_jit(eqx.filter_vmap(initial_carry, in_axes=(None, 0, 0, 0)))
lanes_run_chunk = eqx.filter_jit(run_chunk)


@eqx.filter_jit
def point_loss_and_rate(spec: LoopSpec, y, member: Member):
    """Loss and ``d loss / dt`` of a state (for steppers outside the compiled loop)."""
    args = (member.mask, member.target)
    return spec.coords.loss(y, *args), spec.coords.loss_rate(y, *args)
