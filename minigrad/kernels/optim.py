"""AdamW update, in place, as torch.optim.AdamW (decoupled weight decay)."""
import math

import numpy as np


def _scalars(lr, beta1, beta2, eps, weight_decay, step):
    # Bias corrections in float64 Python scalars, like PyTorch does on CPU.
    lr, beta1, beta2, eps, wd = map(float, (lr, beta1, beta2, eps, weight_decay))
    bc1 = 1.0 - beta1 ** int(step)
    bc2_sqrt = math.sqrt(1.0 - beta2 ** int(step))
    return lr, beta1, beta2, eps, wd, lr / bc1, bc2_sqrt


# adamw: p *= 1 - lr wd;  m += (1-b1)(g - m);  v = b2 v + (1-b2) g^2;
#        p -= lr / (1 - b1^t) * m / (sqrt(v) / sqrt(1 - b2^t) + eps)
def adamw_update_numpy(param, grad, m, v, lr, beta1, beta2, eps, weight_decay, step):
    lr, beta1, beta2, eps, wd, step_size, bc2_sqrt = _scalars(lr, beta1, beta2, eps, weight_decay, step)
    param *= 1.0 - lr * wd
    m += (1.0 - beta1) * (grad - m)
    v *= beta2
    v += (1.0 - beta2) * grad * grad
    param -= step_size * (m / (np.sqrt(v) / bc2_sqrt + eps))


# ---- Numba ---------------------------------------------------------------------------------
# One fused serial elementwise pass over flat views (NumPy's twin makes ~8 passes and
# temporaries). Scalars arrive as float64 and are cast to the array dtype once.

from numba import njit  # noqa: E402


@njit(cache=True, error_model="numpy")
def _adamw_kernel(p, g, m, v, decay, beta1, beta2, eps, step_size, bc2_sqrt):
    t = p.dtype.type
    decay, b1, b2, eps = t(decay), t(beta1), t(beta2), t(eps)
    one_b1, one_b2 = t(1.0 - beta1), t(1.0 - beta2)
    step_size, bc2_sqrt = t(step_size), t(bc2_sqrt)
    for i in range(p.size):
        gi = g[i]
        p[i] *= decay
        mi = m[i] + one_b1 * (gi - m[i])
        vi = v[i] * b2 + one_b2 * gi * gi
        m[i] = mi
        v[i] = vi
        p[i] -= step_size * (mi / (np.sqrt(vi) / bc2_sqrt + eps))


def adamw_update_numba(param, grad, m, v, lr, beta1, beta2, eps, weight_decay, step):
    arrays = (param, grad, m, v)
    if not all(a.flags.c_contiguous for a in arrays) or len({a.dtype for a in arrays}) != 1:
        # Flat in-place views need contiguous memory; odd layouts take the (in-place) twin.
        return adamw_update_numpy(param, grad, m, v, lr, beta1, beta2, eps, weight_decay, step)
    lr, beta1, beta2, eps, wd, step_size, bc2_sqrt = _scalars(lr, beta1, beta2, eps, weight_decay, step)
    _adamw_kernel(param.reshape(-1), grad.reshape(-1), m.reshape(-1), v.reshape(-1),
                  1.0 - lr * wd, beta1, beta2, eps, step_size, bc2_sqrt)
