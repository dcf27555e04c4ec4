"""Layer normalisation over the last axis (biased variance, like PyTorch)."""
import numpy as np


# layer_norm: y = (x - mean) * rstd * w + b,  rstd = 1 / sqrt(var + eps)
def layer_norm_forward_numpy(x, weight, bias, eps):
    mean = x.mean(axis=-1)
    xc = x - mean[..., None]
    var = (xc * xc).mean(axis=-1)
    rstd = 1.0 / np.sqrt(var + float(eps))
    y = xc * rstd[..., None]
    if weight is not None:
        y = y * weight
    if bias is not None:
        y = y + bias
    return y, mean, rstd


# layer_norm': g = dy*w;  dx = rstd * (g - mean(g) - xhat * mean(g * xhat));
#              dw = sum(dy * xhat);  db = sum(dy)     (sums over all leading dims)
def layer_norm_backward_numpy(dy, x, weight, mean, rstd):
    xhat = (x - mean[..., None]) * rstd[..., None]
    g = dy * weight if weight is not None else dy
    dx = rstd[..., None] * (g - g.mean(axis=-1, keepdims=True)
                            - xhat * (g * xhat).mean(axis=-1, keepdims=True))
    if weight is None:
        return dx, None, None
    C = x.shape[-1]
    dweight = (dy * xhat).reshape(-1, C).sum(axis=0)
    dbias = dy.reshape(-1, C).sum(axis=0)
    return dx, dweight, dbias
