"""Matrix product with np.matmul semantics (N-d, broadcast batch dims).

Measured on the GPT shapes (bench/kernels.py): BLAS (OpenBLAS behind np.matmul)
beat a hand-written Numba prange kernel on every shape we use, batched
attention-sized ones included (~60-110 vs ~40-60 GFLOP/s). So the fast path
calls BLAS too, but shapes it well: np.matmul runs an N-d @ 2-D product (every
Linear layer: (B, T, C) @ (C, N)) as B separate small GEMMs, while one
(B*T, C) @ (C, N) GEMM is 2-10x faster. Transposed 2-D views need no copy: BLAS
takes them as "transposed" flags.

Decoding is the other regime: a few rows (one per sequence) times large weights,
bound by how fast the weights stream from memory. Up to SKINNY_ROWS rows such a
product runs on kernels/linear.py's column-tile sweeps instead of BLAS (faster, and
the same bits for any thread count); from 8 rows on BLAS is faster (a prompt).
"""
import numpy as np

from .linear import linear_rowwise_numba
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
        return linear_rowwise_numba(a, b)  # kernels/linear.py's decoding product
    return _matmul(a, b)


# Below this many FLOPs per matrix product, BLAS runs on the calling thread only. OpenBLAS
# splits any GEMM above ~0.5 MFLOP over all its threads, and a split one waits for every
# thread: on a 2-core machine where another process holds a core, that wait is a whole
# scheduler slice (~100x the product itself for sampling's small GEMMs), while products this
# small gain at most tens of microseconds from a second thread when the machine is idle (the
# char-level lm_head, 12.8 MFLOP, stays above and keeps both threads). A batch of products
# (attention's per-head matmuls) runs faster on one thread up to much larger sizes: OpenBLAS
# splits each small matrix, not the batch, and pays a sync per item (~1.6x slower on two
# threads at (8,6,256,64)@(8,6,64,256)).
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
SKINNY_MIN_WEIGHTS = 1 << 18   # weights (1 MiB in float32) from which the sweeps beat BLAS

