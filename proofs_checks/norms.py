"""The norms and quasi-norms the checks use, each with its quasi-triangle constant c
(footnote 2: ``||x + y|| <= c (||x|| + ||y||)``; c = 1 for norms).

For p < 1 both the Schatten-p and the entrywise l_p quasi-norms satisfy
``||x + y||^p <= ||x||^p + ||y||^p``, hence c = ``2^{1/p - 1}`` (docs/derivations.md).
Every norm maps ``(..., 2, 2)`` arrays to ``(...)`` values.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from flowsim.metrics import schatten_norm

#: Schatten exponents checked (p < 1 quasi-norm, nuclear, Frobenius, spectral)
SCHATTEN_PS = (0.5, 1.0, 2.0, np.inf)


@dataclass(frozen=True)
class Norm:
    """A (quasi-)norm on 2x2 matrices, its constant ``c`` and whether it is Schatten."""

    name: str
    fn: Callable[[np.ndarray], np.ndarray]
    c: float
    schatten: bool = False

    def __call__(self, w) -> np.ndarray:
        return np.asarray(self.fn(np.asarray(w, dtype=np.float64)), dtype=np.float64)

    def basis_norm(self, i: int, j: int) -> float:
        """``||e_i e_j^T||`` (0-based i, j)."""
        e = np.zeros((1, 2, 2))
        e[0, i, j] = 1.0
        return float(self(e)[0])


def quasi_constant(p: float) -> float:
    """``c = 2^{1/p - 1}`` for p < 1, else 1."""
    return 2.0 ** (1.0 / p - 1.0) if p < 1 else 1.0


def schatten(p: float) -> Norm:
    label = {1.0: "nuclear", 2.0: "Frobenius", np.inf: "spectral"}.get(p, "quasi")
    return Norm(f"Schatten-{p:g} ({label})", lambda w: schatten_norm(w, p), quasi_constant(p),
                True)


def entrywise(p: float) -> Norm:
    """Entrywise l_p (quasi-)norm; p = inf is the max-norm ``max |W_ij|``."""
    def fn(w):
        a = np.abs(w).reshape(*w.shape[:-2], -1)
        return a.max(axis=-1) if np.isinf(p) else np.sum(a**p, axis=-1) ** (1.0 / p)
    name = "max-norm" if np.isinf(p) else f"entrywise l_{p:g}"
    return Norm(name, fn, quasi_constant(p))


def random_weighted(seed: int = 0) -> Norm:
    """``||A vec(W)||_2`` for a fixed random invertible 4x4 ``A``: neither entrywise nor
    unitarily invariant."""
    a = np.random.default_rng(seed).standard_normal((4, 4)) + 2 * np.eye(4)
    return Norm(f"weighted l2 (seed {seed})",
                lambda w: np.linalg.norm(w.reshape(*w.shape[:-2], 4) @ a.T, axis=-1), 1.0)


def non_schatten_norms() -> tuple[Norm, ...]:
    return (entrywise(1.0), entrywise(np.inf), entrywise(0.5), random_weighted(0))


def all_norms() -> tuple[Norm, ...]:
    return tuple(schatten(p) for p in SCHATTEN_PS) + non_schatten_norms()
