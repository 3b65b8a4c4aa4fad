"""flowsim: exact gradient flow on deep matrix and tensor factorizations, and checks of
Razin & Cohen (NeurIPS 2020), "Implicit Regularization in Deep Learning May Not Be
Explainable by Norms".

Pipeline (one module each): problem -> parameterization -> initialization -> dynamics
-> integration -> trajectory -> metrics -> checks / plots / CLI.

Importing flowsim switches on float64 in jax (``jax_enable_x64``).
"""

import jax

jax.config.update("jax_enable_x64", True)

from .compare import (  # noqa: E402
    compare_at_loss,
    compare_at_times,
    convergence_order,
    descent_vs_flow,
    flow_at_times,
    measure_order,
    unobserved_at_loss,
)
from .descent import descend, gradient_descent  # noqa: E402
from .dynamics import COORDINATES, make_coordinates  # noqa: E402
from .initialization import (  # noqa: E402
    balanced_init,
    factors_from_product,
    gaussian_init,
    identity_init,
)
from .integration import SOLVERS, gradient_flow  # noqa: E402
from .metrics import (  # noqa: E402
    balancedness_defect,
    det,
    distance_to_rank,
    effective_rank,
    schatten_norm,
    singular_values,
    unobserved_entries,
)
from .parameterization import DeepMatrixFactorization, product  # noqa: E402
from .problem import (  # noqa: E402
    MatrixCompletion,
    TensorCompletion,
    padded_problem,
    paper_problem,
    perturbed_problem,
)
from .sweep import SweepConfig, SweepResults, batched_gradient_flow, run_sweep  # noqa: E402
from .tensor import (  # noqa: E402
    CPFactorization,
    cp_dataset,
    cp_gaussian_init,
    cp_rank,
    linear_baseline,
)
from .tensor.descent import cp_gradient_descent  # noqa: E402
from .trajectory import Trajectory  # noqa: E402

__version__ = "0.1.0"

__all__ = [
    "CPFactorization", "cp_dataset", "cp_gaussian_init", "cp_gradient_descent", "cp_rank",
    "linear_baseline",
    "SweepConfig", "SweepResults", "batched_gradient_flow", "run_sweep",
    "compare_at_loss", "compare_at_times", "convergence_order", "descend", "descent_vs_flow",
    "flow_at_times", "gradient_descent", "measure_order", "unobserved_at_loss",
    "COORDINATES", "SOLVERS", "DeepMatrixFactorization", "MatrixCompletion",
    "TensorCompletion", "Trajectory", "balanced_init", "balancedness_defect", "det",
    "distance_to_rank", "effective_rank", "factors_from_product", "gaussian_init",
    "gradient_flow", "identity_init", "make_coordinates", "padded_problem", "paper_problem",
    "perturbed_problem", "product", "schatten_norm", "singular_values", "unobserved_entries",
]
