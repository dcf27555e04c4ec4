"""Threads for the kernels: a piece of the rows on each core, and BLAS kept out of the way.

The Numba kernels are compiled serial (no parallel=True: that starts Numba's own
OpenMP/workqueue pool beside OpenBLAS's, and compiles several times slower) but
with nogil=True, so plain Python threads can run them side by side. The one
exception is decoding's large products (kernels/linear.py), too short for a
helper thread's hand-over. `split`
below cuts a kernel's rows into one piece per thread, runs the first piece on
the calling thread and the others on a few helper threads started once, and
waits for all of them. While pieces run, OpenBLAS is held to one thread, so
there are never more busy threads than cores: one pool works at a time.

Every piece computes exactly what the serial loop computes for its rows, so
results do not depend on the thread count. A sum over rows (layer norm's
dweight, optim.sum_squares) is split only by fixed blocks of its input, each
summed into its own partial, the partials then added in block order.

Handing a piece to a helper thread costs ~20-90 us (two wake-ups and the GIL),
so small calls stay serial. OpenBLAS's idle workers spin for a while after each GEMM
and then hold the core a helper thread needs: minigrad.runtime.tune() (which
`gpt train` calls) shortens that spin.
"""
import functools
import os
import threading
from concurrent.futures import ThreadPoolExecutor


def _default_threads():
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not on Linux
        return max(1, os.cpu_count() or 1)


_state = {"threads": _default_threads(), "pool": None}
_inside = threading.local()   # set on the threads running pieces: nested splits run serially


def set_threads(n):
    """How many threads the kernels split their rows over (default: the usable cores)."""
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise ValueError(f"set_num_threads: expected an integer >= 1, got {n!r}")
    if n != _state["threads"]:
        _shutdown()
        _state["threads"] = n


def get_threads():
    return _state["threads"]


def _shutdown():
    pool, _state["pool"] = _state["pool"], None
    if pool is not None:
        pool.shutdown(wait=False)


def _pool():
    if _state["pool"] is None:
        _state["pool"] = ThreadPoolExecutor(_state["threads"] - 1, thread_name_prefix="minigrad")
    return _state["pool"]


# A forked child has the pool object but none of its threads: start a new one on first use.
if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=lambda: _state.update(pool=None))


def count(n_rows, min_rows):
    """How many pieces split(fn, n_rows, min_rows) cuts: one per thread, each at least
    min_rows long; one inside a piece (nested splits run serially)."""
    if getattr(_inside, "active", False):
        return 1
    return max(1, min(_state["threads"], n_rows // max(1, min_rows)))


def split(fn, n_rows, min_rows):
    """Call fn(lo, hi) on contiguous row ranges covering [0, n_rows), one per thread and each
    at least min_rows long, all at once: the first on this thread, the others on helper
    threads. Returns when all are done; the first exception raised in any piece is re-raised
    after every piece has finished. Inside a piece, a nested split runs serially."""
    n = count(n_rows, min_rows)
    if n == 1:
        return fn(0, n_rows)
    bounds = [n_rows * i // n for i in range(n + 1)]
    with one_blas_thread():
        futures = [_pool().submit(_run_piece, fn, bounds[i], bounds[i + 1]) for i in range(1, n)]
        try:
            _run_piece(fn, bounds[0], bounds[1])
        finally:
            for f in futures:  # never return while a helper still writes into the outputs
                f.exception()
        for f in futures:
            f.result()


def _run_piece(fn, lo, hi):
    outer, _inside.active = getattr(_inside, "active", False), True
    try:
        fn(lo, hi)
    finally:
        _inside.active = outer


class one_blas_thread:
    """Context manager: OpenBLAS on one thread inside (~1 us; threadpoolctl's limiter costs
    ~100x that). A no-op without threadpoolctl or with another BLAS."""
    _api = None   # (get, set) of NumPy's OpenBLAS, found on first use; False if none

    def __enter__(self):
        api = one_blas_thread._api
        if api is None:  # first use: find OpenBLAS's thread calls
            api = one_blas_thread._api = _openblas_thread_api() or False
        self.restore = api[0]() if api else 1
        if self.restore > 1:
            api[1](1)

    def __exit__(self, *exc):
        if self.restore > 1:
            one_blas_thread._api[1](self.restore)


@functools.lru_cache(maxsize=None)
def openblas_lib():
    """NumPy's OpenBLAS as a ctypes library, or None (another BLAS, or no threadpoolctl)."""
    try:
        from threadpoolctl import ThreadpoolController
        libs = ThreadpoolController().select(internal_api="openblas").lib_controllers
    except Exception:  # threadpoolctl failing: leave BLAS alone
        return None
    return libs[0].dynlib if libs else None


def _openblas_thread_api():
    lib = openblas_lib()
    for prefix in ("", "scipy_"):         # scipy-openblas wheels prefix and suffix symbols
        for suffix in ("", "64_"):
            get = getattr(lib, f"{prefix}openblas_get_num_threads{suffix}", None)
            set_ = getattr(lib, f"{prefix}openblas_set_num_threads{suffix}", None)
            if get is not None and set_ is not None:
                return get, set_
    return None
