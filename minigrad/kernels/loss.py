"""Cross-entropy over logits (N, V) with an ignore_index, as PyTorch's mean reduction."""
import numpy as np


def _check_targets(targets, V, ignore_index):
    bad = (targets != ignore_index) & ((targets < 0) | (targets >= V))
    if bad.any():
        raise IndexError(f"target out of range [0, {V})")


# cross_entropy forward, lse = logsumexp of each row (math: minigrad/fused.py, CrossEntropy)
def cross_entropy_forward_numpy(logits, targets, ignore_index):
    N, V = logits.shape
    _check_targets(targets, V, ignore_index)
    m = logits.max(axis=1)
    lse = m + np.log(np.exp(logits - m[:, None]).sum(axis=1))
    valid = targets != ignore_index
    picked = logits[np.arange(N), np.where(valid, targets, 0)]
    total = np.where(valid, lse - picked, 0).sum(dtype=logits.dtype)
    n_valid = int(valid.sum())
    with np.errstate(invalid="ignore", divide="ignore"):
        loss = total / logits.dtype.type(n_valid)      # 0/0 -> NaN when all ignored
    return np.asarray(loss, dtype=logits.dtype), lse


# cross_entropy backward: 0 on ignored rows
def cross_entropy_backward_numpy(logits, targets, lse, ignore_index, dloss):
    N, V = logits.shape
    _check_targets(targets, V, ignore_index)
    valid = targets != ignore_index
    n_valid = int(valid.sum())
    dlogits = np.exp(logits - lse[:, None])
    rows = np.nonzero(valid)[0]
    dlogits[rows, targets[rows]] -= 1
    scale = logits.dtype.type(float(dloss) / n_valid) if n_valid else logits.dtype.type(0)
    dlogits *= scale
    dlogits[~valid] = 0
    return dlogits


# ---- Numba ---------------------------------------------------------------------------------
# Two sweeps per row forward (its max; then the sum of exps and the picked logit) and one
# backward (exp(z - lse) * scale), each one vectorised loop with the exp inlined in the
# logits' precision (common.exp_le0): a GPT-2 row is 50,257 logits, and a loop per row with
# no call per element is what keeps it fast. Rows are split over threads (kernels/threads.py); per-row
# losses are summed afterwards in float64, in row order, so the loss does not depend on the
# thread count. Targets are range-checked in Python first, so the kernels never index out
# of bounds.

from numba import njit  # noqa: E402

from . import threads  # noqa: E402
from .common import FASTMATH, exp_le0, row_max  # noqa: E402

JIT = dict(cache=True, nogil=True, fastmath=FASTMATH, error_model="numpy")


@njit(**JIT)
def _ce_fwd_kernel(logits, targets, ignore_index, lse, row_loss):
    n, V = logits.shape
    for i in range(n):
        row = logits[i]
        m = row_max(row, V)
        s = 0.0
        for j in range(V):
            s += exp_le0(row[j] - m)
        lse[i] = m + np.log(s)
        t = targets[i]
        row_loss[i] = 0.0 if t == ignore_index else np.float64(lse[i]) - row[t]


@njit(**JIT)
def _ce_bwd_kernel(logits, targets, lse, ignore_index, scale, dlogits):
    n, V = logits.shape
    zero = logits.dtype.type(0)
    for i in range(n):
        out = dlogits[i]
        t = targets[i]
        if t == ignore_index:
            for j in range(V):
                out[j] = zero
            continue
        row = logits[i]
        shift = lse[i]
        for j in range(V):
            out[j] = exp_le0(row[j] - shift) * scale
        out[t] -= scale


# Logits per piece of rows: below this a helper thread's hand-over (~30 us) costs more than it saves.
MIN_PIECE = 1 << 15


def cross_entropy_forward_numba(logits, targets, ignore_index):
    N, V = logits.shape
    if N == 0 or V == 0:
        return cross_entropy_forward_numpy(logits, targets, ignore_index)
    _check_targets(targets, V, ignore_index)
    logits = np.ascontiguousarray(logits)
    targets = np.ascontiguousarray(targets, dtype=np.int64)
    lse = np.empty(N, logits.dtype)
    row_loss = np.empty(N)          # float64

    def piece(lo, hi):
        _ce_fwd_kernel(logits[lo:hi], targets[lo:hi], int(ignore_index), lse[lo:hi], row_loss[lo:hi])

    threads.split(piece, N, -(-MIN_PIECE // V))
    n_valid = int(np.count_nonzero(targets != ignore_index))
    loss = row_loss.sum() / n_valid if n_valid else np.nan
    return np.asarray(loss, dtype=logits.dtype), lse


def cross_entropy_backward_numba(logits, targets, lse, ignore_index, dloss):
    N, V = logits.shape
    if N == 0 or V == 0:
        return cross_entropy_backward_numpy(logits, targets, lse, ignore_index, dloss)
    _check_targets(targets, V, ignore_index)
    logits = np.ascontiguousarray(logits)
    targets = np.ascontiguousarray(targets, dtype=np.int64)
    lse = np.ascontiguousarray(lse)
    n_valid = int(np.count_nonzero(targets != ignore_index))
    scale = logits.dtype.type(float(dloss) / n_valid if n_valid else 0.0)
    dlogits = np.empty_like(logits)

    def piece(lo, hi):
        _ce_bwd_kernel(logits[lo:hi], targets[lo:hi], lse[lo:hi], int(ignore_index), scale, dlogits[lo:hi])

    threads.split(piece, N, -(-MIN_PIECE // V))
    return dlogits
