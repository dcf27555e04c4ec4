"""Matrix product with np.matmul semantics (N-d, broadcast batch dims).

Measured on the GPT shapes (bench/kernels.py): BLAS (OpenBLAS behind np.matmul)
beat a hand-written Numba prange kernel on every shape we use, batched
attention-sized ones included (~60-110 vs ~40-60 GFLOP/s). So the fast path
calls BLAS too, but shapes it well: np.matmul runs an N-d @ 2-D product (every
Linear layer: (B, T, C) @ (C, N)) as B separate small GEMMs, while one
(B*T, C) @ (C, N) GEMM is 2-10x faster. Transposed 2-D views need no copy: BLAS
takes them as "transposed" flags.

Decoding is the other regime: a few rows (one per sequence) times large weights,
bound by how fast the weights stream from memory. There the columns are split over
threads (each core brings its share of the bandwidth) in fixed tiles, and two Numba
loops replace BLAS, whose matrix-vector products stream the weights at 13-17 GB/s on
one core here where a plain sweep reaches 22-28: a weight (K, M) is swept row after
row (axpy_rows), a weight stored as rows (x @ W.T, the tied lm_head) gets one dot
product per output (dot_rows). Either way each output's sum is done the same way
whatever the thread count and whatever the other rows of x.
"""
import numpy as np
from numba import njit

from . import threads
from .common import FASTMATH
from .threads import one_blas_thread


# matmul: c[..., i, j] = sum_k a[..., i, k] * b[..., k, j]
def matmul_numpy(a, b, out=None):
    return np.matmul(a, b, out=out)


def matmul_numba(a, b, out=None):
    if out is not None:
        return _matmul(a, b, out)
    if a.ndim > 2 and b.ndim == 2:
        # Fold the batch dims into rows: one big GEMM instead of one per batch item.
        return matmul_numba(a.reshape(-1, a.shape[-1]), b).reshape(a.shape[:-1] + (b.shape[-1],))
    if a.ndim == 2 and b.ndim == 2 and a.shape[0] <= SKINNY_ROWS and b.size >= SKINNY_MIN_WEIGHTS:
        return _skinny(a, b)
    return _matmul(a, b)


# Below this many FLOPs per matrix product, BLAS runs on the calling thread only. OpenBLAS
# splits any GEMM above ~0.5 MFLOP over all its threads; a split one waits for every
# thread, and on a 2-core machine where another process holds a core that wait was a
# scheduler slice: sampling's (64,128)@(128,384) forwards took ~260 ms each instead of ~3.
# Products this small gain at most tens of microseconds from a second thread when the
# machine is idle (the char-level lm_head, 12.8 MFLOP, stays above and keeps both threads).
# A batch of products (attention's per-head matmuls) runs faster on one thread up to much
# larger sizes: OpenBLAS splits each small matrix, not the batch, and pays a sync per item
# (measured (8,6,256,64)@(8,6,64,256): 5.4 ms on one thread vs 8.7 ms on two).
SMALL_GEMM_FLOPS = 1 << 23
SMALL_BATCHED_GEMM_FLOPS = 1 << 26   # per matrix of the batch


def _matmul(a, b, out=None):
    rows = a.shape[-2] if a.ndim > 1 else 1          # 1-d operands as in np.matmul
    cols = b.shape[-1] if b.ndim > 1 else 1
    flops = 2 * rows * a.shape[-1] * cols
    batched = a.ndim > 2 and b.ndim > 2
    if flops >= (SMALL_BATCHED_GEMM_FLOPS if batched else SMALL_GEMM_FLOPS):
        return np.matmul(a, b, out=out)
    with one_blas_thread():
        return np.matmul(a, b, out=out)


# ---- few rows times large weights (decoding) ----------------------------------------------

SKINNY_ROWS = 4                # rows of a up to which a product counts as decoding (from 8, BLAS wins)
SKINNY_MIN_WEIGHTS = 1 << 18   # weights (1 MiB in float32) from which splitting pays off
TILE = 1024                    # columns per tile: each thread's piece is whole tiles


@njit(cache=True, nogil=True, fastmath=FASTMATH, error_model="numpy")
def dot_rows(x, w, scale, y, m_lo, m_hi):
    """y[:, m] = x @ w[m] (times scale[m] unless scale is None) for m in m_lo:m_hi, where w
    holds one output per row (float32, or int8 widened as it is read). One vectorised dot
    product per output, the row of w read once and served from L1 to every row of x; each
    output's sum done alike for any number of rows of x."""
    N, K = x.shape
    for m in range(m_lo, m_hi):
        row = w[m]
        for n in range(N):
            xn = x[n]
            acc = y.dtype.type(0)
            for k in range(K):
                acc += xn[k] * y.dtype.type(row[k])
            y[n, m] = acc if scale is None else acc * scale[m]


@njit(cache=True, nogil=True, fastmath=FASTMATH, error_model="numpy")
def axpy_rows(x, w, y, m_lo, m_hi):
    """y[:, m_lo:m_hi] = x @ w[:, m_lo:m_hi] for w (K, M) row-major: w read row after row, each
    row's piece once, and added into every row of y (which stays in cache); every output sums
    its K terms in order k = 0, 1, ..., whatever the number of rows of x."""
    N, K = x.shape
    for n in range(N):
        yn = y[n, m_lo:m_hi]
        for j in range(m_hi - m_lo):
            yn[j] = 0
    for k in range(K):
        wk = w[k, m_lo:m_hi]
        for n in range(N):
            xk = x[n, k]
            yn = y[n, m_lo:m_hi]
            for j in range(m_hi - m_lo):
                yn[j] += xk * wk[j]


def split_outputs(fn, M, K):
    """fn(lo, hi) over output columns 0:M in whole tiles, one piece per thread."""
    threads.split(lambda lo, hi: fn(lo * TILE, min(hi * TILE, M)), -(-M // TILE),
                  -(-SKINNY_MIN_WEIGHTS // (2 * K * TILE)))


def _skinny(a, b):
    """a (N, K) @ b (K, M), N small and b large."""
    (N, K), M = a.shape, b.shape[1]
    y = np.empty((N, M), np.result_type(a, b))
    x = np.ascontiguousarray(a, dtype=y.dtype)
    if not b.flags.c_contiguous and b.T.flags.c_contiguous and b.dtype == y.dtype:  # b = W.T, W (M, K)
        split_outputs(lambda lo, hi: dot_rows(x, b.T, None, y, lo, hi), M, K)
    else:
        w = np.ascontiguousarray(b, dtype=y.dtype)
        split_outputs(lambda lo, hi: axpy_rows(x, w, y, lo, hi), M, K)
    return y
