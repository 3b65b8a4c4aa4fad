"""Shared fixtures. Importing flowsim switches on float64 once for the whole session."""

import jax
import pytest

import flowsim as fs

assert jax.config.jax_enable_x64, "flowsim must switch on float64"


@pytest.fixture(scope="session")
def paper():
    return fs.paper_problem()


@pytest.fixture(scope="session")
def depth3():
    return fs.DeepMatrixFactorization(shape=(2, 2), depth=3)


@pytest.fixture(scope="session")
def depth3_params(depth3):
    return fs.balanced_init(depth3, seed=0, scale=1e-3, det_sign=+1)


@pytest.fixture(scope="module", autouse=True)
def _fresh_compiled_programs():
    """Drop jax's in-memory compiled programs after each test module. The suite compiles
    hundreds of programs (the 100x100 flows among them) in one process; with all of them
    kept alive, XLA's CPU compiler crashed (a segmentation fault while compiling a small
    program, late in the suite, never in the module alone). Later modules recompile
    from the persistent compilation cache."""
    yield
    jax.clear_caches()
