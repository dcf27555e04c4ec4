"""Embedding backward: scatter-add rows of dy into a (num_embeddings, C) gradient (a new one
of zeros, or, in place, an existing one)."""
import numpy as np


def _check_ids(ids, num_embeddings):
    if ids.size and (ids.min() < 0 or ids.max() >= num_embeddings):
        raise IndexError(f"embedding id out of range [0, {num_embeddings})")


# embedding': dW[ids[n]] += dy[n]   (repeated ids accumulate; into zeros, or into `into`)
def embedding_backward_numpy(ids, dy, num_embeddings, into=None):
    _check_ids(ids, num_embeddings)
    C = dy.shape[-1]
    dweight = np.zeros((num_embeddings, C), dtype=dy.dtype) if into is None else into
    np.add.at(dweight, ids.reshape(-1), dy.reshape(-1, C))
    return dweight


# ---- Numba ---------------------------------------------------------------------------------
# A plain serial loop: rows of the gradient may repeat, so threads would race; the loop is
# memory-bound and already far cheaper than np.add.at. Ids are range-checked in Python first.

from numba import njit  # noqa: E402


@njit(cache=True)
def _embedding_bwd_kernel(ids, dy, dweight):
    C = dy.shape[1]
    for n in range(ids.size):
        row = ids[n]
        for c in range(C):
            dweight[row, c] += dy[n, c]


def embedding_backward_numba(ids, dy, num_embeddings, into=None):
    _check_ids(ids, num_embeddings)
    C = dy.shape[-1]
    dweight = np.zeros((num_embeddings, C), dtype=dy.dtype) if into is None else into
    if not dweight.flags.c_contiguous or dweight.dtype != dy.dtype:
        return embedding_backward_numpy(ids, dy, num_embeddings, into=dweight)
    if ids.size:
        _embedding_bwd_kernel(np.ascontiguousarray(ids, dtype=np.int64).reshape(-1),
                              np.ascontiguousarray(dy).reshape(-1, C), dweight)
    return dweight
