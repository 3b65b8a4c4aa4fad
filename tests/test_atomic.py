"""The one atomic writer (flowsim.files.replace_atomically), tried the hard way: two
writer processes on one path with a reader and a SIGKILL, a symlink planted where the
old writer put its temporary, a file size limit, an error inside the write. Readers
only ever see a whole file, and a failed write leaves the old file and no temporary."""

import os
import signal
import subprocess
import sys
import textwrap
import time

import numpy as np
import pytest

from flowsim import files

FORMAT = files.Format("flowsim.Test", 1, keys=(files.Key("writer", (int,)),),
                      arrays=(files.ArraySpec("x", "f", ("*",)),))
SIZE = 200_000  # floats per file: big enough that a write takes many system calls


def temporaries(folder):
    return [p.name for p in folder.iterdir() if p.name.endswith(".tmp")]


WRITER = textwrap.dedent("""
    import sys
    import numpy as np
    from flowsim import files

    path, writer = sys.argv[1], int(sys.argv[2])
    x = np.full({size}, float(writer))
    while True:
        files.write_npz(path, {{"x": x}}, {{"format": "flowsim.Test", "format_version": 1,
                                           "writer": writer}})
""").format(size=SIZE)


def test_two_writers_and_a_kill_leave_a_whole_file_readers_never_see_a_part(tmp_path):
    path = tmp_path / "run.npz"
    script = tmp_path / "writer.py"
    script.write_text(WRITER)
    procs = [subprocess.Popen([sys.executable, str(script), str(path), str(w)])
             for w in (1, 2)]
    try:
        while not path.exists():
            time.sleep(0.01)
        seen = set()
        deadline = time.monotonic() + 4.0
        while time.monotonic() < deadline:
            arrays, meta = files.read_npz(path, FORMAT)  # raises on a part of a file
            assert np.all(arrays["x"] == meta["writer"]) and arrays["x"].size == SIZE
            seen.add(meta["writer"])
        procs[0].send_signal(signal.SIGKILL)  # mid-write, most likely: it writes nonstop
        procs[0].wait()
        time.sleep(0.2)
    finally:
        for p in procs:
            p.kill()
            p.wait()
    arrays, meta = files.read_npz(path, FORMAT)
    assert np.all(arrays["x"] == meta["writer"])
    assert seen  # the reader read the file while both wrote
    # a killed writer can leave its temporary (nothing runs after SIGKILL); never the file
    assert len(temporaries(tmp_path)) <= 2


def test_a_planted_symlink_is_never_followed(tmp_path):
    target = tmp_path / "precious.txt"
    target.write_text("keep me")
    path = tmp_path / "run.npz"
    (tmp_path / "run.npz.tmp").symlink_to(target)  # where the old writer wrote
    files.write_json(path, {"a": 1})
    assert target.read_text() == "keep me"
    assert files.parse_json(path.read_text(), "it") == {"a": 1}


def test_a_symlink_at_the_path_itself_is_replaced_not_followed(tmp_path):
    target = tmp_path / "precious.txt"
    target.write_text("keep me")
    path = tmp_path / "run.json"
    path.symlink_to(target)
    files.write_json(path, {"a": 1})
    assert target.read_text() == "keep me" and not path.is_symlink()


LIMITED = textwrap.dedent("""
    import resource, sys
    import numpy as np
    from flowsim import files

    resource.setrlimit(resource.RLIMIT_FSIZE, (100_000, 100_000))  # like ulimit -f
    try:
        files.write_npz(sys.argv[1], {"x": np.zeros(100_000)}, {"format": "flowsim.Test"})
    except OSError as exc:
        print(exc)
        sys.exit(7)
""")


def test_a_file_size_limit_leaves_the_old_file_no_temporary_and_names_the_file(tmp_path):
    path = tmp_path / "run.npz"
    path.write_bytes(b"the old file")
    script = tmp_path / "limited.py"
    script.write_text(LIMITED)
    done = subprocess.run([sys.executable, str(script), str(path)], capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 7, done.stderr
    assert str(path) in done.stdout and "too large" in done.stdout.lower()
    assert path.read_bytes() == b"the old file"
    assert temporaries(tmp_path) == []


@pytest.mark.parametrize("error", [RuntimeError("boom"), KeyboardInterrupt()])
def test_an_error_inside_the_write_leaves_the_old_file_and_no_temporary(tmp_path, error):
    path = tmp_path / "run.json"
    path.write_text("old")

    def write(fh):
        fh.write(b"half a fi")
        raise error

    with pytest.raises(type(error)):
        files.replace_atomically(path, write)
    assert path.read_text() == "old" and temporaries(tmp_path) == []


def test_the_written_file_has_the_usual_permissions(tmp_path):
    old = os.umask(0o022)
    try:
        files.write_json(tmp_path / "a.json", {})
    finally:
        os.umask(old)
    assert (tmp_path / "a.json").stat().st_mode & 0o777 == 0o644


def test_a_fifo_is_refused_as_output_and_as_input_instead_of_hanging(tmp_path):
    fifo = tmp_path / "fifo.npz"
    os.mkfifo(fifo)
    with pytest.raises(ValueError, match="not a regular file"):
        files.check_output(fifo, "--output")
    with pytest.raises(files.FileFormatError, match="not a regular file"):
        files.read_archive(fifo)
    with pytest.raises(OSError, match="not a regular file"):
        files.write_json(fifo, {})
