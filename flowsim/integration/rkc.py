"""RKC2: the second-order Runge-Kutta-Chebyshev method, matrix-free, for gradient flows.

The Jacobian of a gradient flow is minus the Hessian of the loss: symmetric, with a real
spectrum. Its stiffness is moderate at the sizes of the deep matrix factorization
literature (largest Hessian eigenvalue ~1e2 at 100x100, depth 3) and an implicit method's
dense Newton costs ``O(P^3)`` per step. A Runge-Kutta-Chebyshev method instead stretches
its stability region along the negative real axis with the number of stages: ``s``
gradient evaluations buy a stability interval of length ``~0.653 s^2``, so a step ``h``
costs ``~sqrt(h rho)`` evaluations, where ``rho`` is the spectral radius.

The scheme (Sommeijer, Shampine & Verwer 1998, with damping ``eps = 2/13``): with
``w0 = 1 + eps/s^2``, Chebyshev polynomials ``T_j`` and their derivatives at ``w0``,
``w1 = T_s'(w0) / T_s''(w0)``, ``b_j = T_j''(w0) / T_j'(w0)^2`` (``b_0 = b_1 = b_2``) and
``a_j = 1 - b_j T_j(w0)``:

    Y_0 = y_n,   Y_1 = Y_0 + mu~_1 h F(Y_0),   mu~_1 = b_1 w1,
    Y_j = (1 - mu_j - nu_j) Y_0 + mu_j Y_{j-1} + nu_j Y_{j-2}
          + mu~_j h F(Y_{j-1}) + gamma~_j h F(Y_0),                      j = 2..s,
    mu_j = 2 w0 b_j / b_{j-1},  nu_j = -b_j / b_{j-2},
    mu~_j = 2 w1 b_j / b_{j-1},  gamma~_j = -a_{j-1} mu~_j,
    y_{n+1} = Y_s,

with the local error estimate ``0.8 (y_n - y_{n+1}) + 0.4 h (F(y_n) + F(y_{n+1}))`` (order
3 in ``h``; ``F(y_{n+1})`` is the next step's ``F(y_n)``). The number of stages is
``s = 1 + floor(sqrt(1 + 1.54 h rho))``; ``rho`` comes from a power iteration on the
Jacobian, warm-started from the last vector, two iterations every ten accepted steps, each
a finite difference of the vector field along the vector (one evaluation, against two to
three for a ``jax.jvp`` of the gradient), times a safety factor; a run starts with 30
iterations of exact Jacobian-vector products. (Measured at 100x100, depth 3: one
iteration at every step was 20% of the run time; two every ten steps take the same steps
and rejections, 0.25 s of 1.9 s less.)
"""

from __future__ import annotations

import equinox as eqx
import jax
import jax.numpy as jnp

#: damping of the Chebyshev polynomials (Verwer et al.): stability interval ~0.653 s^2
DAMPING = 2.0 / 13.0
#: safety factor on the power iteration's estimate of the spectral radius
RHO_SAFETY = 1.2
#: power iterations at the start of a run (Jacobian-vector products)
POWER_STEPS_INIT = 30
#: then POWER_UPDATE finite-difference iterations every POWER_EVERY accepted steps (the
#: spectral radius drifts slowly along a flow)
POWER_EVERY = 10
POWER_UPDATE = 2
#: most stages per step (rounding grows like s^2 eps)
MAX_STAGES = 400


def stages_for(h, rho):
    """``s = 1 + floor(sqrt(1 + 1.54 h rho))``, at least 2 and at most MAX_STAGES."""
    s = 1 + jnp.floor(jnp.sqrt(1.0 + 1.54 * h * rho))
    return jnp.clip(s, 2, MAX_STAGES).astype(jnp.int32)


def stability_limit(rho):
    """The largest step the most stages keep stable: ``0.653 MAX_STAGES^2 / rho``."""
    return 0.653 * MAX_STAGES ** 2 / jnp.maximum(rho, 1e-300)


def _chebyshev_at_w0(s, w0):
    """``T_s, T_s', T_s''`` at ``w0`` (recurrences; ``s`` traced)."""
    def body(j, c):
        t1, t0, d1, d0, e1, e0 = c
        t2 = 2 * w0 * t1 - t0
        d2 = 2 * t1 + 2 * w0 * d1 - d0
        e2 = 4 * d1 + 2 * w0 * e1 - e0
        return t2, t1, d2, d1, e2, e1

    one, zero = jnp.ones_like(w0), jnp.zeros_like(w0)
    t, _, d, _, e, _ = jax.lax.fori_loop(2, s + 1, body, (w0, one, one, zero, zero, zero))
    return t, d, e


class StabilizedState(eqx.Module):
    """State of a stabilized (Chebyshev) method between steps: ``F(y_n)`` (first stage,
    reused), the power iteration's unit vector and estimate of the spectral radius,
    cumulative counts of vector-field evaluations and Jacobian-vector products, and the
    accepted steps (the loop keeps a rejected step's state), which time the power
    iteration's updates."""

    f0: jax.Array
    v: jax.Array
    rho: jax.Array
    fevals: jax.Array
    jvps: jax.Array
    steps: jax.Array

    def advanced(self, f1, v, rho, evaluations, jvps=0) -> StabilizedState:
        """The state after an accepted step that ended with ``F(y_{n+1}) = f1`` and
        cost ``evaluations`` vector-field evaluations and ``jvps`` Jacobian-vector
        products."""
        return StabilizedState(f0=f1, v=v, rho=rho,
                               fevals=self.fevals + jnp.asarray(evaluations, jnp.float64),
                               jvps=self.jvps + jnp.asarray(jvps, jnp.float64),
                               steps=self.steps + 1)


class ChebyshevSolver(eqx.Module):
    """What the stabilized methods share (the solver interface of the compiled loop:
    ``init``, ``step``, ``func``, ``error_order``, ``step_limit``): the first stage
    reused from the last step, and the spectral radius of the Jacobian from a power
    iteration (module doc) that sets the stages of each step. Subclasses give
    ``step``, ``error_order`` and ``stability_limit``."""

    #: safety factor on the power iteration's estimate of the spectral radius
    safety = RHO_SAFETY

    def func(self, term, t, y, args):
        return term.vf(t, y, args)

    def _power(self, term, t, y, args, v, n):
        f = lambda z: term.vf(t, z, args)  # noqa: E731

        def body(_, c):
            v, _ = c
            u = jax.jvp(f, (y,), (v,))[1]
            norm = jnp.linalg.norm(u)
            return jnp.where(norm > 0, u / jnp.where(norm > 0, norm, 1.0), v), norm

        v, rho = jax.lax.fori_loop(0, n, body, (v, jnp.zeros((), y.dtype)))
        return v, rho

    def init(self, term, t0, t1, y0, args) -> StabilizedState:
        key = jax.random.PRNGKey(0)
        v = jax.random.normal(key, y0.shape, y0.dtype)
        v = v / jnp.linalg.norm(v)
        v, rho = self._power(term, t0, y0, args, v, POWER_STEPS_INIT)
        return StabilizedState(f0=term.vf(t0, y0, args), v=v, rho=rho,
                               fevals=jnp.asarray(1 + POWER_STEPS_INIT, jnp.float64),
                               jvps=jnp.asarray(POWER_STEPS_INIT, jnp.float64),
                               steps=jnp.asarray(0, jnp.int32))

    def step_limit(self, state: StabilizedState):
        return self.stability_limit(self.safety * state.rho)

    def _power_fd(self, term, t, y, args, v, f0):
        """One power iteration by a finite difference of the field along ``v``."""
        delta = jnp.sqrt(jnp.finfo(y.dtype).eps) * (1.0 + jnp.linalg.norm(y))
        u = (term.vf(t, y + delta * v, args) - f0) / delta
        norm = jnp.linalg.norm(u)
        ok = jnp.isfinite(norm) & (norm > 0)
        return jnp.where(ok, u / jnp.where(ok, norm, 1.0), v), jnp.where(ok, norm, 0.0)

    def spectral_radius(self, term, t0, y0, args, state: StabilizedState, skip=False):
        """``(v, rho, evaluations)``: the power iteration's vector and estimate at the
        start of a step (updated every POWER_EVERY accepted steps, not where ``skip``)
        and the evaluations that cost."""
        n_power = jnp.where((state.steps % POWER_EVERY == 0) & ~jnp.asarray(skip),
                            POWER_UPDATE, 0)
        v, rho_now = jax.lax.fori_loop(
            0, n_power, lambda _, c: self._power_fd(term, t0, y0, args, c[0], state.f0),
            (state.v, state.rho))
        rho = jnp.where(n_power > 0, jnp.maximum(rho_now, 0.5 * state.rho), state.rho)
        return v, rho, n_power


class RKC2(ChebyshevSolver):
    """Second-order Runge-Kutta-Chebyshev (module doc)."""

    def error_order(self, term):
        return 3

    def stability_limit(self, rho):
        return stability_limit(rho)

    def step(self, term, t0, t1, y0, args, state: StabilizedState, made_jump):
        del made_jump
        h = t1 - t0
        v, rho_est, n_power = self.spectral_radius(term, t0, y0, args, state)
        rho = self.safety * rho_est
        s = stages_for(h, rho)
        w0 = 1.0 + DAMPING / (s * s)
        _, ds, es = _chebyshev_at_w0(s, w0)
        w1 = ds / es
        f0 = state.f0
        # b_2 = T_2''/T_2'^2 with T_2' = 4 w0, T_2'' = 4
        b2 = 4.0 / (4.0 * w0) ** 2
        y1 = y0 + b2 * w1 * h * f0

        def body(j, c):
            y_prev, y_prev2, t1_, t0_, d1, d0, e1, e0, b1, b0 = c
            # T_j, T_j', T_j'' from j-1, j-2
            tj = 2 * w0 * t1_ - t0_
            dj = 2 * t1_ + 2 * w0 * d1 - d0
            ej = 4 * d1 + 2 * w0 * e1 - e0
            bj = ej / (dj * dj)
            mu = 2 * w0 * bj / b1
            nu = -bj / b0
            mu_t = 2 * w1 * bj / b1
            gamma_t = -(1.0 - b1 * t1_) * mu_t
            yj = ((1.0 - mu - nu) * y0 + mu * y_prev + nu * y_prev2
                  + mu_t * h * term.vf(t0, y_prev, args) + gamma_t * h * f0)  # autonomous
            return yj, y_prev, tj, t1_, dj, d1, ej, e1, bj, b1

        one, zero = jnp.ones_like(w0), jnp.zeros_like(w0)
        # j = 1: T_1 = w0, T_1' = 1, T_1'' = 0; b_1 = b_0 = b_2
        init = (y1, y0, w0, one, one, zero, zero, zero, b2, b2)
        ys = jax.lax.fori_loop(2, s + 1, body, init)[0]
        f1 = term.vf(t1, ys, args)
        y_error = 0.8 * (y0 - ys) + 0.4 * h * (f0 + f1)
        return ys, y_error, None, state.advanced(f1, v, rho_est, s + n_power), None
