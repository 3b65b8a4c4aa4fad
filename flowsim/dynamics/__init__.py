"""Dynamics: gradient flow written in several coordinate systems (one module each).

- ``"factors"``: Eq. (4) on the factors (:mod:`.factors`); any initialization.
- ``"product"``: Lemma 4's end-to-end ODE on ``W`` (:mod:`.product`); balanced inits only.
- ``"svd"``: Lemmas 4-5 in singular-value coordinates with ``log det W`` (:mod:`.svd`);
  2x2 products, balanced inits only; keeps the sign of ``det W`` by construction.
- CP tensor factorizations (Section 4.2): ``"factors"`` in :data:`CP_COORDINATES`
  (:mod:`.cp`), chosen by :func:`make_coordinates` from the model's type.
"""

from __future__ import annotations

from ..parameterization import DeepMatrixFactorization
from ..tensor.cp import CPFactorization
from ._base import Coordinates
from .cp import CPFactorCoordinates, cp_factor_gradients
from .factors import FactorCoordinates, factor_gradients
from .product import ProductCoordinates, end_to_end_field
from .svd import SVDCoordinates

COORDINATES: dict[str, type[Coordinates]] = {
    FactorCoordinates.name: FactorCoordinates,
    ProductCoordinates.name: ProductCoordinates,
    SVDCoordinates.name: SVDCoordinates,
}


#: coordinate systems of a CP tensor factorization (Section 4.2), :mod:`.cp`
CP_COORDINATES: dict[str, type[Coordinates]] = {
    CPFactorCoordinates.name: CPFactorCoordinates,
}


def make_coordinates(name: str, model: DeepMatrixFactorization | CPFactorization) -> Coordinates:
    """The coordinate system called ``name`` for ``model`` (a CP model takes its names from
    :data:`CP_COORDINATES`)."""
    table = CP_COORDINATES if isinstance(model, CPFactorization) else COORDINATES
    if name not in table:
        raise ValueError(f"coordinates must be one of {sorted(table)} for a "
                         f"{type(model).__name__}, got {name!r}")
    return table[name](model)


__all__ = ["COORDINATES", "Coordinates", "FactorCoordinates", "ProductCoordinates",
           "SVDCoordinates", "end_to_end_field", "factor_gradients", "make_coordinates",
           "CP_COORDINATES", "CPFactorCoordinates", "cp_factor_gradients"]
