"""Integration: :func:`gradient_flow` solves the flow with an adaptive (by default stiff)
solver, for one start or many, exactly or loudly.

- :mod:`.solvers`: the solver registry and the rule solver="auto" follows.
- :mod:`.options`: :class:`SolverOptions`, every default in one place; what to save.
- :mod:`.loop`: the compiled step loop (diffrax solver steps and PID controller), one
  chunk of accepted steps, vmapped over lanes.
- :mod:`.guards`: end conditions and the precision guards (sign of det, conserved
  quantities).
- :mod:`.engines`: what advances members by a chunk (the compiled loop; scipy).
- :mod:`.checkpoint`: files that resume bit for bit.
- :mod:`.driver`: the one chunk loop, the exact stop point, :func:`gradient_flow`.
"""

from .driver import gradient_flow
from .options import BASE_TOLERANCES, DEFAULT_TOLERANCES, SolverOptions
from .solvers import JAX_SOLVERS, REGISTRY, SCIPY_SOLVERS, SOLVERS

__all__ = ["BASE_TOLERANCES", "DEFAULT_TOLERANCES", "JAX_SOLVERS", "REGISTRY", "SCIPY_SOLVERS",
           "SOLVERS", "SolverOptions", "gradient_flow"]
