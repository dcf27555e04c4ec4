"""The optimizer's kernels: the AdamW update, in place, as torch.optim.AdamW (decoupled weight
decay), and the sum of squares and in-place scaling that gradient clipping is made of."""
import math

import numpy as np


def _scalars(lr, beta1, beta2, eps, weight_decay, step):
    # Bias corrections in float64 Python scalars, like PyTorch does on CPU.
    lr, beta1, beta2, eps, wd = map(float, (lr, beta1, beta2, eps, weight_decay))
    bc1 = 1.0 - beta1 ** int(step)
    bc2_sqrt = math.sqrt(1.0 - beta2 ** int(step))
    return lr, beta1, beta2, eps, wd, lr / bc1, bc2_sqrt


# adamw: g <- g * grad_scale;  p *= 1 - lr wd;  m += (1-b1)(g - m);  v = b2 v + (1-b2) g^2;
#        p -= lr / (1 - b1^t) * m / (sqrt(v) / sqrt(1 - b2^t) + eps)
# (grad_scale, cast to the gradient's dtype, is how gradient clipping's factor comes in)
def adamw_update_numpy(param, grad, m, v, lr, beta1, beta2, eps, weight_decay, step, grad_scale=1.0):
    lr, beta1, beta2, eps, wd, step_size, bc2_sqrt = _scalars(lr, beta1, beta2, eps, weight_decay, step)
    grad = grad * grad.dtype.type(grad_scale)
    param *= 1.0 - lr * wd
    m += (1.0 - beta1) * (grad - m)
    v *= beta2
    v += (1.0 - beta2) * grad * grad
    param -= step_size * (m / (np.sqrt(v) / bc2_sqrt + eps))


# sum of squares: sum_i x_i^2, accumulated in float64
def sum_squares_numpy(x):
    x = np.asarray(x, dtype=np.float64).reshape(-1)
    return float(np.dot(x, x))


# scale: x <- s x, in place, s rounded to x's dtype first (as torch's clip multiplies by a tensor)
def scale_numpy(x, s):
    x *= x.dtype.type(s)


# ---- Numba ---------------------------------------------------------------------------------
# One fused serial elementwise pass over flat views (NumPy's twin makes ~8 passes and
# temporaries). Scalars arrive as float64 and are cast to the array dtype once. All three
# are memory-bound passes over every parameter (GPT-2 124M: 0.5 GB per array), split over
# threads in contiguous pieces (kernels/threads.py): each core brings its own share of the
# memory bandwidth.

from numba import njit  # noqa: E402

from . import threads  # noqa: E402
from .common import FASTMATH  # noqa: E402


@njit(cache=True, nogil=True, error_model="numpy")
def _adamw_kernel(p, g, m, v, decay, beta1, beta2, eps, step_size, bc2_sqrt, grad_scale):
    t = p.dtype.type
    decay, b2, eps = t(decay), t(beta2), t(eps)
    one_b1, one_b2 = t(1.0 - beta1), t(1.0 - beta2)
    step_size, bc2_sqrt, gs = t(step_size), t(bc2_sqrt), t(grad_scale)
    for i in range(p.size):
        gi = g[i] * gs  # exact when gs is 1
        p[i] *= decay
        mi = m[i] + one_b1 * (gi - m[i])
        vi = v[i] * b2 + one_b2 * gi * gi
        m[i] = mi
        v[i] = vi
        p[i] -= step_size * (mi / (np.sqrt(vi) / bc2_sqrt + eps))


def adamw_update_numba(param, grad, m, v, lr, beta1, beta2, eps, weight_decay, step, grad_scale=1.0):
    arrays = (param, grad, m, v)
    if not all(a.flags.c_contiguous for a in arrays) or len({a.dtype for a in arrays}) != 1:
        # Flat in-place views need contiguous memory; odd layouts take the (in-place) twin.
        return adamw_update_numpy(param, grad, m, v, lr, beta1, beta2, eps, weight_decay, step, grad_scale)
    lr, beta1, beta2, eps, wd, step_size, bc2_sqrt = _scalars(lr, beta1, beta2, eps, weight_decay, step)
    flat = [a.reshape(-1) for a in arrays]

    def piece(lo, hi):
        _adamw_kernel(*[a[lo:hi] for a in flat], 1.0 - lr * wd, beta1, beta2, eps, step_size, bc2_sqrt,
                      float(grad_scale))

    threads.split(piece, param.size, MIN_PIECE)


# Elements per piece: below this a helper thread's hand-over (~30 us) costs more than it saves.
MIN_PIECE = 1 << 16
# Elements summed into one float64 partial. The partials are fixed by the array alone, and
# added in order at the end, so the sum does not depend on how many threads computed them.
CHUNK = 1 << 13


@njit(cache=True, nogil=True, fastmath=FASTMATH, error_model="numpy")
def _sum_squares_kernel(x, partial):
    for c in range(partial.size):
        chunk = x[c * CHUNK:(c + 1) * CHUNK]  # a slice: LLVM vectorises this loop, not a ranged one
        s = 0.0
        for i in range(chunk.size):
            xi = np.float64(chunk[i])
            s += xi * xi
        partial[c] = s


def sum_squares_numba(x):
    x = np.ascontiguousarray(x).reshape(-1)
    partial = np.zeros(-(-x.size // CHUNK))

    def piece(lo, hi):  # chunks lo:hi
        _sum_squares_kernel(x[lo * CHUNK:hi * CHUNK], partial[lo:hi])

    threads.split(piece, partial.size, -(-MIN_PIECE // CHUNK))
    return float(partial.sum())


@njit(cache=True, nogil=True, error_model="numpy")
def _scale_kernel(x, s):
    s = x.dtype.type(s)
    for i in range(x.size):
        x[i] *= s


def scale_numba(x, s):
    if not x.flags.c_contiguous:
        return scale_numpy(x, s)
    flat = x.reshape(-1)
    threads.split(lambda lo, hi: _scale_kernel(flat[lo:hi], float(s)), flat.size, MIN_PIECE)
