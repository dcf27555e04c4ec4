"""minigrad: reverse-mode autograd on NumPy, with Numba kernels.

    import minigrad as mg
    x = mg.randn(3, 4, requires_grad=True)
    (x.tanh() @ x.T).sum().backward()
    x.grad  # d sum / d x, an ndarray of shape (3, 4)

Where things are: autograd.py (the graph and backward), tensor.py (the Tensor),
ops.py (primitives, forward and backward side by side), functional.py and
fused.py (composite and fused ops), kernels/ (NumPy and Numba kernels, no
autograd), nn.py (modules), gradcheck.py, viz.py.
"""
import os

# OpenBLAS (behind np.matmul) keeps its worker threads spinning ~0.1 s after each GEMM by
# default. On a 2-core machine where another process holds a core, a spinning worker loses
# its slice and each 2-thread GEMM then waits ~8 ms for it (measured (768,128)@(128,384):
# 8.0 ms vs 0.85 ms). A short spin (2^4 cycles) lets the worker sleep and be woken promptly.
# OpenBLAS reads this when NumPy loads it; if NumPy came first, kernels/threads.py has
# OpenBLAS re-read it before the first threaded kernel. An explicit user setting wins.
os.environ.setdefault("OPENBLAS_THREAD_TIMEOUT", "4")


def _reuse_freed_memory():
    """Keep freed arrays' memory in the process (glibc) for the next step's arrays.

    By default glibc gives every large array its own mmap and returns it to the OS when
    freed, so each training step page-faults in all its activations and gradients anew:
    measured 5,700 faults (23 MB of kernel page zeroing) and 12.7 ms of system time per
    small-GPT step (~13% of it); with these two settings, 2 faults and 0 ms. Peak memory is
    unchanged (a step's arrays are reused by the next); what differs is that memory freed at
    the end is kept, not returned. Only on glibc, and not when the user set these limits
    through MALLOC_MMAP_THRESHOLD_ / MALLOC_TRIM_THRESHOLD_.
    """
    if any(k in os.environ for k in ("MALLOC_MMAP_THRESHOLD_", "MALLOC_TRIM_THRESHOLD_")):
        return
    try:
        import ctypes
        libc = ctypes.CDLL("libc.so.6")
        M_TRIM_THRESHOLD, M_MMAP_THRESHOLD = -1, -3
        libc.mallopt(M_MMAP_THRESHOLD, 1 << 30)   # arrays below 1 GiB come from the heap...
        libc.mallopt(M_TRIM_THRESHOLD, 1 << 30)   # ...which is not shrunk after every free
    except (OSError, AttributeError):
        pass  # not glibc: keep the platform's allocator as it is


_reuse_freed_memory()

from minigrad import autograd as _autograd  # noqa: E402,F401  (imports first: tensor.py needs it)
from minigrad.autograd import AnomalyError, Function, detect_anomaly, is_grad_enabled, no_grad
from minigrad.tensor import Tensor
from minigrad.factory import (arange, full, ones, ones_like, rand, randint, randn, tensor, zeros,
                              zeros_like)
from minigrad.functional import cat, split, stack, where
from minigrad.random import get_rng_state, manual_seed, set_rng_state
from minigrad import functional, kernels, nn  # noqa: F401
from minigrad.gradcheck import GradcheckError, gradcheck
from minigrad import viz  # noqa: F401

float32 = "float32"
float64 = "float64"
