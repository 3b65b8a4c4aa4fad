"""Process-wide settings flowsim makes when it is imported (each can be turned off).

- float64 in jax (``jax_enable_x64``): flowsim computes in float64 everywhere.
- A persistent compilation cache: a new process (a second ``flowsim run``, a notebook
  kernel, a Dask worker, a test process) loads the XLA programs an earlier process
  compiled instead of compiling them again. Measured: the compile of a run's step loop is
  almost all XLA compilation (0.2-0.6 s tracing, 2-6 s compiling), which the cache
  removes. The cache lives in ``$FLOWSIM_CACHE_DIR``, else ``$XDG_CACHE_HOME/flowsim/jax``,
  else ``~/.cache/flowsim/jax``; an existing jax cache setting of the user is kept, and
  ``FLOWSIM_CACHE_DIR=off`` turns it off.
"""

from __future__ import annotations

import os
from pathlib import Path

import jax

#: programs that compiled faster than this are not written to the cache (it is about
#: the few large step loops, not the many small helpers)
MIN_COMPILE_SECONDS = 0.1


def cache_dir() -> Path | None:
    """Where flowsim keeps compiled programs (``None``: turned off)."""
    explicit = os.environ.get("FLOWSIM_CACHE_DIR")
    if explicit is not None:
        return None if explicit.strip().lower() in ("", "0", "off", "none") else Path(explicit)
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "flowsim" / "jax"


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
