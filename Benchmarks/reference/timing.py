"""Timing shared by the PyTorch reference scripts, as `sbi-gpu bench` times its own side."""
import time


def median_seconds(body, warmups, repeats):
    """The median wall time of `repeats` calls of body, after `warmups` untimed ones."""
    for _ in range(warmups):
        body()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        body()
        times.append(time.perf_counter() - start)
    times.sort()
    return times[len(times) // 2]
