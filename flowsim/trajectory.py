"""Trajectory: the one result type of every solver and of gradient descent.

Like scipy's ``OdeResult`` it says ``status``, ``message`` and ``success`` and carries the
solver's counters; a run that failed keeps every point it computed. It saves to a
self-describing ``.npz`` (arrays + one JSON metadata string; loaded without pickle).
"""

from __future__ import annotations

import json
import os
import platform
from dataclasses import dataclass, field, replace
from importlib import metadata as _md
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

from .dynamics import observe_states

#: statuses that mean "stopped where asked"
SUCCESS_STATUSES = ("stop_loss", "t_max", "max_iterations")
#: statuses of a run that ended early or could not follow the flow
FAILURE_STATUSES = ("max_steps", "norm_bound", "nonfinite", "solver_failure", "interrupted",
                    "precision_lost", "stationary")

FORMAT_VERSION = 1


def versions() -> dict:
    out = {"python": platform.python_version()}
    for pkg in ("flowsim", "jax", "jaxlib", "diffrax", "numpy", "scipy"):
        try:
            out[pkg] = _md.version(pkg)
        except _md.PackageNotFoundError:
            out[pkg] = None
    return out


@dataclass(frozen=True, eq=False)
class Trajectory:
    """Saved points of one run, in time order.

    **Attributes:**

    - `t`: flow time of each saved point, ``(n,)`` (for gradient descent ``t = k * lr``).
    - `loss`: Eq. (1) at each point, ``(n,)``.
    - `product`: product matrices (or tensors), ``(n, d, d2)``.
    - `det_sign`, `log_abs_det`: sign and log-modulus of ``det W`` from the run's own
      coordinates, ``(n,)`` (NaN when the product is not square).
    - `states`: the coordinate state vectors, ``(n, k)`` (what a resumed run continues from).
    - `factors`: tuple of per-layer arrays ``(n, d_l, d_{l-1})``, or ``None``.
    - `steps`: gradient-descent iteration of each point, or ``None`` for a flow.
    - `status`, `message`: why the run ended; `success` is True for the statuses in
      :data:`SUCCESS_STATUSES`.
    - `stats`: solver counters (accepted/rejected steps, function evaluations, wall time).
    - `config`: everything needed to rerun it (problem, model, solver, tolerances, ...).
    """

    t: np.ndarray
    loss: np.ndarray
    product: np.ndarray
    det_sign: np.ndarray
    log_abs_det: np.ndarray
    states: np.ndarray
    status: str
    message: str
    stats: dict = field(default_factory=dict)
    config: dict = field(default_factory=dict)
    factors: tuple | None = None
    steps: np.ndarray | None = None
    versions: dict = field(default_factory=versions)

    def __post_init__(self):
        if self.status not in SUCCESS_STATUSES + FAILURE_STATUSES:
            raise ValueError(f"status must be one of {SUCCESS_STATUSES + FAILURE_STATUSES}, "
                             f"got {self.status!r}")
        n = len(self.t)
        for name in ("loss", "product", "det_sign", "log_abs_det", "states"):
            if len(getattr(self, name)) != n:
                raise ValueError(f"{name} has {len(getattr(self, name))} points, t has {n}")

    @property
    def success(self) -> bool:
        return self.status in SUCCESS_STATUSES

    def __len__(self) -> int:
        return len(self.t)

    def __repr__(self) -> str:
        last = f", final loss {self.loss[-1]:.3e} at t={self.t[-1]:.4g}" if len(self) else ""
        return (f"Trajectory({len(self)} points, status={self.status!r}{last}, "
                f"message={self.message!r})")

    def replace(self, **changes) -> Trajectory:
        return replace(self, **changes)

    def first_below(self, loss_level: float) -> int:
        """Index of the first saved point whose loss is <= ``loss_level`` (ValueError if none)."""
        hits = np.flatnonzero(self.loss <= loss_level)
        if hits.size == 0:
            raise ValueError(f"loss_level {loss_level:g} is never reached "
                             f"(minimum saved loss {np.min(self.loss):.3e})")
        return int(hits[0])

    def summary(self) -> str:
        lines = [f"status: {self.status} ({'success' if self.success else 'failure'})",
                 f"message: {self.message}", f"points saved: {len(self)}"]
        if len(self):
            lines.append(f"final t: {self.t[-1]:.6g}   final loss: {self.loss[-1]:.6e}")
            w = self.product[-1]
            if w.ndim == 2 and w.size <= 16:
                lines.append("final W: " + np.array2string(w, precision=8, separator=", ")
                             .replace("\n", "\n         "))
            if np.isfinite(self.det_sign[-1]):
                lines.append(f"det sign: {int(self.det_sign[0]):+d} -> {int(self.det_sign[-1]):+d}"
                             f"   log|det| final: {self.log_abs_det[-1]:.6g}")
        if self.stats:
            lines.append("stats: " + ", ".join(f"{k}={v}" for k, v in self.stats.items()))
        return "\n".join(lines)

    # -- files -------------------------------------------------------------------------
    def save(self, path) -> Path:
        """Write a ``.npz``: arrays plus a JSON ``metadata`` string (no pickle). The file
        is written to a temporary name and renamed, so a crash never leaves half a file."""
        path = Path(path)
        if path.suffix != ".npz":
            path = path.with_name(path.name + ".npz")
        arrays, meta = self.to_npz_parts()
        return write_npz(path, arrays, meta)

    def to_npz_parts(self) -> tuple[dict, dict]:
        """The arrays and the JSON metadata :meth:`save` writes."""
        arrays = {name: np.asarray(getattr(self, name)) for name in
                  ("t", "loss", "product", "det_sign", "log_abs_det", "states")}
        if self.factors is not None:
            for l, f in enumerate(self.factors):
                arrays[f"factor_{l}"] = np.asarray(f)
        if self.steps is not None:
            arrays["steps"] = np.asarray(self.steps)
        meta = {"format": "flowsim.Trajectory", "format_version": FORMAT_VERSION,
                "status": self.status, "message": self.message, "stats": self.stats,
                "config": self.config, "versions": self.versions,
                "n_factors": None if self.factors is None else len(self.factors)}
        return arrays, meta

    @classmethod
    def load(cls, path) -> Trajectory:
        return cls.from_npz_parts(*read_npz(path, "flowsim.Trajectory", "flowsim Trajectory"))

    @classmethod
    def from_npz_parts(cls, data: dict, meta: dict) -> Trajectory:
        n_f = meta.get("n_factors")
        factors = None if n_f is None else tuple(data[f"factor_{l}"] for l in range(n_f))
        return cls(t=data["t"], loss=data["loss"], product=data["product"],
                   det_sign=data["det_sign"], log_abs_det=data["log_abs_det"],
                   states=data["states"], status=meta["status"], message=meta["message"],
                   stats=meta["stats"], config=meta["config"], factors=factors,
                   steps=data.get("steps"), versions=meta["versions"])


def trajectory_from_states(coords, mask, target, t, states, *, status: str, message: str,
                           stats: dict, config: dict, steps=None) -> Trajectory:
    """The Trajectory of the saved states ``(n, k)`` at times ``t`` of one run, with the
    observables computed by the run's own coordinates
    (:func:`flowsim.dynamics.observe_states`)."""
    states = np.asarray(states, dtype=np.float64)
    obs = observe_states(coords, states, mask, target)
    factors = None
    if coords.factors(jnp.asarray(states[0])) is not None:
        factors = tuple(np.asarray(f) for f in jax.vmap(coords.factors)(jnp.asarray(states)))
    return Trajectory(t=np.asarray(t, dtype=np.float64), loss=obs["loss"],
                      product=obs["product"], det_sign=obs["det_sign"],
                      log_abs_det=obs["log_abs_det"], states=states, status=status,
                      message=message, stats=dict(stats), config=dict(config),
                      factors=factors, steps=steps)


def write_npz(path, arrays: dict, meta: dict) -> Path:
    """Write ``arrays`` plus ``meta`` as one JSON ``metadata`` string to ``path`` (no
    pickle), via a temporary name and a rename so a crash never leaves half a file."""
    path = Path(path)
    arrays = {**arrays, "metadata": np.array(json.dumps(meta, default=_json_default))}
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp.npz")
    np.savez(tmp, **arrays)
    os.replace(tmp, path)
    return path


def read_npz(path, fmt: str, what: str) -> tuple[dict, dict]:
    """The arrays and the metadata of a file from :func:`write_npz` whose metadata names
    the format ``fmt`` (else ``ValueError``: "``path`` is not a ``what`` file")."""
    with np.load(Path(path), allow_pickle=False) as data:
        meta = json.loads(str(data["metadata"]))
        if meta.get("format") != fmt:
            raise ValueError(f"{path} is not a {what} file")
        return {k: data[k] for k in data.files if k != "metadata"}, meta


def _json_default(obj):
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, Path):
        return str(obj)
    raise TypeError(f"cannot store {type(obj).__name__} in trajectory metadata")
