"""Dopri8, Dopri5 and Tsit5 with their stages written out: diffrax's tableaus, a step
without a loop over stages.

diffrax runs the stages of an explicit Runge-Kutta method as a loop over a buffer of all
stage derivatives, each stage a contraction of that whole buffer. At the sizes of the deep
matrix factorization literature that bookkeeping costs more than the vector field
(docs/numerics.md, "The explicit step"). Here each stage is the sum of its nonzero
terms, the coefficients constants of the compiled program, so a step costs its
evaluations and a few passes over the state per stage.

The coefficients are diffrax's (``diffrax.Dopri8.tableau`` and the others: Dormand &
Prince's 8(7) of Prince & Dormand 1981, Dormand & Prince's 5(4) of 1980, Tsitouras 2011),
read from diffrax; the step gives what diffrax's does to rounding
(tests/test_explicit.py). Each method is first-same-as-last: the last stage is the
field at the new point, which the next step reuses.
"""

from __future__ import annotations

import diffrax
import numpy as np


def _terms(coefficients, ks):
    """``sum_j c_j k_j`` over the nonzero ``c_j`` (``None`` if there are none)."""
    total = None
    for c, k in zip(coefficients, ks):
        if c != 0.0:
            total = float(c) * k if total is None else total + float(c) * k
    return total


def rk_step(tableau, term, t0, h, y0, args, f0):
    """One step of the explicit first-same-as-last method ``tableau`` from ``y0`` with
    ``f0 = F(t0, y0)``: ``(y1, error estimate, F(t1, y1))``. The error estimate is
    diffrax's: ``h sum_j b_error_j k_j``."""
    ks = [f0]
    for c, row in zip(tableau.c, tableau.a_lower):
        increment = _terms(row, ks)
        ks.append(term.vf(t0 + float(c) * h, y0 + h * increment, args))
    # first-same-as-last and solution-same-as-last: the last stage is at (t1, y1)
    y1 = y0 + h * _terms(tableau.b_sol, ks)
    return y1, h * _terms(tableau.b_error, ks), ks[-1]


def check_tableau(tableau) -> None:
    """Refuse a tableau :func:`rk_step` does not run: it needs an explicit method whose
    last stage is the field at the new point."""
    last = np.append(np.asarray(tableau.a_lower[-1]), 0.0)
    if not (tableau.fsal and tableau.ssal and np.allclose(last, tableau.b_sol, rtol=0,
                                                          atol=1e-15)):
        raise ValueError("rk_step needs a first-same-as-last, solution-same-as-last "
                         "explicit tableau")


class UnrolledRK:
    """A diffrax explicit solver (``Dopri8``, ``Dopri5``, ``Tsit5``) whose ``step`` is
    :func:`rk_step` (the compiled loop's interface: its state is diffrax's, ``(first
    step, F(y_n))``; no dense output, which the loop does not use)."""

    def step(self, term, t0, t1, y0, args, solver_state, made_jump):
        del made_jump
        check_tableau(self.tableau)
        _, f0 = solver_state
        y1, y_error, f1 = rk_step(self.tableau, term, t0, t1 - t0, y0, args, f0)
        return y1, y_error, None, (solver_state[0], f1), diffrax.RESULTS.successful


class Dopri8(UnrolledRK, diffrax.Dopri8):
    """diffrax's Dopri8, stages written out."""


class Dopri5(UnrolledRK, diffrax.Dopri5):
    """diffrax's Dopri5, stages written out."""


class Tsit5(UnrolledRK, diffrax.Tsit5):
    """diffrax's Tsit5, stages written out."""


#: the written-out solvers by diffrax's name
UNROLLED = {"Dopri8": Dopri8, "Dopri5": Dopri5, "Tsit5": Tsit5}
