"""ROCK4: Abdulle's fourth-order stabilized Runge-Kutta (Chebyshev) method, matrix-free.

Like RKC2 (:mod:`.rkc`), ROCK4 stretches its stability region along the negative real
axis with the number of stages, which suits a gradient flow (its Jacobian is minus the
Hessian of the loss: real spectrum): ``s`` stages give a stability interval of about
``0.353 s^2``. Unlike RKC2 it is of order 4, so on the smooth stretches of a flow (the
escape from a small start, singular values learned one after another) its accurate step
is far longer, and in the stiff stretch a longer step costs only ``~sqrt(h rho)``
evaluations.

The scheme (Abdulle, "Fourth order Chebyshev methods with recurrence relation", SIAM J.
Sci. Comput. 23(6), 2002): a Chebyshev part of degree ``m`` (from a table of 50 degrees,
1 to 148) built by the three-term recurrence

    K_0 = y_n,   K_1 = y_n + h mu_1 F(y_n),
    K_j = h mu_j F(K_{j-1}) - nu_j K_{j-1} - kappa_j K_{j-2},   nu_j = -1 - kappa_j,

then a four-stage finishing procedure from ``u = K_m`` whose coefficients (``a_ij``,
weights ``b_i`` of order 4, embedded weights of order 3 that also use ``F(y_{n+1})``, the
next step's first stage) depend on ``m``. The total ``m + 4`` is chosen from
``floor(sqrt((3 + h rho) / 0.353)) + 1`` (at least 5, at most :data:`MAX_STAGES`: two
tabulated degrees are left out, :data:`EXCLUDED`), ``rho`` from the same power iteration
as RKC2. The coefficients are the published ones
(``rock4_coefficients.json`` beside this module, with its source).
"""

from __future__ import annotations

import json
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

from .rkc import ChebyshevSolver, StabilizedState

_TABLE = json.loads((Path(__file__).with_name("rock4_coefficients.json")).read_text())
#: degrees of the Chebyshev part tabulated (the method has ``degree + 4`` stages)
DEGREES = np.asarray(_TABLE["ms"], dtype=np.int32)
#: tabulated degrees never used: their stability polynomial exceeds 1 in modulus inside
#: the interval they are meant for (docs/numerics.md, "ROCK4")
EXCLUDED = (129, 148)
#: indices (into DEGREES) of the degrees used, in increasing order
USED = np.flatnonzero(~np.isin(DEGREES, EXCLUDED)).astype(np.int32)
#: where each degree's recurrence coefficients start in the flat table
STARTS = np.concatenate([[0], np.cumsum(2 * DEGREES - 1)[:-1]]).astype(np.int32)
RECURRENCE = np.asarray(_TABLE["recf"], dtype=np.float64)
FINISH_A = np.asarray(_TABLE["fpa"], dtype=np.float64)
FINISH_B = np.asarray(_TABLE["fpb"], dtype=np.float64)
FINISH_B_EMBEDDED = np.asarray(_TABLE["fpbe"], dtype=np.float64)
#: most stages per step (the largest degree used, 138, plus the finishing four)
MAX_STAGES = int(DEGREES[USED[-1]]) + 4
#: stability interval per squared stage count (Abdulle 2002)
STABILITY = 0.353


def stages_for(h, rho):
    """Stages for a step ``h`` at spectral radius ``rho``:
    ``floor(sqrt((3 + h rho) / 0.353)) + 1``, clipped to 5..MAX_STAGES."""
    s = jnp.floor(jnp.sqrt((3.0 + h * rho) / STABILITY)) + 1
    return jnp.clip(s, 5, MAX_STAGES).astype(jnp.int32)


def degree_index(stages):
    """Index (into DEGREES) of the smallest degree used that is ``>= stages - 4``."""
    used = jnp.asarray(USED)
    return used[jnp.searchsorted(jnp.asarray(DEGREES[USED]), stages - 4, side="left")]


class ROCK4(ChebyshevSolver):
    """The solver interface the compiled loop uses (``init``, ``step``, ``func``,
    ``error_order``, ``step_limit``), for an autonomous term ``F(t, y, args)``."""

    def error_order(self, term):
        return 4  # the embedded order-3 estimate is O(h^4)

    def stability_limit(self, rho):
        """The largest step MAX_STAGES stages keep stable at spectral radius ``rho``."""
        return (STABILITY * (MAX_STAGES - 1) ** 2 - 3.0) / jnp.maximum(rho, 1e-300)

    def step(self, term, t0, t1, y0, args, state: StabilizedState, made_jump):
        del made_jump
        h = t1 - t0
        v, rho_est, n_power = self.spectral_radius(term, t0, y0, args, state)
        index = degree_index(stages_for(h, self.safety * rho_est))
        y1, y_error, f1, evaluations = self.advance(term, t0, h, y0, args, state.f0, index)
        return y1, y_error, None, state.advanced(f1, v, rho_est, evaluations + n_power), None

    def advance(self, term, t0, h, y0, args, f0, index):
        """One step of size ``h`` with the Chebyshev degree ``DEGREES[index]``, from
        ``y0`` with ``f0 = F(y0)``: ``(y1, error estimate, F(y1), evaluations)``."""
        degree = jnp.asarray(DEGREES)[index]
        start = jnp.asarray(STARTS)[index]
        recf = jnp.asarray(RECURRENCE)
        f = lambda z: term.vf(t0, z, args)  # noqa: E731 (autonomous)
        k1 = y0 + (h * recf[start]) * f0

        def chebyshev(j, c):
            k_prev, k_prev2 = c
            mu = recf[start + 2 * (j - 2) + 1]
            kappa = recf[start + 2 * (j - 2) + 2]
            k = (h * mu) * f(k_prev) + (1.0 + kappa) * k_prev - kappa * k_prev2
            return k, k_prev

        u = jax.lax.fori_loop(2, degree + 1, chebyshev, (k1, y0))[0]
        a = h * jnp.asarray(FINISH_A)[index]
        b = h * jnp.asarray(FINISH_B)[index]
        b_hat = h * jnp.asarray(FINISH_B_EMBEDDED)[index]
        g1 = f(u)
        g2 = f(u + a[0] * g1)
        g3 = f(u + a[1] * g1 + a[2] * g2)
        g4 = f(u + a[3] * g1 + a[4] * g2 + a[5] * g3)
        y1 = u + b[0] * g1 + b[1] * g2 + b[2] * g3 + b[3] * g4
        f1 = f(y1)
        y_error = ((b_hat[0] - b[0]) * g1 + (b_hat[1] - b[1]) * g2 + (b_hat[2] - b[2]) * g3
                   + (b_hat[3] - b[3]) * g4 + b_hat[4] * f1)
        # evaluations: degree - 1 in the recurrence, four finishing stages, F(y1)
        return y1, y_error, f1, degree + 4
