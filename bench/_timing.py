"""Timing shared by the benchmarks: compile and warm time of one call, separately."""

from __future__ import annotations

import statistics
import time


def wall(fn):
    """``(result, wall seconds)`` of one call ``fn()``."""
    start = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - start


def timed(fn, repeats):
    """``(result, compile s, warm s)``: ``fn()`` once cold, then ``repeats`` times warm;
    compile = first call minus the warm median, warm = the median."""
    start = time.perf_counter()
    fn()
    first = time.perf_counter() - start
    warm, result = [], None
    for _ in range(repeats):
        start = time.perf_counter()
        result = fn()
        warm.append(time.perf_counter() - start)
    median = statistics.median(warm)
    return result, max(first - median, 0.0), median
