"""Utilities over a model's parameters, as torch.nn.utils."""
import math

from minigrad import kernels


def get_total_norm(grads):
    """The L2 norm of all the given gradient arrays together, accumulated in float64 (the same
    for any thread count), as a float; as torch.nn.utils.get_total_norm."""
    return math.sqrt(sum(kernels.sum_squares(g) for g in grads))


def clip_coef(total_norm, max_norm):
    """The factor clip_grad_norm_ scales the gradients by: max_norm / (norm + 1e-6), at most 1
    (1 for a NaN norm, which is left for the caller to catch)."""
    coef = max_norm / (total_norm + 1e-6)
    return coef if coef < 1 else 1.0


def clip_grad_norm_(params, max_norm):
    """Scale all gradients together so their global L2 norm is at most max_norm, as
    torch.nn.utils.clip_grad_norm_: factor max_norm / (norm + 1e-6) when norm > max_norm.
    max_norm=math.inf only measures. Returns the norm before clipping, as a float (inf or
    nan are returned, not raised)."""
    grads = [p.grad for p in params if p.grad is not None]
    if not grads:
        return 0.0
    total = get_total_norm(grads)
    coef = clip_coef(total, max_norm)
    if coef < 1:
        for g in grads:
            kernels.scale(g, coef)
    return total
