"""GELU with GPT-2's tanh approximation: forward and backward."""
import math

import numpy as np

SQRT_2_OVER_PI = math.sqrt(2.0 / math.pi)   # Python floats: never upcast float32
GELU_COEF = 0.044715


# gelu:  y = 0.5 x (1 + tanh(u)),  u = sqrt(2/pi) (x + 0.044715 x^3)
def gelu_forward_numpy(x):
    u = SQRT_2_OVER_PI * (x + GELU_COEF * x * x * x)
    return 0.5 * x * (1.0 + np.tanh(u))


# gelu': dx = dy * (0.5 (1 + t) + 0.5 x (1 - t^2) sqrt(2/pi) (1 + 3 * 0.044715 x^2)),  t = tanh(u)
def gelu_backward_numpy(x, dy):
    x2 = x * x
    t = np.tanh(SQRT_2_OVER_PI * (x + GELU_COEF * x2 * x))
    du = SQRT_2_OVER_PI * (1.0 + 3.0 * GELU_COEF * x2)
    return dy * (0.5 * (1.0 + t) + 0.5 * x * (1.0 - t * t) * du)


# ---- Numba ---------------------------------------------------------------------------------
# Elementwise over the flattened array in blocks of BLOCK elements, one block per prange
# iteration. tanh goes through the vectorised exp: tanh(u) = sign(u) (1 - e) / (1 + e),
# e = exp(-2|u|) <= 1, accurate to a few ulp in absolute terms (libm tanh is not vectorised).

from numba import njit, prange  # noqa: E402

from .common import EXP_CONSTANTS, FASTMATH, exp_row, exp_scratch, run_kernel  # noqa: E402

BLOCK = 4096


@njit(cache=True, fastmath=FASTMATH)
def _tanh_block(x, t, bits, k):
    """t[:n] = tanh(u(x)) for the n = x.size elements of x (constants typed as x: no float64 detour)."""
    a, c = x.dtype.type(SQRT_2_OVER_PI), x.dtype.type(GELU_COEF)
    one, two = x.dtype.type(1), x.dtype.type(2)
    for j in range(x.size):
        xj = x[j]
        t[j] = -two * abs(a * (xj + c * xj * xj * xj))
    exp_row(t[:x.size], bits, k)
    for j in range(x.size):
        th = (one - t[j]) / (one + t[j])
        t[j] = th if x[j] >= 0 else -th


@njit(cache=True, parallel=True, fastmath=FASTMATH)
def _gelu_fwd_kernel(x, y, tmp, bits, k):
    n = x.size
    nblk = tmp.shape[0]
    half, one = x.dtype.type(0.5), x.dtype.type(1)
    for blk in prange(nblk):
        lo, hi = blk * BLOCK, min(n, (blk + 1) * BLOCK)
        t = tmp[blk]
        _tanh_block(x[lo:hi], t, bits[blk], k)
        for j in range(hi - lo):
            y[lo + j] = half * x[lo + j] * (one + t[j])


@njit(cache=True, parallel=True, fastmath=FASTMATH)
def _gelu_bwd_kernel(x, dy, dx, tmp, bits, k):
    n = x.size
    nblk = tmp.shape[0]
    a, c3 = x.dtype.type(SQRT_2_OVER_PI), x.dtype.type(3.0 * GELU_COEF)
    half, one = x.dtype.type(0.5), x.dtype.type(1)
    for blk in prange(nblk):
        lo, hi = blk * BLOCK, min(n, (blk + 1) * BLOCK)
        t = tmp[blk]
        _tanh_block(x[lo:hi], t, bits[blk], k)
        for j in range(hi - lo):
            xj, tj = x[lo + j], t[j]
            du = a * (one + c3 * xj * xj)
            dx[lo + j] = dy[lo + j] * (half * (one + tj) + half * xj * (one - tj * tj) * du)


def _scratch(x):
    nblk = max(1, (x.size + BLOCK - 1) // BLOCK)
    return np.empty((nblk, BLOCK), x.dtype), exp_scratch(x.dtype, nblk, BLOCK), EXP_CONSTANTS[x.dtype]


def gelu_forward_numba(x):
    if x.size == 0:
        return gelu_forward_numpy(x)
    x1 = np.ascontiguousarray(x).reshape(-1)
    y = np.empty_like(x1)
    run_kernel(_gelu_fwd_kernel, x1.size, x1, y, *_scratch(x1))
    return y.reshape(x.shape)


def gelu_backward_numba(x, dy):
    if x.size == 0:
        return gelu_backward_numpy(x, dy)
    x1 = np.ascontiguousarray(x).reshape(-1)
    dy1 = np.ascontiguousarray(dy).reshape(-1)
    dx = np.empty_like(x1)
    run_kernel(_gelu_bwd_kernel, x1.size, x1, dy1, dx, *_scratch(x1))
    return dx.reshape(x.shape)
