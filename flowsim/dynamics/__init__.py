"""Dynamics: gradient flow written in several coordinate systems (one module each).

- ``"factors"``: Eq. (4) on the factors (:mod:`.factors`); any initialization.
"""

from __future__ import annotations

from ..parameterization import DeepMatrixFactorization
from ._base import Coordinates
from .factors import FactorCoordinates, factor_gradients

COORDINATES: dict[str, type[Coordinates]] = {
    FactorCoordinates.name: FactorCoordinates,
}


def make_coordinates(name: str, model: DeepMatrixFactorization) -> Coordinates:
    """The coordinate system called ``name`` for ``model``."""
    if name not in COORDINATES:
        raise ValueError(f"coordinates must be one of {sorted(COORDINATES)}, got {name!r}")
    return COORDINATES[name](model)


__all__ = ["COORDINATES", "Coordinates", "FactorCoordinates", "factor_gradients",
           "make_coordinates"]
