"""Exported programs: a new process loads a solve's compiled pieces instead of tracing them.

The persistent compilation cache (:mod:`flowsim.runtime`) spares a new process XLA's
compile, not jax's tracing: tracing a run's step loop (diffrax's step under ``vmap``,
the Newton solve, the guards) took about 1.5 s of a second ``flowsim run``'s 3.4 s wall.
So each piece the engine calls (the start point, the initial carry, the chunk loop) is
exported once with ``jax.export`` (the traced and lowered program, serialized) into
``<cache>/programs``, and later processes load that file and call it. Beside the program
the file holds a skeleton of its result (the result's pytree, every array a 0-d
placeholder, pickled: flowsim's own classes and diffrax's states), so a loaded program's
result is rebuilt without tracing anything. The files are flowsim's private cache,
written and read by the same user.

A program's file name is a digest of everything that shapes its trace: the piece's name,
the loop spec (model, coordinates, solver, tolerances, chunk size, save mode, guards),
the arguments' structure, shapes and dtypes, the backend, the versions of jax, jaxlib,
diffrax, equinox, optimistix and lineax, and the source of every flowsim module. A
file that cannot be read is exported again; a piece that cannot be exported (or
``FLOWSIM_CACHE_DIR=off``) runs the traced function itself. Either way the arithmetic is
the same program's.
"""

from __future__ import annotations

import hashlib
import os
import pickle
import tempfile
from functools import lru_cache
from pathlib import Path

import jax
import numpy as np

from ..runtime import package_version, programs_dir

#: packages whose versions are part of every program's digest
PACKAGES = ("jax", "jaxlib", "diffrax", "equinox", "optimistix", "lineax")


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


class Programs:
    """The exported pieces this process has loaded or written (module doc)."""

    def __init__(self):
        self.loaded: dict[str, jax.export.Exported] = {}
        self.unexportable: set[str] = set()

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
        entry = self.loaded.get(key) or self._read(directory / key)
        if entry is None:
            try:
                entry = self._export(fn, spec, treedef, leaves)
            except Exception:  # noqa: BLE001 -- not exportable: trace it as before
                self.unexportable.add(name)
                return fn(spec, *args)
            self._write(directory / key, entry)
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

    @staticmethod
    def _read(path: Path):
        try:
            blob, skeleton = pickle.loads(path.read_bytes())
            return jax.export.deserialize(bytearray(blob)), skeleton
        except Exception:  # noqa: BLE001 -- missing, partial or stale: export again
            return None

    @staticmethod
    def _write(path: Path, entry) -> None:
        program, skeleton = entry
        try:
            data = pickle.dumps((bytes(program.serialize()), skeleton))
        except Exception:  # noqa: BLE001 -- not storable: this process keeps its own copy
            return
        tmp = None
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-")
            with os.fdopen(fd, "wb") as handle:
                handle.write(data)
            os.replace(tmp, path)  # atomic: concurrent processes never read half a file
        except OSError:  # a read-only or full cache: this process keeps its own copy
            if tmp is not None and os.path.exists(tmp):
                os.remove(tmp)


#: the programs of this process
PROGRAMS = Programs()
