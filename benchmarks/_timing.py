"""Timing helper shared by the benchmarks: the best of repeated runs (the fairest estimate on a shared machine)."""

from __future__ import annotations

import time
from typing import Any, Callable


def best_of(fn: Callable[[], Any], repeat: int) -> tuple[float, Any]:
    """Run `fn` `repeat` times; return (the fastest run's seconds, the last result)."""
    best, out = float("inf"), None
    for _ in range(repeat):
        t0 = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - t0)
    return best, out
