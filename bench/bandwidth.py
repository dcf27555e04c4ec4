"""The machine's memory read bandwidth, the bound on decoding speed: to produce one token a
model reads every weight once, so tokens/s <= bandwidth / bytes of weights per token.

    python bench/bandwidth.py               # 1 GiB read, on 1 and 2 threads
    python bench/bandwidth.py --threads 2

Measured as a sum over a float32 array four times the size of the last-level cache, cut
into one contiguous piece per thread (minigrad's kernel threads), best of several passes.
"""
import argparse
import sys
import time
from pathlib import Path

import numpy as np
from numba import njit

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


@njit(nogil=True, fastmath=True)
def _sum(a):
    s = np.float32(0)
    for i in range(a.size):
        s += a[i]
    return s


def read_bandwidth(threads, mib=1024, passes=5):
    """Best GB/s of `passes` full reads of a `mib` MiB float32 array on `threads` threads."""
    from minigrad.kernels import threads as kthreads
    before = kthreads.get_threads()
    kthreads.set_threads(threads)
    try:
        a = np.ones(mib * 2 ** 20 // 4, np.float32)  # written once: every page is really there
        piece = lambda lo, hi: _sum(a[lo:hi])  # noqa: E731
        kthreads.split(piece, a.size, 1)  # compile, warm the pool
        best = min(_timed(lambda: kthreads.split(piece, a.size, 1)) for _ in range(passes))
        return a.nbytes / best / 1e9
    finally:
        kthreads.set_threads(before)


def _timed(fn):
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--mib", type=int, default=1024)
    args = parser.parse_args(argv)
    for n in args.threads:
        print(f"read bandwidth, {n} thread(s): {read_bandwidth(n, args.mib):.1f} GB/s", flush=True)


if __name__ == "__main__":
    main()
