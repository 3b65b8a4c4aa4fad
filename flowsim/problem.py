"""Problems: which entries of a matrix or tensor are observed, and their values (Eq. 1).

Indices in code are 0-based; the paper's entry (i, j) is ``(i - 1, j - 1)`` here.
The loss is ``1/2 * sum over observed entries of (X[idx] - b)^2``, where ``X`` is the
matrix (or tensor) produced by a parameterization.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar

import jax.numpy as jnp
import numpy as np


def validated_shape(shape, *, min_order: int, max_order: int | None) -> tuple[int, ...]:
    try:
        shape = tuple(int(s) for s in shape)
    except TypeError as exc:
        raise TypeError(f"shape must be a sequence of positive integers, got {shape!r}") from exc
    if len(shape) < min_order or (max_order is not None and len(shape) > max_order):
        allowed = f"{min_order}" if max_order == min_order else f">= {min_order}"
        raise ValueError(f"shape must have {allowed} dimensions, got {len(shape)} ({shape})")
    if any(s < 1 for s in shape):
        raise ValueError(f"shape entries must be >= 1, got {shape}")
    return shape


@dataclass(frozen=True, eq=False)
class EntryCompletion:
    """Observed entries ``{(idx, b_idx)}`` of an array of a given ``shape``.

    **Arguments:**

    - `shape`: the array's shape.
    - `indices`: integer array ``(k, order)`` of 0-based observed positions.
    - `values`: float array ``(k,)`` of observed values ``b``.

    Raises `ValueError` naming the field for out-of-range or duplicate indices, a
    length mismatch, or non-finite values.
    """

    shape: tuple[int, ...]
    indices: np.ndarray
    values: np.ndarray
    mask: np.ndarray = field(init=False, repr=False)
    target: np.ndarray = field(init=False, repr=False)

    min_order: ClassVar[int] = 2
    max_order: ClassVar[int | None] = None

    def __post_init__(self):
        shape = validated_shape(self.shape, min_order=self.min_order, max_order=self.max_order)
        indices = np.asarray(self.indices)
        if indices.size == 0:
            raise ValueError("indices must name at least one observed entry")
        if indices.ndim == 1 and indices.size == len(shape):
            indices = indices[None, :]
        if indices.ndim != 2 or indices.shape[1] != len(shape):
            raise ValueError(
                f"indices must have shape (k, {len(shape)}), got {indices.shape}"
            )
        if indices.size and not np.issubdtype(indices.dtype, np.integer):
            if not np.all(np.equal(np.mod(indices, 1), 0)):
                raise ValueError("indices must be integers")
        indices = indices.astype(np.int64)
        values = np.asarray(self.values, dtype=np.float64).reshape(-1)
        if values.shape[0] != indices.shape[0]:
            raise ValueError(
                f"values must have one entry per index: {values.shape[0]} values for "
                f"{indices.shape[0]} indices"
            )
        upper = np.asarray(shape)
        bad = np.any((indices < 0) | (indices >= upper), axis=1)
        if bad.any():
            raise ValueError(
                f"indices out of range for shape {shape} (0-based, 0 <= i_k < shape[k]): "
                f"{indices[bad][:5].tolist()}"
            )
        uniq, counts = np.unique(indices, axis=0, return_counts=True)
        if (counts > 1).any():
            raise ValueError(f"indices contain duplicates: {uniq[counts > 1][:5].tolist()}")
        if not np.all(np.isfinite(values)):
            raise ValueError("values must be finite (no NaN or inf)")
        mask = np.zeros(shape)
        target = np.zeros(shape)
        mask[tuple(indices.T)] = 1.0
        target[tuple(indices.T)] = values
        for name, value in (("shape", shape), ("indices", indices), ("values", values),
                            ("mask", mask), ("target", target)):
            value = value if name == "shape" else _readonly(value)
            object.__setattr__(self, name, value)

    @property
    def n_observed(self) -> int:
        return int(self.indices.shape[0])

    @property
    def unobserved_indices(self) -> np.ndarray:
        """0-based positions of the unobserved entries, ``(k', order)``."""
        return np.argwhere(self.mask == 0)

    def residual(self, x):
        """``mask * (x - target)``: the gradient of the loss with respect to ``x``."""
        return self.mask * (x - self.target)

    def loss(self, x):
        """Eq. (1): ``1/2 * sum over observed entries of (x - b)^2``; batched over leading axes."""
        r = self.residual(x)
        axes = tuple(range(-len(self.shape), 0))
        return 0.5 * jnp.sum(r * r, axis=axes)

    def to_dict(self) -> dict:
        return {"kind": type(self).__name__, "shape": list(self.shape),
                "indices": self.indices.tolist(), "values": self.values.tolist()}

    @classmethod
    def from_dict(cls, data: dict) -> EntryCompletion:
        kinds = {c.__name__: c for c in (MatrixCompletion, TensorCompletion)}
        return kinds[data["kind"]](data["shape"], data["indices"], data["values"])


def _readonly(a: np.ndarray) -> np.ndarray:
    a = np.array(a)
    a.flags.writeable = False
    return a


class MatrixCompletion(EntryCompletion):
    """Matrix completion, Eq. (1): observed entries ``b_ij`` of a ``d x d2`` matrix."""

    min_order = 2
    max_order = 2


class TensorCompletion(EntryCompletion):
    """Tensor completion (Section 4.2, Eq. 11): observed entries of an order-N >= 2 tensor."""

    min_order = 2
    max_order = None


def check_problem_and_model(problem, model, problem_cls: type, model_cls: type) -> None:
    """Raise TypeError/ValueError naming the field unless ``problem`` is a ``problem_cls``,
    ``model`` a ``model_cls``, and their shapes are equal."""
    if not isinstance(problem, problem_cls):
        raise TypeError(f"problem must be a {problem_cls.__name__}, got {type(problem).__name__}")
    if not isinstance(model, model_cls):
        raise TypeError(f"model must be a {model_cls.__name__}, got {type(model).__name__}")
    if problem.shape != model.shape:
        raise ValueError(f"problem.shape {problem.shape} must equal model.shape {model.shape}")


def perturbed_problem(b12: float, b21: float, b22: float) -> MatrixCompletion:
    """Theorem 2's setting: the 2x2 problem with observations b12, b21, b22 (1-based names)."""
    return MatrixCompletion((2, 2), [(0, 1), (1, 0), (1, 1)], [b12, b21, b22])


def paper_problem() -> MatrixCompletion:
    """Eq. (6): the 2x2 problem, observed b12 = 1, b21 = 1, b22 = 0 (1-based), W11 unobserved."""
    return perturbed_problem(1.0, 1.0, 0.0)


def padded_problem(d: int, d2: int) -> MatrixCompletion:
    """Appendix E construction: every entry but (1, 1) observed, b12 = b21 = 1,
    b_ii = 1 for 3 <= i <= min(d, d2), every other observed entry 0 (1-based)."""
    d, d2 = validated_shape((d, d2), min_order=2, max_order=2)
    if d < 2 or d2 < 2:
        raise ValueError(f"padded_problem needs d >= 2 and d2 >= 2, got d={d}, d2={d2}")
    target = np.zeros((d, d2))
    target[0, 1] = target[1, 0] = 1.0
    for i in range(2, min(d, d2)):
        target[i, i] = 1.0
    indices = [(i, j) for i in range(d) for j in range(d2) if (i, j) != (0, 0)]
    return MatrixCompletion((d, d2), indices, [target[i, j] for i, j in indices])
