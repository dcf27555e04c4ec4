"""Weight-only int8: symmetric per-output-channel quantisation and the product that reads it.

A weight matrix is stored as rows, one per output channel, the way the product reads
it: wq (M, K) int8 and scale (M,) float32, with w[m, k] ~= scale[m] * wq[m, k] and
scale[m] = max_k |w[m, k]| / 127 (so every row uses the whole int8 range and an
outlier in one channel costs no precision in the others). Activations stay float32:
the product converts each int8 weight to float32 and accumulates in float32, then
multiplies each output by its channel's scale. Reading a quarter of the bytes is the
point: decoding one token reads every weight once, and memory, not arithmetic, sets
its speed.
"""
import numpy as np

INT8_MAX = 127


# quantise: scale = max |w| over each row / 127;  wq = round(w / scale), in [-127, 127]
# (a one-time conversion at load, so this twin serves both backends)
def quantize_rows_numpy(w):
    w = np.asarray(w, dtype=np.float32)
    peak = np.abs(w).max(axis=1)
    scale = (peak / INT8_MAX).astype(np.float32)
    safe = np.where(scale > 0, scale, np.float32(1))  # an all-zero row: wq 0, scale 0
    wq = np.clip(np.rint(w / safe[:, None]), -INT8_MAX, INT8_MAX)
    return np.ascontiguousarray(wq, dtype=np.int8), scale  # rows contiguous, as the product reads them


# linear_int8: y[n, m] = scale[m] * sum_k x[n, k] wq[m, k]  (+ bias[m]), summed in float32
# (rowwise asks the Numba version for its batch-invariant kernel at any number of rows)
def linear_int8_numpy(x, wq, scale, bias=None, rowwise=False):
    y = np.matmul(x, wq.T.astype(np.float32)) * scale
    return y if bias is None else y + bias


# ---- Numba ---------------------------------------------------------------------------------
# Decoding multiplies a handful of rows (one per sequence) by each weight matrix:
# kernels/linear.py's dot_rows, one dot product per output over a contiguous int8 row,
# vectorised by LLVM (16 int8 widened to float32 per instruction, four accumulators).
# Each output's sum is done the same way whatever the other rows are and whichever thread
# computes it, so results do not depend on the batch or on the thread count. Many rows (a
# prompt, an evaluation batch) are compute-bound instead: there the int8 rows are widened
# to a float32 copy once per call and the product goes to BLAS, unless rowwise asks for
# the same bits whatever the batch (a serving step decodes up to --max-batch rows).

from .linear import dots  # noqa: E402
from .matmul import matmul_numba  # noqa: E402

# Rows of x up to which the int8 dot-product kernel runs (a decoding batch); above, the
# widened copy and BLAS cost less than another pass of the kernel per row.
MAX_DOT_ROWS = 8


def linear_int8_numba(x, wq, scale, bias=None, rowwise=False):
    M, K = wq.shape
    x2 = np.ascontiguousarray(x, dtype=np.float32).reshape(-1, K)  # (..., K) -> (N, K)
    if len(x2) > MAX_DOT_ROWS and not rowwise:
        y = matmul_numba(x2, wq.T.astype(np.float32)) * scale
    else:
        y = np.empty((len(x2), M), np.float32)
        if len(x2):
            dots(x2, wq, scale, y)
    if bias is not None:
        y += bias
    return y.reshape(x.shape[:-1] + (M,))

