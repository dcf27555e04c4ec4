"""Layer normalisation over the last axis (biased variance, like PyTorch)."""
import numpy as np


# layer_norm forward, rstd = 1 / sqrt(var + eps) (math: minigrad/fused.py, LayerNorm)
def layer_norm_forward_numpy(x, weight, bias, eps):
    mean = x.mean(axis=-1)
    xc = x - mean[..., None]
    var = (xc * xc).mean(axis=-1)
    rstd = 1.0 / np.sqrt(var + float(eps))
    y = xc * rstd[..., None]
    if weight is not None:
        y = y * weight
    if bias is not None:
        y = y + bias
    return y, mean, rstd


# layer_norm backward (dw, db sum over all leading dims)
def layer_norm_backward_numpy(dy, x, weight, mean, rstd):
    xhat = (x - mean[..., None]) * rstd[..., None]
    g = dy * weight if weight is not None else dy
    dx = rstd[..., None] * (g - g.mean(axis=-1, keepdims=True)
                            - xhat * (g * xhat).mean(axis=-1, keepdims=True))
    if weight is None:
        return dx, None, None
    C = x.shape[-1]
    dweight = (dy * xhat).reshape(-1, C).sum(axis=0)
    dbias = dy.reshape(-1, C).sum(axis=0)
    return dx, dweight, dbias


# ---- Numba ---------------------------------------------------------------------------------
# One pass per row, statistics accumulated in float64; large inputs are cut into pieces of
# rows that run on several threads (kernels/threads.py). dweight/dbias sum over every row:
# each fixed block of CHUNK_ROWS rows sums into its own float64 partial, and the partials
# are added in block order afterwards, so the sums are bit-for-bit the same whatever the
# thread count.

from numba import njit  # noqa: E402

from . import threads  # noqa: E402
from .common import FASTMATH  # noqa: E402


@njit(cache=True, nogil=True, fastmath=FASTMATH, error_model="numpy")
def _ln_fwd_kernel(x, w, b, eps, y, mean, rstd):
    n, c = x.shape
    for i in range(n):
        s = 0.0
        for j in range(c):
            s += x[i, j]
        mu = s / c
        ss = 0.0
        for j in range(c):
            d = x[i, j] - mu
            ss += d * d
        r = 1.0 / np.sqrt(ss / c + eps)
        mean[i] = mu
        rstd[i] = r
        mu_, r_ = x.dtype.type(mu), x.dtype.type(r)
        for j in range(c):
            y[i, j] = (x[i, j] - mu_) * r_ * w[j] + b[j]


@njit(cache=True, nogil=True, fastmath=FASTMATH, error_model="numpy")
def _ln_bwd_kernel(dy, x, w, mean, rstd, dx, dw_part, db_part):
    """Rows of whole blocks; block b's dweight/dbias sums go to dw_part[b], db_part[b]."""
    for b in range(dw_part.shape[0]):
        lo = b * CHUNK_ROWS
        _ln_bwd_rows(dy[lo:lo + CHUNK_ROWS], x[lo:lo + CHUNK_ROWS], w, mean[lo:lo + CHUNK_ROWS],
                     rstd[lo:lo + CHUNK_ROWS], dx[lo:lo + CHUNK_ROWS], dw_part[b], db_part[b])


@njit(inline="always", cache=True, nogil=True, fastmath=FASTMATH, error_model="numpy")
def _ln_bwd_rows(dy, x, w, mean, rstd, dx, dw, db):
    n, c = x.shape
    for i in range(n):
        mu, r = mean[i], rstd[i]
        sg = 0.0
        sgx = 0.0
        for j in range(c):
            xhat = (x[i, j] - mu) * r
            g = dy[i, j] * w[j]
            sg += g
            sgx += g * xhat
            dw[j] += dy[i, j] * xhat
            db[j] += dy[i, j]
        mg, mgx = x.dtype.type(sg / c), x.dtype.type(sgx / c)
        for j in range(c):
            xhat = (x[i, j] - mu) * r
            dx[i, j] = r * (dy[i, j] * w[j] - mg - xhat * mgx)


def layer_norm_forward_numba(x, weight, bias, eps):
    if x.size == 0:
        return layer_norm_forward_numpy(x, weight, bias, eps)
    C = x.shape[-1]
    x2 = np.ascontiguousarray(x).reshape(-1, C)
    # Missing affine parameters become 1 and 0: exact, and one compiled kernel serves all.
    w = np.ones(C, x.dtype) if weight is None else np.ascontiguousarray(weight)
    b = np.zeros(C, x.dtype) if bias is None else np.ascontiguousarray(bias)
    y = np.empty_like(x2)
    mean = np.empty(len(x2), x.dtype)
    rstd = np.empty(len(x2), x.dtype)

    def piece(lo, hi):
        _ln_fwd_kernel(x2[lo:hi], w, b, float(eps), y[lo:hi], mean[lo:hi], rstd[lo:hi])

    threads.split(piece, len(x2), -(-MIN_PIECE // C))  # rows of at least MIN_PIECE elements
    return y.reshape(x.shape), mean.reshape(x.shape[:-1]), rstd.reshape(x.shape[:-1])


def layer_norm_backward_numba(dy, x, weight, mean, rstd):
    if x.size == 0:
        return layer_norm_backward_numpy(dy, x, weight, mean, rstd)
    C = x.shape[-1]
    x2 = np.ascontiguousarray(x).reshape(-1, C)
    dy2 = np.ascontiguousarray(dy).reshape(-1, C)
    w = np.ones(C, x.dtype) if weight is None else np.ascontiguousarray(weight)
    mean, rstd = np.ascontiguousarray(mean).reshape(-1), np.ascontiguousarray(rstd).reshape(-1)
    blocks = -(-len(x2) // CHUNK_ROWS)
    dw_part, db_part = np.zeros((blocks, C)), np.zeros((blocks, C))  # float64 partial sums
    dx = np.empty_like(x2)

    def piece(lo, hi):  # blocks lo:hi
        rows = slice(lo * CHUNK_ROWS, hi * CHUNK_ROWS)
        _ln_bwd_kernel(dy2[rows], x2[rows], w, mean[rows], rstd[rows], dx[rows], dw_part[lo:hi], db_part[lo:hi])

    threads.split(piece, blocks, -(-MIN_PIECE // (C * CHUNK_ROWS)))
    if weight is None:
        return dx.reshape(x.shape), None, None
    return dx.reshape(x.shape), dw_part.sum(axis=0).astype(x.dtype), db_part.sum(axis=0).astype(x.dtype)


MIN_PIECE = 1 << 17  # elements per thread: a helper's ~30 us hand-over costs more than a smaller half
CHUNK_ROWS = 64      # rows summed into one partial dweight/dbias (the partials are fixed by the input alone)
