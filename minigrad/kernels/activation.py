"""GELU, with GPT-2's tanh approximation and exact (erf, PyTorch's default), and erf."""
import math

import numpy as np

SQRT_2_OVER_PI = math.sqrt(2.0 / math.pi)   # Python floats: never upcast float32
GELU_COEF = 0.044715
SQRT_HALF = math.sqrt(0.5)
INV_SQRT_2PI = 1.0 / math.sqrt(2.0 * math.pi)


# gelu forward, tanh approximation (math: minigrad/fused.py, Gelu)
def gelu_forward_numpy(x):
    u = SQRT_2_OVER_PI * (x + GELU_COEF * x * x * x)
    return 0.5 * x * (1.0 + np.tanh(u))


# gelu backward, recomputing t = tanh(u)
def gelu_backward_numpy(x, dy):
    x2 = x * x
    t = np.tanh(SQRT_2_OVER_PI * (x + GELU_COEF * x2 * x))
    du = SQRT_2_OVER_PI * (1.0 + 3.0 * GELU_COEF * x2)
    return dy * (0.5 * (1.0 + t) + 0.5 * x * (1.0 - t * t) * du)


# gelu for training: the same y, and t = tanh(u) kept so that backward need not recompute it
def gelu_forward_keep_tanh_numpy(x):
    t = np.tanh(SQRT_2_OVER_PI * (x + GELU_COEF * x * x * x))
    return 0.5 * x * (1.0 + t), t


# gelu backward from the kept t
def gelu_backward_with_tanh_numpy(x, t, dy):
    du = SQRT_2_OVER_PI * (1.0 + 3.0 * GELU_COEF * x * x)
    return dy * (0.5 * (1.0 + t) + 0.5 * x * (1.0 - t * t) * du)


# erf, elementwise (math: ops.Erf). NumPy has no erf: the twin calls math.erf per element,
# exact and slow (~100 ns/element), which is what a specification should be.
_erf_each = np.vectorize(math.erf, otypes=[np.float64])


def erf_numpy(x):
    return np.asarray(_erf_each(x), dtype=x.dtype)


# exact gelu forward: y = x Phi(x), Phi(x) = (1 + erf(x / sqrt 2)) / 2 (math: fused.GeluErf)
def gelu_erf_forward_numpy(x):
    return np.asarray(0.5 * x * (1.0 + _erf_each(x * SQRT_HALF)), dtype=x.dtype)


# exact gelu backward: dx = dy (Phi(x) + x phi(x)), phi(x) = exp(-x^2 / 2) / sqrt(2 pi)
def gelu_erf_backward_numpy(x, dy):
    cdf = 0.5 * (1.0 + _erf_each(x * SQRT_HALF))
    return np.asarray(dy * (cdf + x * INV_SQRT_2PI * np.exp(-0.5 * x * x)), dtype=x.dtype)


# ---- Numba ---------------------------------------------------------------------------------
# One serial elementwise loop each, in the array's own precision (float32: 16 lanes of
# AVX-512), which LLVM vectorises: libm tanh is one scalar call per element (~10 ns), and
# Numba's default error model puts a zero check on every division, which also stops
# vectorisation; hence error_model="numpy". tanh(u) = sign(u) (1 - e) / (1 + e) with
# e = exp(-2|u|) from common.exp_le0 (float32: ~3 ulp; float64: ~2e-13, inside its test
# tolerance). Serial kernels, split over threads in contiguous pieces by kernels/threads.py.

from numba import njit  # noqa: E402

from . import threads  # noqa: E402
from .common import JIT, exp_le0  # noqa: E402

TANH_CLAMP = 20.0     # tanh(20) = 1 - 8e-18: exactly 1 in float32 and float64


@njit(inline="always", **JIT)
def _tanh(u, f):
    """tanh(u) in the precision of u; f is that float type (the array's dtype.type)."""
    e = exp_le0(f(-2.0) * min(abs(u), f(TANH_CLAMP)))   # exp(-2|u|) in (0, 1]
    return np.copysign((f(1.0) - e) / (f(1.0) + e), u)


@njit(inline="always", **JIT)
def _inner(x, f):
    """u = sqrt(2/pi) (x + 0.044715 x^3), the argument of GELU's tanh."""
    return f(SQRT_2_OVER_PI) * (x + f(GELU_COEF) * x * x * x)


@njit(**JIT)
def _gelu_fwd_kernel(x, y):
    f = x.dtype.type
    for i in range(x.size):
        xi = x[i]
        y[i] = f(0.5) * xi * (f(1.0) + _tanh(_inner(xi, f), f))


def gelu_forward_numba(x):
    return _elementwise(_gelu_fwd_kernel, x)


def gelu_backward_numba(x, dy):
    # Without a kept t (the training path keeps it: fused.Gelu): recompute it, then the same pass.
    return gelu_backward_with_tanh_numba(x, gelu_forward_keep_tanh_numba(x)[1], dy)


# Training keeps t (one array of x's size per GELU) so backward is a cheap elementwise pass:
# the tanh is ~80% of gelu_backward's time.
@njit(**JIT)
def _gelu_fwd_keep_kernel(x, y, t):
    f = x.dtype.type
    for i in range(x.size):
        xi = x[i]
        ti = _tanh(_inner(xi, f), f)
        t[i] = ti
        y[i] = f(0.5) * xi * (f(1.0) + ti)


@njit(**JIT)
def _gelu_bwd_tanh_kernel(x, t, dy, dx):
    f = x.dtype.type
    for i in range(x.size):
        xi, ti = x[i], t[i]
        du = f(SQRT_2_OVER_PI) * (f(1.0) + f(3.0 * GELU_COEF) * xi * xi)
        dx[i] = dy[i] * (f(0.5) * (f(1.0) + ti) + f(0.5) * xi * (f(1.0) - ti * ti) * du)


def gelu_forward_keep_tanh_numba(x):
    x1 = np.ascontiguousarray(x).reshape(-1)
    y, t = np.empty_like(x1), np.empty_like(x1)
    _by_pieces(_gelu_fwd_keep_kernel, x1, y, t)
    return y.reshape(x.shape), t.reshape(x.shape)


def gelu_backward_with_tanh_numba(x, t, dy):
    return _elementwise(_gelu_bwd_tanh_kernel, x, t, dy)


# erf: math.erf is a libm call per element (not vectorised), still ~20x the twin.
@njit(**JIT)
def _erf_kernel(x, y):
    for i in range(x.size):
        y[i] = math.erf(np.float64(x[i]))


@njit(**JIT)
def _gelu_erf_fwd_kernel(x, y):
    for i in range(x.size):
        xi = np.float64(x[i])
        y[i] = 0.5 * xi * (1.0 + math.erf(xi * SQRT_HALF))


@njit(**JIT)
def _gelu_erf_bwd_kernel(x, dy, dx):
    for i in range(x.size):
        xi = np.float64(x[i])
        cdf = 0.5 * (1.0 + math.erf(xi * SQRT_HALF))
        dx[i] = dy[i] * (cdf + xi * INV_SQRT_2PI * np.exp(-0.5 * xi * xi))


def _elementwise(kernel, *arrays):
    """kernel over flat contiguous copies of the arrays (all in the first one's dtype)
    into a new array of the first one's shape."""
    x = arrays[0]
    flat = [np.ascontiguousarray(a, dtype=x.dtype).reshape(-1) for a in arrays]
    out = np.empty_like(flat[0])
    _by_pieces(kernel, *flat, out)
    return out.reshape(x.shape)


def erf_numba(x):
    return _elementwise(_erf_kernel, x)


def gelu_erf_forward_numba(x):
    return _elementwise(_gelu_erf_fwd_kernel, x)


def gelu_erf_backward_numba(x, dy):
    return _elementwise(_gelu_erf_bwd_kernel, x, dy)


# Elements per piece: below this a helper thread's start-up (~30 us) outweighs its half.
MIN_PIECE = 1 << 15


def _by_pieces(kernel, *flat):
    """kernel(*flat) on one contiguous piece of the flat arrays per thread (kernels/threads.py)."""
    threads.split(lambda lo, hi: kernel(*[a[lo:hi] for a in flat]), flat[0].size, MIN_PIECE)
