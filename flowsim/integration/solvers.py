"""The solvers, by name: one registry (:data:`REGISTRY`), and the rule ``solver="auto"``
follows (:func:`auto_solver`).

A solver name is resolved here once, where a call is planned (:mod:`.options`,
:meth:`SolverOptions.resolve <flowsim.integration.options.SolverOptions.resolve>`), and
refused here (:func:`check_name`); the rest of the package reads the name's
:class:`Solver` entry: which engine runs it (``family``), whether it is implicit, whether
its state checkpoints, its default tolerances, how it is built.

A new solver is one more entry of :data:`REGISTRY`; for flowsim's compiled loop its
object needs diffrax's solver interface (``init``, ``step``, ``func``, ``error_order``;
an explicit method with a stability limit also ``step_limit``, and counters ``fevals``,
``jvps`` on its state where it counts work), as :class:`.rkc.RKC2` has.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import diffrax
import optimistix as optx

from ..dynamics import AUTO
from .explicit import UNROLLED
from .exponential import EXPRB32, EXPRB43
from .rkc import RKC2
from .rock4 import ROCK4
from .rosenbrock import TABLEAUS, Rosenbrock
from .switching import Dopri8EXPRB43, Dopri8ROCK4

#: the engines a solver runs in: flowsim's compiled step loop (:mod:`.loop`), or scipy's
#: ``OdeSolver`` stepping in Python (:class:`.engines.ScipyEngine`)
FAMILIES = ("loop", "scipy")


@dataclass(frozen=True)
class Solver:
    """One entry of :data:`REGISTRY`.

    - `name`: what ``SolverOptions(solver=...)`` takes.
    - `family`: ``"loop"`` or ``"scipy"`` (:data:`FAMILIES`).
    - `implicit`: solves with the Jacobian (loop: a Newton root finder for diffrax's
      implicit methods, one LU per step for Rosenbrock's; scipy: gets the Jacobian).
    - `resumable`: its whole state is the loop's carry, so a checkpoint resumes it bit
      for bit (scipy's solvers cannot save theirs).
    - `tolerances`: default ``(rtol, atol)``; ``None``: by coordinates
      (:data:`.options.COORDINATE_TOLERANCES`).
    - `build`: ``build(spec)`` -> the solver object (loop) or ``OdeSolver`` class (scipy),
      ``spec`` the :class:`.loop.LoopSpec` (Newton tolerances).
    - `step_limit`: an explicit method whose stability limits the step
      (``object.step_limit(state)``, the loop clips the step to it).
    - `controller`: the loop's step-size controller, one of :data:`.control.CONTROLLERS`
      (``"integral"``: diffrax's PID controller with its defaults; ``"predictive"``: it
      and Gustafsson's prediction, :class:`.control.PredictiveController`).
    """

    name: str
    family: str
    implicit: bool
    resumable: bool
    build: Callable
    tolerances: tuple[float, float] | None = None
    step_limit: bool = False
    controller: str = "integral"


class StageNewton(optx.Newton):
    """Newton's method on an implicit solver's stage equations, converged when its update
    is small against ``atol + rtol |stage|`` (the standard test of stiff solvers).

    ``optimistix.Newton`` also requires the residual to fall below ``atol`` in absolute
    terms, which deep in Theorem 1's regime the residual's rounding floor (the step times
    the vector field) forbids: every step was rejected and the step size collapsed
    (docs/numerics.md, "The flows are stiff")."""

    def terminate(self, fn, y, args, options, state, tags):
        del fn, y, args, options, tags
        failed = state.result != optx.RESULTS.successful
        result = optx.RESULTS.where(failed, state.result, optx.RESULTS.successful)
        return failed | (state.diffsize < 1), result


def diffrax_solver(name: str, implicit: bool) -> Callable:
    """The builder of diffrax's solver ``name`` (Dopri8, Dopri5 and Tsit5 with their
    stages written out: :mod:`.explicit`); an implicit one gets
    :class:`StageNewton` (Newton, not the default VeryChord, which rejected most steps
    here: docs/numerics.md)."""
    def build(spec):
        cls = UNROLLED.get(name) or getattr(diffrax, name)
        if implicit:
            return cls(root_finder=StageNewton(rtol=spec.newton_rtol, atol=spec.newton_atol))
        return cls()
    return build


def scipy_solver(name: str) -> Callable:
    """The builder of scipy's ``OdeSolver`` class ``name``."""
    def build(spec):
        del spec
        import scipy.integrate  # only here: 0.25 s of every start-up otherwise

        return getattr(scipy.integrate, name)
    return build


def _loop(name, implicit, build, **kw) -> Solver:
    return Solver(name, "loop", implicit, resumable=True, build=build, **kw)


def _diffrax(name, implicit) -> Solver:
    return _loop(name, implicit, diffrax_solver(name, implicit))


def _scipy(name, implicit) -> Solver:
    return Solver(name, "scipy", implicit, resumable=False, build=scipy_solver(name))


#: every solver flowsim runs, by name: diffrax's (in the compiled loop), flowsim's own
#: matrix-free methods (RKC2, second-order Runge-Kutta-Chebyshev; ROCK4, Abdulle's
#: fourth-order one; EXPRB32 and EXPRB43, exponential Rosenbrock methods of order 3 and 4
#: with Lanczos; Dopri8EXPRB43 and Dopri8ROCK4, Dopri8 while the flow is not stiff and
#: the other method once it is; their tolerances: docs/numerics.md) and Rosenbrock
#: methods, and scipy's, the independent cross-check
REGISTRY: dict[str, Solver] = {s.name: s for s in (
    _diffrax("Kvaerno5", True), _diffrax("Kvaerno4", True), _diffrax("Kvaerno3", True),
    _diffrax("Tsit5", False), _diffrax("Dopri5", False), _diffrax("Dopri8", False),
    _loop("RKC2", False, lambda spec: RKC2(), tolerances=(1e-6, 1e-9), step_limit=True),
    _loop("ROCK4", False, lambda spec: ROCK4(), step_limit=True),
    _loop("Dopri8ROCK4", False, lambda spec: Dopri8ROCK4(), tolerances=(1e-8, 1e-11),
          step_limit=True),
    _loop("EXPRB32", False, lambda spec: EXPRB32(rtol=spec.rtol, atol=spec.atol),
          tolerances=(1e-6, 1e-9), step_limit=True),
    _loop("EXPRB43", False, lambda spec: EXPRB43(rtol=spec.rtol, atol=spec.atol),
          tolerances=(1e-6, 1e-9), step_limit=True),
    _loop("Dopri8EXPRB43", False,
          lambda spec: Dopri8EXPRB43(rtol=spec.rtol, atol=spec.atol),
          tolerances=(1e-6, 1e-9), step_limit=True, controller="predictive"),
    _loop("Rodas4", True, lambda spec: Rosenbrock(TABLEAUS["Rodas4"])),
    _loop("Rodas5P", True, lambda spec: Rosenbrock(TABLEAUS["Rodas5P"])),
    _scipy("Radau", True), _scipy("BDF", True), _scipy("LSODA", True),
    _scipy("DOP853", False), _scipy("RK45", False),
)}

#: names of the solvers of each family, in registry order
JAX_SOLVERS = tuple(n for n, s in REGISTRY.items() if s.family == "loop")
SCIPY_SOLVERS = tuple(n for n, s in REGISTRY.items() if s.family == "scipy")
SOLVERS = tuple(REGISTRY)


def check_name(solver) -> str:
    """``solver`` if it is ``"auto"`` or a registered name; else ``ValueError``."""
    if solver != AUTO and solver not in REGISTRY:
        raise ValueError(f"solver must be 'auto' or one of {list(SOLVERS)}, got {solver!r}")
    return solver


def check_resumable(solver: str) -> None:
    """Refuse a checkpoint for a solver whose state cannot be saved."""
    entry = REGISTRY[solver]
    if not entry.resumable:
        names = [n for n, s in REGISTRY.items() if s.resumable]
        raise ValueError(f"checkpoint needs a solver of flowsim's compiled loop ({names}): "
                         f"{entry.family}'s {solver} cannot save its state to resume exactly")


# -- the automatic choice ------------------------------------------------------------------
#: state size (unknowns) from which ``"auto"`` takes the matrix-free Dopri8EXPRB43 instead
#: of Kvaerno5, whose dense Newton costs O(P^3) per step
#: (docs/numerics.md)
MATRIX_FREE_FROM = 64
#: smallest stop loss for which ``"auto"`` takes the Rosenbrock method Rodas5P for a small
#: state instead of Kvaerno5: one Jacobian and one LU per step against Newton's dozen, but
#: more steps, and many more deep in Theorem 1's regime (docs/numerics.md)
ROSENBROCK_DOWN_TO = 1e-6
#: coordinates of deep matrix factorizations ``"auto"`` may give Rodas5P: not "product",
#: whose field is not smooth where ``W`` is near singular, as at a small start (a step
#: linearized there crossed ``det W = 0``; docs/numerics.md)
ROSENBROCK_COORDINATES = ("svd", "factors")


def auto_solver(coordinates: str, model_kind: str, state_size: int,
                stop_loss: float | None, stored: str | None = None) -> str:
    """The solver ``"auto"`` takes for a run in ``coordinates`` of a ``model_kind``
    (``"matrix"``, ``"cp"``) model with ``state_size`` unknowns to ``stop_loss`` (``None``:
    none). ``stored``: the solver of the checkpoint the run continues, which it keeps
    (the choice looks at the stop loss, and an extension continues the run it extends
    whatever the new stop loss would choose)."""
    if stored in REGISTRY and REGISTRY[stored].resumable:
        return stored
    if state_size >= MATRIX_FREE_FROM:
        # CP flows too: exact along the path where RKC2 was not, at about its cost
        # (docs/numerics.md, "The stiff stretch: exponential Rosenbrock")
        return "Dopri8EXPRB43"
    if (stop_loss is not None and stop_loss >= ROSENBROCK_DOWN_TO and model_kind == "matrix"
            and coordinates in ROSENBROCK_COORDINATES):
        return "Rodas5P"
    return "Kvaerno5"
