"""What it costs to hand a piece of work to another thread: kernels/threads.py's Python
helper threads against Numba's parallel pool (OpenMP where available), the two ways
minigrad splits a kernel. Decoding's products (kernels/linear.py) take 0.1-0.3 ms each on a
124M GPT-2, so a hand-over of tens of microseconds decides whether splitting them pays.

    python bench/handover.py            # 3000 hand-overs each way, medians and 90th percentiles

Each row times a call that splits a trivial piece of work in two and waits for both halves,
and the same with ~20 us of arithmetic per half beside the serial time of that work.
"""
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numba  # noqa: E402
import numpy as np  # noqa: E402
from numba import njit, prange  # noqa: E402

import minigrad  # noqa: E402
from minigrad.kernels import threads  # noqa: E402


@njit(nogil=True)
def _work(n):
    s = 0.0
    for i in range(n):
        s += i * 0.5
    return s


@njit(nogil=True, parallel=True)
def _work_split(n):
    out = np.zeros(2)
    for b in prange(2):
        out[b] = _work(n)
    return out


def timed(fn, calls):
    for _ in range(100):  # warm: compiled, pools started
        fn()
    times = []
    for _ in range(calls):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    times.sort()
    return statistics.median(times) * 1e6, times[int(0.9 * len(times))] * 1e6


def main(calls=3000):
    minigrad.runtime.tune()
    threads.set_threads(2)
    n = 20000  # ~20 us of arithmetic per half
    rows = [("serial, both halves of the work", lambda: (_work(n), _work(n))),
            ("Python helper threads (threads.split), no work", lambda: threads.split(lambda lo, hi: None, 2, 1)),
            ("Python helper threads, the work in two", lambda: threads.split(lambda lo, hi: _work(n), 2, 1)),
            ("Numba parallel region, no work", lambda: _work_split(1)),
            ("Numba parallel region, the work in two", lambda: _work_split(n))]
    results = [(label, *timed(fn, calls)) for label, fn in rows]
    print(f"2 threads; {calls} calls each; Numba threading layer: {numba.threading_layer()}\n")
    print(f"{'':<50}{'median us':>12}{'p90 us':>10}")
    for label, median, p90 in results:
        print(f"{label:<50}{median:>12.1f}{p90:>10.1f}")


if __name__ == "__main__":
    main()
