"""Integration: :func:`gradient_flow` solves the flow with an adaptive (by default stiff)
solver, for one start or many, exactly or loudly. Modules, lowest first:

- :mod:`.rkc`, :mod:`.rock4`, :mod:`.exponential`, :mod:`.switching`, :mod:`.rosenbrock`:
  flowsim's own solvers (matrix-free: RKC2 and ROCK4, stabilized; EXPRB32 and EXPRB43,
  exponential Rosenbrock with Lanczos; Dopri8EXPRB43 and Dopri8ROCK4, Dopri8 until the
  flow is stiff and the other method after; Rodas4 and Rodas5P, linearly implicit).
- :mod:`.control`: the step-size controllers (diffrax's integral one; Gustafsson's
  predictive one, which follows an error that grows from step to step).
- :mod:`.solvers`: the solver registry (family, implicit, resumable, default tolerances,
  builder, step-size controller) and the rule ``solver="auto"`` follows.
- :mod:`.options`: :class:`SolverOptions`, every default in one place; what to save.
- :mod:`.guards`: end conditions and the precision guards (sign of det, conserved
  quantities, the loss never rising); their codes are :data:`flowsim.statuses.ENDS`.
- :mod:`.loop`: the compiled step loop (the solver's steps and its controller), one chunk
  of accepted steps, vmapped over lanes.
- :mod:`.runs`: a member's run and the loop's view of it (:class:`.loop.Member`).
- :mod:`.programs`: the loop's pieces exported once, loaded by later processes.
- :mod:`.engines`: what advances members by a chunk (the compiled loop; scipy).
- :mod:`.verdicts`: what an end code means (the precision verdicts), statuses and messages.
- :mod:`.locate`: the exact stop point at a stop loss.
- :mod:`.checkpoint`: files that resume bit for bit.
- :mod:`.plan`: a call's inputs checked and its members grouped into solves.
- :mod:`.progress`: the progress bar.
- :mod:`.driver`: the one chunk loop (:class:`.driver.Solve`), :func:`gradient_flow`.
"""

from .driver import gradient_flow
from .options import BASE_TOLERANCES, DEFAULT_TOLERANCES, SolverOptions
from .solvers import JAX_SOLVERS, REGISTRY, SCIPY_SOLVERS, SOLVERS

__all__ = ["BASE_TOLERANCES", "DEFAULT_TOLERANCES", "JAX_SOLVERS", "REGISTRY", "SCIPY_SOLVERS",
           "SOLVERS", "SolverOptions", "gradient_flow"]
