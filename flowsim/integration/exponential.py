"""EXPRB32 and EXPRB43: exponential Rosenbrock methods with Lanczos, for the stiff stretch
of a flow.

Along a gradient flow the Jacobian ``J = dF/dy`` is minus the Hessian of the loss:
symmetric. Once the learned singular values have settled, ``J`` has a few thousand
eigenvalues near ``-rho`` (the stiff directions, quasi-static) and the rest near zero (the
slow motion the run is about). A Chebyshev method (:mod:`.rock4`) is stable there but its
internal stages are of low order in the stiff directions, which follow the slow ones, so
its accuracy, not its stability, limits the step. An exponential Rosenbrock method
integrates the linearization about the current point exactly and makes an error only in
the nonlinear remainder ``N(y) = F(y) - J_n y``, which is small along these flows: for the
same accuracy its steps are far longer (docs/numerics.md, "The stiff stretch: exponential
Rosenbrock").

The scheme, ``exprb32`` (Hochbruck, Ostermann & Schweitzer, "Exponential Rosenbrock-type
methods", SIAM J. Numer. Anal. 47(1), 2009; order 3, with the exponential Rosenbrock-Euler
method, order 2, embedded; :class:`EXPRB43`, order 4, is written out there):

    U   = y_n + h phi_1(h J_n) F(y_n)
    D   = F(U) - F(y_n) - J_n (U - y_n)
    y_{n+1} = U + 2 h phi_3(h J_n) D,      error estimate 2 h phi_3(h J_n) D,

with ``phi_1(z) = (e^z - 1)/z``, ``phi_3(z) = (e^z - 1 - z - z^2/2)/z^3``. Each
``phi_k(h J) v`` is a Lanczos approximation ``|v| V_m phi_k(h T_m) e_1`` (Saad 1992;
Hochbruck & Lubich 1997: for a symmetric ``J`` its error falls once ``m`` passes
``~sqrt(h rho)``) on Jacobian-vector products of one :func:`jax.linearize` of the field
per step. The Krylov dimension is adaptive: every :data:`CHECK_EVERY` iterations the
coefficients are recomputed and their change, bounded in the step-size controller's own
weighted norm (``atol + rtol |y|``; :func:`lanczos_functions`), compared with
:data:`KRYLOV_FRACTION` of the step's error tolerance. A ``phi`` that has not converged in
:data:`MAX_KRYLOV` iterations makes the step's error infinite: the controller rejects it
and shrinks the step. No approximation is taken unverified.

The extreme Ritz values of the first Lanczos process give ``rho`` for free; the step is
bounded (:meth:`EXPRB32.stability_limit`, in name only: the method is exact on the
linearization at any step) so that ``h rho`` stays where :data:`MAX_KRYLOV` iterations
converge: at first conservatively (:data:`MAX_H_RHO`), then where the last step's
iteration counts predict :data:`KRYLOV_TARGET` (:func:`krylov_radius`).
"""

from __future__ import annotations

import equinox.internal as eqxi
import jax
import jax.numpy as jnp

from .rkc import ChebyshevSolver, StabilizedState

#: largest Krylov dimension (the Lanczos vectors of one phi are stored: MAX_KRYLOV x P)
MAX_KRYLOV = 96
#: the Krylov approximation is tested for convergence every this many iterations (a test
#: is one eigendecomposition of the tridiagonal; docs/numerics.md for the choice)
CHECK_EVERY = 2
#: a phi is converged once its last change, in the controller's weighted RMS norm, is at
#: most this fraction of the step's error tolerance (which is 1 in that norm)
KRYLOV_FRACTION = 0.1
#: the step's ``h rho`` bound before a step has measured how fast Lanczos converges:
#: for ``phi_1(h J) v`` to the accuracy asked it took at most ``2.2 sqrt(h rho)``
#: iterations on these flows (docs/numerics.md)
MAX_H_RHO = (MAX_KRYLOV / 2.2) ** 2
#: after a step, the bound is the step its Lanczos processes predict to need this many
#: iterations (their count grows like ``sqrt(h rho)``: :func:`krylov_radius`), leaving a
#: margin below :data:`MAX_KRYLOV`
KRYLOV_TARGET = 0.75 * MAX_KRYLOV
#: the smallest ``iterations / sqrt(h rho)`` that prediction assumes (so ``h rho`` stays
#: below ``KRYLOV_TARGET^2``)
KRYLOV_RATIO_MIN = 1.0

#: rows of the stored basis one pass of the final combination reads (:func:`combine`)
COMBINE_ROWS = 8

#: the sizes the tridiagonal's eigendecomposition is padded to (the smallest that holds it)
_EIGH_SIZES = (8, 16, 24, 32, 48, 64)

_TAYLOR_TERMS = 20
#: below this modulus ``phi_k`` is summed from its Taylor series (20 terms: the remainder
#: is below 1e-19 of the sum there); above, the closed form loses at most ``~k! eps`` to
#: cancellation
_SERIES_BELOW = 1.0


def phi(k: int, z):
    """``phi_k(z) = (e^z - sum_{j<k} z^j/j!) / z^k`` elementwise, for ``k = 1 ... 4``: the
    closed form away from 0 and its Taylor series ``sum_j z^j / (j + k)!`` near 0."""
    if k not in (1, 2, 3, 4):
        raise ValueError(f"phi: k must be 1, 2, 3 or 4, got {k!r}")
    z = jnp.asarray(z)
    small = jnp.abs(z) < _SERIES_BELOW
    zs = jnp.where(small, z, 0.0)
    fact = 1.0
    for i in range(1, k + 1):
        fact *= i
    series, term = jnp.zeros_like(z), jnp.ones_like(z) / fact
    for j in range(_TAYLOR_TERMS):
        series = series + term
        term = term * zs / (j + k + 1)
    zl = jnp.where(small, 1.0, z)
    numerator, power, fact = jnp.expm1(zl), zl, 1.0
    for i in range(1, k):  # e^z - 1 - z - ... - z^(k-1)/(k-1)!
        numerator = numerator - power / fact
        fact *= i + 1
        power = power * zl
    return jnp.where(small, series, numerator / power)


def weighted_rms(x, weight):
    """The step-size controller's norm: root mean square of ``x * weight``."""
    return jnp.sqrt(jnp.mean(jnp.square(x * weight)))


def lanczos_functions(jvp, v, functions, weight, multipliers):
    """``f_i(J) v`` for several functions ``f_i`` of one symmetric ``J`` (given by
    ``jvp(u) = J u``) from one Lanczos process: ``|v| V_m f_i(T_m) e_1``. The Krylov
    dimension is adaptive (module doc): the process stops once, for every ``i``, the
    change of ``multipliers[i] * f_i(J) v`` since the last check is at most
    :data:`KRYLOV_FRACTION` in the norm ``weighted_rms(., weight)``. That change,
    ``V (c_new - c_old)``, is bounded without forming it: by the triangle inequality it is
    at most ``sum_k |c_new,k - c_old,k| weighted_rms(V[k], weight)``, and each basis
    vector's weighted norm is taken once, when the vector is made. A check is then one
    small eigendecomposition, so checks are frequent; the vectors are formed once, at the
    end.

    ``functions(lam)`` maps the eigenvalues of ``T_m`` to an array ``(n, len(lam))`` of
    the ``n`` functions' values.

    **Returns:** ``(xs, iterations, converged, ritz)``: the ``n`` approximations
    ``(n,) + v.shape``, the Jacobian-vector products taken, whether the process
    converged, and the largest modulus of the Ritz values (a lower bound of the spectral
    radius of ``J``).
    """
    m = MAX_KRYLOV
    multipliers = jnp.abs(jnp.asarray(multipliers))
    n = multipliers.shape[0]
    beta0 = jnp.linalg.norm(v)
    safe0 = jnp.where(beta0 > 0, beta0, 1.0)
    basis = jnp.zeros((m + 1,) + v.shape, v.dtype).at[0].set(v / safe0)
    omega = jnp.zeros(m + 1).at[0].set(weighted_rms(basis[0], weight))
    rows = jnp.arange(m)

    def block(size):
        """The coefficients from the leading ``size x size`` block of the tridiagonal
        (``size >= j``: past ``j`` the block is zero and uncoupled, so ``f`` of it is
        ``f(T_j)`` bordered by ``f(0)``, and its first column is ``f(T_j) e_1`` and
        zeros)."""
        def coefficients(alpha, beta, j):
            r = jnp.arange(size)
            a = jnp.where(r < j, alpha[:size], 0.0)
            b = jnp.where(r[:-1] < j - 1, beta[:size - 1], 0.0)
            lam, q = jnp.linalg.eigh(jnp.diag(a) + jnp.diag(b, 1) + jnp.diag(b, -1))
            c = (functions(lam) * q[0]) @ q.T
            return jnp.pad(c, ((0, 0), (0, m - size))), jnp.max(jnp.abs(lam))
        return coefficients

    sizes = [s for s in _EIGH_SIZES if s < m] + [m]
    blocks = [block(s) for s in sizes]

    def coefficients(alpha, beta, j):
        """``beta0 f_i(T_j) e_1`` (``(n, m)``, zero past ``j``) with ``T_j`` the leading
        ``j x j`` block of the fixed-size tridiagonal, and the largest Ritz modulus. The
        eigendecomposition is of the smallest of :data:`_EIGH_SIZES` that holds ``T_j``
        (its cost grows like the cube of the size; ``j`` is the same for every lane of a
        batch, so only one branch runs)."""
        index = jnp.searchsorted(jnp.asarray(sizes), j)
        c, ritz = jax.lax.switch(index, blocks, alpha, beta, j)
        return jnp.where(rows < j, c, 0.0) * beta0, ritz

    def lanczos_step(j, c):
        """One Lanczos iteration: ``J V[j]`` orthogonalized against ``V[j]`` and
        ``V[j-1]`` (the three-term recurrence, no reorthogonalization: for ``f(J) v`` the
        loss of orthogonality delays convergence but does not spoil it; Musco, Musco &
        Sidford, SODA 2018), normalized into ``V[j+1]``, with its weighted norm. After a
        breakdown (an invariant subspace: the approximation is exact) the new vectors
        are zero and decoupled."""
        basis, omega, alpha, beta = c
        q = basis[j]
        last = basis[jnp.maximum(j - 1, 0)]
        u = jvp(q)
        a = jnp.vdot(q, u)
        u = u - a * q - jnp.where(j > 0, beta[jnp.maximum(j - 1, 0)], 0.0) * last
        b = jnp.linalg.norm(u)
        breakdown = b <= 1e-14 * jnp.maximum(jnp.abs(a), 1e-300)
        u = jnp.where(breakdown, 0.0, u / jnp.where(breakdown, 1.0, b))
        return (basis.at[j + 1].set(u), omega.at[j + 1].set(weighted_rms(u, weight)),
                alpha.at[j].set(a), beta.at[j].set(jnp.where(breakdown, 0.0, b)))

    def cond(s):
        # the predicate is the same for every lane of a batch (a lane that is done idles),
        # so the basis is updated in place, not selected whole at every iteration
        j, done = s[0], s[6]
        return (j < m) & eqxi.unvmap_any(~done)

    def body(s):
        # CHECK_EVERY iterations, then the test (no branch: a lax.cond that reads the
        # basis copied it at every iteration; docs/numerics.md)
        j, basis, omega, alpha, beta, c, done, ritz, iterations = s
        basis, omega, alpha, beta = jax.lax.fori_loop(
            j, j + CHECK_EVERY, lanczos_step, (basis, omega, alpha, beta))
        j1 = j + CHECK_EVERY
        new, r = coefficients(alpha, beta, j1)
        change = jnp.max(multipliers * (jnp.abs(new - c) @ omega[:m]))
        return (j1, basis, omega, alpha, beta, jnp.where(done, c, new),
                done | (change <= KRYLOV_FRACTION), jnp.where(done, ritz, r),
                iterations + jnp.where(done, 0, CHECK_EVERY))

    init = (jnp.asarray(0), basis, omega, jnp.zeros(m), jnp.zeros(m),
            jnp.zeros((n, m), v.dtype), beta0 == 0, jnp.zeros(()), jnp.asarray(0))
    made, basis, _, _, _, c, done, ritz, iterations = jax.lax.while_loop(cond, body, init)
    xs = combine(c, basis.reshape(m + 1, -1), made)
    return xs.reshape((n,) + v.shape), iterations, done, ritz


def combine(c, basis, used):
    """``c[:, :used] @ basis[:used]``, :data:`COMBINE_ROWS` rows at a pass (a Lanczos
    process stores room for :data:`MAX_KRYLOV` vectors and mostly uses far fewer; a
    product with the whole store reads all of it, and a slice of it to the used size
    would be a copy). ``used`` is the same for every lane of a batch; rows of ``basis``
    past it are read (with weight 0) up to the end of the last block, and must be finite
    (they are zeros or earlier Lanczos vectors)."""
    rows = basis.shape[0]
    size = min(COMBINE_ROWS, rows)
    c = jnp.pad(c, ((0, 0), (0, rows - c.shape[1])))
    offsets = jnp.arange(size)

    def block(b, acc):
        # the last block is moved back to end at the last row (a slice stays inside the
        # array); rows an earlier block took are masked out, as are those past ``used``
        start = jnp.minimum(b * size, rows - size)
        index = start + offsets
        take = (index >= b * size) & (index < used)
        weights = jnp.where(take, jax.lax.dynamic_slice_in_dim(c, start, size, axis=1), 0.0)
        # row by row, in one fused pass: a product with a slice of the store would copy
        # the slice first, which at large sizes costs more than it saves (docs/numerics.md)
        for r in range(size):
            row = jax.lax.dynamic_index_in_dim(basis, start + r, axis=0, keepdims=False)
            acc = acc + weights[:, r:r + 1] * row
        return acc

    return jax.lax.fori_loop(0, (used + size - 1) // size, block,
                             jnp.zeros((c.shape[0],) + basis.shape[1:], basis.dtype))


def krylov_radius(h, ritz, iterations):
    """The radius ``rho_K`` that the step bound ``MAX_H_RHO / rho_K`` reads after a step
    of size ``h`` whose Lanczos processes took at most ``iterations`` (``ritz``: the
    largest Ritz modulus). With ``kappa = iterations / sqrt(h ritz)`` (at least
    :data:`KRYLOV_RATIO_MIN`) a step ``h'`` needs about ``kappa sqrt(h' ritz)``
    iterations; ``rho_K`` puts the bound where that is :data:`KRYLOV_TARGET`. A step
    whose prediction fails (a process not converged in :data:`MAX_KRYLOV`) is rejected
    and the controller shrinks it: nothing rests on the prediction but the cost."""
    kappa = jnp.maximum(iterations / jnp.sqrt(jnp.maximum(h * ritz, 1e-300)),
                        KRYLOV_RATIO_MIN)
    return ritz * MAX_H_RHO * (kappa / KRYLOV_TARGET) ** 2


def lanczos_phi(jvp, v, h, k: int, weight, multiplier):
    """``phi_k(h J) v`` by :func:`lanczos_functions`, converged in the norm of
    ``multiplier * phi_k(h J) v``: ``(x, iterations, converged, ritz)``."""
    xs, iterations, done, ritz = lanczos_functions(
        jvp, v, lambda lam: phi(k, h * lam)[None], weight, [multiplier])
    return xs[0], iterations, done, ritz


def linearized(term, t0, y0, args, rtol, atol):
    """``(F, v -> J v, weight)`` at ``y0``: the field, its linearization there (one
    forward pass, then each product is the linear map alone), and the controller's
    weights ``1 / (atol + rtol |y0|)``."""
    f = lambda z: term.vf(t0, z, args)  # noqa: E731 (autonomous)
    _, jvp = jax.linearize(f, y0)
    return f, jvp, 1.0 / (atol + rtol * jnp.abs(y0))


class EXPRB32(ChebyshevSolver):
    """The solver interface of the compiled loop (module doc), with the run's tolerances
    (they set the Krylov tolerance). It shares the stabilized methods' state (``F(y_n)``,
    counters, ``rho``: the power iteration starts it, the Ritz values keep it)."""

    rtol: float = 1e-6
    atol: float = 1e-9
    #: error order of the estimate (exponential Rosenbrock-Euler, order 2: local error h^3)
    order = 3

    def error_order(self, term):
        return self.order

    def stability_limit(self, rho):
        """Not a stability limit (the method is exact on the linearization at any step):
        the step at which Lanczos still converges within :data:`MAX_KRYLOV`."""
        return MAX_H_RHO / jnp.maximum(rho, 1e-300)

    def step(self, term, t0, t1, y0, args, state: StabilizedState, made_jump):
        del made_jump
        y1, y_error, f1, evaluations, jvps, radius = self.advance(
            term, t0, t1 - t0, y0, args, state.f0)
        rho = jnp.maximum(radius, 0.5 * state.rho)
        return y1, y_error, None, state.advanced(f1, state.v, rho, evaluations, jvps), None

    def advance(self, term, t0, h, y0, args, f0):
        """One step of size ``h`` from ``y0`` with ``f0 = F(y0)``: ``(y1, error estimate,
        F(y1), field evaluations, Jacobian-vector products, the radius the next step's
        bound reads)`` (:func:`krylov_radius`)."""
        f, jvp, weight = linearized(term, t0, y0, args, self.rtol, self.atol)
        x1, m1, ok1, ritz = lanczos_phi(jvp, f0, h, 1, weight, h)
        u = y0 + h * x1
        fu = f(u)
        d = fu - f0 - jvp(u - y0)
        x3, m3, ok3, _ = lanczos_phi(jvp, d, h, 3, weight, 2.0 * h)
        correction = 2.0 * h * x3
        y1 = u + correction
        f1 = f(y1)
        y_error = jnp.where(ok1 & ok3, correction, jnp.inf)
        # evaluations: the linearization's forward pass, F(U), F(y1)
        return (y1, y_error, f1, 3, m1 + m3 + 1,
                krylov_radius(h, ritz, jnp.maximum(m1, m3)))


class EXPRB43(EXPRB32):
    """``exprb43`` (Hochbruck, Ostermann & Schweitzer 2009): order 4, with an embedded
    method of order 3, three Lanczos processes a step (on ``F(y_n)``, ``D_2``, ``D_3``),
    each serving every ``phi`` of its vector:

        U_2 = y_n + (h/2) phi_1(h J / 2) F(y_n)
        U_3 = y_n + h phi_1(h J) F(y_n) + h phi_1(h J) D_2
        y_{n+1} = y_n + h phi_1(h J) F(y_n) + h (16 phi_3 - 48 phi_4)(h J) D_2
                  + h (-2 phi_3 + 12 phi_4)(h J) D_3,

    ``D_i = F(U_i) - F(y_n) - J (U_i - y_n)``; the embedded solution has ``16 phi_3`` and
    ``-2 phi_3`` in place of those weights, so the error estimate is
    ``h phi_4(h J) (12 D_3 - 48 D_2)``.

    The third process runs on ``D_3 - alpha D_2``, not on ``D_3``: the remainders grow
    like the square of the stage's distance from ``y_n`` (in the slow directions ``U_3``
    is twice as far as ``U_2``), so ``D_3 ~ 4 D_2`` and what is left is 50-100x smaller
    along these flows. Its phi's converge in a few iterations instead of as many as the
    others' (``sqrt(h rho)``); the ``alpha D_2`` part comes from the second process (one
    more function of the same tridiagonal), by linearity exactly. ``alpha`` is the
    weighted least-squares fit, clipped to ``[0, ALPHA_MAX]`` so that the second
    process's convergence test (its multipliers bound ``alpha``) covers it."""

    #: error order of the estimate (the embedded method is of order 3: local error h^4)
    order = 4
    #: the range of ``alpha`` (``D_3 ~ alpha D_2``; 4 in the slow directions)
    ALPHA_MIN, ALPHA_MAX = 0.0, 4.0

    def advance(self, term, t0, h, y0, args, f0):
        f, jvp, weight = linearized(term, t0, y0, args, self.rtol, self.atol)
        xf, m1, ok1, ritz = lanczos_functions(
            jvp, f0, lambda lam: jnp.stack([phi(1, 0.5 * h * lam), phi(1, h * lam)]),
            weight, [0.5 * h, h])
        u2 = y0 + 0.5 * h * xf[0]
        d2 = f(u2) - f0 - jvp(u2 - y0)
        last = lambda lam: -2.0 * phi(3, h * lam) + 12.0 * phi(4, h * lam)  # noqa: E731
        x2, m2, ok2, _ = lanczos_functions(
            jvp, d2, lambda lam: jnp.stack([phi(1, h * lam),
                                            16.0 * phi(3, h * lam) - 48.0 * phi(4, h * lam),
                                            phi(4, h * lam), last(lam)]),
            # the estimate takes (12 alpha - 48) h phi_4 D_2, the solution alpha h last D_2
            weight, [h, h, max(48.0 - 12.0 * self.ALPHA_MIN, 12.0 * self.ALPHA_MAX - 48.0) * h,
                     self.ALPHA_MAX * h])
        u3 = y0 + h * xf[1] + h * x2[0]
        d3 = f(u3) - f0 - jvp(u3 - y0)
        w2 = weight * weight
        norm2 = jnp.vdot(d2 * w2, d2)
        alpha = jnp.clip(jnp.vdot(d3 * w2, d2) / jnp.where(norm2 > 0, norm2, 1.0),
                         self.ALPHA_MIN, self.ALPHA_MAX)
        x3, m3, ok3, _ = lanczos_functions(
            jvp, d3 - alpha * d2, lambda lam: jnp.stack([last(lam), phi(4, h * lam)]),
            weight, [h, 12.0 * h])
        y1 = y0 + h * xf[1] + h * x2[1] + h * (x3[0] + alpha * x2[3])
        f1 = f(y1)
        # h phi_4 (12 D_3 - 48 D_2), with D_3 = alpha D_2 + (D_3 - alpha D_2)
        y_error = jnp.where(ok1 & ok2 & ok3,
                            h * (12.0 * x3[1] + (12.0 * alpha - 48.0) * x2[2]), jnp.inf)
        # evaluations: the linearization's forward pass, F(U_2), F(U_3), F(y1)
        return (y1, y_error, f1, 4, m1 + m2 + m3 + 2,
                krylov_radius(h, ritz, jnp.maximum(m1, jnp.maximum(m2, m3))))
