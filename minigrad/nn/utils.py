"""Utilities over a model's parameters, as torch.nn.utils."""
import math

from minigrad import kernels


def clip_grad_norm_(params, max_norm):
    """Scale all gradients together so their global L2 norm is at most max_norm, as
    torch.nn.utils.clip_grad_norm_: factor max_norm / (norm + 1e-6) when norm > max_norm.
    max_norm=math.inf only measures. Returns the norm before clipping, as a float (inf or
    nan are returned, not raised)."""
    grads = [p.grad for p in params if p.grad is not None]
    if not grads:
        return 0.0
    total = math.sqrt(sum(kernels.sum_squares(g) for g in grads))  # each in float64
    coef = max_norm / (total + 1e-6)
    if coef < 1:
        for g in grads:
            kernels.scale(g, coef)
    return total
