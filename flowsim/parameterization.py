"""Parameterization: how the matrix or tensor is built from factors.

Two models, one small protocol (:class:`Factorization`): the shapes of the factors, their
flat vector form (``flatten`` / ``split``), a check of user factors, the product, the
quantities gradient flow conserves, and a sign-safe determinant where there is one.
Everything downstream (dynamics, integration, descent) talks to that protocol only, so a
new model plugs in by subclassing it.

- :class:`DeepMatrixFactorization`: ``W = W_L ... W_1`` (Eq. 3). Layer ``l`` (1-based in
  the paper, ``params[l - 1]`` in code) has shape ``(d_l, d_{l-1})`` with ``d_0 = d2``
  (columns of W) and ``d_L = d`` (rows of W). The product is taken in the paper's order;
  the authors' reference code multiplies the other way round.
- :class:`CPFactorization` (Section 4.2, Eq. 11): an order-``N`` tensor
  ``W = sum_{r=1}^{R} w_r^(1) (x) ... (x) w_r^(N)`` from factor matrices ``W^(n)`` of shape
  ``(d_n, R)`` (``params[n - 1]`` in code). The paper's experiments (App. F.2) take
  ``R = prod(d) / max(d)`` (64 for 8x8x8, 512 for 8x8x8x8).

Conserved quantities (exact along gradient flow from *any* start):

- deep matrix factorization: ``C_l = W_{l+1}^T W_{l+1} - W_l W_l^T`` for ``l = 1..L-1``
  (Arora, Cohen & Hazan 2018; Du, Hu & Lee 2018). Balanced starts (Eq. 5) have ``C_l = 0``.
- CP factorization: for every component ``r`` and mode ``n``,
  ``||w_r^(n)||^2 - ||w_r^(1)||^2``, since ``d/dt ||w_r^(n)||^2 = -2 <grad l(W), w_r^(1)
  (x) ... (x) w_r^(N)>`` is the same for every ``n``.
"""

from __future__ import annotations

import abc
import math
import string
from dataclasses import dataclass
from functools import reduce

import jax.numpy as jnp
import numpy as np

from .problem import TensorCompletion, check_integer, validated_shape

Params = tuple  # tuple of arrays, 0-based in code: (W_1, ..., W_L) or (W^(1), ..., W^(N))
Factors = Params


def array_namespace(arrays):
    """``numpy`` when every array is a numpy array (host-side checks, without jax's
    per-operation dispatch: 0.3 ms per member of a batch), else ``jax.numpy``."""
    return np if all(isinstance(a, np.ndarray) for a in arrays) else jnp


class Factorization(abc.ABC):
    """The protocol every model implements (a frozen dataclass, hashable: it is part of the
    key of every compiled solve)."""

    shape: tuple[int, ...]

    #: what one factor is called in messages, given its 0-based index
    @abc.abstractmethod
    def factor_name(self, index: int) -> str: ...

    @property
    @abc.abstractmethod
    def param_shapes(self) -> tuple[tuple[int, int], ...]:
        """Shape of each factor, in order."""

    @abc.abstractmethod
    def product(self, params: Params):
        """The matrix or tensor the factors represent (jax-traceable)."""

    @abc.abstractmethod
    def conserved(self, params: Params):
        """Flat vector of the quantities gradient flow conserves from every start
        (module doc); compared against its initial value by the integrators."""

    @abc.abstractmethod
    def to_dict(self) -> dict: ...

    @property
    def n_params(self) -> int:
        return sum(a * b for a, b in self.param_shapes)

    def flatten(self, params: Params) -> np.ndarray:
        """The factors as one flat float64 vector, in order, each row-major."""
        return np.concatenate([np.asarray(w, dtype=np.float64).ravel() for w in params])

    def split(self, y) -> Params:
        """Inverse of :meth:`flatten` (jax-traceable), batched over the leading axes of
        ``y``: rows ``(n, n_params)`` give factors ``(n, rows, cols)``, views of a numpy
        ``y`` (no copy)."""
        out, start, lead = [], 0, y.shape[:-1]
        for rows, cols in self.param_shapes:
            out.append(y[..., start:start + rows * cols].reshape(*lead, rows, cols))
            start += rows * cols
        return tuple(out)

    def host_products(self, layers: Params) -> np.ndarray | None:
        """The products of batched factors ``(n, rows, cols)`` by numpy, or ``None`` where
        the model computes its product in jax only."""
        return None

    def check_params(self, params: Params, name: str = "params") -> tuple[np.ndarray, ...]:
        """Validate a factor tuple against this model; returns float64 numpy copies.
        Raises ``ValueError`` naming the factor for a wrong count, shape, dtype or a
        non-finite entry."""
        if isinstance(params, np.ndarray) or not isinstance(params, (tuple, list)):
            raise TypeError(f"{name} must be a tuple of {len(self.param_shapes)} arrays "
                            f"(one per factor), got {type(params).__name__}")
        if len(params) != len(self.param_shapes):
            raise ValueError(f"{name} must hold {len(self.param_shapes)} factors "
                             f"({self.factor_name(0)}, ...), got {len(params)}")
        out = []
        for l, (w, s) in enumerate(zip(params, self.param_shapes)):
            label = f"{name}[{l}] ({self.factor_name(l)})"
            raw = np.asarray(w)
            if np.iscomplexobj(raw):
                raise ValueError(f"{label} must be real, got complex entries")
            if raw.dtype.kind not in "fiu":  # strings, bools, objects: never converted
                raise ValueError(f"{label} must hold real numbers (float or integer), got "
                                 f"{raw.dtype} entries")
            try:
                w = raw.astype(np.float64)
            except (TypeError, ValueError) as exc:
                raise ValueError(f"{label} must hold real numbers, got {raw.dtype}") from exc
            if w.shape != s:
                raise ValueError(f"{label} must have shape {s}, got {w.shape}")
            if not np.all(np.isfinite(w)):
                raise ValueError(f"{label} must be finite")
            out.append(w)
        return tuple(out)

    def slogdet(self, params: Params):
        """``(sign det W, log|det W|)`` as accurately as the factors allow; ``(nan, nan)``
        where ``W`` has no determinant."""
        return jnp.nan, jnp.nan

    def conserved_scale(self, params: Params):
        """The size against which a drift of :meth:`conserved` is measured."""
        xp = array_namespace(params)
        return xp.max(xp.stack([xp.sum(w * w) for w in params]))


# -- deep matrix factorization ----------------------------------------------------------

@dataclass(frozen=True)
class DeepMatrixFactorization(Factorization):
    """Depth-``depth`` linear network whose product matrix has shape ``shape = (d, d2)``.

    **Arguments:**

    - `shape`: ``(d, d2)``, the product matrix's shape (integers >= 1).
    - `depth`: number of layers ``L >= 1`` (``L = 1`` is the plain linear model).
    - `widths`: hidden widths ``(d_1, ..., d_{L-1})``; default ``min(d, d2)`` each. Each
      must be ``>= min(d, d2)`` so that rank is not constrained (Section 2).
    """

    shape: tuple[int, int]
    depth: int
    widths: tuple[int, ...] | None = None

    def __post_init__(self):
        shape = validated_shape(self.shape, min_order=2, max_order=2)
        depth = check_integer("depth", self.depth, minimum=1)
        m = min(shape)
        if self.widths is None:
            widths = (m,) * (depth - 1)
        elif isinstance(self.widths, (str, bytes)) or not hasattr(self.widths, "__len__"):
            raise ValueError(f"widths must be a sequence of depth - 1 = {depth - 1} integers, "
                             f"got {self.widths!r}")
        else:
            widths = tuple(check_integer(f"widths[{i}]", w, minimum=1)
                           for i, w in enumerate(self.widths))
        if len(widths) != depth - 1:
            raise ValueError(
                f"widths must list depth - 1 = {depth - 1} hidden widths, got {len(widths)}")
        if any(w < m for w in widths):
            raise ValueError(
                f"widths must each be >= min(d, d2) = {m} (rank unconstrained), got {widths}")
        object.__setattr__(self, "shape", shape)
        object.__setattr__(self, "depth", depth)
        object.__setattr__(self, "widths", widths)

    def factor_name(self, index: int) -> str:
        return f"W_{index + 1}"

    @property
    def dims(self) -> tuple[int, ...]:
        """``(d_0, d_1, ..., d_L)`` with ``d_0 = d2`` and ``d_L = d``."""
        return (self.shape[1], *self.widths, self.shape[0])

    @property
    def param_shapes(self) -> tuple[tuple[int, int], ...]:
        dims = self.dims
        return tuple((dims[l + 1], dims[l]) for l in range(self.depth))

    #: the paper's name for the factor shapes
    layer_shapes = param_shapes

    @property
    def square_layers(self) -> bool:
        return all(r == c for r, c in self.param_shapes)

    def product(self, params: Params):
        """``W_L @ ... @ W_1`` (batched over leading axes)."""
        return product(params)

    def host_products(self, layers: Params) -> np.ndarray:
        return product(tuple(np.asarray(w, dtype=np.float64) for w in layers))

    def slogdet(self, params: Params):
        """From the layers when every layer is square (``det W = prod det W_l`` keeps
        digits that ``W``'s rounded entries have lost), else from ``W``."""
        if self.square_layers:
            if len({w.shape for w in params}) == 1:
                # one batched LU for all layers: jaxlib's batched LAPACK calls share the
                # intra-op thread pool, and several in flight at once can deadlock it
                # (measured: 2 of 8 runs hung on 2 cores, jaxlib 0.10.2)
                signs, logs = jnp.linalg.slogdet(jnp.stack(params))
            else:
                signs, logs = (jnp.stack(v) for v in zip(*(jnp.linalg.slogdet(w)
                                                            for w in params)))
            return jnp.prod(signs), jnp.sum(logs)
        w = product(params)
        if w.shape[-1] != w.shape[-2]:
            return jnp.nan, jnp.nan
        return jnp.linalg.slogdet(w)

    def conserved(self, params: Params):
        xp = array_namespace(params)
        parts = [nxt.T @ nxt - cur @ cur.T for cur, nxt in zip(params[:-1], params[1:])]
        if not parts:
            return xp.zeros(0)
        return xp.concatenate([p.ravel() for p in parts])

    def to_dict(self) -> dict:
        return {"kind": "DeepMatrixFactorization", "shape": list(self.shape),
                "depth": self.depth, "widths": list(self.widths)}


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


# -- CP tensor factorization ------------------------------------------------------------

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
class CPFactorization(Factorization):
    """CP factorization with ``rank`` components of a tensor of shape ``shape``.

    **Arguments:**

    - `shape`: ``(d_1, ..., d_N)``, ``N >= 2``, each ``d_n >= 1``.
    - `rank`: number of components ``R >= 1`` (default :func:`max_cp_rank`, as in App. F.2).
    """

    shape: tuple[int, ...]
    rank: int | None = None

    def __post_init__(self):
        # The same shape rules as the problem it is fitted to (order >= 2).
        shape = validated_shape(self.shape, min_order=TensorCompletion.min_order,
                                max_order=TensorCompletion.max_order)
        rank = max_cp_rank(shape) if self.rank is None else check_integer("rank", self.rank,
                                                                          minimum=1)
        object.__setattr__(self, "shape", shape)
        object.__setattr__(self, "rank", rank)

    def factor_name(self, index: int) -> str:
        return f"W^({index + 1})"

    @property
    def order(self) -> int:
        return len(self.shape)

    @property
    def param_shapes(self) -> tuple[tuple[int, int], ...]:
        return tuple((d, self.rank) for d in self.shape)

    factor_shapes = param_shapes

    def product(self, params: Factors):
        """The tensor of Eq. (11)."""
        return cp_product(params)

    def conserved(self, params: Factors):
        xp = array_namespace(params)
        norms = [xp.sum(w * w, axis=0) for w in params]
        return xp.concatenate([n - norms[0] for n in norms[1:]])

    def conserved_scale(self, params: Factors):
        xp = array_namespace(params)
        return xp.max(xp.stack([xp.max(xp.sum(w * w, axis=0)) for w in params]))

    def to_dict(self) -> dict:
        return {"kind": "CPFactorization", "shape": list(self.shape), "rank": self.rank}


def model_from_dict(data: dict) -> Factorization:
    """The model a :meth:`Factorization.to_dict` describes (``ValueError`` naming what is
    wrong)."""
    if not isinstance(data, dict):
        raise ValueError(f"a model is described by a dict, got {data!r}")
    kind = data.get("kind", "DeepMatrixFactorization")
    needs = {"CPFactorization": ("shape", "rank"),
             "DeepMatrixFactorization": ("shape", "depth", "widths")}
    if kind not in needs:
        raise ValueError(f"model kind must be one of {sorted(needs)}, got {kind!r}")
    missing = [key for key in needs[kind] if key not in data]
    if missing:
        raise ValueError(f"a {kind} needs {missing}")
    if kind == "CPFactorization":
        return CPFactorization(tuple(data["shape"]), data["rank"])
    return DeepMatrixFactorization(tuple(data["shape"]), data["depth"], tuple(data["widths"]))
