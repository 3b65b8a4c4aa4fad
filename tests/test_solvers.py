"""The solver registry (flowsim.integration.solvers) and the status table
(flowsim.statuses): every list read from them agrees with what the solvers are."""

import diffrax
import pytest

import flowsim as fs
from flowsim import statuses
from flowsim.integration import checkpoint, guards, loop, solvers


def spec(name):
    coords = fs.make_coordinates("factors", fs.DeepMatrixFactorization((2, 2), 2))
    return loop.LoopSpec(coords=coords, solver=name, rtol=1e-8, atol=1e-12, newton_rtol=1e-6,
                         newton_atol=1e-8, chunk_steps=4, save_mode="steps", watch_sign=False,
                         watch_conserved=False)


@pytest.mark.parametrize("name", solvers.JAX_SOLVERS)
def test_loop_entries_build_what_they_say(name):
    entry = solvers.REGISTRY[name]
    built = entry.build(spec(name))
    assert entry.resumable and hasattr(built, "step") and hasattr(built, "error_order")
    assert entry.step_limit == hasattr(built, "step_limit")
    if isinstance(built, diffrax.AbstractSolver) and hasattr(diffrax, name):
        assert entry.implicit == isinstance(built, diffrax.AbstractImplicitSolver)
        if entry.implicit:
            assert isinstance(built.root_finder, solvers.StageNewton)


@pytest.mark.parametrize("name", solvers.SCIPY_SOLVERS)
def test_scipy_entries_are_scipy_solvers(name):
    import scipy.integrate

    entry = solvers.REGISTRY[name]
    assert entry.build(spec(name)) is getattr(scipy.integrate, name)
    assert not entry.resumable
    with pytest.raises(ValueError, match="scipy"):
        solvers.check_resumable(name)


def test_names_are_refused_where_they_are_read():
    assert fs.SOLVERS == solvers.JAX_SOLVERS + solvers.SCIPY_SOLVERS == tuple(solvers.REGISTRY)
    with pytest.raises(ValueError, match="solver must be 'auto' or one of"):
        fs.SolverOptions(solver="Euler")
    assert solvers.auto_solver("svd", "matrix", 7, 1e-6, stored="Kvaerno5") == "Kvaerno5"
    assert solvers.auto_solver("svd", "matrix", 7, 1e-6, stored="Radau") == "Rodas5P"
    assert solvers.auto_solver("factors", "matrix", solvers.MATRIX_FREE_FROM,
                               1e-6) == "Dopri8EXPRB43"
    assert solvers.auto_solver("factors", "cp", solvers.MATRIX_FREE_FROM,
                               1e-6) == "Dopri8EXPRB43"


def test_status_lists_come_from_the_table():
    ends = statuses.ENDS
    assert set(statuses.SUCCESS_STATUSES) == {"stop_loss", "t_max", "max_iterations"}
    assert set(statuses.FAILURE_STATUSES) == {"max_steps", "norm_bound", "nonfinite",
                                              "solver_failure", "interrupted",
                                              "precision_lost", "stationary"}
    assert set(statuses.DESCENT_STATUSES) == {"stop_loss", "max_iterations", "nonfinite",
                                              "interrupted"}
    assert set(statuses.EXTENDABLE_STATUSES) == {"stop_loss", "t_max", "max_steps"}
    assert guards.CODES[guards.SIGN] == "det_sign_changed" and ends[guards.ROSE].event
    # every precision guard's state is written to and read from a checkpoint
    assert {k.name for k in checkpoint.GUARD_KEYS} == {"sign_check", "drift_tol", "rise_tol"}
    assert set(loop.Member.__annotations__) >= {e.guard for e in ends if e.guard}
