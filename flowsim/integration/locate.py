"""The stop locator: where a run's loss reaches its stop loss, exactly.

The crossing is a root of ``f(t) = log loss(t) - log stop_loss`` between the last accepted
point before it (``f > 0``) and the step end past it (``f <= 0``). Each iterate is one step
of the solver from the point before the crossing with the solver state stored there
(``engine.cut``): exactly a continuous solve cut at that time, never dense interpolation
(off by up to 5e-5 relative: docs/numerics.md). The iterates:

- the first is the root of the quadratic through both ends with the exact slope
  ``d log loss / dt`` at the step end (the straight line between the ends where that
  quadratic has no root inside);
- then Newton's method with the exact slope at the iterate, safeguarded: where that slope
  disagrees by more than 2x with the secant through the last two iterates (deep in
  Theorem 1's regime ``d loss/dt`` loses its digits before the loss does) the secant's
  slope is used, and a step leaving the bracket is replaced by bisection;
- each aims at the middle of the window it accepts, :data:`STOP_LOG_TOL` wide on the stop
  side;
- it ends on the stop side (``loss <= stop_loss``) within :data:`STOP_LOG_TOL`, and gives
  up after ``max_iter`` iterates. The point returned is always the iterate on the stop
  side nearest the stop (the step end if no iterate is): never one above the stop loss.

Vectorized over the runs that crossed in the same chunk.
"""

from __future__ import annotations

import numpy as np

from .runs import Run

#: where the iteration stops: ``-STOP_LOG_TOL < log loss - log stop_loss <= 0``; the
#: iterates aim at the middle of that window, so that one that lands within half of it of
#: where it aimed ends the search. Far below the accuracy of the loss itself along a
#: default run (4.5e-5 relative near loss 1e-6 at 100x100; docs/numerics.md), and each
#: iterate is a step of the solver (at 100x100 about 70 Hessian-vector products).
STOP_LOG_TOL = 1e-8
#: the exact slope is trusted while it agrees with the secant within this factor
SLOPE_AGREEMENT = 2.0


def first_iterate(t_a, t_b, f_a, f_b, slope_b):
    """The root in ``(t_a, t_b)`` of the quadratic ``q`` with ``q(t_a) = f_a``,
    ``q(t_b) = f_b``, ``q'(t_b) = slope_b``; the straight line's root where it has none."""
    h = t_b - t_a
    differ = f_a != f_b
    linear = np.where(differ, t_a + h * f_a / np.where(differ, f_a - f_b, 1.0), t_b)
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        # q(t_b + s) = f_b + slope_b s + c s^2, s in (-h, 0)
        c = (f_a - f_b + slope_b * h) / (h * h)
        disc = slope_b * slope_b - 4.0 * c * f_b
        root = np.sqrt(np.where(disc >= 0, disc, np.nan))
        # the root of smaller modulus, written without cancellation
        s = -2.0 * f_b / (slope_b + np.where(slope_b >= 0, root, -root))
        t = t_b + s
    ok = np.isfinite(t) & (t > t_a) & (t < t_b)
    return np.where(ok, t, linear)


def locate(runs: list[Run], engine, max_iter: int = 8):
    """Stop points of ``runs`` whose last step crossed their stop loss (module doc),
    vectorized over the runs: ``(t, y, loss)`` rows."""
    stop = np.array([r.stop_loss for r in runs], dtype=np.float64)
    t_a = np.array([engine.prev_point(r)[0] for r in runs])
    t_b = np.array([engine.point(r)[0] for r in runs])
    y = np.stack([engine.point(r)[1] for r in runs])
    loss = np.array([r.loss for r in runs])
    rate = np.array([r.rate for r in runs])
    f_a = np.log(np.array([r.prev_loss for r in runs]) / stop)
    f_b = np.log(loss / stop)
    lo, hi = t_a.copy(), t_b.copy()
    # the step end is the last iterate on the stop side, and the secant's other point
    t_prev, f_prev = t_b.copy(), f_b.copy()
    # the iterate on the stop side nearest the stop (the step end to begin with)
    best_t, best_y, best_loss, best_f = t_b.copy(), y.copy(), loss.copy(), f_b.copy()
    aim = -0.5 * STOP_LOG_TOL
    t = first_iterate(t_a, t_b, f_a - aim, f_b - aim, rate / loss)
    active = ~((f_b <= 0) & (f_b > -STOP_LOG_TOL))
    for _ in range(max_iter):
        cut = active & (t < t_b)
        if not cut.any():
            break
        idx = np.flatnonzero(cut)
        y[idx], loss[idx], rate[idx] = engine.cut([runs[i] for i in idx], t[idx])
        f = np.log(loss / stop)
        better = cut & (f <= 0) & (f > best_f)
        best_t, best_f = np.where(better, t, best_t), np.where(better, f, best_f)
        best_y[better], best_loss[better] = y[better], loss[better]
        active &= ~((f <= 0) & (f > -STOP_LOG_TOL))
        lo = np.where(active & (f > 0), t, lo)
        hi = np.where(active & ~(f > 0), t, hi)
        mid = 0.5 * (lo + hi)
        with np.errstate(divide="ignore", invalid="ignore"):
            exact = rate / loss
            moved = t != t_prev
            secant = np.where(moved, (f - f_prev) / np.where(moved, t - t_prev, 1.0), np.nan)
            agree = (exact < 0) & (np.abs(exact - secant)
                                   <= (SLOPE_AGREEMENT - 1.0) * np.abs(secant))
            slope = np.where(agree | ~(secant < 0), exact, secant)
            t_new = np.where(slope < 0, t - (f - aim) / slope, mid)
        t_new = np.where((lo < t_new) & (t_new < hi), t_new, mid)
        active &= ~(np.abs(t_new - t) <= 1e-15 * np.abs(t))
        t_prev, f_prev = np.where(active, t, t_prev), np.where(active, f, f_prev)
        t = np.where(active, t_new, t)
    return best_t, best_y, best_loss
