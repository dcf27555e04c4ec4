"""GELU with GPT-2's tanh approximation: forward and backward."""
import math

import numpy as np

SQRT_2_OVER_PI = math.sqrt(2.0 / math.pi)   # Python floats: never upcast float32
GELU_COEF = 0.044715


# gelu:  y = 0.5 x (1 + tanh(u)),  u = sqrt(2/pi) (x + 0.044715 x^3)
def gelu_forward_numpy(x):
    u = SQRT_2_OVER_PI * (x + GELU_COEF * x * x * x)
    return 0.5 * x * (1.0 + np.tanh(u))


# gelu': dx = dy * (0.5 (1 + t) + 0.5 x (1 - t^2) sqrt(2/pi) (1 + 3 * 0.044715 x^2)),  t = tanh(u)
def gelu_backward_numpy(x, dy):
    x2 = x * x
    t = np.tanh(SQRT_2_OVER_PI * (x + GELU_COEF * x2 * x))
    du = SQRT_2_OVER_PI * (1.0 + 3.0 * GELU_COEF * x2)
    return dy * (0.5 * (1.0 + t) + 0.5 * x * (1.0 - t * t) * du)
