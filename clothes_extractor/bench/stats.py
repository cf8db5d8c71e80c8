"""Latency statistics as trtexec and onnxruntime_perf_test report them."""

from __future__ import annotations

from typing import Sequence

import numpy as np

PERCENTILES = (50, 90, 95, 99)


def latency_stats(seconds: Sequence[float]) -> dict[str, float]:
    """min / mean / std / p50 / p90 / p95 / p99 / max of per-run latencies, in milliseconds.

    Percentiles interpolate linearly between the closest ranks (numpy's default), so
    p50 of 1..100 ms is 50.5 ms.
    """
    if len(seconds) == 0:
        raise ValueError("no timed runs")
    ms = np.asarray(seconds, dtype=np.float64) * 1000.0
    stats = {"min": float(ms.min()), "mean": float(ms.mean()), "std": float(ms.std(ddof=1)) if len(ms) > 1 else 0.0}
    for p in PERCENTILES:
        stats[f"p{p}"] = float(np.percentile(ms, p))
    stats["max"] = float(ms.max())
    return stats


def throughput(batch: int, seconds: Sequence[float]) -> float:
    """Images per second over all timed runs (total images / total time)."""
    total = float(np.sum(seconds))
    return batch * len(seconds) / total if total > 0 else 0.0
