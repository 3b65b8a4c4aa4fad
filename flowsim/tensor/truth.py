"""Ground truths for tensor completion (Section 4.2; protocol App. F.2).

A ground truth is a random tensor of CP rank ``r`` (the sum of ``r`` outer products of
i.i.d. ``N(0, 1)`` vectors) rescaled to unit Frobenius norm. Its entries are observed in
one fixed random order: a problem with ``n`` observations observes the first ``n``, so
the problems of a sweep over ``n`` are nested, as in the reference experiments.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..parameterization import cp_product
from ..problem import TensorCompletion, validated_shape


def _streams(seed: int) -> tuple[np.random.Generator, np.random.Generator]:
    """Independent generators for the truth and for the observation order of one seed."""
    truth, order = np.random.SeedSequence(seed).spawn(2)
    return np.random.default_rng(truth), np.random.default_rng(order)


def random_cp_tensor(shape, rank: int = 1, seed: int = 0) -> np.ndarray:
    """``T / ||T||_F`` with ``T = sum_{r=1}^{rank} v_r^(1) (x) ... (x) v_r^(N)``, every
    ``v_r^(n)`` i.i.d. ``N(0, I)``: CP rank ``rank`` with probability 1 for small ranks."""
    shape = validated_shape(shape, min_order=2, max_order=None)
    if isinstance(rank, bool) or int(rank) != rank or rank < 1:
        raise ValueError(f"rank must be an integer >= 1, got {rank!r}")
    rng, _ = _streams(seed)
    tensor = np.asarray(cp_product(tuple(rng.standard_normal((d, int(rank))) for d in shape)))
    return tensor / np.linalg.norm(tensor)


def observation_order(shape, seed: int = 0) -> np.ndarray:
    """All 0-based positions of a ``shape`` tensor in one seeded random order,
    ``(prod(shape), N)``."""
    shape = validated_shape(shape, min_order=2, max_order=None)
    _, rng = _streams(seed)
    return np.argwhere(np.ones(shape, dtype=bool))[rng.permutation(int(np.prod(shape)))]


@dataclass(frozen=True, eq=False)
class CompletionDataset:
    """A ground truth and the order in which its entries are observed.

    **Attributes:** `truth` (the tensor), `order` (``(prod(shape), N)`` positions), `rank`
    (the CP rank it was built with) and `seed`.
    """

    truth: np.ndarray
    order: np.ndarray
    rank: int
    seed: int

    @property
    def shape(self) -> tuple[int, ...]:
        return tuple(self.truth.shape)

    def problem(self, n_observed: int) -> TensorCompletion:
        """The completion problem that observes the first ``n_observed`` entries."""
        total = len(self.order)
        if isinstance(n_observed, bool) or int(n_observed) != n_observed \
                or not 1 <= n_observed <= total:
            raise ValueError(f"n_observed must be an integer in [1, {total}], got {n_observed!r}")
        idx = self.order[: int(n_observed)]
        return TensorCompletion(self.shape, idx, self.truth[tuple(idx.T)])


def cp_dataset(shape, rank: int = 1, seed: int = 0) -> CompletionDataset:
    """A seeded unit-norm CP-rank-``rank`` ground truth with its observation order."""
    truth = random_cp_tensor(shape, rank, seed)
    truth.flags.writeable = False
    order = observation_order(shape, seed)
    order.flags.writeable = False
    return CompletionDataset(truth=truth, order=order, rank=int(rank), seed=int(seed))


def linear_baseline(problem: TensorCompletion) -> np.ndarray:
    """The "linear" baseline of Figure 2 (a memorizer): observed entries kept, every
    unobserved entry 0. It fits the observations exactly with no bias towards low rank."""
    if not isinstance(problem, TensorCompletion):
        raise TypeError(f"problem must be a TensorCompletion, got {type(problem).__name__}")
    return np.array(problem.target)
