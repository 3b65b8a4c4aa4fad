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
  a change of the sign of ``det W``, a drift of the conserved quantities, ``t_max``, the
  step budget) and ends the chunk at the first one that holds;
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
import optimistix as optx

from ..dynamics import Coordinates
from . import guards

#: end codes of a chunk (:data:`guards.CODES` names them)
CONTINUE = guards.CONTINUE


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

    @property
    def buffer_size(self) -> int:
        return 1 if self.save_mode == "ends" else self.chunk_steps

    def make_solver(self):
        cls = getattr(diffrax, self.solver)
        if issubclass(cls, diffrax.AbstractImplicitSolver):
            # Newton, not the default VeryChord: 10-500x fewer steps measured here.
            return cls(root_finder=optx.Newton(rtol=self.newton_rtol, atol=self.newton_atol))
        return cls()

    def make_controller(self):
        return diffrax.PIDController(rtol=self.rtol, atol=self.atol)

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


class Member(eqx.Module):
    """What stays fixed along one member's run (traced, not static)."""

    mask: jax.Array
    target: jax.Array
    t1: jax.Array
    stop: jax.Array
    max_abs: jax.Array
    max_steps: jax.Array
    drift_tol: jax.Array
    sign_check: jax.Array
    conserved0: jax.Array
    save_times: jax.Array


class Chunk(eqx.Module):
    """One chunk's outcome: the carry after it, the point before its last accepted step
    (``prev_*``, what the stop locator re-integrates from), why it ended, the saved steps."""

    carry: Carry
    prev_t: jax.Array
    prev_y: jax.Array
    prev_solver_state: object
    code: jax.Array
    ts: jax.Array
    ys: jax.Array
    saved: jax.Array
    attempts: jax.Array


def _arrays(tree):
    """Every leaf as a jax array (diffrax keeps some flags as Python bools; the loop's
    carry and the host's stacking of members need arrays throughout)."""
    return jax.tree.map(jnp.asarray, tree)


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


def initial_carry(spec: LoopSpec, t0, y0, dt0, member: Member) -> Carry:
    """The carry a fresh run starts from: its first trial step ``dt0``."""
    solver, term = spec.make_solver(), spec.term()
    args = (member.mask, member.target)
    _, controller_state = spec.make_controller().init(term, t0, t0 + dt0, y0, dt0, args,
                                                      solver.func, solver.error_order(term))
    y0, solver_state = _carry_rechart(
        spec.coords, y0, _fresh_solver_state(spec, solver, term, t0, y0, args))
    return Carry(t=jnp.asarray(t0, jnp.float64), y=y0, tnext=jnp.asarray(t0 + dt0),
                 solver_state=_arrays(solver_state), controller_state=_arrays(controller_state),
                 steps=jnp.asarray(0), rejected=jnp.asarray(0),
                 sign=spec.coords.watch_sign(y0), save_index=jnp.asarray(0))


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


def run_chunk(spec: LoopSpec, carry: Carry, member: Member) -> Chunk:
    """Up to ``spec.chunk_steps`` accepted steps from ``carry`` (module doc)."""
    coords = spec.coords
    solver, controller, term = spec.make_solver(), spec.make_controller(), spec.term()
    args = (member.mask, member.target)
    error_order = solver.error_order(term)
    size = spec.buffer_size
    k = carry.y.shape[0]
    max_attempts = 8 * spec.chunk_steps

    def cond(s):
        c, _, _, _, code, _, _, saved, attempts, accepted = s
        return (code == CONTINUE) & (accepted < spec.chunk_steps) & (attempts < max_attempts)

    def body(s):
        c, prev_t, prev_y, prev_ss, code, ts, ys, saved, attempts, accepted = s
        target, next_save = _target_time(c, member)
        tn = _clip(c.tnext, target)
        y1, y_error, _, ss1, _ = solver.step(term, c.t, tn, c.y, args, c.solver_state, False)
        y_error = jnp.where(jnp.isnan(y_error), jnp.inf, y_error)
        keep, _, tprop, _, cs1, _ = controller.adapt_step_size(
            c.t, tn, c.y, y1, args, y_error, error_order, c.controller_state)
        keep = keep & (tn > c.t)
        y1, ss1 = _carry_rechart(coords, y1, ss1)
        sign1 = coords.watch_sign(y1) if spec.watch_sign else c.sign
        step_code = guards.step_code(spec, coords, y1, tn, sign1, c, member)
        collapsed = ~keep & ~(tprop > c.t)
        new_code = jnp.where(keep, step_code,
                             jnp.where(collapsed, guards.COLLAPSE, CONTINUE))
        landed = keep & (tn == next_save)
        store = keep & ((spec.save_mode == "steps") | landed) & (spec.save_mode != "ends")
        slot = jnp.where(store, jnp.minimum(saved, size - 1), size)  # row `size`: scratch
        ts = ts.at[slot].set(tn)
        ys = ys.at[slot].set(y1)
        pick = lambda a, b: jax.tree.map(lambda u, v: jnp.where(keep, u, v), a, b)  # noqa: E731
        new = Carry(t=jnp.where(keep, tn, c.t), y=jnp.where(keep, y1, c.y),
                    tnext=tprop, solver_state=pick(_arrays(ss1), c.solver_state),
                    controller_state=_arrays(cs1),
                    steps=c.steps + keep, rejected=c.rejected + (~keep),
                    sign=jnp.where(keep, sign1, c.sign),
                    save_index=c.save_index + landed)
        return (new, jnp.where(keep, c.t, prev_t), jnp.where(keep, c.y, prev_y),
                pick(c.solver_state, prev_ss), new_code, ts, ys, saved + store,
                attempts + 1, accepted + keep)

    init = (carry, carry.t, carry.y, carry.solver_state, jnp.asarray(CONTINUE),
            jnp.full(size + 1, jnp.inf), jnp.zeros((size + 1, k)), jnp.asarray(0), jnp.asarray(0),
            jnp.asarray(0))
    c, prev_t, prev_y, prev_ss, code, ts, ys, saved, attempts, accepted = \
        jax.lax.while_loop(cond, body, init)
    code = jnp.where((code == CONTINUE) & (accepted == 0), guards.COLLAPSE, code)
    return Chunk(carry=c, prev_t=prev_t, prev_y=prev_y, prev_solver_state=prev_ss, code=code,
                 ts=ts[:size], ys=ys[:size], saved=saved, attempts=attempts)


def step_from(spec: LoopSpec, t0, y0, solver_state, t1, member: Member):
    """The state at ``t1`` reached by one step from ``(t0, y0)`` with the solver state
    stored there: a continuous solve cut at ``t1`` (what locates the stop loss)."""
    solver, term = spec.make_solver(), spec.term()
    y1, _, _, _, _ = solver.step(term, t0, t1, y0, (member.mask, member.target),
                                 solver_state, False)
    return y1


def loss_and_rate(spec: LoopSpec, y, member: Member):
    """Loss and ``d loss / dt`` of a state."""
    args = (member.mask, member.target)
    return spec.coords.loss(y, *args), spec.coords.loss_rate(y, *args)


def vector_field(spec: LoopSpec, y, member: Member):
    return spec.coords.vector_field(y, member.mask, member.target)


#: the loop's pieces vmapped over lanes (members on axis 0) and compiled once per spec
lanes_initial_carry = eqx.filter_jit(eqx.filter_vmap(initial_carry,
                                                     in_axes=(None, 0, 0, 0, 0)))
lanes_run_chunk = eqx.filter_jit(eqx.filter_vmap(run_chunk, in_axes=(None, 0, 0)))
lanes_step_from = eqx.filter_jit(eqx.filter_vmap(step_from, in_axes=(None, 0, 0, 0, 0, 0)))
lanes_loss_and_rate = eqx.filter_jit(eqx.filter_vmap(loss_and_rate, in_axes=(None, 0, 0)))
point_loss_and_rate = eqx.filter_jit(loss_and_rate)
lanes_vector_field = eqx.filter_jit(eqx.filter_vmap(vector_field, in_axes=(None, 0, 0)))
