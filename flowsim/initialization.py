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

import math

import numpy as np

from .parameterization import CPFactorization, DeepMatrixFactorization, Factors, Params, product


def _check_positive(name: str, value) -> float:
    value = float(value)
    if not np.isfinite(value) or value < 0:
        raise ValueError(f"{name} must be a finite number >= 0, got {value!r}")
    return value


def _check_det_sign(model: DeepMatrixFactorization, det_sign):
    if det_sign is None:
        return None
    if det_sign not in (1, -1):
        raise ValueError(f"det_sign must be +1, -1 or None, got {det_sign!r}")
    if model.shape[0] != model.shape[1]:
        raise ValueError(f"det_sign needs a square product matrix, got shape {model.shape}")
    return int(det_sign)


def _impose_det_sign(params: list[np.ndarray], det_sign) -> tuple[np.ndarray, ...]:
    if det_sign is not None:
        sign = np.sign(np.linalg.det(product(params)))
        if sign == 0:
            raise ValueError("initial product matrix is singular: det_sign cannot be imposed")
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
    w = np.asarray(w, dtype=np.float64)
    if w.shape != model.shape:
        raise ValueError(f"w must have shape {model.shape}, got {w.shape}")
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
    scale = _check_positive("scale", scale)
    det_sign = _check_det_sign(model, det_sign)
    w = scale * np.random.default_rng(seed).standard_normal(model.shape)
    return _impose_det_sign(list(factors_from_product(model, w)), det_sign)


def gaussian_init(model: DeepMatrixFactorization, seed: int = 0, std: float = 1e-3,
                  det_sign: int | None = None) -> Params:
    """Layer-wise independent Gaussian initialization, entries ``N(0, std^2)`` (unbalanced)."""
    std = _check_positive("std", std)
    det_sign = _check_det_sign(model, det_sign)
    rng = np.random.default_rng(seed)
    layers = [std * rng.standard_normal(s) for s in model.layer_shapes]
    return _impose_det_sign(layers, det_sign)


def identity_init(model: DeepMatrixFactorization, scale: float = 1e-3,
                  det_sign: int | None = None) -> Params:
    """Scaled identity: product ``scale * I`` (zero-padded), each layer ``scale^{1/L} I``;
    exactly balanced. ``det_sign = -1`` reflects the first row of ``W_L``."""
    scale = _check_positive("scale", scale)
    det_sign = _check_det_sign(model, det_sign)
    root = scale ** (1.0 / model.depth)
    layers = [root * np.eye(*s) for s in model.layer_shapes]
    return _impose_det_sign(layers, det_sign)


def cp_gaussian_init(model: CPFactorization, seed: int = 0, std: float = 1e-3) -> Factors:
    """Factor entries i.i.d. ``N(0, std^2)``, seeded (App. F.2 uses std 1e-2 and 1e-3)."""
    if not isinstance(model, CPFactorization):
        raise TypeError(f"model must be a CPFactorization, got {type(model).__name__}")
    std = float(std)
    if not (std >= 0 and math.isfinite(std)):
        raise ValueError(f"std must be a finite number >= 0, got {std!r}")
    rng = np.random.default_rng(seed)
    return tuple(std * rng.standard_normal(s) for s in model.param_shapes)
