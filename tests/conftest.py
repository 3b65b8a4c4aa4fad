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
