"""Matrix product with np.matmul semantics (N-d, broadcast batch dims)."""
import numpy as np


# matmul: c[..., i, j] = sum_k a[..., i, k] * b[..., k, j]
def matmul_numpy(a, b):
    return np.matmul(a, b)
