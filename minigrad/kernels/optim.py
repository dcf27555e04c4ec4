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
