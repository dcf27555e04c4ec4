"""Matrix product with np.matmul semantics (N-d, broadcast batch dims).

Measured on the GPT shapes (bench/kernels.py): BLAS (OpenBLAS behind np.matmul)
beats a hand-written Numba prange kernel on every shape we use, batched
attention-sized ones included (~60-110 vs ~40-60 GFLOP/s). So the fast path
calls BLAS too, but shapes it well: np.matmul runs an N-d @ 2-D product (every
Linear layer: (B, T, C) @ (C, N)) as B separate small GEMMs, while one
(B*T, C) @ (C, N) GEMM is 2-10x faster. Transposed 2-D views need no copy: BLAS
takes them as "transposed" flags.

`bmm_prange` is the Numba batched kernel we measured against; it is kept, tested
and benchmarked so the choice stays checkable, but the dispatcher does not use it.
"""
import numpy as np
from numba import njit, prange

from .common import FASTMATH


# matmul: c[..., i, j] = sum_k a[..., i, k] * b[..., k, j]
def matmul_numpy(a, b):
    return np.matmul(a, b)


def matmul_numba(a, b):
    if a.ndim > 2 and b.ndim == 2:
        # Fold the batch dims into rows: one big GEMM instead of one per batch item.
        out = np.matmul(a.reshape(-1, a.shape[-1]), b)
        return out.reshape(a.shape[:-1] + (b.shape[-1],))
    return np.matmul(a, b)


# bmm: c[p] = a[p] @ b[p] for 3-D C-contiguous a (P, M, K), b (P, K, N); one thread per p,
# i-k-j loop order so the inner loop streams rows of b and c (vectorised).
@njit(cache=True, parallel=True, fastmath=FASTMATH)
def _bmm_kernel(a, b, c):
    P, M, K = a.shape
    N = b.shape[2]
    for p in prange(P):
        for i in range(M):
            for j in range(N):
                c[p, i, j] = 0
            for kk in range(K):
                aik = a[p, i, kk]
                for j in range(N):
                    c[p, i, j] += aik * b[p, kk, j]


def bmm_prange(a, b):
    """Batched matmul of same-batch N-d operands in Numba (reference only; slower than BLAS here)."""
    batch = np.broadcast_shapes(a.shape[:-2], b.shape[:-2])
    M, K, N = a.shape[-2], a.shape[-1], b.shape[-1]
    a3 = np.ascontiguousarray(np.broadcast_to(a, batch + (M, K))).reshape(-1, M, K)
    b3 = np.ascontiguousarray(np.broadcast_to(b, batch + (K, N))).reshape(-1, K, N)
    c = np.empty((a3.shape[0], M, N), dtype=np.result_type(a, b))
    _bmm_kernel(a3, b3, c)
    return c.reshape(batch + (M, N))
