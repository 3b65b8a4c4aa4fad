"""Gradient descent on a CP factorization with the reference's adaptive global step (App. F.2).

The discrete counterpart of the CP flow (:class:`flowsim.dynamics.FactorCoordinates` of a CP model),
run by the generic engine :func:`flowsim.descend` (through
:func:`flowsim.descent.descend_trajectory`) on the same factors, so the saved
observables are the flow's own code.

**Loss convention.** flowsim's loss is ``l = 1/2 * sum over observed entries of
(W - B)^2`` (Eq. 1). The reference minimizes the mean squared error over the ``n``
observed entries, ``MSE = 2 l / n``, and stops at ``MSE < 1e-6``. The adaptive step
``eta_k = lr / (sqrt(v_k / (1 - beta^k)) + eps)`` is invariant to rescaling the loss
*except through eps*, so to follow the reference's iterates this descends on the MSE
itself; `stop_mse` is on the MSE, i.e. ``stop_loss = stop_mse * n / 2`` in flowsim's
units. The returned :class:`~flowsim.Trajectory` is in flowsim's units throughout: its
``loss`` is ``l`` and its ``t`` is the time of the flow of ``l`` that the iterates stand
for (``sum_k eta_k * 2 / n``, since ``grad MSE = (2 / n) grad l``), so it can be
compared with :func:`flowsim.gradient_flow` directly.
"""

from __future__ import annotations

from dataclasses import dataclass

import jax.numpy as jnp
import numpy as np

from ..descent import FactorLoss, descend_trajectory, descent_config
from ..dynamics import FactorCoordinates
from ..parameterization import CPFactorization, Factors
from ..problem import TensorCompletion, check_problem_and_model
from ..trajectory import Trajectory


def mse_to_loss(mse: float, n_observed: int) -> float:
    """flowsim's loss ``l = 1/2 SSE`` at mean squared error ``mse`` over ``n_observed``."""
    return float(mse) * int(n_observed) / 2.0


@dataclass(frozen=True)
class MeanSquaredError:
    """``MSE = 2 l / n``, the reference's training loss, as a hashable loss function of
    the CP factors (one compiled descent loop per model)."""

    model: CPFactorization

    def __call__(self, params, mask, target):
        return 2.0 * FactorLoss(self.model)(params, mask, target) / jnp.sum(mask)


def cp_gradient_descent(problem: TensorCompletion, model: CPFactorization, params: Factors, *,
                        lr: float = 1e-2, step_rule: str = "adaptive", beta: float = 0.99,
                        eps: float = 1e-6, stop_mse: float | None = 1e-6,
                        max_iterations: int = 1_000_000, dtype="float64",
                        saves_per_decade: float = 20, progress: bool | None = None
                        ) -> Trajectory:
    """Gradient descent on the CP factors of App. F.2: full batch, the MSE loss, and (by
    default) the adaptive global step with ``lr = 1e-2, beta = 0.99, eps = 1e-6``.

    **Arguments:** `problem`, `model`, `params` as for :func:`flowsim.gradient_flow`;
    `stop_mse`: stop at the first iterate whose MSE over the observations is
    ``<= stop_mse`` (the reference checks every 100 iterations and needs 3 checks in a
    row, which overshoots; see the module doc); the rest as for :func:`flowsim.descend`.

    **Returns:** a :class:`~flowsim.Trajectory` (``steps`` = iterations; ``loss`` and
    ``t`` in flowsim's units, see the module doc).
    """
    check_problem_and_model(problem, model, TensorCompletion, CPFactorization)
    params = model.check_params(params)
    coords = FactorCoordinates(model)
    y0 = coords.from_factors(params)
    config = descent_config("cp_gradient_descent", problem, model, coords, y0, lr=lr,
                            step_rule=step_rule, beta=beta, eps=eps,
                            dtype=np.dtype(dtype).name, limit=("stop_mse", stop_mse),
                            max_iterations=max_iterations)
    # descend on the MSE = (2 / n) l; t is then rescaled to the time of the flow of l
    return descend_trajectory(coords, problem, params, config=config,
                              loss_fn=MeanSquaredError(model),
                              time_scale=2.0 / problem.n_observed, lr=lr, step_rule=step_rule,
                              beta=beta, eps=eps, stop_loss=stop_mse,
                              max_iterations=max_iterations, dtype=dtype,
                              saves_per_decade=saves_per_decade, progress=progress)
