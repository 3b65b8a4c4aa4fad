"""Parameterization: deep matrix factorization ``W = W_L ... W_1`` (Eq. 3).

Layer ``l`` (1-based in the paper, ``params[l - 1]`` in code) has shape
``(d_l, d_{l-1})`` with ``d_0 = d2`` (columns of W) and ``d_L = d`` (rows of W).
The product is taken in the paper's order, ``W_L @ ... @ W_1``; the authors' reference
code multiplies the other way round.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import reduce

import jax.numpy as jnp
import numpy as np

Params = tuple  # tuple of arrays (W_1, ..., W_L), 0-based in code


@dataclass(frozen=True)
class DeepMatrixFactorization:
    """Depth-``depth`` linear network whose product matrix has shape ``shape = (d, d2)``.

    **Arguments:**

    - `shape`: ``(d, d2)``, the product matrix's shape.
    - `depth`: number of layers ``L >= 1`` (``L = 1`` is the plain linear model).
    - `widths`: hidden widths ``(d_1, ..., d_{L-1})``; default ``min(d, d2)`` each. Each
      must be ``>= min(d, d2)`` so that rank is not constrained (Section 2).
    """

    shape: tuple[int, int]
    depth: int
    widths: tuple[int, ...] | None = None

    def __post_init__(self):
        try:
            shape = tuple(int(s) for s in self.shape)
        except TypeError as exc:
            raise TypeError(
                f"shape must be a pair of positive integers, got {self.shape!r}") from exc
        if len(shape) != 2 or min(shape) < 1:
            raise ValueError(f"shape must be (d, d2) with d, d2 >= 1, got {self.shape!r}")
        if isinstance(self.depth, bool) or int(self.depth) != self.depth or self.depth < 1:
            raise ValueError(f"depth must be an integer >= 1, got {self.depth!r}")
        depth = int(self.depth)
        m = min(shape)
        widths = (m,) * (depth - 1) if self.widths is None else tuple(int(w) for w in self.widths)
        if len(widths) != depth - 1:
            raise ValueError(
                f"widths must list depth - 1 = {depth - 1} hidden widths, got {len(widths)}"
            )
        if any(w < m for w in widths):
            raise ValueError(
                f"widths must each be >= min(d, d2) = {m} (rank unconstrained), got {widths}"
            )
        object.__setattr__(self, "shape", shape)
        object.__setattr__(self, "depth", depth)
        object.__setattr__(self, "widths", widths)

    @property
    def dims(self) -> tuple[int, ...]:
        """``(d_0, d_1, ..., d_L)`` with ``d_0 = d2`` and ``d_L = d``."""
        return (self.shape[1], *self.widths, self.shape[0])

    @property
    def layer_shapes(self) -> tuple[tuple[int, int], ...]:
        dims = self.dims
        return tuple((dims[l + 1], dims[l]) for l in range(self.depth))

    @property
    def n_params(self) -> int:
        return sum(a * b for a, b in self.layer_shapes)

    def product(self, params: Params):
        """``W_L @ ... @ W_1`` (batched over leading axes)."""
        return product(params)

    def check_params(self, params: Params, name: str = "params") -> tuple[np.ndarray, ...]:
        """Validate a factor tuple against this model; returns float64 numpy copies."""
        if len(params) != self.depth:
            raise ValueError(f"{name} must hold depth = {self.depth} layers, got {len(params)}")
        out = []
        for l, (w, s) in enumerate(zip(params, self.layer_shapes)):
            w = np.asarray(w, dtype=np.float64)
            if w.shape != s:
                raise ValueError(f"{name}[{l}] (W_{l + 1}) must have shape {s}, got {w.shape}")
            if not np.all(np.isfinite(w)):
                raise ValueError(f"{name}[{l}] (W_{l + 1}) must be finite")
            out.append(w)
        return tuple(out)

    def to_dict(self) -> dict:
        return {"shape": list(self.shape), "depth": self.depth, "widths": list(self.widths)}


def product(params: Params):
    """End-to-end matrix ``W_L ... W_1`` of a factor tuple ``(W_1, ..., W_L)``."""
    return reduce(lambda acc, w: w @ acc, params[1:], params[0])


def partial_products(params: Params):
    """``(A_l, B_l)`` per layer: ``A_l = W_L ... W_{l+1}``, ``B_l = W_{l-1} ... W_1``
    (identities at the ends), so that ``W = A_l W_l B_l``."""
    depth = len(params)
    eye_left = jnp.eye(params[-1].shape[-2])
    eye_right = jnp.eye(params[0].shape[-1])
    lefts = [eye_left] * depth
    rights = [eye_right] * depth
    for l in range(depth - 2, -1, -1):
        lefts[l] = lefts[l + 1] @ params[l + 1]
    for l in range(1, depth):
        rights[l] = params[l - 1] @ rights[l - 1]
    return lefts, rights
