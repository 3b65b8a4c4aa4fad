"""Trajectory: the one result type of every solver and of gradient descent.

Like scipy's ``OdeResult`` it says ``status``, ``message`` and ``success`` and carries the
solver's counters; a run that failed keeps every point it computed. It saves to a
self-describing ``.npz`` (arrays + one JSON metadata string; loaded without pickle, and
checked when read: :data:`TRAJECTORY_FORMAT`, :func:`check_trajectory_parts`).
"""

from __future__ import annotations

import platform
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np

from .dynamics import observe_states
from .files import (
    ArraySpec,
    Format,
    Key,
    check_arrays,
    check_finite,
    read_npz,
    write_npz,
)
from .parameterization import model_from_dict
from .problem import problem_from_dict
from .runtime import package_version
from .statuses import FAILURE_STATUSES, SUCCESS_STATUSES

FORMAT_VERSION = 1

#: The per-point arrays of a trajectory file, in the order saved: each is the field of
#: :class:`Trajectory` of that name, with its dtype kinds and shape rule
#: (:class:`flowsim.files.ArraySpec`; ``n`` = points). A new per-point field is one more
#: row here, optional so that older files still load (missing: ``None``). The layers
#: ``factor_0, factor_1, ...`` (``n_factors`` in the metadata) come besides.
POINT_ARRAYS = (
    ArraySpec("t", "f", ("n",), finite=True),
    ArraySpec("loss", "f", ("n",)),
    ArraySpec("product", "f", ("n", "*", "*", "...")),
    ArraySpec("det_sign", "f", ("n",)),
    ArraySpec("log_abs_det", "f", ("n",)),
    ArraySpec("states", "f", ("n", "k")),
    ArraySpec("steps", "iu", ("n",), required=False),
    ArraySpec("log_singular_values", "f", ("n", "m"), required=False),
)
#: arrays finite at every saved point but the last of a failed run (which may end on the
#: non-finite value that ended it)
FINITE_POINTS = ("loss", "product", "states")
#: a trajectory file (``.npz``): the metadata keys and the arrays
TRAJECTORY_FORMAT = Format(
    "flowsim.Trajectory", FORMAT_VERSION, arrays=POINT_ARRAYS,
    keys=(Key("status", (str,)), Key("message", (str,)), Key("stats", (dict,)),
          Key("config", (dict,)), Key("versions", (dict,)),
          Key("n_factors", (int, type(None))), Key("checkpoint", (dict,), required=False)))


def versions() -> dict:
    """Versions of Python and the packages a result depends on (recorded in every
    trajectory)."""
    return {"python": platform.python_version(),
            **{pkg: package_version(pkg)
               for pkg in ("flowsim", "jax", "jaxlib", "diffrax", "numpy", "scipy")}}


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
    - `log_singular_values`: ``log`` of the singular values of the product, largest
      first, ``(n, min(d, d2))``, from the run's own coordinates: exact to float64's
      relative precision however small they get (``None`` in files written before it
      existed; an ``(n, 0)`` array for tensors). :func:`flowsim.effective_rank_minus_one`,
      :func:`flowsim.schatten_from_log_singular_values` and
      :func:`flowsim.distance_to_rank_from_log_singular_values` use them.
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
    log_singular_values: np.ndarray | None = None
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

    def select(self, index) -> Trajectory:
        """The trajectory of the saved points ``index`` (an index array or a boolean
        mask): every per-point array (:data:`POINT_ARRAYS`) and the layers, sliced alike."""
        index = np.asarray(index)
        sliced = {spec.name: getattr(self, spec.name)[index] for spec in POINT_ARRAYS
                  if getattr(self, spec.name) is not None}
        factors = None if self.factors is None else tuple(f[index] for f in self.factors)
        return replace(self, factors=factors, **sliced)

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
        arrays = {spec.name: np.asarray(getattr(self, spec.name)) for spec in POINT_ARRAYS
                  if getattr(self, spec.name) is not None}
        if self.factors is not None:
            for l, f in enumerate(self.factors):
                arrays[f"factor_{l}"] = np.asarray(f)
        meta = {**TRAJECTORY_FORMAT.tag(), "status": self.status, "message": self.message,
                "stats": self.stats, "config": self.config, "versions": self.versions,
                "n_factors": None if self.factors is None else len(self.factors)}
        return arrays, meta

    @classmethod
    def load(cls, path) -> Trajectory:
        """The trajectory saved at ``path``, checked (:func:`check_trajectory_parts`);
        a file that is not a valid trajectory file raises
        :class:`~flowsim.files.FileFormatError` naming the file and what is wrong."""
        return cls.from_npz_parts(*read_npz(path, TRAJECTORY_FORMAT, check_trajectory_parts))

    @classmethod
    def from_npz_parts(cls, data: dict, meta: dict) -> Trajectory:
        n_f = meta.get("n_factors")
        factors = None if n_f is None else tuple(data[f"factor_{l}"] for l in range(n_f))
        return cls(**{spec.name: data.get(spec.name) for spec in POINT_ARRAYS},
                   status=meta["status"], message=meta["message"], stats=meta["stats"],
                   config=meta["config"], factors=factors, versions=meta["versions"])


def trajectory_from_states(coords, mask, target, t, states, *, status: str, message: str,
                           stats: dict, config: dict, steps=None) -> Trajectory:
    """The Trajectory of the saved states ``(n, k)`` at times ``t`` of one run, with the
    observables computed by the run's own coordinates
    (:func:`flowsim.dynamics.observe_states`)."""
    states = np.asarray(states, dtype=np.float64)
    obs = observe_states(coords, states, mask, target)
    factors = coords.host_factors(states)
    return Trajectory(t=np.asarray(t, dtype=np.float64), loss=obs["loss"],
                      product=obs["product"], det_sign=obs["det_sign"],
                      log_abs_det=obs["log_abs_det"], states=states, status=status,
                      message=message, stats=dict(stats), config=dict(config),
                      factors=factors, steps=steps,
                      log_singular_values=obs["log_singular_values"])


def check_trajectory_parts(data: dict, meta: dict, dims: dict) -> None:
    """What :data:`TRAJECTORY_FORMAT`'s tables cannot say about a trajectory file
    (``ValueError`` naming the array or metadata entry; the reader adds the file):

    - `status` is a known status; `t` never decreases; the arrays of
      :data:`FINITE_POINTS` are finite (but at the last point of a failed run); a finite
      `det_sign` is -1, 0 or 1;
    - the layers are exactly ``factor_0 .. factor_{n_factors - 1}``, each ``(n, rows,
      cols)``;
    - where the config describes them, the problem and the model are valid and agree with
      the arrays (product shape, layer shapes) and the initial state has the states' size.

    **Arguments:** `data` (the arrays), `meta` (the metadata), `dims` (the sizes the
    shape rules took, ``dims["n"]`` the number of points).
    """
    status = meta["status"]
    if status not in SUCCESS_STATUSES + FAILURE_STATUSES:
        raise ValueError(f"metadata status must be one of {SUCCESS_STATUSES + FAILURE_STATUSES}"
                         f", got {status!r}")
    if np.any(np.diff(data["t"]) < 0):
        raise ValueError("array 't' (time of each point) must never decrease")
    n = dims["n"]
    kept = slice(None) if status in SUCCESS_STATUSES else slice(0, max(n - 1, 0))
    for name in FINITE_POINTS:
        check_finite(name, data[name][kept])
    sign = data["det_sign"]
    if not np.all(np.isin(sign[np.isfinite(sign)], (-1.0, 0.0, 1.0))):
        raise ValueError("array 'det_sign' must hold -1, 0, 1 or NaN")
    n_f = meta["n_factors"]
    if n_f is not None and n_f < 0:
        raise ValueError(f"metadata n_factors must be null or an integer >= 0, got {n_f}")
    held = sum(k.startswith("factor_") for k in data)
    if n_f is not None and n_f > held:
        # checked before the layers' names are made: a huge n_factors must not allocate
        lacks = [f"factor_{l}" for l in range(held + 1) if f"factor_{l}" not in data]
        raise ValueError(f"metadata n_factors is {n_f} but the file holds {held} factor_* "
                         f"arrays (it lacks {lacks[0]})")
    layers = [f"factor_{l}" for l in range(n_f or 0)]
    stray = sorted(k for k in data if k.startswith("factor_") and k not in layers)
    if stray:
        raise ValueError(f"metadata n_factors is {n_f} but the file also holds {stray}")
    missing = [name for name in layers if name not in data]
    if missing:
        raise ValueError(f"metadata n_factors is {n_f} but the file lacks {missing}")
    check_arrays(data, [ArraySpec(name, "f", ("n", "*", "*")) for name in layers], dims)
    config, shape = meta["config"], data["product"].shape[1:]
    for key, parse in (("problem", problem_from_dict), ("model", model_from_dict)):
        if key not in config:
            continue
        try:
            described = parse(config[key])
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise ValueError(f"metadata config[{key!r}] is not a valid {key}: "
                             f"{type(exc).__name__}: {exc}") from exc
        if described.shape != shape:
            raise ValueError(f"metadata config[{key!r}] has shape {described.shape}, array "
                             f"'product' holds {shape}")
        if key == "model" and n_f is not None:
            want = described.param_shapes
            got = tuple(data[name].shape[1:] for name in layers)
            if got != want:
                raise ValueError(f"the layers factor_* have shapes {got}, the model in "
                                 f"metadata config has {want}")
    y0 = config.get("initial_state")
    if y0 is not None and (not isinstance(y0, list) or len(y0) != data["states"].shape[1]):
        raise ValueError(f"metadata config['initial_state'] must be a list of "
                         f"{data['states'].shape[1]} numbers (the states' size)")
