"""Problems: what is observed of a matrix or tensor, and the loss it defines (Eq. 1).

- Completion (:class:`MatrixCompletion`, :class:`TensorCompletion`): entries
  ``X[idx] = b`` are observed; the loss is ``1/2 * sum over observed entries of
  (X[idx] - b)^2``, where ``X`` is the matrix (or tensor) produced by a parameterization.
- Sensing (:class:`MatrixSensing`): linear measurements ``y_i = <A_i, W>`` (``<A, W> =
  sum_jk A_jk W_jk``); the loss is ``1/2 * sum_i (<A_i, W> - y_i)^2``. Completion is the
  special case where every ``A_i`` is an indicator ``e_j e_k^T``.

Every problem hands the integrators the same two arrays, ``mask`` and ``target``: for
completion the 0/1 mask of observed entries and the observed values in place (both of
``W``'s shape); for sensing the stacked measurement matrices ``(m, d, d2)`` and the
measurements ``(m,)``. :func:`observation_loss` and :func:`loss_gradient` read either pair
(which one is decided by the arrays' shapes when a program is traced, so a completion
run compiles to exactly the program it always did).

Indices in code are 0-based; the paper's entry (i, j) is ``(i - 1, j - 1)`` here.
"""

from __future__ import annotations

import hashlib
import math
import operator
from dataclasses import dataclass, field
from typing import ClassVar

import jax
import jax.numpy as jnp
import numpy as np
from jax.custom_derivatives import SymbolicZero

from .runtime import check_fits


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


def validated_values(values, count: int, each: str, counted: str) -> np.ndarray:
    """``values`` as a float64 array of ``count`` finite real numbers, one per ``each``
    (an index, a measurement); else ``ValueError`` naming the field (``counted`` names
    what ``count`` counts in the message)."""
    try:
        raw = np.asarray(values)
    except (ValueError, TypeError, OverflowError) as exc:
        raise ValueError(f"values must be an array of real numbers: {exc}") from exc
    if raw.dtype.kind not in "iuf":
        raise ValueError(f"values must be real numbers, got {raw.dtype} entries")
    if raw.ndim != 1:  # a 2-d array is a mistake (a matrix for a list), not a list
        raise ValueError(f"values must be a 1-d list of numbers, one per {each}, got an "
                         f"array of shape {raw.shape}")
    out = raw.astype(np.float64)
    if out.shape[0] != count:
        raise ValueError(f"values must have one entry per {each}: {out.shape[0]} values "
                         f"for {count} {counted}")
    if not np.all(np.isfinite(out)):
        raise ValueError("values must be finite (no NaN or inf)")
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
        values = validated_values(self.values, indices.shape[0], "index", "indices")
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
        return loss_gradient(x, self.mask, self.target)

    def loss(self, x):
        """Eq. (1): ``1/2 * sum over observed entries of (x - b)^2``; batched over leading axes."""
        return observation_loss(x, self.mask, self.target)

    def to_dict(self) -> dict:
        return {"kind": type(self).__name__, "shape": list(self.shape),
                "indices": self.indices.tolist(), "values": self.values.tolist()}

    @classmethod
    def from_dict(cls, data: dict):
        """The problem a ``to_dict`` describes, completion or sensing (``ValueError`` naming
        what is wrong): :func:`problem_from_dict`."""
        return problem_from_dict(data)


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


def is_sensing(mask, target) -> bool:
    """Whether ``(mask, target)`` are a sensing problem's measurement matrices ``(m, d, d2)``
    and measurements ``(m,)`` rather than a completion's mask and values (equal shapes)."""
    return jnp.shape(mask) != jnp.shape(target)


def measurements(x, operators):
    """``<A_i, x>`` for every measurement matrix ``A_i`` of ``operators`` ``(m, d, d2)``;
    batched over the leading axes of ``x`` (result ``(..., m)``)."""
    flat = operators.reshape(operators.shape[0], -1)
    if jnp.ndim(x) == 2:
        return flat @ x.reshape(-1)
    return (flat @ x.reshape(-1, flat.shape[1]).T).T.reshape(*jnp.shape(x)[:-2], -1)


def adjoint_measurements(r, operators):
    """``sum_i r_i A_i`` (the adjoint of :func:`measurements` at one ``r`` ``(m,)``),
    written as ``r @ A`` on the flattened operators: XLA's CPU matvec with the stored
    ``(m, d d2)`` array transposed (``A^T r``, or ``jnp.tensordot``) is several times
    slower (docs/numerics.md, "Matrix sensing: the cost of an evaluation")."""
    flat = operators.reshape(operators.shape[0], -1)
    return (r @ flat).reshape(operators.shape[1:])


@jax.custom_jvp
def sensing_loss(x, operators, values):
    """``1/2 sum_i (<A_i, x> - y_i)^2`` for one ``x``, with a derivative rule that forms
    the gradient as :func:`adjoint_measurements` (so jax's reverse mode, which transposes
    the rule, never transposes the operators)."""
    r = measurements(x, operators) - values
    return 0.5 * jnp.sum(r * r)


def _sensing_loss_jvp(primals, tangents):
    """The tangent ``<grad, dx> + <r, A'(x) - y'>``, each term only where its tangent is
    not a symbolic zero (the usual case differentiates in ``x`` alone: no product with a
    zero ``(m, d, d2)`` array is formed)."""
    x, operators, values = primals
    dx, d_ops, d_values = tangents
    r = measurements(x, operators) - values
    tangent = jnp.zeros_like(r[0])
    if not isinstance(dx, SymbolicZero):
        tangent = tangent + jnp.sum(adjoint_measurements(r, operators) * dx)
    if not isinstance(d_ops, SymbolicZero):
        tangent = tangent + jnp.sum(r * measurements(x, d_ops))
    if not isinstance(d_values, SymbolicZero):
        tangent = tangent - jnp.sum(r * d_values)
    return 0.5 * jnp.sum(r * r), tangent


sensing_loss.defjvp(_sensing_loss_jvp, symbolic_zeros=True)


def observation_residual(x, mask, target):
    """What the loss squares: ``mask * (x - target)`` for completion (``x``'s shape),
    ``<A_i, x> - y_i`` for sensing (``(..., m)``)."""
    if is_sensing(mask, target):
        return measurements(x, mask) - target
    return mask * (x - target)


def observation_loss(x, mask, target):
    """The loss ``1/2 * sum r^2`` of the residual :func:`observation_residual`, batched over
    the leading axes of ``x`` (Eq. 1 for completion; ``1/2 sum_i (<A_i, x> - y_i)^2`` for
    sensing)."""
    if is_sensing(mask, target) and jnp.ndim(x) == 2:
        return sensing_loss(x, mask, target)
    r = observation_residual(x, mask, target)
    axes = -1 if is_sensing(mask, target) else tuple(range(-jnp.ndim(target), 0))
    return 0.5 * jnp.sum(r * r, axis=axes)


def loss_gradient(x, mask, target):
    """The gradient of :func:`observation_loss` with respect to ``x`` (one ``x``, not a
    batch): ``mask * (x - target)`` for completion, ``sum_i (<A_i, x> - y_i) A_i`` for
    sensing."""
    r = observation_residual(x, mask, target)
    if is_sensing(mask, target):
        return adjoint_measurements(r, mask)
    return r


def _operators_bytes(m: int, shape: tuple[int, ...]) -> int:
    return int(m) * math.prod(shape) * 8


@dataclass(frozen=True, eq=False)
class MatrixSensing:
    """Matrix sensing: linear measurements ``y_i = <A_i, W> = sum_jk (A_i)_jk W_jk`` of a
    ``d x d2`` matrix, ``i = 0 .. m-1``; the loss is ``1/2 * sum_i (<A_i, W> - y_i)^2``.

    **Arguments:**

    - `shape`: ``(d, d2)``.
    - `operators`: the measurement matrices, a real array ``(m, d, d2)`` (a single
      ``(d, d2)`` matrix is one measurement).
    - `values`: the measurements ``y``, ``(m,)``.
    - `recipe`: how the operators were drawn, where a function of flowsim drew them
      (:func:`gaussian_operators`); files then store the recipe and a digest of the
      operators instead of the operators themselves.

    Raises `ValueError` naming the field for operators of the wrong shape, non-finite
    operators or values, or a length mismatch. Completion is the special case of
    indicator operators: :meth:`from_completion`.
    """

    shape: tuple[int, ...]
    operators: np.ndarray
    values: np.ndarray
    recipe: dict | None = None

    def __post_init__(self):
        shape = validated_shape(self.shape, min_order=2, max_order=2)
        try:
            raw = np.asarray(self.operators)
        except (ValueError, TypeError, OverflowError) as exc:
            raise ValueError(f"operators must be an array of shape (m, {shape[0]}, "
                             f"{shape[1]}): {exc}") from exc
        if raw.dtype.kind not in "iuf":
            raise ValueError(f"operators must be real numbers, got {raw.dtype} entries")
        if raw.ndim == 2:
            raw = raw[None]
        if raw.ndim != 3 or raw.shape[1:] != shape or raw.shape[0] == 0:
            raise ValueError(f"operators must have shape (m, {shape[0]}, {shape[1]}) with "
                             f"m >= 1 (one {shape[0]}x{shape[1]} matrix per measurement), "
                             f"got {raw.shape}")
        check_fits(f"{raw.shape[0]} measurement matrices {shape[0]}x{shape[1]}",
                   _operators_bytes(raw.shape[0], shape))
        operators = raw.astype(np.float64)
        if not np.all(np.isfinite(operators)):
            raise ValueError("operators must be finite (no NaN or inf)")
        values = validated_values(self.values, operators.shape[0], "measurement",
                                  "operators")
        if self.recipe is not None and not isinstance(self.recipe, dict):
            raise ValueError(f"recipe must be a dict or None, got {self.recipe!r}")
        object.__setattr__(self, "shape", shape)
        object.__setattr__(self, "operators", _readonly(operators))
        object.__setattr__(self, "values", _readonly(values))

    @property
    def mask(self) -> np.ndarray:
        """The measurement matrices, as the integrators read them (module doc)."""
        return self.operators

    @property
    def target(self) -> np.ndarray:
        """The measurements, as the integrators read them (module doc)."""
        return self.values

    @property
    def n_observed(self) -> int:
        """The number of measurements ``m``."""
        return int(self.operators.shape[0])

    @property
    def symmetric(self) -> bool:
        """Whether every measurement matrix is symmetric (square problems only)."""
        ops = self.operators
        return ops.shape[1] == ops.shape[2] and bool(
            np.array_equal(ops, np.swapaxes(ops, 1, 2)))

    def measure(self, x):
        """``<A_i, x>`` for every measurement; batched over leading axes."""
        return measurements(x, self.operators)

    def residual(self, x):
        """``sum_i (<A_i, x> - y_i) A_i``: the gradient of the loss with respect to ``x``."""
        return loss_gradient(x, self.operators, self.values)

    def loss(self, x):
        """``1/2 * sum_i (<A_i, x> - y_i)^2``; batched over leading axes."""
        return observation_loss(x, self.operators, self.values)

    def digest(self) -> str:
        """SHA-256 of the operators' float64 bytes (what a file checks a recipe against)."""
        return hashlib.sha256(np.ascontiguousarray(self.operators).tobytes()).hexdigest()

    def to_dict(self) -> dict:
        out = {"kind": type(self).__name__, "shape": list(self.shape),
               "values": self.values.tolist()}
        if self.recipe is not None:
            out["operators"] = {"recipe": dict(self.recipe), "sha256": self.digest()}
        else:
            out["operators"] = self.operators.tolist()
        return out

    @classmethod
    def from_completion(cls, problem: EntryCompletion) -> MatrixSensing:
        """The completion problem as sensing with indicator operators ``e_j e_k^T``."""
        if not isinstance(problem, MatrixCompletion):
            raise TypeError(f"problem must be a MatrixCompletion, got "
                            f"{type(problem).__name__}")
        check_fits("indicator operators", _operators_bytes(problem.n_observed, problem.shape))
        ops = np.zeros((problem.n_observed, *problem.shape))
        ops[(np.arange(problem.n_observed), *problem.indices.T)] = 1.0
        return cls(problem.shape, ops, problem.values)


def gaussian_operators(shape, n_measurements: int, seed: int = 0) -> np.ndarray:
    """``n_measurements`` Gaussian measurement matrices ``(m, d, d2)``, entries i.i.d.
    ``N(0, 1/m)`` (the normalization under which ``sum_i <A_i, W>^2`` is ``||W||_F^2`` in
    expectation; Recht, Fazel & Parrilo 2010), drawn by numpy's PCG64 from ``seed``."""
    d, d2 = validated_shape(shape, min_order=2, max_order=2)
    m = check_integer("n_measurements", n_measurements, minimum=1)
    seed = check_integer("seed", seed, minimum=0)
    check_fits(f"{m} Gaussian {d}x{d2} measurement matrices", _operators_bytes(m, (d, d2)))
    rng = np.random.default_rng(np.random.SeedSequence(seed))
    return rng.standard_normal((m, d, d2)) / math.sqrt(m)


def gaussian_sensing(shape, n_measurements: int, truth, seed: int = 0) -> MatrixSensing:
    """Gaussian sensing of the matrix ``truth``: :func:`gaussian_operators` and the exact
    measurements ``y_i = <A_i, truth>``."""
    shape = validated_shape(shape, min_order=2, max_order=2)
    truth = np.asarray(truth, dtype=np.float64)
    if truth.shape != shape:
        raise ValueError(f"truth must have shape {shape}, got {truth.shape}")
    ops = gaussian_operators(shape, n_measurements, seed)
    return MatrixSensing(shape, ops, np.einsum("ijk,jk->i", ops, truth),
                         recipe={"gaussian": {"n_measurements": int(n_measurements),
                                              "seed": int(seed)}})


def low_rank_truth(shape, rank: int, seed: int = 0) -> np.ndarray:
    """The deep matrix factorization literature's ground truth: ``W* = U V^T`` (``U``,
    ``V`` i.i.d. ``N(0, 1)``, ``rank`` columns) rescaled to entries of unit root-mean-square
    (``||W*||_F = sqrt(d d2)``); the same matrix :func:`low_rank_completion` observes for
    the same seed."""
    d, d2 = validated_shape(shape, min_order=2, max_order=2)
    if isinstance(rank, bool) or int(rank) != rank or not 1 <= rank <= min(d, d2):
        raise ValueError(f"rank must be an integer in [1, min(d, d2) = {min(d, d2)}], "
                         f"got {rank!r}")
    seed = check_integer("seed", seed, minimum=0)
    truth_rng = np.random.default_rng(np.random.SeedSequence(seed).spawn(2)[0])
    truth = truth_rng.standard_normal((d, int(rank))) @ truth_rng.standard_normal((int(rank), d2))
    return truth * (np.sqrt(d * d2) / np.linalg.norm(truth))


def low_rank_sensing(shape, rank: int, n_measurements: int, seed: int = 0
                     ) -> tuple[MatrixSensing, np.ndarray]:
    """Gaussian sensing (:func:`gaussian_sensing`) of the ground truth
    :func:`low_rank_truth` (the operators drawn from ``seed``, the truth from the same
    seed's own stream). **Returns:** ``(problem, truth)``."""
    truth = low_rank_truth(shape, rank, seed)
    return gaussian_sensing(shape, n_measurements, truth, seed), truth


def problem_from_dict(data: dict):
    """The problem a ``to_dict`` describes (``ValueError`` naming what is wrong; sizes are
    checked before anything is allocated, and a recipe's operators against their digest)."""
    kinds = {c.__name__: c for c in (MatrixCompletion, TensorCompletion, MatrixSensing)}
    if not isinstance(data, dict) or data.get("kind") not in kinds:
        kind = data.get("kind") if isinstance(data, dict) else data
        raise ValueError(f"kind must be one of {sorted(kinds)}, got {kind!r}")
    needs = {"shape", "operators", "values"} if data["kind"] == "MatrixSensing" \
        else {"shape", "indices", "values"}
    missing = sorted(needs - set(data))
    if missing:
        raise ValueError(f"a {data['kind']} needs {missing}")
    if data["kind"] != "MatrixSensing":
        return kinds[data["kind"]](data["shape"], data["indices"], data["values"])
    shape = validated_shape(data["shape"], min_order=2, max_order=2)
    ops = data["operators"]
    if not isinstance(ops, dict):
        if not isinstance(ops, list):
            raise ValueError("operators must be a list of matrices or a recipe")
        return MatrixSensing(shape, ops, data["values"])
    recipe, digest = ops.get("recipe"), ops.get("sha256")
    gaussian = recipe.get("gaussian") if isinstance(recipe, dict) else None
    if not isinstance(gaussian, dict) or set(gaussian) != {"n_measurements", "seed"}:
        raise ValueError(f"operators recipe must be {{'gaussian': {{'n_measurements': m, "
                         f"'seed': s}}}}, got {recipe!r}")
    built = MatrixSensing(shape, gaussian_operators(shape, gaussian["n_measurements"],
                                                    gaussian["seed"]),
                          data["values"], recipe=recipe)
    if built.digest() != digest:
        raise ValueError("operators drawn from the recipe differ from those the file "
                         "recorded (sha256 mismatch): the file was altered, or numpy's "
                         "generator draws differently here")
    return built


MATRIX_PROBLEMS = (MatrixCompletion, MatrixSensing)


def class_names(classes) -> str:
    """``"A or B"`` for a class or a tuple of classes (what an error message allows)."""
    classes = classes if isinstance(classes, tuple) else (classes,)
    return " or ".join(c.__name__ for c in classes)


def check_problem_and_model(problem, model, problem_cls, model_cls: type) -> None:
    """Raise TypeError/ValueError naming the field unless ``problem`` is a ``problem_cls``
    (a class or a tuple of them), ``model`` a ``model_cls``, and their shapes are equal."""
    if not isinstance(problem, problem_cls):
        raise TypeError(f"problem must be a {class_names(problem_cls)}, got "
                        f"{type(problem).__name__}")
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
    if len(problem.shape) != 2 or not isinstance(problem, EntryCompletion):
        return False  # sensing: W is seen only through its measurements
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
    truth = low_rank_truth((d, d2), rank, seed)
    if isinstance(n_observed, bool) or int(n_observed) != n_observed \
            or not 1 <= n_observed <= d * d2:
        raise ValueError(f"n_observed must be an integer in [1, {d * d2}], got {n_observed!r}")
    order_rng = np.random.default_rng(np.random.SeedSequence(seed).spawn(2)[1])
    flat = order_rng.choice(d * d2, size=int(n_observed), replace=False)
    indices = np.stack(np.unravel_index(flat, (d, d2)), axis=1)
    return MatrixCompletion((d, d2), indices, truth[tuple(indices.T)]), truth
