"""Softmax and log-softmax over the last axis: forward and backward.

Each kernel has a plain-NumPy twin (``*_numpy``) and a Numba version
(``*_numba``) side by side; any leading batch dims are flattened to rows.
"""
import numpy as np


# softmax forward, row-wise and stable (math: minigrad/fused.py, Softmax)
def softmax_forward_numpy(x):
    e = np.exp(x - x.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


# softmax backward
def softmax_backward_numpy(y, dy):
    return y * (dy - (dy * y).sum(axis=-1, keepdims=True))


# log_softmax forward (math: minigrad/fused.py, LogSoftmax)
def log_softmax_forward_numpy(x):
    shifted = x - x.max(axis=-1, keepdims=True)
    return shifted - np.log(np.exp(shifted).sum(axis=-1, keepdims=True))


# log_softmax backward
def log_softmax_backward_numpy(y, dy):
    return dy - np.exp(y) * dy.sum(axis=-1, keepdims=True)


# ---- Numba ---------------------------------------------------------------------------------
# One serial pass per row instead of NumPy's five temporaries, and a vectorised exp (inlined
# exp_neg for softmax, exp_row for log-softmax) instead of libm exp. Sums accumulate in float64.

from numba import njit  # noqa: E402

from .common import EXP_CONSTANTS, EXP_NEG_MIN, FASTMATH, exp_neg, exp_row, exp_scratch  # noqa: E402


def _as_rows(x):
    """C-contiguous 2-D (rows, last axis) view of x; a copy only if x is not contiguous."""
    x = np.ascontiguousarray(x)
    return x.reshape(-1, x.shape[-1])


@njit(cache=True, fastmath=FASTMATH, error_model="numpy")
def _row_max(row):
    m = row[0]
    for j in range(1, row.size):
        m = max(m, row[j])
    return m


@njit(cache=True, fastmath=FASTMATH, error_model="numpy")
def _softmax_fwd_kernel(x, y):
    # exp, store and sum in one vectorised loop (the inlined exp_neg: no call per row, which
    # dominated on short attention rows)
    n, c = x.shape
    for i in range(n):
        m = _row_max(x[i])
        s = 0.0
        clamped = False
        for j in range(c):
            d = x[i, j] - m
            e = exp_neg(d)
            y[i, j] = e
            s += e
            clamped |= d < EXP_NEG_MIN
        if clamped:  # exp_neg stops at exp(-40); redo this row with the exact exp
            s = 0.0
            for j in range(c):
                e = np.exp(x[i, j] - m)
                y[i, j] = e
                s += e
        inv = x.dtype.type(1.0 / s)
        for j in range(c):
            y[i, j] *= inv


@njit(cache=True, fastmath=FASTMATH, error_model="numpy")
def _softmax_bwd_kernel(y, dy, dx):
    n, c = y.shape
    for i in range(n):
        s = 0.0
        for j in range(c):
            s += dy[i, j] * y[i, j]
        s_ = y.dtype.type(s)
        for j in range(c):
            dx[i, j] = y[i, j] * (dy[i, j] - s_)


@njit(cache=True, fastmath=FASTMATH, error_model="numpy")
def _log_softmax_fwd_kernel(x, y, e, bits, k):
    n, c = x.shape
    for i in range(n):
        m = _row_max(x[i])
        for j in range(c):
            e[j] = x[i, j] - m
            y[i, j] = e[j]
        exp_row(e, bits, k)
        s = 0.0
        for j in range(c):
            s += e[j]
        log_s = x.dtype.type(np.log(s))
        for j in range(c):
            y[i, j] -= log_s


@njit(cache=True, fastmath=FASTMATH, error_model="numpy")
def _log_softmax_bwd_kernel(y, dy, dx, e, bits, k):
    n, c = y.shape
    for i in range(n):
        s = 0.0
        for j in range(c):
            s += dy[i, j]
            e[j] = y[i, j]
        exp_row(e, bits, k)
        s_ = y.dtype.type(s)
        for j in range(c):
            dx[i, j] = dy[i, j] - e[j] * s_


def softmax_forward_numba(x):
    if x.size == 0:
        return softmax_forward_numpy(x)
    x2 = _as_rows(x)
    y = np.empty_like(x2)
    _softmax_fwd_kernel(x2, y)
    return y.reshape(x.shape)


def softmax_backward_numba(y, dy):
    if y.size == 0:
        return softmax_backward_numpy(y, dy)
    y2, dy2 = _as_rows(y), _as_rows(dy)
    dx = np.empty_like(y2)
    _softmax_bwd_kernel(y2, dy2, dx)
    return dx.reshape(y.shape)


def log_softmax_forward_numba(x):
    if x.size == 0:
        return log_softmax_forward_numpy(x)
    x2 = _as_rows(x)
    y = np.empty_like(x2)
    _log_softmax_fwd_kernel(x2, y, np.empty(x2.shape[1], x2.dtype), exp_scratch(x2.dtype, x2.shape[1]),
                            EXP_CONSTANTS[x2.dtype])
    return y.reshape(x.shape)


def log_softmax_backward_numba(y, dy):
    if y.size == 0:
        return log_softmax_backward_numpy(y, dy)
    y2, dy2 = _as_rows(y), _as_rows(dy)
    dx = np.empty_like(y2)
    _log_softmax_bwd_kernel(y2, dy2, dx, np.empty(y2.shape[1], y2.dtype), exp_scratch(y2.dtype, y2.shape[1]),
                            EXP_CONSTANTS[y2.dtype])
    return dx.reshape(y.shape)
