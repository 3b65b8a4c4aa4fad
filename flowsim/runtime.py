"""Process-wide settings flowsim makes when it is imported (each can be turned off).

- float64 in jax (``jax_enable_x64``): flowsim computes in float64 everywhere.
- A persistent compilation cache: a new process (a second ``flowsim run``, a notebook
  kernel, a Dask worker, a test process) loads the XLA programs an earlier process
  compiled instead of compiling them again (the compile of a run's step loop is mostly
  XLA's: 2-6 s), and the exported, already traced pieces of a solve
  (:mod:`flowsim.integration.programs`: tracing took 1.5 s more). The cache lives in
  ``$FLOWSIM_CACHE_DIR``, else ``$XDG_CACHE_HOME/flowsim``, else ``~/.cache/flowsim``
  (``jax/`` for XLA's programs, ``programs/`` for the exported pieces); an existing jax
  cache setting of the user is kept for XLA's, and ``FLOWSIM_CACHE_DIR=off`` turns both
  off.
- What a Ctrl-C does (:class:`Interrupted`): the run in progress is saved where it has a
  file, nothing unfinished is recorded as finished, and the command exits 130.
"""

from __future__ import annotations

import functools
import importlib.metadata
import os
from pathlib import Path

import jax


class Interrupted(KeyboardInterrupt):
    """A run, a batch or a sweep stopped by Ctrl-C (``SIGINT``), after saving what it
    could: a ``KeyboardInterrupt``, so it ends whatever called it, and the command line
    exits 130 with :attr:`saved` as its last line.

    **Arguments:**

    - `saved`: one line saying what was saved and how to resume, e.g. ``"the run so far
      is saved in run.npz; rerun the same command to resume it"``.
    - `partial`: what was computed before the interrupt (the trajectories of the runs in
      progress, each with status ``"interrupted"``), or ``None``.
    """

    def __init__(self, saved: str, partial=None):
        super().__init__(saved)
        self.saved = saved
        self.partial = partial


def memory_bytes() -> int | None:
    """This machine's physical memory in bytes (``None`` where the platform does not
    say)."""
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (AttributeError, OSError, ValueError):
        return None


def check_fits(what: str, nbytes: int) -> None:
    """``ValueError`` before any work when ``nbytes`` (what ``what`` needs at the least)
    exceeds this machine's memory: a size that cannot fit is refused by name, not found
    out by a MemoryError or an abort halfway through."""
    total = memory_bytes()
    if total is not None and nbytes > total:
        raise ValueError(f"{what} needs at least {nbytes / 2**30:.3g} GiB of memory, more "
                         f"than this machine has ({total / 2**30:.3g} GiB)")


@functools.cache
def _blas_controller():
    from threadpoolctl import ThreadpoolController

    return ThreadpoolController()  # finds the loaded BLAS libraries once (~0.4 ms a time)


def one_blas_thread():
    """A context manager under which BLAS and LAPACK run on one thread (where their
    threads only spin against other work: docs/numerics.md). One controller serves the
    process, so entering it is cheap enough for a step loop's every call."""
    return _blas_controller().limit(limits=1, user_api="blas")


#: programs that compiled faster than this are not written to the cache (it is about
#: the few large step loops, not the many small helpers)
MIN_COMPILE_SECONDS = 0.1


def cache_root() -> Path | None:
    """Where flowsim keeps its caches (``None``: turned off; module doc)."""
    explicit = os.environ.get("FLOWSIM_CACHE_DIR")
    if explicit is not None:
        return None if explicit.strip().lower() in ("", "0", "off", "none") else Path(explicit)
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "flowsim"


def cache_dir() -> Path | None:
    """Where flowsim keeps XLA's compiled programs (``None``: turned off)."""
    root = cache_root()
    return None if root is None else root / "jax"


def programs_dir() -> Path | None:
    """Where flowsim keeps the exported pieces of its solves (``None``: turned off)."""
    root = cache_root()
    return None if root is None else root / "programs"


def configure() -> None:
    """float64, and the persistent compilation cache unless the user set one or turned
    it off (module doc)."""
    jax.config.update("jax_enable_x64", True)
    if jax.config.jax_compilation_cache_dir:
        return
    path = cache_dir()
    if path is None:
        return
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError:  # a read-only home: run without the cache
        return
    jax.config.update("jax_compilation_cache_dir", str(path))
    jax.config.update("jax_persistent_cache_min_compile_time_secs", MIN_COMPILE_SECONDS)


@functools.cache
def package_version(name: str) -> str | None:
    """The installed version of package ``name`` (``None``: not installed), read once per
    process: ``importlib.metadata`` parses the package's metadata on every call (8 ms,
    which made up a fifth of a 256-member batch's time when read per trajectory)."""
    try:
        return importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
        return None
