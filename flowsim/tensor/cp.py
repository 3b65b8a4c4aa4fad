"""Parameterization: CP (CANDECOMP/PARAFAC) tensor factorization (Section 4.2, Eq. 11).

An order-``N`` tensor of shape ``(d_1, ..., d_N)`` is produced from ``N`` factor matrices
``W^(n)`` of shape ``(d_n, R)`` (``params[n - 1]`` in code) as the sum of ``R`` outer
products of their columns,

    W = sum_{r=1}^{R} w_r^(1) (x) w_r^(2) (x) ... (x) w_r^(N),

the tensor analogue of a depth-2 matrix factorization ``W_2 W_1`` (for ``N = 2`` it is
``W^(1) W^(2)^T``). The paper's experiments (App. F.2) take ``R = prod(d) / max(d)``
(64 for 8x8x8, 512 for 8x8x8x8), enough to express any tensor of that shape.
"""

from __future__ import annotations

import math
import string
from dataclasses import dataclass

import jax.numpy as jnp
import numpy as np

from ..problem import TensorCompletion, _validated_shape

Factors = tuple  # (W^(1), ..., W^(N)), each (d_n, R)


def max_cp_rank(shape) -> int:
    """``prod(shape) / max(shape)``: every tensor of this shape has CP rank at most this
    (write it as a sum over the index tuples of all modes but the largest one), and the
    paper's CP factorizations use exactly this many components (App. F.2)."""
    shape = tuple(int(s) for s in shape)
    return math.prod(shape) // max(shape)


def cp_subscripts(order: int) -> tuple[str, ...]:
    """einsum subscripts ``("ar", "br", ...)`` of the factors of an order-``order`` tensor,
    with ``"r"`` the component index (kept out of the mode letters)."""
    letters = [c for c in string.ascii_lowercase if c != "r"]
    if not 1 <= order <= len(letters):
        raise ValueError(f"order must be between 1 and {len(letters)}, got {order}")
    return tuple(f"{letters[n]}r" for n in range(order))


def cp_product(factors: Factors):
    """Eq. (11): the tensor ``sum_r w_r^(1) (x) ... (x) w_r^(N)`` of factor matrices
    ``(d_n, R)``, as a jax array."""
    subs = cp_subscripts(len(factors))
    out = "".join(s[0] for s in subs)
    return jnp.einsum(",".join(subs) + "->" + out, *factors)


@dataclass(frozen=True)
class CPFactorization:
    """CP factorization with ``rank`` components of a tensor of shape ``shape``.

    **Arguments:**

    - `shape`: ``(d_1, ..., d_N)``, ``N >= 2``, each ``d_n >= 1``.
    - `rank`: number of components ``R >= 1`` (default :func:`max_cp_rank`, as in App. F.2).
    """

    shape: tuple[int, ...]
    rank: int | None = None

    def __post_init__(self):
        # The same shape rules as the problem it is fitted to (order >= 2).
        shape = _validated_shape(self.shape, min_order=TensorCompletion._min_order,
                                 max_order=TensorCompletion._max_order)
        rank = max_cp_rank(shape) if self.rank is None else self.rank
        if isinstance(rank, bool) or int(rank) != rank or rank < 1:
            raise ValueError(f"rank must be an integer >= 1 (number of CP components), "
                             f"got {self.rank!r}")
        object.__setattr__(self, "shape", shape)
        object.__setattr__(self, "rank", int(rank))

    @property
    def order(self) -> int:
        return len(self.shape)

    @property
    def factor_shapes(self) -> tuple[tuple[int, int], ...]:
        return tuple((d, self.rank) for d in self.shape)

    @property
    def n_params(self) -> int:
        return sum(d * r for d, r in self.factor_shapes)

    def product(self, params: Factors):
        """The tensor of Eq. (11)."""
        return cp_product(params)

    def check_params(self, params: Factors, name: str = "params") -> tuple[np.ndarray, ...]:
        """Validate a factor tuple against this model; returns float64 numpy copies."""
        if len(params) != self.order:
            raise ValueError(f"{name} must hold order = {self.order} factor matrices, "
                             f"got {len(params)}")
        out = []
        for n, (w, s) in enumerate(zip(params, self.factor_shapes)):
            w = np.asarray(w, dtype=np.float64)
            if w.shape != s:
                raise ValueError(f"{name}[{n}] (W^({n + 1})) must have shape {s}, got {w.shape}")
            if not np.all(np.isfinite(w)):
                raise ValueError(f"{name}[{n}] (W^({n + 1})) must be finite")
            out.append(w)
        return tuple(out)

    def to_dict(self) -> dict:
        return {"kind": "CPFactorization", "shape": list(self.shape), "rank": self.rank}


def cp_gaussian_init(model: CPFactorization, seed: int = 0, std: float = 1e-3) -> Factors:
    """Factor entries i.i.d. ``N(0, std^2)``, seeded (App. F.2 uses std 1e-2 and 1e-3)."""
    if not isinstance(model, CPFactorization):
        raise TypeError(f"model must be a CPFactorization, got {type(model).__name__}")
    std = float(std)
    if not (std >= 0 and math.isfinite(std)):
        raise ValueError(f"std must be a finite number >= 0, got {std!r}")
    rng = np.random.default_rng(seed)
    return tuple(std * rng.standard_normal(s) for s in model.factor_shapes)


def linear_baseline(problem: TensorCompletion) -> np.ndarray:
    """The "linear" baseline of Figure 2 (a memorizer): observed entries kept, every
    unobserved entry 0. It fits the observations exactly with no bias towards low rank."""
    if not isinstance(problem, TensorCompletion):
        raise TypeError(f"problem must be a TensorCompletion, got {type(problem).__name__}")
    return np.array(problem.target)
