"""minigrad: reverse-mode autograd on NumPy, with Numba kernels, with PyTorch's names.

    import minigrad as mg
    x = mg.randn(3, 4, requires_grad=True)
    (x.tanh() @ x.T).sum().backward()
    x.grad  # d sum / d x, an ndarray of shape (3, 4)

Layers, each importing only the ones below it:
  kernels/       NumPy twins and Numba versions of the hot loops (no autograd)
  autograd.py    Function, the graph, backward, no_grad, detect_anomaly, in-place write books
  ops.py, movement.py   primitive ops (numbers; shapes and indexing), forward and backward side by side
  fused.py       fused ops (softmax, layer norm, GELU, cross-entropy, attention)
  dtypes.py, args.py, then pointwise, shape, reduction, linalg, activations, losses,
                 attention, sampling, inplace: every op as a function (functional.py is their namespace)
  tensor.py      Tensor, one thin method per op
  factory.py, nn/, optim/    tensor makers; modules and state; AdamW and the LR schedule
  gradcheck.py, viz.py, runtime.py (opt-in process tuning: minigrad.runtime.tune())

The torch-level functions (`mg.cat`, `mg.topk`, `mg.multinomial`, ...) are
re-exported here, as torch.* does. Importing minigrad changes nothing in the
process; see runtime.py.
"""
import numpy as np

from minigrad.autograd import AnomalyError, Function, detect_anomaly, is_grad_enabled, no_grad
from minigrad.tensor import Tensor
from minigrad.factory import (arange, empty, empty_like, eye, full, full_like, linspace, ones, ones_like, rand,
                              rand_like, randint, randint_like, randn, randn_like, randperm, tensor, zeros,
                              zeros_like)
from minigrad.functional import (  # noqa: F401  (torch.* names)
                                 abs, add, all, allclose, amax, amin, any, argmax, argmin, argsort, bernoulli,
                                 cat, chunk, clamp, clip, clone, concat, cumsum, div, eq, equal, erf, exp, flatten,
                                 gather, ge, gt, isfinite, isinf, isnan, le, log, log_softmax, logical_and,
                                 logical_not, logical_or, logical_xor, logsumexp, lt, masked_fill, matmul, max,
                                 maximum, mean, min, minimum, mul, multinomial, narrow, ne, neg, nonzero, permute,
                                 pow, relu, repeat, reshape, result_type, rsqrt, scatter, scatter_add, select,
                                 sigmoid, softmax, sort, split, sqrt, square, squeeze, stack, std, sub, sum, tanh,
                                 topk, transpose, tril, triu, unbind, unflatten, unsqueeze, var, where)
from minigrad.random import (Generator, default_generator, get_rng_state, initial_seed, manual_seed, seed,  # noqa: F401
                             set_rng_state)
from minigrad import functional, kernels, nn, optim, runtime  # noqa: F401
from minigrad.gradcheck import GradcheckError, gradcheck
from minigrad import viz  # noqa: F401

# dtypes, as NumPy dtypes under PyTorch's names
float16 = half = np.dtype(np.float16)
float32 = float = np.dtype(np.float32)  # noqa: A001
float64 = double = np.dtype(np.float64)
int8, uint8 = np.dtype(np.int8), np.dtype(np.uint8)
int16 = short = np.dtype(np.int16)
int32 = int = np.dtype(np.int32)  # noqa: A001
int64 = long = np.dtype(np.int64)
bool = np.dtype(np.bool_)  # noqa: A001


def get_default_dtype():
    return float32


def is_tensor(obj):
    return isinstance(obj, Tensor)
