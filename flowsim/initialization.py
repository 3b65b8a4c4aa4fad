"""Initializations (seeded, float64, numpy): :class:`DeepMatrixFactorization` (balanced,
Gaussian, identity) and :class:`CPFactorization` (Gaussian factors, App. F.2).

Every initializer takes ``det_sign`` in ``{None, +1, -1}``. When given, the product
matrix's determinant has that sign for every kind of initialization: if a draw has the
other sign, the first row of the last layer ``W_L`` is negated. That is a reflection
applied on the left of ``W_L``, so it keeps ``W_L^T W_L`` (hence balancedness, Eq. 5)
and, for distributions symmetric under that reflection (all the Gaussian ones here),
it samples exactly the conditional distribution given the sign.
"""

from __future__ import annotations

import numpy as np

from .parameterization import CPFactorization, DeepMatrixFactorization, Factors, Params, product
from .problem import check_integer, check_real


def _rng(seed) -> np.random.Generator:
    return np.random.default_rng(check_integer("seed", seed, minimum=0))


def _check_det_sign(model: DeepMatrixFactorization, det_sign):
    if not isinstance(model, DeepMatrixFactorization):
        raise TypeError(f"model must be a DeepMatrixFactorization, got {type(model).__name__}")
    if det_sign is None:
        return None
    if isinstance(det_sign, (bool, np.bool_)) or not isinstance(det_sign, (int, np.integer)) \
            or det_sign not in (1, -1):
        raise ValueError(f"det_sign must be +1, -1 or None, got {det_sign!r}")
    if model.shape[0] != model.shape[1]:
        raise ValueError(f"det_sign needs a square product matrix, got shape {model.shape}")
    return int(det_sign)


def _impose_det_sign(params: list[np.ndarray], det_sign) -> tuple[np.ndarray, ...]:
    if det_sign is not None:
        sign = np.sign(np.linalg.det(product(params)))
        if sign == 0:
            raise ValueError("the initial product matrix is singular (det W = 0, e.g. from "
                             "scale 0): det_sign cannot be imposed")
        if sign != det_sign:
            params[-1] = params[-1].copy()
            params[-1][0, :] *= -1.0
    return tuple(params)


def _pad(block: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    out = np.zeros(shape)
    out[: block.shape[0], : block.shape[1]] = block
    return out


def factors_from_product(model: DeepMatrixFactorization, w: np.ndarray) -> Params:
    """Exactly balanced factors whose product is ``w``, from its SVD ``w = U S V^T``:
    ``W_1 = S^{1/L} V^T``, hidden layers ``S^{1/L}``, ``W_L = U S^{1/L}`` (zero-padded to the
    hidden widths). Balancedness (Eq. 5) holds with every ``W_{l+1}^T W_{l+1} = W_l W_l^T =
    S^{2/L}`` padded."""
    raw = np.asarray(w)
    if raw.dtype.kind not in "iuf":
        raise ValueError(f"w must hold real numbers, got {raw.dtype} entries")
    w = raw.astype(np.float64)
    if w.shape != model.shape:
        raise ValueError(f"w must have shape {model.shape}, got {w.shape}")
    if not np.all(np.isfinite(w)):
        raise ValueError("w must be finite (no NaN or inf)")
    u, s, vt = np.linalg.svd(w, full_matrices=False)
    root = np.diag(s ** (1.0 / model.depth))
    shapes = model.layer_shapes
    if model.depth == 1:
        return (w.copy(),)
    layers = [_pad(root @ vt, shapes[0])]
    layers += [_pad(root, s_) for s_ in shapes[1:-1]]
    layers.append(_pad(u @ root, shapes[-1]))
    return tuple(layers)


def balanced_init(model: DeepMatrixFactorization, seed: int = 0, scale: float = 1e-3,
                  det_sign: int | None = None) -> Params:
    """Balanced initialization (Eq. 5), as in the paper's experiments (App. F.1).

    The product matrix is drawn as ``scale * N(0, 1)`` entrywise; the factors come from
    its SVD (:func:`factors_from_product`), so ``W_L ... W_1`` equals that draw (then the
    det-sign reflection) and the factors are exactly balanced. ``scale`` is the scale of
    the *product* matrix.
    """
    scale = check_real("scale", scale, minimum=0)
    det_sign = _check_det_sign(model, det_sign)
    w = scale * _rng(seed).standard_normal(model.shape)
    return _impose_det_sign(list(factors_from_product(model, w)), det_sign)


def gaussian_init(model: DeepMatrixFactorization, seed: int = 0, std: float = 1e-3,
                  det_sign: int | None = None) -> Params:
    """Layer-wise independent Gaussian initialization, entries ``N(0, std^2)`` (unbalanced)."""
    std = check_real("std", std, minimum=0)
    det_sign = _check_det_sign(model, det_sign)
    rng = _rng(seed)
    layers = [std * rng.standard_normal(s) for s in model.layer_shapes]
    return _impose_det_sign(layers, det_sign)


def identity_init(model: DeepMatrixFactorization, scale: float = 1e-3,
                  det_sign: int | None = None) -> Params:
    """Scaled identity: product ``scale * I`` (zero-padded), each layer ``scale^{1/L} I``;
    exactly balanced. ``det_sign = -1`` reflects the first row of ``W_L``."""
    scale = check_real("scale", scale, minimum=0)
    det_sign = _check_det_sign(model, det_sign)
    root = scale ** (1.0 / model.depth)
    layers = [root * np.eye(*s) for s in model.layer_shapes]
    return _impose_det_sign(layers, det_sign)


def cp_gaussian_init(model: CPFactorization, seed: int = 0, std: float = 1e-3) -> Factors:
    """Factor entries i.i.d. ``N(0, std^2)``, seeded (App. F.2 uses std 1e-2 and 1e-3)."""
    if not isinstance(model, CPFactorization):
        raise TypeError(f"model must be a CPFactorization, got {type(model).__name__}")
    std = check_real("std", std, minimum=0)
    rng = _rng(seed)
    return tuple(std * rng.standard_normal(s) for s in model.param_shapes)
