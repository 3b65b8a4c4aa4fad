"""Extended-precision reference: gradient flow Eq. (4) on the factors in mpmath.

An independent cross-check of the float64 solvers (it shares no code with the jax
dynamics): the factor-level flow ``dW_l/dt = -A_l^T G B_l^T`` (``A_l = W_L ... W_{l+1}``,
``B_l = W_{l-1} ... W_1``, ``G = mask * (W - B)``) is polynomial in the factors, so its
Taylor coefficients follow exactly from Cauchy products of truncated series. The
integrator is the Taylor method of order ``order`` at ``mp.dps = dps`` digits, with the
step chosen from the decay of the last two coefficients (Jorba & Zou 2005) so that the
truncation error per unit time stays below ``tol``. At 50 digits the sign of ``det W`` is
resolved down to ``det ~ 1e-45 ||W||^2``, far beyond float64's ``1e-16``.

Meant for short horizons (the cost grows with the flow's stiffness): e.g. depth 2-4,
product scale ~0.5, ``t <= 10``.
"""

from __future__ import annotations

from dataclasses import dataclass

import mpmath
import numpy as np

from .parameterization import DeepMatrixFactorization, Params
from .problem import MatrixCompletion


@dataclass(frozen=True)
class ExtendedSolution:
    """Factors at the requested times (mpmath matrices as object arrays ``(d_l, d_{l-1})``)
    and the derived product, loss and determinant, all at ``dps`` digits."""

    t: tuple
    factors: tuple  # factors[i] = (W_1, ..., W_L) at t[i]
    dps: int
    steps: int

    def product(self, i: int) -> np.ndarray:
        w = self.factors[i][0]
        for layer in self.factors[i][1:]:
            w = layer @ w
        return w

    def product_float(self) -> np.ndarray:
        """Products at every time as a float64 array ``(n, d, d2)``."""
        return np.array([[[float(v) for v in row] for row in self.product(i)]
                         for i in range(len(self.t))])

    def det(self, i: int):
        """``det W`` at ``t[i]`` (2x2 products), an ``mpf``."""
        w = self.product(i)
        return w[0, 0] * w[1, 1] - w[0, 1] * w[1, 0]


def _series_product_coeff(a: list, b: list, k: int, transpose_b: bool = False):
    """Coefficient ``k`` of the product of matrix series ``a`` and ``b`` (or ``b^T``)."""
    total = None
    for i in range(k + 1):
        right = b[k - i].T if transpose_b else b[k - i]
        term = a[i] @ right
        total = term if total is None else total + term
    return total


def _taylor_coefficients(layers: list, mask, target, order: int) -> list:
    """Taylor coefficients ``[W_l[0..order]]`` of every layer at the current point."""
    depth = len(layers)
    coeffs = [[w] for w in layers]
    eye_left = np.array([[mpmath.mpf(int(i == j)) for j in range(layers[-1].shape[0])]
                         for i in range(layers[-1].shape[0])], dtype=object)
    eye_right = np.array([[mpmath.mpf(int(i == j)) for j in range(layers[0].shape[1])]
                          for i in range(layers[0].shape[1])], dtype=object)
    zero_l, zero_r = eye_left * 0, eye_right * 0
    # prefix[l] = W_l ... W_1 (prefix[-1] = I), suffix[l] = W_L ... W_l (suffix[L] = I)
    prefix = [[None] for _ in range(depth)]
    suffix = [[None] for _ in range(depth)]
    grad_right = [[] for _ in range(depth)]  # G B_l^T per layer
    gs = []
    for k in range(order):
        for l in range(depth):
            prev = [eye_right] + [zero_r] * k if l == 0 else prefix[l - 1]
            if k == 0:
                prefix[l][0] = coeffs[l][0] @ prev[0]
            else:
                prefix[l].append(_series_product_coeff(coeffs[l], prev, k))
        for l in range(depth - 1, -1, -1):
            nxt = [eye_left] + [zero_l] * k if l == depth - 1 else suffix[l + 1]
            if k == 0:
                suffix[l][0] = nxt[0] @ coeffs[l][0]
            else:
                suffix[l].append(_series_product_coeff(nxt, coeffs[l], k))
        w_k = prefix[depth - 1][k]
        gs.append(mask * (w_k - target) if k == 0 else mask * w_k)
        for l in range(depth):
            below = [eye_right] + [zero_r] * k if l == 0 else prefix[l - 1]
            grad_right[l].append(_series_product_coeff(gs, below, k, transpose_b=True))
        for l in range(depth):
            above = ([eye_left] + [zero_l] * k if l == depth - 1 else suffix[l + 1])
            above_t = [m.T for m in above]
            d_k = _series_product_coeff(above_t, grad_right[l], k)
            coeffs[l].append(-d_k / (k + 1))
    return coeffs


def _norm(m) -> mpmath.mpf:
    return max(abs(v) for v in m.ravel())


def factor_flow(problem: MatrixCompletion, model: DeepMatrixFactorization, params: Params,
                times, *, dps: int = 50, order: int = 40, tol: float = 1e-35,
                max_steps: int = 10_000) -> ExtendedSolution:
    """Integrate Eq. (4) on the factors from ``params`` at ``dps`` digits and return the
    factors at each of ``times`` (increasing, >= 0).

    **Arguments:** `problem`, `model`, `params` as for :func:`flowsim.gradient_flow`;
    `times`: output times; `dps`: mpmath digits; `order`: Taylor order; `tol`: local
    truncation error per unit time; `max_steps`: step budget (``RuntimeError`` past it).
    """
    if not isinstance(problem, MatrixCompletion):
        raise TypeError(f"problem must be a MatrixCompletion (extended precision integrates "
                        f"completion only), got {type(problem).__name__}")
    params = model.check_params(params)
    times = [float(t) for t in times]
    if any(t < 0 for t in times) or any(b < a for a, b in zip(times, times[1:])):
        raise ValueError(f"times must be increasing and >= 0, got {times}")
    if int(order) != order or order < 4:
        raise ValueError(f"order must be an integer >= 4, got {order!r}")
    with mpmath.workdps(dps):
        to_mp = np.vectorize(lambda v: mpmath.mpf(float(v)), otypes=[object])
        mask, target = to_mp(problem.mask), to_mp(problem.target)
        layers = [to_mp(w) for w in params]
        t = mpmath.mpf(0)
        out, steps = [], 0
        tol_mp = mpmath.mpf(tol)
        for t_out in times:
            t_out = mpmath.mpf(t_out)
            while t < t_out:
                if steps >= max_steps:
                    raise RuntimeError(f"max_steps={max_steps} reached at t={float(t):.6g}")
                coeffs = _taylor_coefficients(layers, mask, target, order)
                last = max(max(_norm(c[order]) for c in coeffs), mpmath.mpf(10) ** (-dps))
                before = max(max(_norm(c[order - 1]) for c in coeffs), mpmath.mpf(10) ** (-dps))
                h = min((tol_mp / last) ** (mpmath.mpf(1) / order),
                        (tol_mp / before) ** (mpmath.mpf(1) / (order - 1))) * mpmath.mpf(0.9)
                h = min(h, t_out - t)
                # Horner evaluation of each layer's series at h
                new = []
                for c in coeffs:
                    acc = c[order]
                    for k in range(order - 1, -1, -1):
                        acc = acc * h + c[k]
                    new.append(acc)
                layers = new
                t += h
                steps += 1
            out.append(tuple(w.copy() for w in layers))
        return ExtendedSolution(t=tuple(times), factors=tuple(out), dps=dps, steps=steps)
