"""Files: the one reader and writer of every file flowsim writes.

Every file flowsim writes is plain data: a ``.npz`` archive of arrays plus one JSON
``metadata`` string (trajectories, checkpoints, sweep results), a JSON object (the
Figure 1 summary) or JSON lines (the Figure 2 grid). Each names its format and version
(``{"format": "flowsim.Trajectory", "format_version": 1, ...}``) and is described here
by a table: the metadata keys with their types (:class:`Key`) and, for an archive, the
arrays with their dtype, their shape rule and whether they must be finite
(:class:`ArraySpec`). Reading a file checks all of it and answers a bad file with one
error type, :class:`FileFormatError` (a ``ValueError``), whose message names the file
and what is wrong. Nothing is unpickled, and an array's size is checked against the
bytes the archive holds for it before it is read. Arrays a table does not name are kept
and are not an error (newer files may carry more).

Every write goes through :func:`replace_atomically` (the one atomic writer of the
package, the program cache's too): a unique temporary beside the file, flushed and
synced, renamed into place; a crash, a kill or a full disk never leaves half a file.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import io
import json
import math
import os
import tempfile
import zipfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

#: the first bytes of a zip archive (``.npz``) and of a single ``.npy`` array
ZIP_MAGIC = b"PK"
NPY_MAGIC = b"\x93NUMPY"
#: what a dtype kind letter means, for messages
#: what a JSON type is called in messages
JSON_NAMES = {str: "a string", int: "an integer", float: "a number", bool: "true or false",
              dict: "an object", list: "a list", type(None): "null"}
KIND_NAMES = {"f": "float", "i": "integer", "u": "unsigned integer", "b": "bool",
              "U": "string", "c": "complex", "O": "object", "S": "bytes", "V": "void"}


class FileFormatError(ValueError):
    """A file flowsim was asked to read is not a valid file of the kind expected: not an
    archive, truncated or corrupted, another format or a newer version, a metadata key or
    an array missing, of the wrong type or shape, values that contradict each other.

    The message is one line, ``"<path>: <what is wrong>"``, e.g. ``"run.npz: metadata
    n_factors is 1 but the file also holds ['factor_1', 'factor_2']"``. A ``ValueError``,
    so code that catches bad input catches it too.

    **Arguments:**

    - `path`: the file (kept as the attribute ``path``, a ``Path``).
    - `problem`: what is wrong with it (the attribute ``problem``).
    """

    def __init__(self, path, problem: str):
        self.path = Path(path)
        self.problem = problem
        super().__init__(f"{path}: {problem}")


# -- tables ----------------------------------------------------------------------------

@dataclass(frozen=True)
class ArraySpec:
    """One array of an archive.

    **Arguments:**

    - `name`: its name in the archive.
    - `kinds`: the dtype kinds allowed (``"f"`` float, ``"i"`` integer, ``"u"``
      unsigned, ``"b"`` bool, ``"U"`` string), e.g. ``"iu"``.
    - `shape`: the shape rule, one entry per axis: an ``int`` (that size), a name such as
      ``"n"`` (any size, the same wherever that name appears in the file), ``"*"`` (any
      size) or a last ``"..."`` (any number of further axes, of any size).
    - `required`: whether a file must hold it.
    - `finite`: whether every entry must be finite (no NaN or inf).
    """

    name: str
    kinds: str
    shape: tuple
    required: bool = True
    finite: bool = False


@dataclass(frozen=True)
class Key:
    """One key of a JSON object (the metadata of an archive, a JSON file, a header).

    **Arguments:**

    - `name`: the key.
    - `types`: the JSON types allowed, as Python types (``str``, ``int``, ``float``,
      ``bool``, ``dict``, ``list``, ``type(None)``); ``float`` admits integers, ``int``
      never admits a bool.
    - `required`: whether the object must have it.
    """

    name: str
    types: tuple
    required: bool = True


@dataclass(frozen=True)
class Format:
    """A file format: its name and newest version, its metadata keys and (archives) its
    arrays.

    **Arguments:**

    - `name`: the ``"format"`` entry, e.g. ``"flowsim.Trajectory"``.
    - `version`: the newest ``format_version`` this flowsim reads (and the one it writes);
      a file without a ``format_version`` is version 1.
    - `keys`: the :class:`Key` table of the metadata (besides ``format`` and
      ``format_version``).
    - `arrays`: the :class:`ArraySpec` table (archives only).
    - `untagged`: whether a JSON object without a ``"format"`` entry is accepted as this
      format (files written before formats were named), when it has the required keys.
    """

    name: str
    version: int
    keys: tuple = ()
    arrays: tuple = ()
    untagged: bool = False

    def tag(self) -> dict:
        """The ``format`` and ``format_version`` entries a writer puts first."""
        return {"format": self.name, "format_version": self.version}


# -- checks (raise ValueError with the problem; the readers add the file) --------------

def type_name(value) -> str:
    return "null" if value is None else type(value).__name__


def is_json_type(value, t: type) -> bool:
    """Whether ``value`` is of JSON type ``t``: a bool is no number, an int is a float."""
    if isinstance(value, bool):
        return t is bool
    if t is float:
        return isinstance(value, (int, float))
    return isinstance(value, t)


def present(found, specs, missing: str):
    """The entries of ``specs`` (:class:`Key` or :class:`ArraySpec`) that ``found`` holds;
    ``ValueError`` ``"<missing> '<name>'"`` at the first required one it lacks."""
    for spec in specs:
        if spec.name in found:
            yield spec
        elif spec.required:
            raise ValueError(f"{missing} {spec.name!r}")


def check_keys(obj, keys: Sequence[Key], where: str = "metadata") -> None:
    """``ValueError`` unless ``obj`` is a dict holding every required key of ``keys``,
    each of one of its types (``where`` names ``obj`` in the message)."""
    if not isinstance(obj, dict):
        raise ValueError(f"{where} must be a JSON object, got {type_name(obj)}")
    for key in present(obj, keys, f"{where} lacks the key"):
        value = obj[key.name]
        if not any(is_json_type(value, t) for t in key.types):
            allowed = " or ".join(JSON_NAMES.get(t, t.__name__) for t in key.types)
            raise ValueError(f"{where}[{key.name!r}] must be {allowed}, got "
                             f"{type_name(value)} {value!r:.60}")


def check_tag(obj: dict, fmt: Format, where: str = "metadata") -> None:
    """``ValueError`` unless ``obj`` names ``fmt`` (or is untagged where ``fmt`` allows it)
    with a version this flowsim reads."""
    if not isinstance(obj, dict):
        raise ValueError(f"{where} must be a JSON object, got {type_name(obj)}")
    name = obj.get("format")
    if name is None and fmt.untagged and "format_version" not in obj:
        return
    if name != fmt.name:
        raise ValueError(f"is not a {fmt.name} file ({where} says format {name!r})")
    version = obj.get("format_version", 1)
    if isinstance(version, bool) or not isinstance(version, int) or version < 1:
        raise ValueError(f"{where}['format_version'] must be an integer >= 1, got {version!r}")
    if version > fmt.version:
        raise ValueError(f"format_version {version} is newer than this flowsim reads "
                         f"({fmt.name} up to version {fmt.version}); upgrade flowsim")


def check_arrays(arrays: dict, specs: Sequence[ArraySpec], dims: dict | None = None) -> dict:
    """``ValueError`` unless ``arrays`` holds every required array of ``specs`` with an
    allowed dtype, a shape that follows its rule, and finite entries where required.
    Returns the sizes the shape rules' names took (``dims``: names already fixed)."""
    dims = dict(dims or {})
    for spec in present(arrays, specs, "lacks the array"):
        a = arrays[spec.name]
        if a.dtype.kind not in spec.kinds:
            allowed = " or ".join(KIND_NAMES.get(k, k) for k in spec.kinds)
            raise ValueError(f"array {spec.name!r} must hold {allowed} values, got "
                             f"{KIND_NAMES.get(a.dtype.kind, a.dtype.kind)} ({a.dtype})")
        rule = tuple(spec.shape)
        fixed = rule[:-1] if rule and rule[-1] == "..." else rule
        if a.ndim < len(fixed) or (len(fixed) == len(rule) and a.ndim != len(rule)):
            raise ValueError(f"array {spec.name!r} must have shape "
                             f"({', '.join(map(str, rule))}), got {a.shape}")
        for axis, (want, size) in enumerate(zip(fixed, a.shape)):
            if want == "*":
                continue
            if isinstance(want, str):
                want = dims.setdefault(want, size)
                label = f"{spec.shape[axis]} = {want}"
            else:
                label = str(want)
            if size != want:
                raise ValueError(f"array {spec.name!r} has {size} along axis {axis}, "
                                 f"where the file's other arrays say {label}")
        if spec.finite:
            check_finite(spec.name, a)
    return dims


def check_finite(name: str, a: np.ndarray) -> None:
    """``ValueError`` naming array ``name`` unless all its entries are finite."""
    if a.dtype.kind in "fc" and not np.all(np.isfinite(a)):
        raise ValueError(f"array {name!r} must be finite, holds NaN or inf")


def check_file(path) -> Path:
    """``path`` as a Path, if it names a file (``FileNotFoundError`` when nothing is
    there, :class:`FileFormatError` for a directory)."""
    path = Path(path)
    if path.is_dir():
        raise FileFormatError(path, "is a directory, not a file")
    if not path.exists():
        raise FileNotFoundError(errno.ENOENT, os.strerror(errno.ENOENT), str(path))
    if not path.is_file():
        # a fifo or a device: reading it would block or never end
        raise FileFormatError(path, "is not a regular file (a fifo, a socket or a device)")
    return path


def check_output(path, option: str, directory: bool = False) -> Path:
    """Before any work: ``ValueError`` naming ``option`` unless ``path`` can be written
    as a file (``directory=False``) or used as a folder for output files: the wrong kind
    of thing there already, or a parent that is a file or not writable."""
    path = Path(path)
    if directory and path.exists() and not path.is_dir():
        raise ValueError(f"{option} {path} is a file; it must be a directory (or not exist)")
    if not directory and path.is_dir():
        raise ValueError(f"{option} {path} is a directory; it must be a file")
    if not directory and path.exists() and not path.is_file():
        raise ValueError(f"{option} {path} is not a regular file (a fifo, a socket or a "
                         "device); it must be a file or not exist")
    parent = path if directory else path.parent
    while not parent.exists() and parent != parent.parent:
        parent = parent.parent
    if parent.exists() and not parent.is_dir():
        raise ValueError(f"{option} {path}: {parent} is a file, not a directory")
    if parent.exists() and not os.access(parent, os.W_OK | os.X_OK):
        raise ValueError(f"{option} {path}: {parent} is not writable")
    return path


def checked(path, check: Callable[[], object]):
    """``check()``, with a ``ValueError``, ``TypeError`` or ``KeyError`` it raises turned
    into a :class:`FileFormatError` naming ``path``."""
    try:
        return check()
    except FileFormatError:
        raise
    except KeyError as exc:
        raise FileFormatError(path, f"lacks {exc}") from exc
    except (ValueError, TypeError) as exc:
        raise FileFormatError(path, str(exc)) from exc


# -- archives (.npz + JSON metadata) ---------------------------------------------------

def json_default(obj):
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, Path):
        return str(obj)
    raise TypeError(f"cannot store {type(obj).__name__} in file metadata")


#: how a non-finite number is written in flowsim's JSON: ``{"$float": "inf"}`` (also
#: ``"-inf"``, ``"nan"``). JSON has no infinity; Python's ``Infinity`` token is not JSON
#: and other readers refuse it. Files written before this read as they are.
NONFINITE = "$float"


def strict_json(obj):
    """``obj`` with every non-finite float as ``{"$float": "inf"}`` (:data:`NONFINITE`),
    NumPy scalars and arrays as Python numbers and lists."""
    if isinstance(obj, dict):
        return {k: strict_json(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [strict_json(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return strict_json(obj.tolist())
    if isinstance(obj, np.generic):
        obj = obj.item()
    if isinstance(obj, float) and not math.isfinite(obj):
        return {NONFINITE: "nan" if math.isnan(obj) else "inf" if obj > 0 else "-inf"}
    return obj


def dumps_json(obj, **kwargs) -> str:
    """``obj`` as standard JSON (no ``Infinity`` or ``NaN`` tokens: :func:`strict_json`)."""
    return json.dumps(strict_json(obj), default=json_default, allow_nan=False, **kwargs)


def _nonfinite(obj: dict):
    if len(obj) == 1 and obj.get(NONFINITE) in ("inf", "-inf", "nan"):
        return float(obj[NONFINITE])
    return obj


def loads_json(text: str):
    """``json.loads`` that reads :data:`NONFINITE` entries back as floats."""
    return json.loads(text, object_hook=_nonfinite)


def replace_atomically(path, write: Callable) -> Path:
    """Call ``write(file object)`` on a new temporary file beside ``path``, then rename it
    to ``path``: readers see the old file or the whole new one, never a part.

    The temporary has a unique name (``.<name>.<random>.tmp``, created with ``O_EXCL``:
    a symlink or file planted there is never followed or truncated, and two writers of
    one path never share it). Its bytes are flushed and ``fsync``-ed before the rename and
    the folder is ``fsync``-ed after it, so a crash or a power cut leaves the old file or
    the new one. On any failure (a full disk, a file size limit, an exception in
    ``write``, an interrupt) the temporary is removed and an ``OSError`` names ``path``.
    Of two concurrent writers, the last rename wins, whole.
    """
    path = Path(path)
    folder = path.parent
    try:
        folder.mkdir(parents=True, exist_ok=True)
        if path.exists() and not path.is_file():
            # a fifo or a device would block or swallow the data; a folder cannot be replaced
            raise OSError(errno.EEXIST, "exists and is not a regular file", str(path))
        fd, tmp = tempfile.mkstemp(dir=folder, prefix=f".{path.name}.", suffix=".tmp")
    except OSError as exc:
        raise _naming(exc, path) from exc
    try:
        os.fchmod(fd, 0o666 & ~_umask())  # what open() would have given the file
        with os.fdopen(fd, "wb") as fh:
            write(fh)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException as exc:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        if isinstance(exc, OSError):
            raise _naming(exc, path) from exc
        raise
    _fsync_folder(folder)
    return path


def _naming(exc: OSError, path: Path) -> OSError:
    """``exc`` as an ``OSError`` whose file is ``path`` (the message names it)."""
    if exc.filename is not None and Path(exc.filename) == path:
        return exc
    return OSError(exc.errno, exc.strerror or str(exc), str(path))


def _umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def _fsync_folder(folder: Path) -> None:
    """Make the rename itself durable (where the platform allows opening a folder)."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


#: the archive member holding the SHA-256 of the others (:func:`archive_digest`)
DIGEST = "digest"


def archive_digest(arrays: dict) -> str:
    """SHA-256 of an archive's arrays (the metadata string included; :data:`DIGEST`
    itself not): each one's name, dtype, shape and bytes, in name order. A file whose
    arrays or metadata were edited or damaged after it was written no longer matches
    its recorded digest (it guards against accidents and hand edits; whoever rewrites
    the digest too writes a file that is then checked like any other)."""
    digest = hashlib.sha256()
    for name in sorted(arrays):
        if name == DIGEST:
            continue
        a = np.ascontiguousarray(arrays[name])
        digest.update(f"{name}\0{a.dtype.str}\0{a.shape}\0".encode())
        digest.update(a.tobytes())
    return digest.hexdigest()


def write_npz(path, arrays: dict, meta: dict) -> Path:
    """Write ``arrays`` plus ``meta`` as one JSON ``metadata`` string to ``path`` (no
    pickle), with their :func:`archive_digest`, atomically (:func:`replace_atomically`)."""
    arrays = {**arrays, "metadata": np.array(dumps_json(meta))}
    arrays = {k: np.asarray(v) for k, v in arrays.items()}
    arrays[DIGEST] = np.array(archive_digest(arrays))
    return replace_atomically(path, lambda fh: np.savez(fh, **arrays))


def save_figure_file(fig, path, **kwargs) -> Path:
    """``fig.savefig`` into ``path`` through :func:`replace_atomically` (the format from
    the suffix): a figure is whole or absent, like every other file."""
    path = Path(path)
    fmt = path.suffix.lstrip(".") or "png"
    return replace_atomically(path, lambda fh: fig.savefig(fh, format=fmt, **kwargs))


def write_text(path, text: str) -> Path:
    """Write ``text`` (UTF-8) to ``path``, atomically."""
    return replace_atomically(path, lambda fh: fh.write(text.encode()))


def write_json(path, obj, indent: int | None = 1) -> Path:
    """Write ``obj`` as JSON to ``path``, atomically."""
    text = dumps_json(obj, indent=indent)
    return replace_atomically(path, lambda fh: fh.write(text.encode()))


def npy_from_bytes(raw: bytes) -> np.ndarray:
    """One ``.npy`` member: its header is read and its size checked against the bytes
    there before the array is built; object arrays are refused (never unpickled)."""
    fp = io.BytesIO(raw)
    version = np.lib.format.read_magic(fp)
    if version == (1, 0):
        shape, fortran, dtype = np.lib.format.read_array_header_1_0(fp)
    elif version == (2, 0):
        shape, fortran, dtype = np.lib.format.read_array_header_2_0(fp)
    else:
        raise ValueError(f".npy version {version} is not one flowsim writes")
    if dtype.hasobject:
        raise ValueError("holds Python objects (it would need unpickling; refused)")
    declared = math.prod(shape) * dtype.itemsize
    if declared != len(raw) - fp.tell():
        raise ValueError(f"its header declares {declared} bytes of data, the archive holds "
                         f"{len(raw) - fp.tell()} (truncated or corrupted)")
    fp.seek(0)
    return np.lib.format.read_array(fp, allow_pickle=False)


def read_archive(path) -> dict:
    """All the arrays of the ``.npz`` at ``path`` (:class:`FileFormatError` for anything
    but a readable zip archive of ``.npy`` arrays)."""
    path = check_file(path)
    with open(path, "rb") as fh:
        head = fh.read(8)
    if not head.startswith(ZIP_MAGIC):
        if head.startswith(NPY_MAGIC):
            raise FileFormatError(path, "is a single .npy array, not an .npz archive")
        what = "is empty" if not head else "is not an .npz archive (not a zip file)"
        raise FileFormatError(path, what)
    try:
        with zipfile.ZipFile(path) as zf:
            infos = zf.infolist()
            check_unpacked_size(path, infos)
            members = {info.filename: zf.read(info) for info in infos}
    except FileFormatError:
        raise
    except Exception as exc:  # noqa: BLE001 - any failure to read the zip is a bad file
        raise FileFormatError(path, f"is not a readable .npz archive, truncated or corrupted "
                                    f"({type(exc).__name__}: {exc})") from exc
    arrays = {}
    for name, raw in members.items():
        if not name.endswith(".npy"):
            raise FileFormatError(path, f"holds {name!r}, which is not a .npy array")
        try:
            arrays[name[:-4]] = npy_from_bytes(raw)
        except Exception as exc:  # noqa: BLE001 - any failure to parse an array: a bad file
            raise FileFormatError(path, f"array {name[:-4]!r}: {exc}") from exc
    return arrays


#: how much larger than its file an archive may unpack to: flowsim writes its archives
#: uncompressed (ratio 1), so a larger ratio is a compressed file from elsewhere; a zip
#: bomb (a small file that unpacks to gigabytes) is refused before anything is unpacked
MAX_UNPACK_RATIO = 64
#: what any archive may unpack to regardless of its size
MIN_UNPACK_BYTES = 64 << 20


def check_unpacked_size(path: Path, infos) -> None:
    """:class:`FileFormatError` unless the sizes the members of an archive declare sum to
    at most :data:`MAX_UNPACK_RATIO` times the file's size (or :data:`MIN_UNPACK_BYTES`).
    ``zipfile`` never unpacks more than a member declares, so this bounds the memory a
    read takes."""
    size = path.stat().st_size
    declared = sum(info.file_size for info in infos)
    limit = max(MAX_UNPACK_RATIO * size, MIN_UNPACK_BYTES)
    if declared > limit:
        raise FileFormatError(path, f"declares {declared} bytes of arrays in a file of "
                                    f"{size} bytes (more than {MAX_UNPACK_RATIO} times its "
                                    f"size: compressed far beyond what flowsim writes; "
                                    f"refused before unpacking)")


def parse_json(text: str, where: str):
    """``json.loads(text)`` (``ValueError`` naming ``where`` when it is not JSON)."""
    try:
        return loads_json(text)
    except (json.JSONDecodeError, RecursionError) as exc:
        raise ValueError(f"{where} is not valid JSON ({exc})") from exc


def read_npz(path, fmt: Format, check: Callable[[dict, dict, dict], None] | None = None
             ) -> tuple[dict, dict]:
    """The arrays and the metadata of the archive at ``path`` in format ``fmt``, checked:
    a readable archive, a JSON ``metadata`` string naming ``fmt`` at a version this
    flowsim reads, the metadata keys and the arrays of ``fmt``'s tables, then
    ``check(arrays, metadata, dims)`` (``dims``: the sizes the shape rules took) for what
    the tables cannot say. Any failure: :class:`FileFormatError` naming ``path``."""
    arrays = read_archive(path)

    def parse():
        if DIGEST in arrays:  # files written before digests were recorded have none
            recorded = arrays.pop(DIGEST)
            if recorded.dtype.kind != "U" or recorded.ndim != 0:
                raise ValueError(f"its {DIGEST!r} entry must be one string")
            if str(recorded) != archive_digest(arrays):
                raise ValueError("its arrays or metadata do not match the digest recorded "
                                 "when it was written (edited or damaged after writing)")
        if "metadata" not in arrays:
            raise ValueError("has no 'metadata' entry: not a file flowsim wrote")
        raw = arrays.pop("metadata")
        if raw.dtype.kind != "U" or raw.ndim != 0:
            raise ValueError(f"its 'metadata' entry must be one string, got {raw.dtype} "
                             f"of shape {raw.shape}")
        meta = parse_json(str(raw), "its metadata")
        check_tag(meta, fmt)
        check_keys(meta, fmt.keys)
        dims = check_arrays(arrays, fmt.arrays)
        if check is not None:
            check(arrays, meta, dims)
        return meta

    return arrays, checked(path, parse)


# -- JSON and JSON lines ---------------------------------------------------------------

def read_text(path) -> str:
    path = check_file(path)
    try:
        return path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise FileFormatError(path, f"is not a text file ({exc})") from exc


def read_json(path, fmt: Format, check: Callable[[dict], None] | None = None) -> dict:
    """The JSON object at ``path`` in format ``fmt``, checked like the metadata of
    :func:`read_npz` (:class:`FileFormatError` naming ``path``)."""
    text = read_text(path)

    def parse():
        obj = parse_json(text, "its content")
        check_tag(obj, fmt, "the file")
        check_keys(obj, fmt.keys, "the file")
        if check is not None:
            check(obj)
        return obj

    return checked(path, parse)


def read_jsonl(path, fmt: Format) -> tuple[dict, list[tuple[int, dict]], bool]:
    """``(header, [(line number, record)], cut)`` of a JSON-lines file whose first line
    is a header object in format ``fmt`` and every further line one JSON object.

    A last line that is not JSON is a record cut short by a crash: dropped, and ``cut``
    is True. A line that is a record cut short followed by a whole one (what an append
    after such a crash wrote) keeps the whole one. Any other line that is not a JSON
    object: :class:`FileFormatError` naming the file and the line.
    """
    lines = read_text(path).splitlines()
    if not lines:
        raise FileFormatError(path, "is empty")

    def parse():
        header = parse_json(lines[0], "line 1 (the header)")
        check_tag(header, fmt, "line 1 (the header)")
        check_keys(header, fmt.keys, "line 1 (the header)")
        records, cut = [], False
        for number, line in enumerate(lines[1:], start=2):
            try:
                record = loads_json(line)
            except json.JSONDecodeError:
                record = whole_tail(line)
                if record is None and number == len(lines):
                    cut = True
                    continue
                if record is None:
                    raise ValueError(f"line {number} is not JSON") from None
            if not isinstance(record, dict):
                raise ValueError(f"line {number} must be a JSON object, got "
                                 f"{type_name(record)}")
            records.append((number, record))
        return header, records, cut

    return checked(path, parse)


def whole_tail(line: str):
    """The longest JSON object that ends ``line`` after a part cut short, or ``None``."""
    start = line.find("{", 1)
    while start > 0:
        try:
            obj = loads_json(line[start:])
        except json.JSONDecodeError:
            start = line.find("{", start + 1)
            continue
        return obj if isinstance(obj, dict) else None
    return None
