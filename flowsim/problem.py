"""Problems: which entries of a matrix or tensor are observed, and their values (Eq. 1).

Indices in code are 0-based; the paper's entry (i, j) is ``(i - 1, j - 1)`` here.
The loss is ``1/2 * sum over observed entries of (X[idx] - b)^2``, where ``X`` is the
matrix (or tensor) produced by a parameterization.
"""

from __future__ import annotations

import math
import operator
from dataclasses import dataclass, field
from typing import ClassVar

import jax.numpy as jnp
import numpy as np


def check_integer(name: str, value, minimum: int | None = None,
                  maximum: int | None = None) -> int:
    """``value`` as an ``int``: a Python or NumPy integer (not a bool, not a float such as
    ``2.0`` or ``2.5``) in ``[minimum, maximum]``; else ``ValueError`` naming ``name``."""
    bounds = (f"between {minimum} and {maximum}" if None not in (minimum, maximum)
              else f">= {minimum}" if minimum is not None
              else f"<= {maximum}" if maximum is not None else "")
    try:
        if isinstance(value, bool):
            raise TypeError
        number = operator.index(value)
    except TypeError:
        number = None
    if number is None or (minimum is not None and number < minimum) or (
            maximum is not None and number > maximum):
        raise ValueError(f"{name} must be an integer{' ' + bounds if bounds else ''}, "
                         f"got {value!r}")
    return number


def check_real(name: str, value, *, minimum: float | None = None, strict: bool = False,
               allow_inf: bool = False) -> float:
    """``value`` as a ``float``: a real number (not a bool, a complex or a string), finite
    unless ``allow_inf``, and ``> minimum`` (``strict``) or ``>= minimum``; else
    ``ValueError`` naming ``name``."""
    real = (not isinstance(value, (bool, np.bool_, str, bytes))
            and isinstance(value, (int, float, np.integer, np.floating)))
    number = float(value) if real else math.nan
    ok = real and not math.isnan(number) and (allow_inf or math.isfinite(number)) and (
        minimum is None or (number > minimum if strict else number >= minimum))
    if not ok:
        what = "a real number" if allow_inf else "a finite real number"
        bound = "" if minimum is None else f" {'>' if strict else '>='} {minimum:g}"
        raise ValueError(f"{name} must be {what}{bound}, got {value!r}")
    return number


def check_distinct(name: str, values) -> tuple:
    """``values`` as a tuple, if no value is listed twice (``ValueError`` naming ``name``
    and the repeated values otherwise)."""
    values = tuple(values)
    try:  # linear time where the values hash (a grid axis of a million values)
        seen, twice = set(), set()
        for v in values:
            (twice if v in seen else seen).add(v)
        twice = sorted(repr(v) for v in twice)
    except TypeError:
        twice = sorted({repr(v) for v in values if values.count(v) > 1})
    if twice:
        raise ValueError(f"{name} lists {', '.join(twice)} more than once")
    return values


def validated_shape(shape, *, min_order: int, max_order: int | None) -> tuple[int, ...]:
    """``shape`` as a tuple of integers >= 1 with ``min_order`` to ``max_order`` entries
    (``ValueError`` naming the field otherwise: a float such as 2.5 is refused, never
    truncated)."""
    if isinstance(shape, (str, bytes)) or not hasattr(shape, "__len__"):
        raise ValueError(f"shape must be a sequence of integers >= 1, got {shape!r}")
    shape = tuple(check_integer(f"shape[{i}]", s, minimum=1) for i, s in enumerate(shape))
    if len(shape) < min_order or (max_order is not None and len(shape) > max_order):
        allowed = f"{min_order}" if max_order == min_order else f">= {min_order}"
        raise ValueError(f"shape must have {allowed} dimensions, got {len(shape)} ({shape})")
    return shape


def validated_indices(indices, shape: tuple[int, ...]) -> np.ndarray:
    """``indices`` as an ``int64`` array ``(k, len(shape))`` of 0-based positions inside
    ``shape``, no two equal (``ValueError`` naming the field otherwise)."""
    order = len(shape)
    try:
        raw = np.asarray(indices)
    except (ValueError, TypeError, OverflowError) as exc:
        raise ValueError(f"indices must be an integer array of shape (k, {order}): {exc}") \
            from exc
    if raw.size == 0:
        raise ValueError("indices must name at least one observed entry")
    if raw.ndim == 1 and raw.size == order:
        raw = raw[None, :]
    if raw.ndim != 2 or raw.shape[1] != order:
        raise ValueError(f"indices must have shape (k, {order}), got {raw.shape}")
    # Python integers beyond int64 come as objects: range-checked as they are
    big = raw.dtype.kind == "O" and all(isinstance(i, int) and not isinstance(i, bool)
                                        for i in raw.flat)
    if raw.dtype.kind not in "iuf" and not big:
        raise ValueError(f"indices must be integers, got {raw.dtype} entries")
    if raw.dtype.kind == "f" and not np.all(np.isfinite(raw) & (np.mod(raw, 1) == 0)):
        raise ValueError("indices must be integers (whole numbers), got non-integer entries")
    upper = np.asarray(shape)
    bad = np.any((raw < 0) | (raw >= upper), axis=1)
    if bad.any():
        raise ValueError(f"indices out of range for shape {shape} (0-based, 0 <= i_k < "
                         f"shape[k]): {raw[bad][:5].tolist()}")
    out = raw.astype(np.int64)
    uniq, counts = np.unique(out, axis=0, return_counts=True)
    if (counts > 1).any():
        raise ValueError(f"indices contain duplicates: {uniq[counts > 1][:5].tolist()}")
    return out


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
        indices = validated_indices(self.indices, shape)
        try:
            raw = np.asarray(self.values)
        except (ValueError, TypeError, OverflowError) as exc:
            raise ValueError(f"values must be an array of real numbers: {exc}") from exc
        if raw.dtype.kind not in "iuf":
            raise ValueError(f"values must be real numbers, got {raw.dtype} entries")
        if raw.ndim != 1:  # a 2-d array is a mistake (a matrix for a list), not a list
            raise ValueError(f"values must be a 1-d list of numbers, one per index, got an "
                             f"array of shape {raw.shape}")
        values = raw.astype(np.float64)
        if values.shape[0] != indices.shape[0]:
            raise ValueError(
                f"values must have one entry per index: {values.shape[0]} values for "
                f"{indices.shape[0]} indices"
            )
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
        """The problem a :meth:`to_dict` describes (``ValueError`` naming what is wrong)."""
        kinds = {c.__name__: c for c in (MatrixCompletion, TensorCompletion)}
        if not isinstance(data, dict) or data.get("kind") not in kinds:
            kind = data.get("kind") if isinstance(data, dict) else data
            raise ValueError(f"kind must be one of {sorted(kinds)}, got {kind!r}")
        missing = sorted({"shape", "indices", "values"} - set(data))
        if missing:
            raise ValueError(f"a {data['kind']} needs {missing}")
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
    values = [check_real(name, b) for name, b in (("b12", b12), ("b21", b21), ("b22", b22))]
    return MatrixCompletion((2, 2), [(0, 1), (1, 0), (1, 1)], values)


def paper_problem() -> MatrixCompletion:
    """Eq. (6): the 2x2 problem, observed b12 = 1, b21 = 1, b22 = 0 (1-based), W11 unobserved."""
    return perturbed_problem(1.0, 1.0, 0.0)


def padded_problem(d: int, d2: int) -> MatrixCompletion:
    """Appendix E construction: every entry but (1, 1) observed, b12 = b21 = 1,
    b_ii = 1 for 3 <= i <= min(d, d2), every other observed entry 0 (1-based)."""
    d, d2 = check_integer("d", d, minimum=2), check_integer("d2", d2, minimum=2)
    target = np.zeros((d, d2))
    target[0, 1] = target[1, 0] = 1.0
    for i in range(2, min(d, d2)):
        target[i, i] = 1.0
    indices = [(i, j) for i in range(d) for j in range(d2) if (i, j) != (0, 0)]
    return MatrixCompletion((d, d2), indices, [target[i, j] for i, j in indices])


def det_sign_decides(problem: EntryCompletion) -> bool:
    """Whether the sign of ``det W`` decides where the flow goes on this problem, so that
    a change of that sign by rounding changes the answer: Theorem 1's regime, the 2x2
    problems (Eq. 6 and its perturbations) and the d x d' extension of Appendix E (every
    entry observed but (1, 1), 1-based). On other problems (a general completion, say a
    100x100 one) ``det W`` is a product of many singular values, some of them far below
    the scale of ``W`` from a random start, and its sign is not what is asked about."""
    if len(problem.shape) != 2:
        return False
    if tuple(problem.shape) == (2, 2):
        return True
    mask = np.asarray(problem.mask, dtype=bool)
    return (not mask[0, 0]) and int(mask.sum()) == mask.size - 1


def low_rank_completion(shape, rank: int, n_observed: int, seed: int = 0
                        ) -> tuple[MatrixCompletion, np.ndarray]:
    """The matrix completion protocol of the deep matrix factorization literature (Arora,
    Cohen, Hu & Luo 2019: 100x100, rank 5, 2,000-5,000 observed entries): a random rank-
    ``rank`` ground truth ``W* = U V^T`` (``U``, ``V`` i.i.d. ``N(0, 1)``) rescaled so that
    its entries have unit root-mean-square (``||W*||_F = sqrt(d d2)``), and ``n_observed``
    of its entries observed, drawn uniformly without replacement (seeded).

    **Returns:** ``(problem, truth)``.
    """
    d, d2 = validated_shape(shape, min_order=2, max_order=2)
    if isinstance(rank, bool) or int(rank) != rank or not 1 <= rank <= min(d, d2):
        raise ValueError(f"rank must be an integer in [1, min(d, d2) = {min(d, d2)}], "
                         f"got {rank!r}")
    if isinstance(n_observed, bool) or int(n_observed) != n_observed \
            or not 1 <= n_observed <= d * d2:
        raise ValueError(f"n_observed must be an integer in [1, {d * d2}], got {n_observed!r}")
    seed = check_integer("seed", seed, minimum=0)
    truth_rng, order_rng = (np.random.default_rng(s)
                            for s in np.random.SeedSequence(seed).spawn(2))
    truth = truth_rng.standard_normal((d, int(rank))) @ truth_rng.standard_normal((int(rank), d2))
    truth *= np.sqrt(d * d2) / np.linalg.norm(truth)
    flat = order_rng.choice(d * d2, size=int(n_observed), replace=False)
    indices = np.stack(np.unravel_index(flat, (d, d2)), axis=1)
    return MatrixCompletion((d, d2), indices, truth[tuple(indices.T)]), truth
