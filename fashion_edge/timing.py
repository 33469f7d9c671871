"""The one timing loop of `fashion-edge bench`, the exporter's report and the PyTorch baseline.

numpy and the standard library only, so that the PyTorch baseline can use it without loading
OpenCV or onnxruntime (which would slow the cold start it is compared on).
"""
import statistics
import time

import numpy as np


def time_calls(fn, runs, warmup=20):
    """Seconds taken by each of `runs` calls of fn(), after `warmup` untimed ones."""
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(runs):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return times


def percentiles(times):
    ms = np.array(times) * 1000
    return {"p50": float(np.percentile(ms, 50)), "p90": float(np.percentile(ms, 90)), "p99": float(np.percentile(ms, 99))}


def latency_and_throughput(run_one, run_batch, batch, runs):
    """Single-input latency percentiles (ms) and images a second through batches of `batch`."""
    single = percentiles(time_calls(run_one, runs))
    batch_times = time_calls(run_batch, max(runs // 10, 10), warmup=3)
    return {**single, "batch_images_per_s": batch / statistics.median(batch_times)}
