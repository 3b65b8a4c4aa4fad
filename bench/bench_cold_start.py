"""Benchmark: how fast a fresh process answers. ``flowsim run --depth 3 --stop-loss 1e-8``
(the README's one-trajectory command) run twice in new subprocesses with an empty
compilation cache, then once with the cache turned off; wall time of each, and the
import of flowsim alone.

The first run compiles and fills flowsim's persistent compilation cache
(:mod:`flowsim.runtime`); the second loads the compiled programs from it.

    .venv/bin/python bench/bench_cold_start.py [--repeats 3]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time

COMMAND = [sys.executable, "-m", "flowsim", "run", "--depth", "3", "--stop-loss", "1e-8",
           "--no-progress"]


def wall(cmd, env) -> float:
    start = time.perf_counter()
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True)
    if proc.returncode != 0:
        raise RuntimeError(f"{cmd} failed:\n{proc.stdout}\n{proc.stderr}")
    return time.perf_counter() - start


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    imports, firsts, seconds, uncached = [], [], [], []
    for _ in range(args.repeats):
        with tempfile.TemporaryDirectory() as tmp:
            env = {**os.environ, "FLOWSIM_CACHE_DIR": tmp}
            imports.append(wall([sys.executable, "-c", "import flowsim"], env))
            firsts.append(wall(COMMAND, env))
            seconds.append(wall(COMMAND, env))
            entries = sum(len(files) for _, _, files in os.walk(tmp))
        uncached.append(wall(COMMAND, {**os.environ, "FLOWSIM_CACHE_DIR": "off"}))
    med = statistics.median
    print(f"{' '.join(COMMAND[1:])}: median of {args.repeats}, wall seconds")
    print(f"  import flowsim                     {med(imports):6.2f}")
    print(f"  first run (empty cache, compiles)  {med(firsts):6.2f}")
    print(f"  second run (cache: {entries} files)    {med(seconds):6.2f}  "
          f"({med(firsts) / med(seconds):.1f}x faster)")
    print(f"  a run with the cache turned off    {med(uncached):6.2f}")


if __name__ == "__main__":
    main()
