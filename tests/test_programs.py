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
    assert not any(p.name.endswith(".tmp") for p in tmp_path.rglob("*"))


# -- a cache never decides a result: each kind of bad entry is discarded and rebuilt ----

def single(rtol=None):
    model = fs.DeepMatrixFactorization((2, 2), 3)
    params = fs.balanced_init(model, seed=0, scale=1e-2)
    extra = {} if rtol is None else {"rtol": rtol}
    return fs.gradient_flow(fs.paper_problem(), model, params, stop_loss=1e-6,
                            progress=False, **extra)


@pytest.fixture(scope="module")
def two_caches(tmp_path_factory):
    """A cache holding the default run's entries and those of a run at rtol 1e-5, the
    default run's trajectory, and which run_chunk entry is whose."""
    cache = tmp_path_factory.mktemp("cache")
    mp = pytest.MonkeyPatch()
    try:
        fresh(mp, cache)
        default = single()
        mine = {p.name for p in (cache / "programs").glob("run_chunk-*")}
        single(rtol=1e-5)
        other = {p.name for p in (cache / "programs").glob("run_chunk-*")} - mine
    finally:
        mp.undo()
    assert len(mine) == len(other) == 1
    return cache, default, mine.pop(), other.pop()


def _pickle_payload(path, other, marker):
    import pickle

    class Payload:
        def __reduce__(self):
            return (open, (str(marker), "w"))

    path.write_bytes(pickle.dumps(Payload()))


def _other_runs_entry(path, other, marker):
    path.write_bytes(other.read_bytes())


def _flipped_byte(path, other, marker):
    raw = bytearray(path.read_bytes())
    raw[-100] ^= 0xFF
    path.write_bytes(bytes(raw))


def _cut_short(path, other, marker):
    path.write_bytes(path.read_bytes()[:-1000])


def _header_lies(path, other, marker):
    # a header that claims another result structure (a crafted entry, digest recomputed)
    raw = path.read_bytes()
    rest = raw[len(programs.MAGIC):]
    line, _, rest = rest.partition(b"\n")
    header = programs.json.loads(rest[:int(line)])
    header["result"] = {"node": "os:system", "children": []}
    text = programs.json.dumps(header).encode()
    path.write_bytes(programs.MAGIC + f"{len(text)}\n".encode() + text + rest[int(line):])


@pytest.mark.parametrize("damage", [_pickle_payload, _other_runs_entry, _flipped_byte,
                                    _cut_short, _header_lies])
def test_a_bad_entry_is_discarded_and_rebuilt(monkeypatch, tmp_path, two_caches, damage):
    import shutil

    source, default, mine, other = two_caches
    cache = tmp_path / "cache"
    shutil.copytree(source, cache)
    entry = cache / "programs" / mine
    marker = tmp_path / "payload-ran"
    damage(entry, cache / "programs" / other, marker)
    loading = fresh(monkeypatch, cache)
    again = single()
    assert list(loading.discarded) == [mine]
    assert not marker.exists()
    same(default, again)  # the default run's steps, not those of the entry's run
    # rebuilt: the next process loads it as it is
    rebuilt = entry.read_bytes()
    assert rebuilt.startswith(programs.MAGIC)
    assert not any(p.name.endswith(".tmp") for p in (cache / "programs").iterdir())
    loading = fresh(monkeypatch, cache)
    same(default, single())
    assert not loading.discarded and mine in loading.loaded


def test_the_cache_holds_no_pickles():
    import inspect

    source = inspect.getsource(programs)
    assert "pickle" not in source.replace("unpickled", "")
