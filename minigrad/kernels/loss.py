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
# One serial sweep per row: its max, sum of exps (vectorised exp) and picked logit; per-row
# losses are summed afterwards in float64. Targets are range-checked in Python first, so the
# kernels never index out of bounds.

from numba import njit  # noqa: E402

from .common import EXP_CONSTANTS, FASTMATH, exp_row, exp_scratch  # noqa: E402


@njit(cache=True, fastmath=FASTMATH, error_model="numpy")
def _ce_fwd_kernel(logits, targets, ignore_index, lse, row_loss, e, bits, k):
    n, V = logits.shape
    for i in range(n):
        m = logits[i, 0]
        for j in range(1, V):
            m = max(m, logits[i, j])
        for j in range(V):
            e[j] = logits[i, j] - m
        exp_row(e, bits, k)
        s = 0.0
        for j in range(V):
            s += e[j]
        lse[i] = m + np.log(s)
        t = targets[i]
        row_loss[i] = 0.0 if t == ignore_index else lse[i] - logits[i, t]


@njit(cache=True, fastmath=FASTMATH, error_model="numpy")
def _ce_bwd_kernel(logits, targets, lse, ignore_index, scale, dlogits, bits, k):
    n, V = logits.shape
    zero = logits.dtype.type(0)
    for i in range(n):
        row = dlogits[i]
        t = targets[i]
        if t == ignore_index:
            for j in range(V):
                row[j] = zero
            continue
        for j in range(V):
            row[j] = logits[i, j] - lse[i]
        exp_row(row, bits, k)
        for j in range(V):
            row[j] *= scale
        row[t] -= scale


def cross_entropy_forward_numba(logits, targets, ignore_index):
    N, V = logits.shape
    if N == 0 or V == 0:
        return cross_entropy_forward_numpy(logits, targets, ignore_index)
    _check_targets(targets, V, ignore_index)
    logits = np.ascontiguousarray(logits)
    targets = np.ascontiguousarray(targets, dtype=np.int64)
    lse = np.empty(N, logits.dtype)
    row_loss = np.empty(N)          # float64
    _ce_fwd_kernel(logits, targets, int(ignore_index), lse, row_loss, np.empty(V, logits.dtype),
                   exp_scratch(logits.dtype, V), EXP_CONSTANTS[logits.dtype])
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
    n_valid = int(np.count_nonzero(targets != ignore_index))
    scale = logits.dtype.type(float(dloss) / n_valid if n_valid else 0.0)
    dlogits = np.empty_like(logits)
    _ce_bwd_kernel(logits, targets, np.ascontiguousarray(lse), int(ignore_index), scale, dlogits,
                   exp_scratch(logits.dtype, V), EXP_CONSTANTS[logits.dtype])
    return dlogits
