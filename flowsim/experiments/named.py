"""Problems and initializations by name: the one table ``flowsim run`` and sweeps read.

Each named problem is built from the observations of ``"perturbed"`` (``b = (b12, b21,
b22)``, Theorem 2) and the shape of ``"padded"`` (``dims = (d, d2)``, App. E; also the
shape of ``"sensing"``: Gaussian sensing, seed 0, of the rank-1 ground truth
:func:`~flowsim.low_rank_truth` with ``d d2 // 2`` measurements, at least 1); each named
initialization from a seed, a scale (the product scale; the per-entry std for
``"gaussian"``) and a sign of ``det W`` (``None``: unconditioned).
"""

from __future__ import annotations

from .. import initialization
from .. import problem as problems

#: named problems: ``build(b, dims)``
PROBLEMS = {
    "paper": lambda b, dims: problems.paper_problem(),
    "perturbed": lambda b, dims: problems.perturbed_problem(*b),
    "padded": lambda b, dims: problems.padded_problem(*dims),
    "sensing": lambda b, dims: problems.low_rank_sensing(
        dims, 1, max(1, dims[0] * dims[1] // 2), seed=0)[0],
}
#: named initializations: ``build(model, seed, scale, det_sign)``
INITS = {
    "balanced": lambda model, seed, scale, det_sign: initialization.balanced_init(
        model, seed, scale, det_sign),
    "gaussian": lambda model, seed, scale, det_sign: initialization.gaussian_init(
        model, seed, scale, det_sign),
    "identity": lambda model, seed, scale, det_sign: initialization.identity_init(
        model, scale, det_sign),
}
#: the spellings of a sign of det W (strings compared in lower case)
DET_SIGNS = {"+1": 1, "1": 1, "+": 1, "pos": 1, 1: 1,
             "-1": -1, "-": -1, "neg": -1, -1: -1, "none": None}


def make_problem(name: str, b=(-2, 0.5, 0.1), dims=(3, 3)):
    """The named problem (:data:`PROBLEMS`)."""
    return PROBLEMS[name](b, dims)


def make_init(name: str, model, seed: int, scale: float, det_sign: int | None):
    """The named initialization's factors (:data:`INITS`)."""
    return INITS[name](model, seed, scale, det_sign)


def det_sign(value) -> int | None:
    """``+1``, ``-1`` or ``None`` from one of :data:`DET_SIGNS`; else ``ValueError``."""
    key = value.lower() if isinstance(value, str) else value
    if not isinstance(key, (str, int)) or isinstance(key, bool) or key not in DET_SIGNS:
        raise ValueError(f"det_sign must be 'none', '+1' or '-1', got {value!r}")
    return DET_SIGNS[key]
