"""Tensor completion with CP factorizations (Section 4.2, Eqs. 11-12, Figure 2).

The same pipeline as the matrix case: *problem* (:class:`flowsim.TensorCompletion`, with
ground truths and the memorizer baseline from :mod:`.truth`) -> *parameterization*
(:class:`flowsim.CPFactorization`) -> *dynamics* (factor coordinates) -> *integration*
(:func:`flowsim.gradient_flow`) or *descent* (:func:`cp_gradient_descent`, App. F.2's
adaptive step, on :func:`flowsim.descend`) -> :class:`flowsim.Trajectory` -> *metrics*
(:func:`cp_rank`, :mod:`.rank`). The Figure 2 experiment grid lives in
:mod:`flowsim.experiments.figure2`.
"""

from ..initialization import cp_gaussian_init
from ..parameterization import CPFactorization, cp_product, max_cp_rank
from .descent import cp_gradient_descent
from .rank import CPFit, cp_fit, cp_rank, reference_atol
from .truth import (
    CompletionDataset,
    cp_dataset,
    linear_baseline,
    observation_order,
    random_cp_tensor,
)

__all__ = [
    "CPFactorization", "CPFit", "CompletionDataset", "cp_dataset", "cp_fit",
    "cp_gaussian_init", "cp_gradient_descent", "cp_product", "cp_rank", "linear_baseline",
    "max_cp_rank", "observation_order", "random_cp_tensor", "reference_atol",
]
