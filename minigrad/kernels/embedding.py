"""Embedding backward: scatter-add rows of dy into a (num_embeddings, C) gradient."""
import numpy as np


def _check_ids(ids, num_embeddings):
    if ids.size and (ids.min() < 0 or ids.max() >= num_embeddings):
        raise IndexError(f"embedding id out of range [0, {num_embeddings})")


# embedding': dW[ids[n]] += dy[n]   (repeated ids accumulate)
def embedding_backward_numpy(ids, dy, num_embeddings):
    _check_ids(ids, num_embeddings)
    C = dy.shape[-1]
    dweight = np.zeros((num_embeddings, C), dtype=dy.dtype)
    np.add.at(dweight, ids.reshape(-1), dy.reshape(-1, C))
    return dweight
