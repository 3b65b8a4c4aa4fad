"""Options of a solve, with their defaults defined once (:class:`SolverOptions`), and
what the user asks to be saved (:func:`parse_save_at`).

Every entry point (``gradient_flow`` for one start or many, ``flowsim run``, sweeps,
figures) takes the same :class:`SolverOptions`; a trajectory records them resolved
(``traj.config["options"]``), and TOML files give them as a ``[solver]`` table
(:meth:`SolverOptions.from_dict`).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import numpy as np

from ..dynamics import AUTO
from ..problem import check_integer, check_real
from .solvers import REGISTRY, auto_solver, check_name

#: controller tolerances ``(rtol, atol)`` when none are given and the solver has none of
#: its own (:attr:`.solvers.Solver.tolerances`): by coordinates name (``"cp"`` for CP
#: tensor models); everything else takes :data:`BASE_TOLERANCES`. svd: Theorem 1's
#: regime takes about half the steps at these; cp: the explicit solver's stability limit,
#: not its accuracy, sets the step on the stiff stretch (docs/numerics.md)
COORDINATE_TOLERANCES = {"svd": (1e-8, 1e-12), "cp": (1e-8, 1e-12)}
#: the default ``escape_rtol`` as a fraction of ``rtol``, by (coordinates, solver):
#: Kvaerno5 in svd coordinates, Theorem 1's regime, whose default rtol 1e-8 left the flow
#: up to 2e-6 off mid-escape; Dopri8EXPRB43, whose Dopri8 runs at 1e-2 of the run's
#: tolerances and 1e-3 of them in the escape (docs/numerics.md, "The escape", "The
#: explicit tolerance")
ESCAPE_TIGHTENING = {("svd", "Kvaerno5"): 1e-2, ("factors", "Dopri8EXPRB43"): 1e-1}
#: of those, the ones that keep the tightening only at their default ``rtol`` (a run given
#: its own rtol is integrated at that tolerance throughout); the others are designed with
#: it (their explicit tolerance assumes it)
ESCAPE_AT_DEFAULT_RTOL_ONLY = (("svd", "Kvaerno5"),)
BASE_TOLERANCES = (1e-10, 1e-14)
#: every default ``(rtol, atol)``: by coordinates, and by solver where it has its own
DEFAULT_TOLERANCES = {**COORDINATE_TOLERANCES, **{
    name: s.tolerances for name, s in REGISTRY.items() if s.tolerances is not None}}

PRECISION_POLICIES = ("stop", "continue")
#: what an unresolved change of the sign of det W is (``SolverOptions.det_sign_guard``)
DET_SIGN_POLICIES = ("auto", "strict", "record")


@dataclass(frozen=True)
class SolverOptions:
    """How a flow is integrated. Every field has one default, here.

    **Arguments:**

    - `solver`: ``"auto"`` (:func:`.solvers.auto_solver`: for states of fewer than
      :data:`.solvers.MATRIX_FREE_FROM` unknowns, e.g. every 2x2 run, the Rosenbrock
      method Rodas5P for runs with a stop loss of at least
      :data:`.solvers.ROSENBROCK_DOWN_TO` in :data:`.solvers.ROSENBROCK_COORDINATES`, the
      implicit Kvaerno5 otherwise; above, the matrix-free ``"Dopri8EXPRB43"``, Dopri8
      while the flow is not stiff and the exponential Rosenbrock method EXPRB43 once it
      is, for matrix and CP models), or a name of
      :data:`.solvers.REGISTRY`: one of :data:`.solvers.JAX_SOLVERS` (diffrax's, or
      flowsim's ``"RKC2"``, ``"ROCK4"``, ``"EXPRB32"``, ``"EXPRB43"``,
      ``"Dopri8EXPRB43"``, ``"Dopri8ROCK4"``, ``"Rodas4"``, ``"Rodas5P"``)
      or a scipy one of
      :data:`.solvers.SCIPY_SOLVERS`.
    - `rtol`, `atol`: the PID step-size controller's tolerances; ``None`` takes
      :data:`DEFAULT_TOLERANCES` for the coordinates (else :data:`BASE_TOLERANCES`).
    - `escape_rtol`: the relative tolerance during the escape from a small start (while
      the loss is above :data:`.loop.ESCAPE_LOSS` of its value at ``W = 0``; ``atol``
      scales with it): errors made there grow with the singular values after it, so a
      run is most sensitive to them. At most ``rtol``; scipy's solvers have one
      tolerance and refuse a tighter one. ``None``: ``rtol``, except where
      :data:`ESCAPE_TIGHTENING` lists the coordinates and solver, which take that
      fraction of ``rtol``: Kvaerno5 in svd coordinates at its default tolerances
      (``1e-2 rtol``), and Dopri8EXPRB43 (``1e-1 rtol``).
    - `newton_rtol`, `newton_atol`: tolerances of the implicit solvers' Newton iteration
      on the stage equations (not on the solution: tighter ones made every step fail).
    - `chunk_steps`: most accepted steps per compiled call; between chunks the progress
      bar moves and the checkpoint is written (a run of slow steps gets shorter chunks,
      about 2 s each). The steps taken do not depend on it.
    - `max_steps`: accepted-step budget of a run (status ``"max_steps"``).
    - `max_abs`: end a run (status ``"norm_bound"``) once ``max|W_ij|`` reaches this
      (``inf``: no bound).
    - `conserved_rtol`: largest drift of the conserved quantities (e.g.
      ``W_{l+1}^T W_{l+1} - W_l W_l^T``), relative to their scale, before a run ends with
      status ``"precision_lost"``; ``None``: ``max(1e-6, 1e3 rtol)`` (no integrator
      conserves them exactly: the drift follows the global error, ~``steps x rtol``).
    - `loss_rise_rtol`: largest relative rise of the loss over one accepted step (the
      flow never raises it) before a run ends with status ``"precision_lost"``.
    - `on_precision_loss`: ``"stop"`` (default) ends a run whose precision is lost;
      ``"continue"`` records the event in ``traj.stats["precision_events"]`` and goes on.
    - `det_sign_guard`: what a change of the sign of ``det W`` that rounding could have
      made is. ``"strict"``: a loss of precision (``on_precision_loss`` decides);
      ``"record"``: recorded in ``traj.stats["sign_events"]`` with the relative size of
      the singular value that changed sign (the perturbation of ``W`` the change implies),
      reported in the message and as a warning, and the run goes on; ``"auto"``
      (default): ``"strict"`` where the sign decides the answer
      (:func:`flowsim.problem.det_sign_decides`: the 2x2 problems and their d x d'
      extension, Theorem 1's regime), ``"record"`` on every other problem.
    - `lanes`: how many members of a batch are integrated at once (the vmapped width).
    """

    solver: str = AUTO
    rtol: float | None = None
    atol: float | None = None
    escape_rtol: float | None = None
    newton_rtol: float = 1e-6
    newton_atol: float = 1e-8
    chunk_steps: int = 256
    max_steps: int = 100_000
    max_abs: float = 1e12
    conserved_rtol: float | None = None
    loss_rise_rtol: float = 1e-6
    on_precision_loss: str = "stop"
    det_sign_guard: str = "auto"
    lanes: int = 256

    def __post_init__(self):
        check_name(self.solver)
        for name in ("rtol", "atol", "escape_rtol", "newton_rtol", "newton_atol",
                     "conserved_rtol", "loss_rise_rtol", "max_abs"):
            value = getattr(self, name)
            if value is None and name in ("rtol", "atol", "escape_rtol", "conserved_rtol"):
                continue
            object.__setattr__(self, name, check_real(name, value, minimum=0.0, strict=True,
                                                      allow_inf=name == "max_abs"))
        for name in ("rtol", "escape_rtol", "newton_rtol"):
            value = getattr(self, name)
            if value is not None and not value < 1:
                raise ValueError(f"{name} must be < 1 (a relative tolerance), got {value!r}")
        for name in ("chunk_steps", "max_steps", "lanes"):
            object.__setattr__(self, name, check_integer(name, getattr(self, name), 1))
        if self.det_sign_guard not in DET_SIGN_POLICIES:
            raise ValueError(f"det_sign_guard must be one of {DET_SIGN_POLICIES}, "
                             f"got {self.det_sign_guard!r}")
        if self.on_precision_loss not in PRECISION_POLICIES:
            raise ValueError(f"on_precision_loss must be one of {PRECISION_POLICIES}, "
                             f"got {self.on_precision_loss!r}")

    @classmethod
    def fields(cls) -> tuple[str, ...]:
        return tuple(f.name for f in dataclasses.fields(cls))

    @classmethod
    def from_dict(cls, data: dict, where: str = "options") -> SolverOptions:
        """From a plain mapping (e.g. a TOML ``[solver]`` table); unknown keys raise
        ``ValueError`` naming them and the allowed ones."""
        unknown = sorted(set(data) - set(cls.fields()))
        if unknown:
            raise ValueError(f"{where} has unknown options {unknown}; allowed: "
                             f"{list(cls.fields())}")
        return cls(**data)

    def replace(self, **changes) -> SolverOptions:
        return self.from_dict({**self.to_dict(), **changes})

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    def resolve(self, coordinates: str, model_kind: str, state_size: int,
                stop_loss: float | None = None, stored_solver: str | None = None,
                det_sign_decides: bool = True) -> SolverOptions:
        """These options with ``solver``, ``rtol``, ``atol``, ``escape_rtol``,
        ``conserved_rtol`` and
        ``det_sign_guard`` made concrete for the coordinates, the model (``"matrix"`` or
        ``"cp"``), the number of unknowns, the run's stop loss (``None``: none) and
        whether the sign of det W decides the problem's answer; ``stored_solver``: the
        solver of the checkpoint the run continues (``"auto"`` keeps it,
        :func:`.solvers.auto_solver`)."""
        solver = self.solver
        if solver == AUTO:
            solver = auto_solver(coordinates, model_kind, state_size, stop_loss,
                                 stored_solver)
        rtol, atol = REGISTRY[solver].tolerances or COORDINATE_TOLERANCES.get(
            "cp" if model_kind == "cp" else coordinates, BASE_TOLERANCES)
        rtol = rtol if self.rtol is None else self.rtol
        escape = self.escape_rtol
        if escape is None:
            key = (coordinates, solver)
            factor = ESCAPE_TIGHTENING.get(key, 1.0)
            if self.rtol is not None and key in ESCAPE_AT_DEFAULT_RTOL_ONLY:
                factor = 1.0
            escape = factor * rtol
        if escape > rtol:
            raise ValueError(f"escape_rtol must be at most rtol ({rtol:g}), got {escape!r}")
        if escape < rtol and REGISTRY[solver].family != "loop":
            raise ValueError(f"escape_rtol is for the solvers of flowsim's loop; {solver} "
                             f"has one tolerance: pass rtol={escape:g} instead")
        conserved = max(1e-6, 1e3 * rtol) if self.conserved_rtol is None \
            else self.conserved_rtol
        guard = self.det_sign_guard
        if guard == "auto":
            guard = "strict" if det_sign_decides else "record"
        return dataclasses.replace(self, solver=solver, rtol=rtol, escape_rtol=escape,
                                   det_sign_guard=guard,
                                   atol=atol if self.atol is None else self.atol,
                                   conserved_rtol=conserved)


def make_options(options: SolverOptions | dict | None, overrides: dict) -> SolverOptions:
    """``options`` (a :class:`SolverOptions`, a mapping or ``None``) with the keyword
    ``overrides`` applied (``ValueError`` naming an unknown keyword)."""
    if options is None:
        options = SolverOptions()
    elif isinstance(options, dict):
        options = SolverOptions.from_dict(options)
    elif not isinstance(options, SolverOptions):
        raise TypeError(f"options must be a SolverOptions, a dict or None, "
                        f"got {type(options).__name__}")
    if overrides:
        unknown = sorted(set(overrides) - set(SolverOptions.fields()))
        if unknown:
            raise TypeError(f"unknown keyword arguments {unknown}; solver options are "
                            f"{list(SolverOptions.fields())}")
        options = options.replace(**overrides)
    return options


SAVE_MODES = ("steps", "ends")


def parse_save_at(save_at) -> tuple[str, np.ndarray]:
    """``(mode, times)``: ``"steps"`` (every accepted step), ``"ends"`` (the initial and
    the final point) or ``"times"`` with the increasing finite times ``> 0`` the solver
    steps onto (no interpolation)."""
    if isinstance(save_at, str):
        if save_at not in SAVE_MODES:
            raise ValueError(f"save_at must be one of {SAVE_MODES} or an increasing "
                             f"sequence of times > 0, got {save_at!r}")
        return save_at, np.zeros(0)
    try:
        times = np.asarray(save_at, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"save_at must be one of {SAVE_MODES} or an increasing sequence "
                         f"of times > 0, got {save_at!r}") from exc
    return "times", check_times(times, "save_at times")


def check_times(times, name: str) -> np.ndarray:
    """``times`` as a float64 array if it is a non-empty, strictly increasing 1-d sequence
    of finite times > 0; else ``ValueError`` naming ``name``."""
    times = np.asarray(times, dtype=np.float64)
    if times.ndim != 1 or times.size == 0 or not np.all(np.isfinite(times)) \
            or times.min() <= 0 or np.any(np.diff(times) <= 0):
        raise ValueError(f"{name} must be a non-empty, strictly increasing 1-d sequence of "
                         "finite times > 0")
    return times
