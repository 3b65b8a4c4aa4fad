"""Dynamics: gradient flow written in several coordinate systems (one module each).

- ``"factors"``: Eq. (4) on the factors (:mod:`.factors`); any model, any initialization.
- ``"product"``: Lemma 4's end-to-end ODE on ``W`` (:mod:`.product`); deep matrix
  factorizations from balanced factors.
- ``"svd"``: Lemmas 4-5 in singular-value coordinates with ``log det W`` (:mod:`.svd`);
  2x2 products at depth >= 2 from balanced factors; keeps the sign of ``det W`` exactly.
- ``"auto"``: :func:`choose_coordinates` picks the most reliable of these for the model and
  the initial factors, and says why.

The dynamics depend only on the problem and the model (:mod:`flowsim.parameterization`).
"""

from __future__ import annotations

from ..parameterization import DeepMatrixFactorization, Factorization, Params
from ._base import Coordinates, observe_states
from .factors import FactorCoordinates, factor_gradients
from .product import (
    BALANCED_RTOL,
    ProductCoordinates,
    balance_defect,
    end_to_end_field,
    is_balanced,
)
from .svd import SVDCoordinates

COORDINATES: dict[str, type[Coordinates]] = {
    FactorCoordinates.name: FactorCoordinates,
    ProductCoordinates.name: ProductCoordinates,
    SVDCoordinates.name: SVDCoordinates,
}
AUTO = "auto"

#: largest number of entries of ``W`` for which "auto" takes product coordinates (each
#: evaluation of Lemma 4 takes an SVD of ``W`` and the implicit solver's Jacobian is
#: ``(d d2)^2``; beyond this the factor flow is cheaper and as reliable)
PRODUCT_MAX_ENTRIES = 64


def make_coordinates(name: str, model: Factorization) -> Coordinates:
    """The coordinate system called ``name`` for ``model`` (``ValueError`` naming the
    allowed names, or why ``model`` has no such coordinates)."""
    allowed = sorted(COORDINATES) if isinstance(model, DeepMatrixFactorization) \
        else [FactorCoordinates.name]
    if name not in allowed:
        raise ValueError(f"coordinates must be one of {allowed + [AUTO]} for a "
                         f"{type(model).__name__}, got {name!r}")
    return COORDINATES[name](model)


def choose_coordinates(model: Factorization, params: Params) -> tuple[str, str]:
    """``(name, reason)``: the most reliable coordinates valid for ``model`` and the
    initial factors ``params`` (what ``coordinates="auto"`` integrates).

    - a balanced 2x2 deep matrix factorization at depth >= 2 with ``det W(0) != 0``:
      ``"svd"`` (the sign of ``det W`` is exact; Theorem 1's regime down to any loss);
    - other balanced matrix factorizations at depth >= 2 with at most
      :data:`PRODUCT_MAX_ENTRIES` entries: ``"product"`` (one matrix instead of L layers;
      measured to keep the sign of det to lower losses than the factors);
    - everything else (unbalanced starts, depth 1, large matrices, CP tensors):
      ``"factors"``, the only formulation valid for every start.
    """
    if not isinstance(model, DeepMatrixFactorization):
        return FactorCoordinates.name, f"{type(model).__name__}: factor coordinates (Eq. 12)"
    if model.depth == 1:
        return FactorCoordinates.name, "depth 1 (the linear model): factor coordinates"
    if not is_balanced(model, params):
        return FactorCoordinates.name, (
            f"unbalanced start (max|W_(l+1)^T W_(l+1) - W_l W_l^T| = "
            f"{balance_defect(model, params):.2e} of max ||W_l||_F^2 > {BALANCED_RTOL:g}): "
            "factor coordinates, the only ones valid there")
    if tuple(model.shape) == (2, 2):
        try:
            SVDCoordinates(model).from_factors(params)
        except ValueError:
            pass
        else:
            return SVDCoordinates.name, ("balanced 2x2 start at depth >= 2: singular-value "
                                         "coordinates keep the sign of det W exactly")
    if model.shape[0] * model.shape[1] <= PRODUCT_MAX_ENTRIES:
        return ProductCoordinates.name, (
            f"balanced start, {model.shape[0]}x{model.shape[1]} at depth >= 2: the "
            "end-to-end ODE (Lemma 4) on W")
    return FactorCoordinates.name, (
        f"balanced start, {model.shape[0]}x{model.shape[1]} (more than "
        f"{PRODUCT_MAX_ENTRIES} entries): factor coordinates, the cheapest per step")


__all__ = ["AUTO", "BALANCED_RTOL", "COORDINATES", "Coordinates", "FactorCoordinates",
           "PRODUCT_MAX_ENTRIES", "ProductCoordinates", "SVDCoordinates", "balance_defect",
           "choose_coordinates", "end_to_end_field", "factor_gradients", "is_balanced",
           "make_coordinates", "observe_states"]
