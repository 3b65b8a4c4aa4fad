"""Proposition 3: a random d x d matrix with independent entries, each from a continuous
distribution symmetric about 0, has P(det > 0) = P(det < 0) = 1/2; so does a product of
independent continuous random layers when one layer has that property. Rescaling (any
alpha > 0) changes nothing.

Monte Carlo: :func:`check_sign_probability` is a pure function of the sampled signs;
the samplers below draw them (including flowsim's own initializations).
"""

from __future__ import annotations

import numpy as np

import flowsim as fs

from .result import CheckResult

CLAIM = "Proposition 3"

#: symmetric continuous entry distributions, ``rng -> size -> samples``
SYMMETRIC = {
    "gaussian": lambda rng, size: rng.standard_normal(size),
    "uniform": lambda rng, size: rng.uniform(-1.0, 1.0, size),
    "laplace": lambda rng, size: rng.laplace(0.0, 1.0, size),
    "student-t(2)": lambda rng, size: rng.standard_t(2.0, size),
}


def check_sign_probability(det_signs, label: str, z: float = 4.0) -> CheckResult:
    """``|p_hat - 1/2| <= z * sqrt(p_hat (1 - p_hat) / n)`` for ``p_hat`` the fraction of
    positive signs (a normal-approximation interval; z = 4 is two-sided ~6e-5). A zero
    (singular) sample counts as not positive. Margin: interval half-width minus
    ``|p_hat - 1/2|``."""
    signs = np.asarray(det_signs)
    n = signs.size
    p = float(np.mean(signs > 0))
    half = z * np.sqrt(max(p * (1 - p), 1.0 / n) / n)
    margin = half - abs(p - 0.5)
    return CheckResult(CLAIM, f"P(det > 0) = 1/2: {label}",
                       f"p = {p:.4f} +- {half:.4f} (z={z:g}, n={n})", float(margin),
                       bool(margin >= 0), "paper", {"p": p, "half_width": half, "n": n})


def entry_signs(dist: str, d: int, n: int, scale: float, seed: int) -> np.ndarray:
    """Signs of det of ``n`` matrices ``scale * X``, X with i.i.d. ``dist`` entries."""
    rng = np.random.default_rng(seed)
    return np.linalg.slogdet(scale * SYMMETRIC[dist](rng, (n, d, d)))[0]


def product_signs(depth: int, d: int, n: int, seed: int, symmetric_layer: int = 0) -> np.ndarray:
    """Signs of det of ``W_L ... W_1``: layer ``symmetric_layer`` Gaussian, the others
    i.i.d. exponential(1) entries (continuous, *not* symmetric: P(det > 0) != 1/2 alone)."""
    rng = np.random.default_rng(seed)
    sign = np.ones(n)
    for layer in range(depth):
        w = (rng.standard_normal((n, d, d)) if layer == symmetric_layer
             else rng.exponential(1.0, (n, d, d)))
        sign *= np.linalg.slogdet(w)[0]
    return sign


def init_signs(kind: str, depth: int, n: int, scale: float) -> np.ndarray:
    """det signs of flowsim's own inits (``balanced_init`` / ``gaussian_init``, no
    det_sign imposed) over seeds ``0..n-1``."""
    model = fs.DeepMatrixFactorization((2, 2), depth)
    init = fs.balanced_init if kind == "balanced" else fs.gaussian_init
    key = "scale" if kind == "balanced" else "std"
    return np.array([np.prod([np.linalg.slogdet(w)[0] for w in init(model, seed=k, **{key: scale})])
                     for k in range(n)])
