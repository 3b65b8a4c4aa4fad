"""flowsim: exact gradient flow on deep matrix and tensor factorizations, and checks of
Razin & Cohen (NeurIPS 2020), "Implicit Regularization in Deep Learning May Not Be
Explainable by Norms".

Pipeline (one module each): problem -> parameterization -> initialization -> dynamics
-> integration -> trajectory -> metrics -> checks / plots / CLI; experiments (Figures 1
and 2, sweeps, Dask) sit on top, in :mod:`flowsim.experiments`.

Importing flowsim switches on float64 in jax (``jax_enable_x64``) and a persistent
compilation cache (:mod:`flowsim.runtime`).
"""

from .runtime import configure

configure()

from ._version import __version__  # noqa: E402
from .accuracy import AccuracyReport, check_accuracy  # noqa: E402
from .baselines import (  # noqa: E402
    min_frobenius_norm,
    min_nuclear_norm,
    norm_summary,
    nuclear_norm_admm,
    test_error,
)
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
from .dynamics import COORDINATES, choose_coordinates, make_coordinates  # noqa: E402
from .files import FileFormatError  # noqa: E402
from .initialization import (  # noqa: E402
    balanced_init,
    cp_gaussian_init,
    factors_from_product,
    gaussian_init,
    identity_init,
)
from .integration import SOLVERS, SolverOptions, gradient_flow  # noqa: E402
from .metrics import (  # noqa: E402
    balancedness_defect,
    det,
    distance_to_rank,
    distance_to_rank_from_log_singular_values,
    effective_rank,
    effective_rank_minus_one,
    log_singular_values,
    schatten_from_log_singular_values,
    schatten_norm,
    singular_values,
    unobserved_entries,
)
from .parameterization import (  # noqa: E402
    CPFactorization,
    DeepMatrixFactorization,
    Factorization,
    product,
)
from .problem import (  # noqa: E402
    MatrixCompletion,
    MatrixSensing,
    TensorCompletion,
    gaussian_operators,
    gaussian_sensing,
    low_rank_completion,
    low_rank_sensing,
    low_rank_truth,
    padded_problem,
    paper_problem,
    perturbed_problem,
)
from .tensor import cp_dataset, cp_rank, linear_baseline  # noqa: E402
from .tensor.descent import cp_gradient_descent  # noqa: E402
from .trajectory import FAILURE_STATUSES, SUCCESS_STATUSES, Trajectory  # noqa: E402

__all__ = [
    "AccuracyReport", "COORDINATES", "CPFactorization", "DeepMatrixFactorization",
    "FAILURE_STATUSES",
    "Factorization", "FileFormatError", "MatrixCompletion", "MatrixSensing", "SOLVERS",
    "SUCCESS_STATUSES",
    "SolverOptions",
    "TensorCompletion", "Trajectory", "__version__", "balanced_init", "balancedness_defect",
    "check_accuracy", "choose_coordinates", "compare_at_loss", "compare_at_times",
    "convergence_order",
    "cp_dataset", "cp_gaussian_init", "cp_gradient_descent", "cp_rank", "descend",
    "descent_vs_flow", "det", "distance_to_rank", "distance_to_rank_from_log_singular_values",
    "effective_rank", "effective_rank_minus_one", "factors_from_product",
    "flow_at_times", "gaussian_init", "gaussian_operators", "gaussian_sensing",
    "gradient_descent", "gradient_flow", "identity_init",
    "linear_baseline", "log_singular_values", "low_rank_completion", "low_rank_sensing",
    "low_rank_truth", "make_coordinates",
    "measure_order", "padded_problem", "paper_problem", "perturbed_problem", "product",
    "schatten_from_log_singular_values", "schatten_norm", "singular_values",
    "unobserved_at_loss", "unobserved_entries",
    # norm-minimizing baselines (flowsim.baselines)
    "min_frobenius_norm", "min_nuclear_norm", "norm_summary", "nuclear_norm_admm", "test_error",
]
