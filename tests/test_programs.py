"""Exported programs (flowsim.integration.programs): a run through a program exported by
this process, or loaded from the cache as a new process would, is the traced run, bit for
bit; a damaged program file is exported again."""

import numpy as np
import pytest

import flowsim as fs
from flowsim.integration import programs


def run(factors_model=False):
    if factors_model:  # factor coordinates: the sign watch and the conserved quantities
        model = fs.DeepMatrixFactorization((2, 2), 2)
        params = fs.gaussian_init(model, seed=3, std=0.3)
        return fs.gradient_flow(fs.paper_problem(), model, params, stop_loss=1e-3,
                                progress=False)
    model = fs.DeepMatrixFactorization((2, 2), 3)
    params = [fs.balanced_init(model, seed=s, scale=1e-2) for s in range(3)]
    return fs.gradient_flow(fs.paper_problem(), model, params, stop_loss=1e-6,
                            progress=False)


def fresh(monkeypatch, cache):
    """A new process's view: nothing loaded, the cache at ``cache`` (None: off)."""
    monkeypatch.setattr(programs, "PROGRAMS", programs.Programs())
    monkeypatch.setattr("flowsim.integration.engines.PROGRAMS", programs.PROGRAMS)
    monkeypatch.setenv("FLOWSIM_CACHE_DIR", "off" if cache is None else str(cache))
    return programs.PROGRAMS


def same(a, b):
    a, b = (a if isinstance(a, list) else [a]), (b if isinstance(b, list) else [b])
    assert len(a) == len(b)
    for x, y in zip(a, b):
        assert x.status == y.status
        np.testing.assert_array_equal(x.t, y.t)
        np.testing.assert_array_equal(x.states, y.states)
        np.testing.assert_array_equal(x.loss, y.loss)


@pytest.mark.parametrize("factors_model", [False, True])
def test_exported_and_loaded_runs_equal_the_traced_run(monkeypatch, tmp_path,
                                                       factors_model):
    fresh(monkeypatch, None)
    traced = run(factors_model)
    exporting = fresh(monkeypatch, tmp_path)
    exported = run(factors_model)
    assert exporting.loaded and not exporting.unexportable
    files = sorted(p.name for p in (tmp_path / "programs").iterdir())
    assert {f.split("-")[0] for f in files} == {"start_point", "initial_carry", "run_chunk"}
    loading = fresh(monkeypatch, tmp_path)
    loaded = run(factors_model)
    assert sorted(loading.loaded) == files  # read from the files, none exported again
    assert sorted(p.name for p in (tmp_path / "programs").iterdir()) == files
    same(traced, exported)
    same(traced, loaded)


def test_a_damaged_program_file_is_exported_again(monkeypatch, tmp_path):
    fresh(monkeypatch, tmp_path)
    first = run()
    chunk = next((tmp_path / "programs").glob("run_chunk-*"))
    chunk.write_bytes(b"not a program")
    fresh(monkeypatch, tmp_path)
    again = run()
    same(first, again)
    assert chunk.read_bytes() != b"not a program"


def test_a_program_serves_only_its_own_settings(monkeypatch, tmp_path):
    """Other tolerances, another number of lanes: other programs, not the first one."""
    model = fs.DeepMatrixFactorization((2, 2), 3)
    params = fs.balanced_init(model, seed=0, scale=1e-2)

    def chunk_files():
        return {p.name for p in (tmp_path / "programs").glob("run_chunk-*")}

    fresh(monkeypatch, tmp_path)
    fs.gradient_flow(fs.paper_problem(), model, params, stop_loss=1e-4, progress=False)
    first = chunk_files()
    fs.gradient_flow(fs.paper_problem(), model, params, stop_loss=1e-4, rtol=1e-7,
                     progress=False)
    second = chunk_files()
    fs.gradient_flow(fs.paper_problem(), model, [params, params], stop_loss=1e-4,
                     progress=False)
    assert len(first) == 1 and len(second) == 2 and len(chunk_files()) == 3


def test_a_cache_that_cannot_be_written_does_not_fail_the_run(monkeypatch, tmp_path):
    fresh(monkeypatch, None)
    traced = run()
    (tmp_path / "programs").write_text("a file where the folder should be")
    writing = fresh(monkeypatch, tmp_path)
    same(traced, run())
    assert writing.loaded and not writing.unexportable
    assert not any(p.name.startswith(".tmp-") for p in tmp_path.iterdir())
