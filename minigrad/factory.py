"""Ways to make a Tensor: from data, filled with a constant, a range, or random draws."""
import numpy as np

from minigrad.random import rng
from minigrad.tensor import Tensor

DEFAULT_DTYPE = np.float32


def _dtype(dtype):
    return np.dtype(DEFAULT_DTYPE if dtype is None else dtype)


def _shape(shape):
    """Accept f(2, 3) and f((2, 3)) like PyTorch."""
    if len(shape) == 1 and isinstance(shape[0], (tuple, list)):
        return tuple(shape[0])
    return tuple(shape)


def tensor(data, requires_grad=False, dtype=None):
    return Tensor(data, requires_grad=requires_grad, dtype=dtype)


def zeros(*shape, dtype=None, requires_grad=False):
    return Tensor(np.zeros(_shape(shape), dtype=_dtype(dtype)), requires_grad=requires_grad)


def ones(*shape, dtype=None, requires_grad=False):
    return Tensor(np.ones(_shape(shape), dtype=_dtype(dtype)), requires_grad=requires_grad)


def full(shape, fill_value, dtype=None, requires_grad=False):
    return Tensor(np.full(_shape((shape,)), fill_value, dtype=_dtype(dtype)), requires_grad=requires_grad)


def zeros_like(t, dtype=None, requires_grad=False):
    return Tensor(np.zeros(t.shape, dtype=dtype or t.dtype), requires_grad=requires_grad)


def ones_like(t, dtype=None, requires_grad=False):
    return Tensor(np.ones(t.shape, dtype=dtype or t.dtype), requires_grad=requires_grad)


def arange(start, end=None, step=1, dtype=None):
    """int64 for integer arguments and float32 for float ones, as torch.arange."""
    if end is None:
        start, end = 0, start
    values = np.arange(start, end, step)
    if dtype is None and np.issubdtype(values.dtype, np.floating):
        dtype = DEFAULT_DTYPE
    return Tensor(values if dtype is None else values.astype(dtype))


def randn(*shape, dtype=None, requires_grad=False):
    data = rng().standard_normal(_shape(shape)).astype(_dtype(dtype))
    return Tensor(data, requires_grad=requires_grad)


def rand(*shape, dtype=None, requires_grad=False):
    data = rng().random(_shape(shape)).astype(_dtype(dtype))
    return Tensor(data, requires_grad=requires_grad)


def randint(low, high, shape):
    return Tensor(rng().integers(low, high, size=_shape((shape,)), dtype=np.int64))
