"""A batch-invariant linear layer: y = x @ w (+ bias), each row of y computed alone.

Why not np.matmul: BLAS picks its blocking, and with it the order in which it adds
up the K products of one output, from the shape of the whole product; a row of x
can come out a few ulp different when multiplied among 8 rows than alone. A
greedy sampler serving several requests in one batch would then answer
differently depending on who else is being served. Here the order of every sum is
fixed by K and the layout of w alone, never by N, so a row's result is the same
bits whatever the other rows are. The twin spells out the plain order, k = 0, 1, ...:

    y[n, m] = (...((x[n, 0] w[0, m]) + x[n, 1] w[1, m]) + ...) + x[n, K-1] w[K-1, m]

It is made for decoding, a handful of rows against weights that do not fit in
cache: w is read from memory once per call for all N rows, so a batch of N rows
costs little more than one while the weights dominate. Those products are bound by
how fast the weights stream from memory, and these loops stream them faster than
BLAS's matrix-vector products (13-17 GB/s on one core here, where a plain sweep
reaches 22-28), with each core bringing its share of the bandwidth.
"""
import numpy as np


# linear_rowwise: y[n, m] = sum_k x[n, k] w[k, m] in order k = 0..K-1, then + bias[m]
def linear_rowwise_numpy(x, w, bias=None):
    x2 = x.reshape(-1, x.shape[-1])  # (..., K) -> (N, K)
    y = np.zeros((len(x2), w.shape[1]), np.result_type(x, w))
    for k in range(x2.shape[1]):
        y += x2[:, k, None] * w[k]  # (N, 1) * (M,): the next term of every sum
    if bias is not None:
        y += bias
    return y.reshape(x.shape[:-1] + (w.shape[1],))


# ---- Numba ---------------------------------------------------------------------------------
# Two loop orders, one per layout of w, each the same for every row:
# - w (K, M) with rows contiguous (Conv1D's layout): k outer, and for each row of x the
#   products with w[k, tile] added into that row's outputs by a vectorised loop over a tile
#   of columns. Each output gets its terms in the twin's order, with no fused multiply-add:
#   bit for bit the twin. A tile of w is read once and then served from L1 to every row.
# - w = wt.T with wt (M, K) rows contiguous (the tied lm_head, wte.T): one dot product per
#   output over a contiguous row of wt, vectorised by LLVM into lanes that are then summed
#   in a tree. That order depends on K and the compiled loop only (rows go through it one
#   at a time, so never through a different code path); it differs from the twin's in the
#   last bits. Packing wt into the first layout instead costs more than the product itself.
# Column tiles (outputs) are independent, so products split over threads by them, in whole
# tiles: each output is computed by one thread and in the same way for any thread count, so
# the result does not depend on it either (tests/test_threads.py). The same kernels serve
# kernels.matmul's products of a few rows (decoding outside inference) and the int8 product
# (kernels/int8.py): one decoding product in the library.
#
# These are the only kernels compiled with parallel=True (Numba's OpenMP pool) rather than
# split over kernels/threads.py's Python threads. A decoding step makes ~50 products of
# 0.1-0.3 ms each; handing a piece to a Python thread costs 26-90 us here (two futex
# wake-ups and the GIL), while OpenMP's workers spin between regions and take one in ~3 us
# (bench/handover.py).
# On the 124M GPT-2 that is the difference between splitting the layer weights and not
# (bench/hf_124m.py). Without OpenMP, Numba uses TBB or its workqueue pool: same results.

from numba import njit, prange  # noqa: E402

from . import threads  # noqa: E402
from .common import FASTMATH  # noqa: E402

TILE_M = 512    # columns per tile: threads split the outputs in whole tiles
# Weights x rows per thread. Below it the product runs on the calling thread alone and
# OpenMP's workers stay asleep: a server decoding a small model needs the other core for
# its event loop more than its 20-50 us products need splitting.
MIN_WORK = 1 << 19


@njit(cache=True, nogil=True, error_model="numpy")  # no fastmath: no FMA, the twin's roundings
def _rows_times_w(x, w, y, m_lo, m_hi):
    """y[:, m_lo:m_hi] += x @ w[:, m_lo:m_hi], each output's terms in k order. Eight terms per
    pass over a row's outputs (added one after the other, as written: one load and store of
    the partial sum for eight products), then the remaining K % 8 one by one. A pass runs
    along whole rows of w, so the weights stream from memory in eight long runs."""
    N, K = x.shape
    K8 = K - K % 8
    for k in range(0, K8, 8):
        w0, w1, w2, w3 = w[k, m_lo:m_hi], w[k + 1, m_lo:m_hi], w[k + 2, m_lo:m_hi], w[k + 3, m_lo:m_hi]
        w4, w5, w6, w7 = w[k + 4, m_lo:m_hi], w[k + 5, m_lo:m_hi], w[k + 6, m_lo:m_hi], w[k + 7, m_lo:m_hi]
        for n in range(N):
            a0, a1, a2, a3 = x[n, k], x[n, k + 1], x[n, k + 2], x[n, k + 3]  # scalars: not reloaded
            a4, a5, a6, a7 = x[n, k + 4], x[n, k + 5], x[n, k + 6], x[n, k + 7]  # per output
            yn = y[n, m_lo:m_hi]
            for j in range(m_hi - m_lo):
                yn[j] = (((((((yn[j] + a0 * w0[j]) + a1 * w1[j]) + a2 * w2[j]) + a3 * w3[j])
                           + a4 * w4[j]) + a5 * w5[j]) + a6 * w6[j]) + a7 * w7[j]
    for k in range(K8, K):
        wk = w[k, m_lo:m_hi]
        for n in range(N):
            xv = x[n, k]
            yn = y[n, m_lo:m_hi]
            for j in range(m_hi - m_lo):
                yn[j] += xv * wk[j]


@njit(cache=True, nogil=True, fastmath=FASTMATH, error_model="numpy")
def dot_rows(x, w, scale, y, m_lo, m_hi):
    """y[:, m] = x @ w[m] (times scale[m] unless scale is None) for m in m_lo:m_hi, where w
    holds one output per row (float, or int8 widened as it is read: kernels/int8.py). One
    vectorised dot product per output, the row of w read once and served from L1 to every
    row of x."""
    N, K = x.shape
    for m in range(m_lo, m_hi):
        row = w[m]
        for n in range(N):
            xn = x[n]
            acc = y.dtype.type(0)
            for k in range(K):
                acc += xn[k] * y.dtype.type(row[k])
            y[n, m] = acc if scale is None else acc * scale[m]


@njit(cache=True, nogil=True, parallel=True, error_model="numpy")
def _rows_times_w_split(x, w, y, bounds):
    """_rows_times_w over the column pieces bounds[i]:bounds[i + 1], one per thread."""
    for i in prange(len(bounds) - 1):
        _rows_times_w(x, w, y, bounds[i], bounds[i + 1])


@njit(cache=True, nogil=True, parallel=True, error_model="numpy")
def dot_rows_split(x, w, scale, y, bounds):
    """dot_rows over the output pieces bounds[i]:bounds[i + 1], one per thread."""
    for i in prange(len(bounds) - 1):
        dot_rows(x, w, scale, y, bounds[i], bounds[i + 1])


def linear_rowwise_numba(x, w, bias=None):
    dtype = x.dtype if x.dtype == w.dtype else np.result_type(x, w)
    K, M = w.shape
    x2 = np.ascontiguousarray(x.reshape(-1, K), dtype=dtype)  # (..., K) -> (N, K)
    y = np.zeros((len(x2), M), dtype)
    if x2.size and M:
        _by_column_tiles(x2, w.astype(dtype, copy=False), y)
    if bias is not None:
        y += bias
    return y.reshape(x.shape[:-1] + (M,))


def _by_column_tiles(x, w, y):
    """Run the kernel for w's layout, its column tiles split over threads when w is large."""
    if w.T.flags.c_contiguous and not w.flags.c_contiguous:
        return dots(x, w.T, None, y)
    w = np.ascontiguousarray(w)  # any other strides: copied once
    _in_pieces(_rows_times_w, _rows_times_w_split, (x, w, y), *w.shape, len(x))


def dots(x, wt, scale, y):
    """dot_rows over all M outputs of wt (M, K), split over threads when it is large."""
    M, K = wt.shape
    _in_pieces(dot_rows, dot_rows_split, (x, wt, scale, y), K, M, len(x))


def _in_pieces(kernel, kernel_split, args, K, M, N):
    """kernel(*args, 0, M) on this thread when the product is one piece (no parallel region at
    all), else kernel_split(*args, bounds) over column_pieces."""
    bounds = column_pieces(K, M, N)
    if bounds is None:
        kernel(*args, 0, M)
    else:
        kernel_split(*args, bounds)


def column_pieces(K, M, N):
    """Bounds of the column pieces, one per thread, for a weight of K * M entries times N
    rows: whole tiles of TILE_M columns; None below 2 * MIN_WORK (one piece). Which columns
    form a piece changes with the thread count, but not how each column is computed."""
    if K * M * N < 2 * MIN_WORK:
        return None
    tiles = -(-M // TILE_M)
    n = threads.count(tiles, -(-MIN_WORK // (K * N * TILE_M)))
    if n == 1:
        return None
    return np.array([min(tiles * i // n * TILE_M, M) for i in range(n + 1)], np.int64)
