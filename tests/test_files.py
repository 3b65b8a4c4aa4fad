"""Every file flowsim writes is checked when it is read, and every failure is one clear
line (issue 13).

Table-driven: each row is a bad file or a bad argument, the expected exception type (or
exit code) and a fragment of the message naming the file or the field. The bad files are
generated from good ones: truncations at several offsets, flipped bytes, each metadata key
dropped or altered, arrays reshaped, retyped or made non-finite. No row may end in any
other exception, and on the command line no row may print a traceback.

``tests/data/*_9f440fa.*`` were written by flowsim at commit 9f440fa (the main branch
before this format check existed); they must still load.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

import flowsim as fs
from flowsim import cli
from flowsim.cli import main
from flowsim.experiments import figure1, figure2
from flowsim.experiments.sweep import SweepConfig, SweepResults, run_sweep
from flowsim.files import FileFormatError, replace_atomically
from flowsim.integration import checkpoint

DATA = Path(__file__).resolve().parent / "data"
OLD = {kind: DATA / name for kind, name in (
    ("trajectory", "trajectory_9f440fa.npz"), ("descent", "descent_9f440fa.npz"),
    ("checkpoint", "checkpoint_9f440fa.npz"), ("sweep", "sweep_9f440fa.npz"),
    ("figure2", "figure2_9f440fa.jsonl"), ("figure1", "figure1_summary_9f440fa.json"))}
#: the run of the checkpoint the command-line rows use (cheap: a few dozen steps)
#: (a Gaussian start: factor coordinates, so that the file holds the layers)
RUN = ["run", "--depth", "2", "--init", "gaussian", "--scale", "0.5", "--stop-loss", "1e-1",
       "--no-progress"]


# -- helpers: raw archives, written without flowsim ------------------------------------

def parts(path) -> tuple[dict, dict]:
    """The arrays and the metadata of an archive, without its digest: the rows here edit
    files and check what is found behind the digest (tests/test_hostile.py checks it)."""
    with np.load(path, allow_pickle=False) as f:
        arrays = {k: f[k] for k in f.files if k != "digest"}
    return arrays, json.loads(str(arrays.pop("metadata")))


def write_parts(path, arrays: dict, meta) -> Path:
    raw = meta if isinstance(meta, np.ndarray) else np.array(json.dumps(meta))
    np.savez(path, **arrays, **({} if meta is None else {"metadata": raw}))
    return Path(path)


@pytest.fixture(scope="module")
def good(tmp_path_factory):
    """One good file of each kind, written by today's flowsim."""
    folder = tmp_path_factory.mktemp("good")
    files = {}
    ck = folder / "checkpoint.npz"
    assert main(RUN + ["-o", str(ck)]) == 0
    files["checkpoint"] = ck
    files["trajectory"] = fs.Trajectory.load(ck).save(folder / "trajectory.npz")
    assert fs.Trajectory.load(ck).factors is not None
    results = SweepResults.load(OLD["sweep"])
    files["sweep"] = results.save(folder / "sweep.npz")
    files["figure2"] = folder / "figure2.jsonl"
    files["figure2"].write_text(OLD["figure2"].read_text())
    files["figure1"] = folder / "figure1_summary.json"
    files["figure1"].write_text(OLD["figure1"].read_text())
    return files


READERS = {
    "trajectory": fs.Trajectory.load,
    "checkpoint": checkpoint.load,
    "sweep": SweepResults.load,
    "figure2": figure2.load_results,
    "figure1": figure1.load_summary,
}


def expect(kind: str, path: Path, fragment: str | None):
    """Read ``path`` as ``kind``: with ``fragment`` None it must load; else it must raise
    FileFormatError naming the file and holding ``fragment`` (nothing else)."""
    if fragment is None:
        return READERS[kind](path)
    with pytest.raises(FileFormatError) as info:
        READERS[kind](path)
    message = str(info.value)
    assert message.startswith(str(path)) and fragment in message, message
    assert "\n" not in message
    return None


# -- files of today's main (9f440fa) still load ----------------------------------------

def test_trajectories_of_9f440fa_load():
    flow = fs.Trajectory.load(OLD["trajectory"])
    assert flow.status == "stop_loss" and len(flow) == 18 and flow.factors is None
    assert flow.log_singular_values is None and flow.config["coordinates"] == "svd"
    gd = fs.Trajectory.load(OLD["descent"])
    assert gd.steps[-1] == 12 and len(gd.factors) == 3
    ck = fs.Trajectory.load(OLD["checkpoint"])
    assert ck.config["coordinates"] == "factors" and ck.loss[-1] == pytest.approx(0.1)


def test_checkpoint_of_9f440fa_loads_but_is_not_resumed(tmp_path):
    path = shutil.copy(OLD["checkpoint"], tmp_path / "old.npz")
    model = fs.DeepMatrixFactorization((2, 2), 3)
    params = fs.balanced_init(model, seed=0, scale=0.3, det_sign=+1)
    with pytest.raises(FileFormatError, match="older flowsim.*cannot be resumed"):
        fs.gradient_flow(fs.paper_problem(), model, params, coordinates="factors",
                         stop_loss=1e-1, checkpoint=path, progress=False)


def test_sweep_results_of_9f440fa_load_and_resave(tmp_path):
    old = SweepResults.load(OLD["sweep"])
    assert old.done.tolist() == [True, True, False, False]
    assert old.columns["coordinates_used"].tolist()[:2] == ["factors", "factors"]
    again = SweepResults.load(old.save(tmp_path / "again.npz"))
    for key, column in old.columns.items():
        np.testing.assert_array_equal(again.columns[key], column)


def test_figure_files_of_9f440fa_load_and_resume(tmp_path, monkeypatch):
    config, records = figure2.load_results(OLD["figure2"])
    assert len(records) == 4 and config["n_values"] == [4, 6]
    path = shutil.copy(OLD["figure2"], tmp_path / "grid.jsonl")
    monkeypatch.setattr(figure2, "run_one", lambda *a: pytest.fail("recomputed a run"))
    assert figure2.run_grid(figure2.Figure2Config(**config), path, progress=False) == records
    summary = figure1.load_summary(OLD["figure1"])
    assert [r["depth"] for r in summary["runs"]] == [2, 2, 2, 2]
    assert figure1.load_summary(figure1.save_summary(
        tmp_path / "s.json", summary["runs"], dtype="float64", seed=0, stop_loss=0.1,
        max_iterations=20000))["format"] == "flowsim.figure1_summary"


def test_good_files_load(good):
    for kind, path in good.items():
        assert expect(kind, path, None) is not None


# -- generated corruptions: truncation, flipped bytes ------------------------------------

NPZ_KINDS = ("trajectory", "checkpoint", "sweep")


@pytest.mark.parametrize("kind", NPZ_KINDS)
def test_truncated_archives_are_refused(kind, good, tmp_path):
    raw = good[kind].read_bytes()
    for cut in (0, 1, 4, 30, 200, len(raw) // 3, len(raw) // 2, len(raw) - 100,
                len(raw) - 22, len(raw) - 1):
        path = tmp_path / f"cut{cut}.npz"
        path.write_bytes(raw[:cut])
        expect(kind, path, "is empty" if cut == 0 else "")


@pytest.mark.parametrize("kind", NPZ_KINDS)
def test_flipped_bytes_are_refused_or_harmless(kind, good, tmp_path):
    """A flipped byte in the data or the metadata is refused (the archive's CRC, the
    headers, the checks); one in a field nobody reads (a timestamp) leaves the content
    as it was. Never another exception."""
    raw = good[kind].read_bytes()
    reference = parts(good[kind])
    refused, offsets = 0, range(0, len(raw), max(1, len(raw) // 150))
    for offset in offsets:
        flipped = bytearray(raw)
        flipped[offset] ^= 0xFF
        path = tmp_path / "flipped.npz"
        path.write_bytes(bytes(flipped))
        try:
            READERS[kind](path)
        except FileFormatError as exc:
            assert str(exc).startswith(str(path))
            refused += 1
            continue
        arrays, meta = parts(path)
        assert meta == reference[1] and arrays.keys() == reference[0].keys()
        for name, a in arrays.items():
            np.testing.assert_array_equal(a, reference[0][name])
    assert refused > len(offsets) // 2


@pytest.mark.parametrize("kind, name, content, fragment", [
    ("trajectory", "empty.npz", b"", "is empty"),
    ("trajectory", "text.npz", b"t,loss\n0,1\n", "not an .npz archive"),
    ("trajectory", "pickle.npz", b"\x80\x04\x95" + b"\x00" * 20, "not an .npz archive"),
    ("sweep", "array.npz", None, "single .npy array"),
    ("figure2", "empty.jsonl", b"", "is empty"),
    ("figure2", "binary.jsonl", b"\xff\xfe\x00", "not a text file"),
    ("figure1", "not.json", b"{runs: 1", "not valid JSON"),
])
def test_files_that_are_something_else(kind, name, content, fragment, tmp_path):
    path = tmp_path / name
    if content is None:
        np.save(path.with_suffix(".npy"), np.zeros(3))
        path.with_suffix(".npy").rename(path)
    else:
        path.write_bytes(content)
    expect(kind, path, fragment)


def test_a_directory_and_a_missing_file(tmp_path):
    expect("trajectory", tmp_path, "is a directory")
    with pytest.raises(FileNotFoundError, match="nothere.npz"):
        fs.Trajectory.load(tmp_path / "nothere.npz")


# -- generated corruptions: metadata keys dropped or altered ----------------------------

def metadata_rows(kind: str, meta: dict) -> list:
    """``(name, edit of the metadata, fragment or None = loads)`` for every key: dropped
    (refused when required) and altered to a value of the wrong type."""
    optional = {"checkpoint", "format_version"}
    rows = []
    for key in meta:
        rows.append((f"drop {key}", lambda m, k=key: m.pop(k),
                     None if key in optional else repr(key) if key != "format" else "format"))
        rows.append((f"alter {key}", lambda m, k=key: m.__setitem__(k, [1]),
                     "format" if key == "format" else key))
    return rows


def edit(meta: dict, change) -> dict:
    meta = json.loads(json.dumps(meta))
    change(meta)
    return meta


@pytest.mark.parametrize("kind", NPZ_KINDS)
def test_each_metadata_key_dropped_or_altered(kind, good, tmp_path):
    arrays, meta = parts(good[kind])
    for name, change, fragment in metadata_rows(kind, meta):
        path = write_parts(tmp_path / f"{name.replace(' ', '_')}.npz", arrays,
                           edit(meta, change))
        expect(kind, path, fragment)


def set_in(keys, value):
    def change(meta):
        target = meta
        for k in keys[:-1]:
            target = target[k]
        target[keys[-1]] = value
    return change


#: ``(kind, name, metadata edit, fragment)``: altered values the types allow
METADATA_VALUES = [
    ("trajectory", "format_version 99", set_in(["format_version"], 99), "newer than"),
    ("trajectory", "format_version 0", set_in(["format_version"], 0), "format_version"),
    ("trajectory", "another format", set_in(["format"], "flowsim.SweepResults"),
     "is not a flowsim.Trajectory file"),
    ("trajectory", "n_factors 1", set_in(["n_factors"], 1), "n_factors is 1"),
    ("trajectory", "n_factors 5", set_in(["n_factors"], 5), "factor_2"),
    ("trajectory", "n_factors -1", set_in(["n_factors"], -1), "n_factors"),
    ("trajectory", "status done", set_in(["status"], "done"), "status"),
    ("trajectory", "model depth", set_in(["config", "model", "depth"], 3), "model"),
    ("trajectory", "model kind", set_in(["config", "model", "kind"], "MLP"), "model kind"),
    ("trajectory", "model shape", set_in(["config", "model", "shape"], [2, 3]), "model"),
    ("trajectory", "problem shape", set_in(["config", "problem", "shape"], [3, 3]),
     "problem"),
    ("trajectory", "problem values", set_in(["config", "problem", "values"], [1, 1]),
     "values"),
    ("trajectory", "initial state", set_in(["config", "initial_state"], [0.0]),
     "initial_state"),
    ("checkpoint", "n_keep", set_in(["checkpoint", "n_keep"], 10**6), "n_keep"),
    ("checkpoint", "n_carry", set_in(["checkpoint", "n_carry"], 40), "carry_"),
    ("checkpoint", "drift_tol", set_in(["checkpoint", "drift_tol"], "x"), "drift_tol"),
    ("checkpoint", "no sign_check", lambda m: m["checkpoint"].pop("sign_check"),
     "sign_check"),
    ("sweep", "another format", set_in(["format"], "flowsim.Trajectory"),
     "is not a flowsim.SweepResults file"),
    ("sweep", "repetitions", set_in(["config", "sweep", "repetitions"], 3), "tasks"),
    ("sweep", "grid changed", set_in(["config", "grid", "scale"], [0.3, 0.1]), "'scale'"),
    ("sweep", "bad config", set_in(["config", "grid", "depth"], 0), "depth"),
    ("sweep", "bad table", set_in(["config", "colour"], {}), "colour"),
]


@pytest.mark.parametrize("kind, name, change, fragment", METADATA_VALUES,
                         ids=[f"{r[0]}: {r[1]}" for r in METADATA_VALUES])
def test_metadata_values(kind, name, change, fragment, good, tmp_path):
    arrays, meta = parts(good[kind])
    expect(kind, write_parts(tmp_path / "edited.npz", arrays, edit(meta, change)), fragment)


# -- generated corruptions: arrays -----------------------------------------------------

def rows_of_arrays(arrays: dict) -> dict:
    n = len(arrays["t"])
    return {
        "product reshaped": ({"product": arrays["product"].reshape(n, -1)}, "'product'"),
        "loss as strings": ({"loss": arrays["loss"].astype(str)}, "'loss'"),
        "t all NaN": ({"t": np.full(n, np.nan)}, "'t'"),
        "t backwards": ({"t": arrays["t"][::-1].copy()}, "'t'"),
        "loss NaN inside": ({"loss": np.where(np.arange(n) == 1, np.nan, arrays["loss"])},
                            "'loss'"),
        "states one point short": ({"states": arrays["states"][:-1]}, "'states'"),
        "det_sign 2": ({"det_sign": 2 * arrays["det_sign"]}, "'det_sign'"),
        "steps as floats": ({"steps": np.arange(n) + 0.5}, "'steps'"),
        "log singular values short": ({"log_singular_values": np.zeros((n + 1, 2))},
                                      "'log_singular_values'"),
        "objects": ({"loss": np.array([1, "a"], dtype=object)}, "Python objects"),
        "stray layer": ({"factor_7": np.zeros((n, 2, 2))}, "factor_7"),
        "an unknown array": ({"notes": np.zeros(3)}, None),
        "metadata a number": ({"metadata": np.array(3.0)}, "metadata"),
        "metadata not JSON": ({"metadata": np.array("{status: done")}, "not valid JSON"),
        "metadata a list": ({"metadata": np.array("[1, 2]")}, "JSON object"),
    }


@pytest.mark.parametrize("kind", ("trajectory", "checkpoint"))
def test_trajectory_arrays(kind, good, tmp_path):
    arrays, meta = parts(good[kind])
    for name, (changes, fragment) in rows_of_arrays(arrays).items():
        path = tmp_path / f"{name.replace(' ', '_')}.npz"
        new = {**arrays, **changes}
        if "metadata" in changes:
            write_parts(path, {k: v for k, v in new.items() if k != "metadata"},
                        changes["metadata"])
        else:
            write_parts(path, new, meta)
        expect(kind, path, fragment)
    for name in [*arrays, "metadata"]:  # each array dropped
        rest = {k: v for k, v in arrays.items() if k != name}
        path = write_parts(tmp_path / f"without_{name}.npz", rest,
                           None if name == "metadata" else meta)
        optional = name == "log_singular_values" or (
            name.startswith("carry_") and kind == "trajectory")
        expect(kind, path, None if optional else name)


def test_sweep_arrays(good, tmp_path):
    arrays, meta = parts(good["sweep"])
    rows = {
        "seed changed": ({"seed": arrays["seed"] + 1}, "'seed'"),
        "done without status": ({"status": np.full(4, "", dtype="<U16")}, "'status'"),
        "w_final reshaped": ({"w_final": arrays["w_final"].reshape(4, 4)}, "'w_final'"),
        "done as numbers": ({"done": arrays["done"].astype(float)}, "'done'"),
        "one row short": ({"t_final": arrays["t_final"][:3]}, "'t_final'"),
        "an unknown column": ({"notes": np.zeros(4)}, None),
    }
    for changes, fragment in rows.values():
        expect("sweep", write_parts(tmp_path / "s.npz", {**arrays, **changes}, meta),
               fragment)
    for name in arrays:
        rest = {k: v for k, v in arrays.items() if k != name}
        expect("sweep", write_parts(tmp_path / "s.npz", rest, meta),
               None if name == "coordinates_used" else repr(name))


# -- JSON lines and JSON ---------------------------------------------------------------

def figure2_rows(lines: list[str]) -> dict:
    header, first = json.loads(lines[0]), json.loads(lines[1])
    config = header["config"]
    return {
        "header not JSON": (["{format"] + lines[1:], "line 1"),
        "header another format": ([json.dumps({**header, "format": "x"})] + lines[1:],
                                  "is not a flowsim.figure2 file"),
        "header newer": ([json.dumps({**header, "format_version": 2})] + lines[1:], "newer"),
        "header without config": ([json.dumps({"format": "flowsim.figure2"})] + lines[1:],
                                  "'config'"),
        "header config invalid": ([json.dumps({**header, "config": {**config, "trials": 0}})]
                                  + lines[1:], "trials"),
        "header config unknown key": (
            [json.dumps({**header, "config": {**config, "colour": 1}})] + lines[1:], "colour"),
        "a line in the middle not JSON": (lines[:2] + ["{kind"] + lines[2:], "line 3"),
        "a record a list": (lines[:2] + ["[1, 2]"] + lines[2:], "line 3"),
        "a record without error": (
            lines[:1] + [json.dumps({k: v for k, v in first.items() if k != "error"})]
            + lines[2:], "line 2 lacks the key 'error'"),
        "a record with n a string": (
            lines[:1] + [json.dumps({**first, "n": "4"})] + lines[2:], "line 2['n']"),
        "a record outside the grid": (
            lines[:1] + [json.dumps({**first, "n": 5})] + lines[2:], "outside the grid"),
        "a record twice": (lines + [lines[1]], "repeats the run of line 2"),
        "a record without rank": (
            lines[:1] + [json.dumps({k: v for k, v in first.items() if k != "rank"})]
            + lines[2:], "lacks ['rank']"),
        "the last line cut short": (lines + [lines[1][:25]], None),
        "a cut line then a whole one": (lines[:2] + [lines[2][:25] + lines[2]] + lines[3:],
                                        None),
    }


def test_figure2_results_lines(tmp_path):
    lines = OLD["figure2"].read_text().splitlines()
    for name, (content, fragment) in figure2_rows(lines).items():
        path = tmp_path / "r.jsonl"
        path.write_text("\n".join(content) + "\n")
        got = expect("figure2", path, fragment)
        if got is not None:
            assert len(got[1]) == 4, name


def test_figure2_resume_drops_a_cut_line_before_appending(tmp_path, monkeypatch):
    lines = OLD["figure2"].read_text().splitlines()
    path = tmp_path / "r.jsonl"
    path.write_text("\n".join(lines[:-1] + [lines[-1][:30]]))  # killed mid-line
    config, records = figure2.load_results(path)
    monkeypatch.setattr(figure2, "run_one", lambda c, d, key: json.loads(lines[-1]))
    assert len(figure2.run_grid(figure2.Figure2Config(**config), path, progress=False)) == 4
    assert figure2.read_results(path)[2] is False  # no cut line left in the file


def test_figure1_summary(tmp_path):
    obj = json.loads(OLD["figure1"].read_text())
    rows = {
        "runs missing": ({k: v for k, v in obj.items() if k != "runs"}, "'runs'"),
        "runs a dict": ({**obj, "runs": {}}, "'runs'"),
        "a run without its status": (
            {**obj, "runs": [{k: v for k, v in obj["runs"][0].items() if k != "gd_status"}]},
            "runs[0] lacks the key 'gd_status'"),
        "seed a string": ({**obj, "seed": "0"}, "'seed'"),
        "another format": ({**obj, "format": "flowsim.figure2"}, "is not a flowsim.figure1"),
        "newer": ({**obj, "format": "flowsim.figure1_summary", "format_version": 7},
                  "newer"),
        "a list": ([obj], "JSON object"),
    }
    for content, fragment in rows.values():
        path = tmp_path / "s.json"
        path.write_text(json.dumps(content))
        expect("figure1", path, fragment)


# -- writes stay atomic ----------------------------------------------------------------

def test_a_failed_write_leaves_the_old_file(tmp_path):
    path = tmp_path / "a.npz"
    fs.Trajectory.load(OLD["trajectory"]).save(path)
    before = path.read_bytes()

    def crash(fh):
        fh.write(b"PK half a file")
        raise RuntimeError("killed")

    with pytest.raises(RuntimeError):
        replace_atomically(path, crash)
    assert path.read_bytes() == before


# -- the command line: one line, naming the file or the option, exit 2 -----------------

def run_cli(argv, capsys) -> tuple[int, str]:
    try:
        code = main([str(a) for a in argv])
    except SystemExit as exc:  # argparse
        code = exc.code
    err = capsys.readouterr().err
    assert "Traceback" not in err, err
    return code, err


@pytest.fixture(scope="module")
def bad_files(good, tmp_path_factory):
    """A few generated bad checkpoints and sweep results (the full generated sets are read
    through the API above): name -> path."""
    folder = tmp_path_factory.mktemp("bad")
    raw = good["checkpoint"].read_bytes()
    out = {}
    for cut in (0, 100, len(raw) // 2, len(raw) - 1):
        out[f"cut{cut}"] = folder / f"cut{cut}.npz"
        out[f"cut{cut}"].write_bytes(raw[:cut])
    flipped = bytearray(raw)
    flipped[len(raw) // 2] ^= 0xFF
    out["flipped"] = folder / "flipped.npz"
    out["flipped"].write_bytes(bytes(flipped))
    out["text"] = folder / "text.npz"
    out["text"].write_text("not an archive\n")
    np.save(folder / "array.npy", np.zeros(3))
    out["npy"] = (folder / "array.npy").rename(folder / "array.npz")
    arrays, meta = parts(good["checkpoint"])
    for name, change in (("version99", set_in(["format_version"], 99)),
                         ("nfactors1", set_in(["n_factors"], 1)),
                         ("nometa", None)):
        out[name] = write_parts(folder / f"{name}.npz", arrays,
                                None if change is None else edit(meta, change))
    out["strings"] = write_parts(folder / "strings.npz",
                                 {**arrays, "loss": arrays["loss"].astype(str)}, meta)
    out["old"] = shutil.copy(OLD["checkpoint"], folder / "old_checkpoint.npz")
    sweep_arrays, sweep_meta = parts(good["sweep"])
    out["sweep_cut"] = folder / "sweep_cut.npz"
    out["sweep_cut"].write_bytes(good["sweep"].read_bytes()[:500])
    out["sweep_other"] = write_parts(folder / "sweep_other.npz", sweep_arrays,
                                     edit(sweep_meta, set_in(["config", "grid", "depth"], 3)))
    return out


SWEEP_TOML = "[sweep]\nrepetitions = 2\n[grid]\ndepth = 2\nscale = 0.3\nstop_loss = 1e-1\n"


def sweep_rows(tmp: Path, bad: dict) -> list:
    def toml(name, text):
        path = tmp / name
        path.write_bytes(text if isinstance(text, bytes) else text.encode())
        return path

    good_toml = toml("good.toml", SWEEP_TOML)
    return [
        (["sweep", tmp / "nothere.toml"], "nothere.toml"),
        (["sweep", toml("syntax.toml", "[grid\n")], "syntax.toml: is not valid TOML"),
        (["sweep", toml("binary.toml", b"\xff\xfe[")], "binary.toml"),
        (["sweep", toml("unknown.toml", "[grid]\ncolour = 1\n")], "colour"),
        (["sweep", toml("negative.toml", "[grid]\nstop_loss = [1e-2, -1]\n")],
         "stop_loss must be a finite real number > 0"),
        (["sweep", toml("twice.toml", "[grid]\nscale = [1e-3, 1e-3]\n")],
         "scale lists 0.001 more than once"),
        (["sweep", toml("tmax.toml", "[grid]\nt_max = nan\n")], "t_max"),
        (["sweep", toml("coords.toml", "[grid]\ncoordinates = 'polar'\n")], "coordinates"),
        (["sweep", toml("seed.toml", "[sweep]\nseed = -1\n")], "seed"),
        (["sweep", toml("rtol.toml", "[grid]\nrtol = 10\n")], "rtol"),
        (["sweep", toml("dims.toml", "[sweep]\nproblem = 'padded'\nd = 2.5\n")], "d must"),
        (["sweep", toml("padded.toml", "[sweep]\nproblem = 'padded'\nd2 = 4\n"
                                        "[grid]\ndet_sign = '+1'\n")], "square"),
        (["sweep", toml("table.toml", "sweep = 3\n")], "[sweep] must be a table"),
        (["sweep", good_toml, "-o", bad["sweep_cut"]], "sweep_cut.npz: is not a readable"),
        (["sweep", good_toml, "-o", bad["sweep_other"]], "sweep_other.npz"),
        (["sweep", good_toml, "-o", bad["text"]], "text.npz: is not an .npz archive"),
        (["sweep", good_toml, "-o", OLD["trajectory"]],
         "is not a flowsim.SweepResults file"),
        (["sweep", good_toml, "-o", tmp], "--output"),
        (["sweep", good_toml, "-o", good_toml], "config file itself"),
        (["sweep", good_toml, "--workers", "0", "--dask"], "--workers"),
        (["sweep", good_toml, "--workers", "2"], "--workers needs --dask"),
    ]


def cli_rows(tmp: Path, bad: dict) -> list:
    """``(argv, fragment)``: every row exits 2 with one line holding the fragment."""
    a_file = tmp / "a_file.txt"
    a_file.write_text("x")
    fig2 = ["figure2", "--order", "3", "--dim", "3", "--n", "22", "--no-progress"]
    rows = [(RUN + ["-o", path], path.name) for name, path in bad.items()
            if not name.startswith("sweep")]
    rows += [
        (RUN + ["-o", bad["old"]], "older flowsim"),
        (RUN + ["-o", bad["version99"]], "newer than this flowsim reads"),
        (RUN + ["-o", bad["nfactors1"]], "n_factors is 1"),
        (RUN + ["-o", bad["strings"]], "'loss' must hold float"),
        (RUN + ["-o", tmp], "--output"),
        (RUN + ["-o", a_file / "x.npz"], "is a file, not a directory"),
        (["run", "--seed", "-1"], "seed must be an integer >= 0"),
        (["run", "--scale", "nan"], "scale"),
        (["run", "--scale", "0", "--init", "identity"], "singular"),
        (["run", "--problem", "perturbed", "--b", "nan", "1", "1"], "b12"),
        (["run", "--rtol", "10"], "rtol must be < 1"),
        (["run", "--t-max", "-1"], "t_max"),
        (["run", "--max-steps", "0"], "max_steps"),
        (["run", "--problem", "padded", "--dims", "1", "3"], "d must be an integer >= 2"),
        (["run", "--depth", "2.5"], "--depth"),
        (["run", "--colour", "red"], "--colour"),
        (fig2 + ["--out", a_file], "--out"),
        (fig2 + ["--out", tmp / "f2", "--n", "3", "3"], "n_values lists 3 more than once"),
        (fig2 + ["--out", tmp / "f2", "--inits", "1e-3", "1e-3"], "init_stds lists"),
        (fig2 + ["--out", tmp / "f2", "--n", "28"], "n_values must be an integer between"),
        (fig2 + ["--out", tmp / "f2", "--trials", "0"], "trials"),
        (fig2 + ["--out", tmp / "f2", "--stop-mse", "inf"], "stop_mse"),
        (["figure1", "--out", a_file], "--out"),
        (["figure1", "--out", tmp / "f1", "--depths", "2", "2"], "--depths"),
        (["figure1", "--out", tmp / "f1", "--stop-loss", "nan"], "--stop-loss"),
        (["verify", "--out", a_file], "--out"),
    ]
    return rows + sweep_rows(tmp, bad)


def test_command_line_rows(bad_files, tmp_path, capsys):
    rows = cli_rows(tmp_path, bad_files)
    assert len(rows) > 50
    for argv, fragment in rows:
        code, err = run_cli(argv, capsys)
        assert code == 2, (argv, err)
        assert err.count("\n") == 1 and str(fragment) in err, (argv, err)
    # nothing was computed or written for the refused sweeps and figures
    assert not list(tmp_path.glob("*.npz")) and not (tmp_path / "f2").exists()


def test_command_line_figure2_refuses_a_bad_results_file(tmp_path, capsys):
    out = tmp_path / "out"
    out.mkdir()
    results = out / "figure2_order3_results.jsonl"
    results.write_text('{"format": "flowsim.figure2", "config": {"order": 3}}\n{"kind"\nx\n')
    code, err = run_cli(["figure2", "--order", "3", "--dim", "3", "--n", "22", "--out", out],
                        capsys)
    assert code == 2 and f"{results}: line 2 is not JSON" in err


def test_sweep_refuses_a_bad_grid_before_running(tmp_path, monkeypatch):
    config = SweepConfig.from_dict({"sweep": {"problem": "padded", "d2": 4, "batch_size": 1},
                                    "grid": {"det_sign": ["none", "+1"]}})
    monkeypatch.setattr("flowsim.experiments.sweep.run_batch",
                        lambda *a: pytest.fail("a batch ran"))
    with pytest.raises(ValueError, match=r"grid point 1 .*square"):
        run_sweep(config, tmp_path / "out.npz", progress=False)
    assert not (tmp_path / "out.npz").exists()


def test_interrupt_and_bug_exit_codes(monkeypatch, capsys):
    import flowsim.cli.run as run_command

    def interrupted(args):
        raise KeyboardInterrupt

    monkeypatch.setattr(run_command, "run", interrupted)
    code, err = run_cli(["run"], capsys)
    assert code == cli.EXIT_INTERRUPTED == 130 and err == "flowsim run: interrupted\n"

    def bug(args):
        return {}["no such key"]

    monkeypatch.setattr(run_command, "run", bug)
    assert main(["run"]) == cli.EXIT_BUG == 3
    err = capsys.readouterr().err
    assert "Traceback" in err and "KeyError" in err
    assert err.rstrip().splitlines()[-1].startswith("flowsim run: internal error (a bug in")
    # --traceback shows where an expected failure came from
    monkeypatch.undo()
    assert main(["--traceback", "run", "--seed", "-1"]) == 2
    err = capsys.readouterr().err
    assert "Traceback" in err and err.rstrip().splitlines()[-1].endswith("got -1")


# -- the API: non-integers, integers out of range, rtol >= 1, complex, non-finite ------

API_ROWS = [
    (lambda: fs.MatrixCompletion((2.5, 2), [(0, 1)], [1.0]), "shape[0]"),
    (lambda: fs.MatrixCompletion("22", [(0, 1)], [1.0]), "shape"),
    (lambda: fs.MatrixCompletion((2, 2), [(2**70, 0)], [1.0]), "out of range"),
    (lambda: fs.MatrixCompletion((2, 2), [(0.5, 0)], [1.0]), "indices must be integers"),
    (lambda: fs.MatrixCompletion((2, 2), [("a", 0)], [1.0]), "indices must be integers"),
    (lambda: fs.MatrixCompletion((2, 2), [(0, 1)], [1 + 1j]), "values must be real"),
    (lambda: fs.MatrixCompletion((2, 2), [(0, 1)], ["a"]), "values must be real"),
    (lambda: fs.TensorCompletion((2, 2, 2.0), [(0, 1, 0)], [1.0]), "shape[2]"),
    (lambda: fs.DeepMatrixFactorization((2, 2), 2, widths=(3.7,)), "widths[0]"),
    (lambda: fs.DeepMatrixFactorization((2, 2), 2, widths=3), "widths"),
    (lambda: fs.DeepMatrixFactorization((2, 2), True), "depth"),
    (lambda: fs.CPFactorization((2, 2, 2), 2.5), "rank"),
    (lambda: fs.padded_problem(2.5, 3), "d must be an integer"),
    (lambda: fs.perturbed_problem(1j, 1, 1), "b12"),
    (lambda: fs.perturbed_problem(1, np.inf, 1), "b21"),
    (lambda: fs.balanced_init(fs.DeepMatrixFactorization((2, 2), 2), seed=-1), "seed"),
    (lambda: fs.balanced_init(fs.DeepMatrixFactorization((2, 2), 2), seed=1.5), "seed"),
    (lambda: fs.balanced_init(fs.DeepMatrixFactorization((2, 2), 2), scale=1e-3 + 1j),
     "scale"),
    (lambda: fs.balanced_init(fs.DeepMatrixFactorization((2, 2), 2),
                              scale=np.complex128(1e-3)), "scale"),
    (lambda: fs.gaussian_init(fs.DeepMatrixFactorization((2, 2), 2), std="1"), "std"),
    (lambda: fs.balanced_init(fs.DeepMatrixFactorization((2, 2), 2), det_sign=1.0),
     "det_sign"),
    (lambda: fs.balanced_init(fs.CPFactorization((2, 2)), seed=0), "DeepMatrixFactorization"),
    (lambda: fs.cp_gaussian_init(fs.CPFactorization((2, 2, 2)), seed=-1), "seed"),
    (lambda: fs.cp_gaussian_init(fs.CPFactorization((2, 2, 2)), std=1j), "std"),
    (lambda: fs.factors_from_product(fs.DeepMatrixFactorization((2, 2), 2), np.eye(2) * 1j),
     "w must hold real"),
    (lambda: fs.factors_from_product(fs.DeepMatrixFactorization((2, 2), 2),
                                     np.full((2, 2), np.nan)), "w must be finite"),
    (lambda: fs.SolverOptions(rtol=10), "rtol"),
    (lambda: fs.SolverOptions(escape_rtol=-1e-9), "escape_rtol"),
    (lambda: fs.SolverOptions(escape_rtol=1.0), "escape_rtol must be < 1"),
    (lambda: fs.SolverOptions(max_steps=1.5), "max_steps"),
    (lambda: figure2.Figure2Config(n_values=(3, 3)), "n_values lists 3"),
    (lambda: figure2.Figure2Config(trials=2.5), "trials"),
    (lambda: figure2.Figure2Config(rtol=1.5), "rtol"),
    (lambda: figure2.Figure2Config(stop_mse=1j), "stop_mse"),
    (lambda: SweepConfig.from_dict({"grid": {"depth": [2, 2]}}), "depth lists 2"),
    (lambda: SweepConfig.from_dict({"grid": {"b12": 1j}}), "b12"),
    (lambda: SweepConfig.from_dict({"grid": {"det_sign": [["+1"]]}}), "det_sign"),
    (lambda: SweepConfig.from_dict({"sweep": {"repetitions": 2.0}}), "repetitions"),
]


@pytest.mark.parametrize("call, fragment", API_ROWS, ids=[r[1] for r in API_ROWS])
def test_api_rows(call, fragment):
    with pytest.raises((ValueError, TypeError)) as info:
        call()
    assert fragment in str(info.value)
