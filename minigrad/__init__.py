"""minigrad: reverse-mode autograd on NumPy, with Numba kernels.

    import minigrad as mg
    x = mg.randn(3, 4, requires_grad=True)
    (x.tanh() @ x.T).sum().backward()
    x.grad  # d sum / d x, an ndarray of shape (3, 4)

Layers, each importing only the ones below it:
  kernels/       NumPy twins and Numba versions of the hot loops (no autograd)
  autograd.py    Function, the graph, backward, no_grad, detect_anomaly
  ops.py         primitive ops, forward and backward side by side
  fused.py       fused ops (softmax, layer norm, GELU, cross-entropy, attention)
  functional.py  every op as a function: argument checks, dtype rules, composites
  tensor.py      Tensor, one thin method per op
  nn/, optim/    modules, clip_grad_norm_, safetensors state; AdamW and the LR schedule
  gradcheck.py, viz.py, runtime.py (opt-in process tuning: minigrad.runtime.tune())

Importing minigrad changes nothing in the process; see runtime.py.
"""
from minigrad.autograd import AnomalyError, Function, detect_anomaly, is_grad_enabled, no_grad
from minigrad.tensor import Tensor
from minigrad.factory import (arange, full, ones, ones_like, rand, randint, randn, tensor, zeros,
                              zeros_like)
from minigrad.functional import cat, split, stack, where
from minigrad.random import get_rng_state, manual_seed, set_rng_state
from minigrad import functional, kernels, nn, optim, runtime  # noqa: F401
from minigrad.gradcheck import GradcheckError, gradcheck
from minigrad import viz  # noqa: F401

float32 = "float32"
float64 = "float64"
