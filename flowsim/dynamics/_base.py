"""The coordinate interface shared by every formulation of the flow.

A *coordinate system* represents the state of gradient flow as one flat float64 vector
``y`` and knows how to build it from factors, how to move it (the vector field), and how
to read the product matrix, the loss and a sign-safe determinant back from it. The
integrators (:mod:`flowsim.integration`) only ever talk to this interface, so every
formulation returns the same :class:`~flowsim.trajectory.Trajectory` with the same
metrics.
"""

from __future__ import annotations

import abc
from dataclasses import dataclass

import jax
import jax.numpy as jnp
import numpy as np

from ..parameterization import DeepMatrixFactorization, Params


@dataclass(frozen=True)
class Coordinates(abc.ABC):
    """One formulation of gradient flow on ``model`` (hashable: it is a static jit key)."""

    model: DeepMatrixFactorization
    name = "abstract"

    @abc.abstractmethod
    def from_factors(self, params: Params) -> np.ndarray:
        """Flat state vector for the factors ``(W_1, ..., W_L)`` (validated by the caller)."""

    @abc.abstractmethod
    def vector_field(self, y, mask, target):
        """``dy/dt`` of gradient flow (Eq. 4, or its equivalent form in these coordinates)."""

    @abc.abstractmethod
    def product(self, y):
        """The product matrix ``W = W_L ... W_1`` represented by ``y``."""

    def rechart(self, y) -> np.ndarray:
        """The same point, in the chart of these coordinates best suited to it (numpy, any
        leading axes). Integrators call it between chunks of steps; coordinates with a
        single chart return ``y`` unchanged."""
        return y

    def factors(self, y) -> Params | None:
        """The factors, when these coordinates carry them (``None`` otherwise)."""
        return None

    def slogdet(self, y):
        """``(sign det W, log|det W|)`` computed from the coordinates themselves; for a
        non-square product ``(nan, nan)``."""
        w = self.product(y)
        if w.shape[0] != w.shape[1]:
            return jnp.nan, jnp.nan
        return jnp.linalg.slogdet(w)

    def loss(self, y, mask, target):
        r = mask * (self.product(y) - target)
        return 0.5 * jnp.sum(r * r)

    def loss_rate(self, y, mask, target):
        """``d loss / dt`` along the flow: ``<grad_y loss, dy/dt>``."""
        f = self.vector_field(y, mask, target)
        return jax.jvp(lambda z: self.loss(z, mask, target), (y,), (f,))[1]

    def observables(self, y, mask, target):
        """Per-point quantities saved in a Trajectory."""
        sign, logabs = self.slogdet(y)
        return {"loss": self.loss(y, mask, target), "product": self.product(y),
                "det_sign": sign, "log_abs_det": logabs}
