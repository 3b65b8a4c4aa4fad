"""Exported programs: a new process loads a solve's compiled pieces instead of tracing them.

The persistent compilation cache (:mod:`flowsim.runtime`) spares a new process XLA's
compile, not jax's tracing: tracing a run's step loop (diffrax's step under ``vmap``,
the Newton solve, the guards) took about 1.5 s of a second ``flowsim run``'s 3.4 s wall.
So each piece the engine calls (the start point, the initial carry, the chunk loop) is
exported once with ``jax.export`` (the traced and lowered program, serialized) into
``<cache>/programs``, and later processes load that file and call it.

A cache never decides a result, and nothing in it is unpickled. An entry is one file:
a magic line, a JSON header and the serialized program. The header holds the entry's
whole key (not only the digest its file name is made of), the SHA-256 and length of
the program bytes, and the structure of the program's result as plain JSON (tuples,
lists, dicts, ``None`` and flowsim's own ``equinox`` modules, each named and rebuilt
from its fields, so that a loaded program's result is rebuilt without tracing). On
load every part is checked: the key must equal the caller's, the digest the bytes, the
program's argument shapes the call's, the rebuilt structure the one recorded. An entry
that fails any check (damaged, cut short, another run's, written by another flowsim,
crafted) is deleted and exported again; writes go through
:func:`flowsim.files.replace_atomically`, so readers never see half an entry.

The key of a program is everything that shapes its trace: the piece's name, the loop
spec (model, coordinates, solver, tolerances, chunk size, save mode, guards), the
arguments' structure, shapes and dtypes, the backend, the versions of jax, jaxlib,
diffrax, equinox, optimistix and lineax, and the source of every flowsim module. A
piece that cannot be exported (or ``FLOWSIM_CACHE_DIR=off``) runs the traced function
itself. Either way the arithmetic is the same program's.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import sys
from functools import lru_cache
from pathlib import Path

import equinox as eqx
import jax
import numpy as np

from ..files import replace_atomically
from ..runtime import package_version, programs_dir

#: packages whose versions are part of every program's digest
PACKAGES = ("jax", "jaxlib", "diffrax", "equinox", "optimistix", "lineax")
#: the first line of an entry, and the largest header read (an entry's header is ~2 KB)
MAGIC = b"flowsim.Program 1\n"
MAX_HEADER = 1 << 20


class BadEntry(ValueError):
    """A cache entry that must not be used (module doc); it is discarded."""


@lru_cache(maxsize=1)
def code_digest() -> str:
    """Digest of flowsim's source, the packages' versions and jax's backend."""
    digest = hashlib.sha256()
    root = Path(__file__).resolve().parent.parent
    for path in sorted(root.rglob("*.py")):
        digest.update(path.relative_to(root).as_posix().encode())
        digest.update(path.read_bytes())
    for package in PACKAGES:
        digest.update(f"{package}={package_version(package)}".encode())
    digest.update(jax.default_backend().encode())
    return digest.hexdigest()


# -- a result's structure as JSON -------------------------------------------------------

def encode_structure(treedef) -> object:
    """A JSON form of ``treedef``: ``"*"`` a leaf, ``{"node": ..., "children": [...]}``
    a node; only tuples, lists, dicts with string keys, ``None`` and flowsim's equinox
    modules (``ValueError`` otherwise: such a result is not stored)."""
    data = treedef.node_data()
    if data is None:
        return "*"
    kind, aux = data
    children = [encode_structure(c) for c in treedef.children()]
    if kind is type(None):
        return {"node": "None", "children": []}
    if kind in (tuple, list):
        return {"node": kind.__name__, "children": children}
    if kind is dict:
        if not all(isinstance(k, str) for k in aux):
            raise ValueError("a dict with keys that are not strings")
        return {"node": "dict", "keys": list(aux), "children": children}
    if (isinstance(kind, type) and issubclass(kind, eqx.Module)
            and kind.__module__.split(".")[0] == "flowsim"):
        return {"node": f"{kind.__module__}:{kind.__qualname__}", "children": children}
    raise ValueError(f"a result node of type {kind!r}")


def module_class(name: str) -> type:
    """The flowsim equinox module ``"package.module:Class"``, already imported (nothing
    is imported or run on an entry's word)."""
    module, _, qualname = name.partition(":")
    if module.split(".")[0] != "flowsim" or module not in sys.modules or "." in qualname:
        raise BadEntry(f"names {name!r}, not one of flowsim's modules")
    cls = getattr(sys.modules[module], qualname, None)
    if not (isinstance(cls, type) and issubclass(cls, eqx.Module)):
        raise BadEntry(f"names {name!r}, not one of flowsim's modules")
    return cls


def skeleton_from(encoded, depth: int = 0):
    """A result skeleton (every array a 0-d placeholder) from :func:`encode_structure`'s
    form; :class:`BadEntry` for anything else."""
    if depth > 64:
        raise BadEntry("nests too deep")
    if encoded == "*":
        return np.zeros((), np.int8)
    if not isinstance(encoded, dict) or not isinstance(encoded.get("children"), list):
        raise BadEntry("holds a malformed result structure")
    children = [skeleton_from(c, depth + 1) for c in encoded["children"]]
    node = encoded.get("node")
    if node == "None" and not children:
        return None
    if node == "tuple":
        return tuple(children)
    if node == "list":
        return children
    if node == "dict":
        keys = encoded.get("keys")
        if (not isinstance(keys, list) or len(keys) != len(children)
                or not all(isinstance(k, str) for k in keys)):
            raise BadEntry("holds a malformed result structure")
        return dict(zip(keys, children))
    if not isinstance(node, str):
        raise BadEntry("holds a malformed result structure")
    cls = module_class(node)
    names = [f.name for f in dataclasses.fields(cls)
             if not f.metadata.get("static", False)]
    if len(names) != len(children):
        raise BadEntry(f"gives {node} {len(children)} fields, it has {len(names)}")
    obj = object.__new__(cls)
    for name, child in zip(names, children):
        object.__setattr__(obj, name, child)
    return obj


# -- entries ----------------------------------------------------------------------------

def entry_bytes(key: str, program, skeleton) -> bytes:
    """An entry's file: :data:`MAGIC`, the header's length, the header, the program."""
    blob = bytes(program.serialize())
    treedef = jax.tree.structure(skeleton)
    header = json.dumps({
        "key": key, "sha256": hashlib.sha256(blob).hexdigest(), "size": len(blob),
        "result": encode_structure(treedef), "treedef": str(treedef)}).encode()
    return MAGIC + f"{len(header)}\n".encode() + header + blob


def parse_entry(raw: bytes, key: str, leaves):
    """``(program, skeleton)`` of an entry's bytes, every part checked (module doc);
    :class:`BadEntry` saying what is wrong."""
    if not raw.startswith(MAGIC):
        raise BadEntry("is not a flowsim program entry")
    rest = raw[len(MAGIC):]
    line, newline, rest = rest.partition(b"\n")
    if not newline or not line.isdigit() or int(line) > min(MAX_HEADER, len(rest)):
        raise BadEntry("has a malformed header")
    size = int(line)
    try:
        header = json.loads(rest[:size])
    except ValueError as exc:
        raise BadEntry("has a header that is not JSON") from exc
    if not isinstance(header, dict):
        raise BadEntry("has a malformed header")
    if header.get("key") != key:
        raise BadEntry("was made for another program (its key differs)")
    blob = rest[size:]
    if header.get("size") != len(blob) or \
            header.get("sha256") != hashlib.sha256(blob).hexdigest():
        raise BadEntry("is damaged (its program does not match its digest)")
    skeleton = skeleton_from(header.get("result"))
    if str(jax.tree.structure(skeleton)) != header.get("treedef"):
        raise BadEntry("rebuilds another result structure than it records")
    try:
        program = jax.export.deserialize(bytearray(blob))
    except Exception as exc:  # noqa: BLE001 -- any failure: not a program this jax reads
        raise BadEntry(f"holds a program this jax cannot read ({type(exc).__name__})") \
            from exc
    wanted = [(tuple(v.shape), np.dtype(v.dtype)) for v in leaves]
    if [(tuple(a.shape), np.dtype(a.dtype)) for a in program.in_avals] != wanted or \
            len(program.out_avals) != jax.tree.structure(skeleton).num_leaves:
        raise BadEntry("takes or gives other arrays than the call")
    return program, skeleton


class Programs:
    """The exported pieces this process has loaded or written (module doc)."""

    def __init__(self):
        self.loaded: dict[str, tuple] = {}
        self.unexportable: set[str] = set()
        #: entries this process found bad and discarded (file name -> why), for tests
        self.discarded: dict[str, str] = {}

    def call(self, name: str, fn, spec, args: tuple):
        """``fn(spec, *args)`` through its exported program (module doc)."""
        directory = programs_dir()
        if directory is None or name in self.unexportable:
            return fn(spec, *args)
        leaves, treedef = jax.tree.flatten(args)
        leaves = [np.asarray(v) for v in leaves]
        signature = repr((name, spec, str(treedef),
                          [(v.shape, v.dtype.str) for v in leaves], code_digest()))
        key = f"{name}-{hashlib.sha256(signature.encode()).hexdigest()[:32]}"
        entry = self.loaded.get(key) or self._read(directory / key, signature, leaves)
        if entry is None:
            try:
                entry = self._export(fn, spec, treedef, leaves)
            except Exception:  # noqa: BLE001 -- not exportable: trace it as before
                self.unexportable.add(name)
                return fn(spec, *args)
            self._write(directory / key, signature, entry)
        self.loaded[key] = entry
        program, skeleton = entry
        return jax.tree.unflatten(jax.tree.structure(skeleton), program.call(*leaves))

    @staticmethod
    def _export(fn, spec, treedef, leaves):
        """The exported program and a *skeleton* of its result: the result's pytree with a
        0-d placeholder for every array (its structure, without tracing ``fn`` again)."""
        found = {}

        def flat(*values):
            out, found["tree"] = jax.tree.flatten(fn(spec, *jax.tree.unflatten(treedef, values)))
            return out

        avals = [jax.ShapeDtypeStruct(v.shape, v.dtype) for v in leaves]
        program = jax.export.export(jax.jit(flat))(*avals)
        tree = found["tree"]
        return program, jax.tree.unflatten(tree, [np.zeros((), np.int8)] * tree.num_leaves)

    def _read(self, path: Path, key: str, leaves):
        """The entry at ``path`` if it passes every check; a bad one is deleted."""
        try:
            raw = path.read_bytes()
        except OSError:  # missing or unreadable: export again
            return None
        try:
            return parse_entry(raw, key, leaves)
        except BadEntry as exc:
            self.discarded[path.name] = str(exc)
            with contextlib.suppress(OSError):
                path.unlink()
            return None

    @staticmethod
    def _write(path: Path, key: str, entry) -> None:
        try:
            data = entry_bytes(key, *entry)
        except Exception:  # noqa: BLE001 -- not storable: this process keeps its own copy
            return
        try:
            replace_atomically(path, lambda fh: fh.write(data))
        except OSError:  # a read-only or full cache: this process keeps its own copy
            pass


#: the programs of this process
PROGRAMS = Programs()
