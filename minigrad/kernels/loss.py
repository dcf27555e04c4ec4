"""Cross-entropy over logits (N, V) with an ignore_index, as PyTorch's mean reduction."""
import numpy as np


def _check_targets(targets, V, ignore_index):
    bad = (targets != ignore_index) & ((targets < 0) | (targets >= V))
    if bad.any():
        raise IndexError(f"target out of range [0, {V})")


# cross_entropy: lse = logsumexp(row);  loss = mean over valid rows of (lse - logits[target])
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


# cross_entropy': dlogits = (softmax - onehot(target)) * dloss / n_valid on valid rows, 0 elsewhere
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
