"""Hostile files: tiny ones that claim huge sizes, each refused by name with a clear error
before anything of the claimed size is allocated, and files edited after flowsim wrote
them (refused by their digest, never served as they are). Read in a separate process under a
2 GB address-space limit, so a reader that believed the file would fail with a
MemoryError instead of the refusal (and could not take the test machine down)."""

import json
import struct
import subprocess
import sys
import textwrap
import zlib
from pathlib import Path

import numpy as np
import pytest

DATA = Path(__file__).resolve().parent / "data"


def edited(path, src, change):
    with np.load(src, allow_pickle=False) as f:
        arrays = {k: f[k] for k in f.files}
    meta = json.loads(str(arrays.pop("metadata")))
    change(meta)
    np.savez(path, **arrays, metadata=np.array(json.dumps(meta)))


def huge_n_factors(path):
    edited(path, DATA / "trajectory_9f440fa.npz",
           lambda m: m.__setitem__("n_factors", 10**9))


def huge_n_carry(path):
    def change(meta):
        meta["checkpoint"] = {"n_carry": 10**9, "n_keep": 0, "drift_tol": 1.0,
                              "sign_check": True}
    edited(path, DATA / "checkpoint_9f440fa.npz", change)


def zip_bomb(path, gigabytes=3):
    """A ~3 MB .npz whose one member unpacks to 3 GB of zeros (written by hand: one
    compressed megabyte, repeated; each repeat starts afresh after a full flush)."""
    mb = bytes(1 << 20)
    c = zlib.compressobj(9, zlib.DEFLATED, -15)
    block = c.compress(mb) + c.flush(zlib.Z_FULL_FLUSH)
    n = gigabytes << 10
    data = block * n + zlib.compressobj(9, zlib.DEFLATED, -15).flush(zlib.Z_FINISH)
    crc = 0
    for _ in range(n):
        crc = zlib.crc32(mb, crc)
    name, size = b"x.npy", n << 20
    local = struct.pack("<4sHHHHHIIIHH", b"PK\x03\x04", 20, 0, 8, 0, 0, crc, len(data),
                        size, len(name), 0) + name
    central = struct.pack("<4sHHHHHHIIIHHHHHII", b"PK\x01\x02", 20, 20, 0, 8, 0, 0, crc,
                          len(data), size, len(name), 0, 0, 0, 0, 0, 0) + name
    end = struct.pack("<4sHHHHIIH", b"PK\x05\x06", 0, 0, 1, 1, len(central),
                      len(local) + len(data), 0)
    path.write_bytes(local + data + central + end)


#: ``(name, make the file, reader, fragment of the refusal)``
ROWS = [
    ("n_factors 1e9", huge_n_factors, "trajectory", "n_factors is 1000000000"),
    ("n_carry 1e9", huge_n_carry, "checkpoint", "n_carry is 1000000000"),
    ("zip bomb", zip_bomb, "trajectory", "refused before unpacking"),
]

READ = textwrap.dedent("""
    import json, resource, sys
    resource.setrlimit(resource.RLIMIT_AS, (2 << 30, 2 << 30))
    from flowsim import Trajectory
    from flowsim.files import FileFormatError
    from flowsim.integration import checkpoint
    readers = {"trajectory": Trajectory.load, "checkpoint": checkpoint.load}
    out = {}
    for path, kind in json.loads(sys.argv[1]):
        try:
            readers[kind](path)
            out[path] = "loaded"
        except FileFormatError as exc:
            out[path] = str(exc)
        except BaseException as exc:
            out[path] = f"{type(exc).__name__}: {exc}"
    print(json.dumps(out))
""")


@pytest.fixture(scope="module")
def answers(tmp_path_factory):
    folder = tmp_path_factory.mktemp("hostile")
    jobs = []
    for i, (_, make, kind, _) in enumerate(ROWS):
        path = folder / f"file{i}.npz"
        make(path)
        assert path.stat().st_size < 4 << 20  # tiny files
        jobs.append((str(path), kind))
    done = subprocess.run([sys.executable, "-c", READ, json.dumps(jobs)],
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.splitlines()[-1])


@pytest.mark.parametrize("row", range(len(ROWS)), ids=[r[0] for r in ROWS])
def test_a_tiny_file_claiming_huge_sizes_is_refused_by_name(answers, row, tmp_path_factory):
    path = next(p for p in answers if p.endswith(f"file{row}.npz"))
    message = answers[path]
    assert message.startswith(path) and ROWS[row][3] in message, message


def test_written_metadata_is_standard_json_and_reads_back_infinities(tmp_path):
    """JSON has no Infinity: flowsim writes ``{"$float": "inf"}`` and reads it back as a
    float (a file of the old kind, with the Infinity token, still loads)."""
    import flowsim as fs

    old = DATA / "trajectory_9f440fa.npz"
    with np.load(old, allow_pickle=False) as f:
        assert "Infinity" in str(f["metadata"])  # t_max = inf, the old way
    traj = fs.Trajectory.load(old)
    assert traj.config["t_max"] == float("inf")
    path = traj.save(tmp_path / "new.npz")
    with np.load(path, allow_pickle=False) as f:
        text = str(f["metadata"])

    def refuse(token):
        raise ValueError(f"{token} is not JSON")

    meta = json.loads(text, parse_constant=refuse)  # standard JSON only
    assert meta["config"]["t_max"] == {"$float": "inf"}
    assert fs.Trajectory.load(path).config["t_max"] == float("inf")


# -- a finished checkpoint edited by hand is refused, never served ----------------------

def flow(checkpoint):
    import flowsim as fs

    model = fs.DeepMatrixFactorization((2, 2), 3)
    params = fs.balanced_init(model, seed=0, scale=1e-2, det_sign=+1)
    return fs.gradient_flow(fs.paper_problem(), model, params, stop_loss=1e-3,
                            checkpoint=checkpoint, progress=False)


@pytest.fixture(scope="module")
def finished(tmp_path_factory):
    path = tmp_path_factory.mktemp("finished") / "run.npz"
    return path, flow(path)


def edit_loss(arrays):
    arrays["loss"] = arrays["loss"].copy()
    arrays["loss"][-1] = 1e-30


def edit_model(arrays):
    meta = json.loads(str(arrays["metadata"]))
    meta["config"]["model"] = {"kind": "CPFactorization", "shape": [2, 2], "rank": 3}
    arrays["metadata"] = np.array(json.dumps(meta))


@pytest.mark.parametrize("edit", [edit_loss, edit_model], ids=["loss[-1] = 1e-30",
                                                               "model changed to CP"])
def test_an_edited_finished_checkpoint_is_refused_not_served(finished, edit, tmp_path):
    from flowsim.files import FileFormatError

    source, traj = finished
    assert traj.status == "stop_loss"
    path = tmp_path / "run.npz"
    with np.load(source, allow_pickle=False) as f:
        arrays = {k: f[k] for k in f.files}
    edit(arrays)  # by hand: the digest entry is kept as it was
    np.savez(path, **arrays)
    with pytest.raises(FileFormatError) as info:
        flow(path)
    assert str(info.value).startswith(str(path))
    assert "do not match the digest" in str(info.value)
