"""Process-wide tuning for training speed: an explicit call, never done at import.

    import minigrad
    minigrad.runtime.tune()      # what `gpt train` and the benchmarks do first

`tune()` changes two things that belong to the whole process, so a library
import must not change them behind the program's back:

* OpenBLAS (behind np.matmul) keeps its idle worker threads spinning ~0.1 s
  after each GEMM. On a 2-core machine a spinning worker holds the core that a
  kernel piece on a helper thread (kernels/threads.py) needs, and when another
  process holds a core each 2-thread GEMM waits for the descheduled worker: a
  small-GPT step takes ~25% longer. tune() makes idle workers sleep after 2^4
  cycles (OPENBLAS_THREAD_TIMEOUT=4), and if OpenBLAS is already loaded, has it
  re-read the setting and restart its thread server.
* glibc gives every large array its own mmap and returns it to the OS when freed,
  so each training step page-faults all its activations and gradients in anew
  (~6,000 faults and ~13% of a small-GPT step in kernel page zeroing). tune()
  raises the mmap and trim thresholds to 1 GiB: freed arrays stay in the heap and
  the next step reuses them. Peak memory is unchanged; memory freed at the end is
  kept by the process, not returned.

Each is skipped where the user set it (OPENBLAS_THREAD_TIMEOUT,
MALLOC_MMAP_THRESHOLD_ / MALLOC_TRIM_THRESHOLD_) or where the platform has no
such knob (another BLAS, not glibc). Results are the same with or without it.
"""
import ctypes
import os

from minigrad.kernels import threads

BLAS_SPIN_LOG2 = 4          # OPENBLAS_THREAD_TIMEOUT: idle BLAS workers sleep after 2^4 cycles
MALLOC_THRESHOLD = 1 << 30  # arrays below 1 GiB come from the heap, which is not trimmed after frees

_done = {"tuned": False}


def tune():
    """Tune OpenBLAS's idle spin and glibc's allocator for training; idempotent. Returns a dict
    saying what was done ({"blas_spin": bool, "malloc": bool})."""
    first = not _done["tuned"]
    _done["tuned"] = True
    return {"blas_spin": _shorten_blas_spin(), "malloc": _keep_freed_memory() if first else False}


def _shorten_blas_spin():
    """Set OPENBLAS_THREAD_TIMEOUT; OpenBLAS read it when NumPy loaded it, so have it read it
    again and shut its thread server down, to restart with the short spin at the next GEMM."""
    if os.environ.get("OPENBLAS_THREAD_TIMEOUT", str(BLAS_SPIN_LOG2)) != str(BLAS_SPIN_LOG2):
        return False  # the user's own setting
    os.environ["OPENBLAS_THREAD_TIMEOUT"] = str(BLAS_SPIN_LOG2)
    lib = threads.openblas_lib()
    names = ("openblas_thread_timeout", "openblas_read_env", "blas_thread_shutdown_")
    if lib is None or not all(hasattr(lib, n) for n in names):
        return False
    if lib.openblas_thread_timeout() != BLAS_SPIN_LOG2:
        lib.openblas_read_env()
        lib.blas_thread_shutdown_()
    return True


def _keep_freed_memory():
    if any(k in os.environ for k in ("MALLOC_MMAP_THRESHOLD_", "MALLOC_TRIM_THRESHOLD_")):
        return False
    try:
        libc = ctypes.CDLL("libc.so.6")
        M_TRIM_THRESHOLD, M_MMAP_THRESHOLD = -1, -3
        return bool(libc.mallopt(M_MMAP_THRESHOLD, MALLOC_THRESHOLD)) and \
            bool(libc.mallopt(M_TRIM_THRESHOLD, MALLOC_THRESHOLD))
    except (OSError, AttributeError):
        return False  # not glibc: keep the platform's allocator as it is
