"""Ways to make a Tensor: from data, filled with a constant, a range, or random draws.

PyTorch's signatures and dtypes: float32 unless `dtype` says otherwise, except
where the value decides (`full(shape, 4)` is int64, `arange(5)` int64); the
random ones draw from minigrad's default generator or the `generator=` given.
"""
import numpy as np

from minigrad import dtypes
from minigrad.args import size_args
from minigrad.random import rng
from minigrad.tensor import Tensor


def _dtype(dtype, default=dtypes.DEFAULT_FLOAT):
    return np.dtype(default) if dtype is None else dtypes.as_dtype(dtype)


def _shape(shape, op):
    """Accept f(2, 3) and f((2, 3)) like PyTorch; no negative sizes."""
    shape = size_args(shape, op)
    if any(s < 0 for s in shape):
        raise ValueError(f"{op}: sizes must be non-negative, got {shape}")
    return shape


def _make(data, requires_grad):
    return Tensor(data, requires_grad=requires_grad, dtype=data.dtype)


def tensor(data, dtype=None, requires_grad=False):
    return Tensor(data, requires_grad=requires_grad, dtype=dtype)


def zeros(*size, dtype=None, requires_grad=False):
    return _make(np.zeros(_shape(size, "zeros"), dtype=_dtype(dtype)), requires_grad)


def ones(*size, dtype=None, requires_grad=False):
    return _make(np.ones(_shape(size, "ones"), dtype=_dtype(dtype)), requires_grad)


def empty(*size, dtype=None, requires_grad=False):
    return _make(np.empty(_shape(size, "empty"), dtype=_dtype(dtype)), requires_grad)


def full(size, fill_value, dtype=None, requires_grad=False):
    """Filled with fill_value; its dtype follows the value (int64, bool or float32) unless given."""
    fill = fill_value.item() if isinstance(fill_value, Tensor) else fill_value
    default = dtypes.number_dtype(fill) if dtypes.is_number(fill) else dtypes.DEFAULT_FLOAT
    return _make(np.full(_shape((size,), "full"), fill, dtype=_dtype(dtype, default)), requires_grad)


def zeros_like(input, dtype=None, requires_grad=False):  # noqa: A002  (torch's names)
    return _make(np.zeros(input.shape, dtype=_dtype(dtype, input.dtype)), requires_grad)


def ones_like(input, dtype=None, requires_grad=False):  # noqa: A002
    return _make(np.ones(input.shape, dtype=_dtype(dtype, input.dtype)), requires_grad)


def empty_like(input, dtype=None, requires_grad=False):  # noqa: A002
    return _make(np.empty(input.shape, dtype=_dtype(dtype, input.dtype)), requires_grad)


def full_like(input, fill_value, dtype=None, requires_grad=False):  # noqa: A002
    """input's shape filled with fill_value, in input's dtype unless given (a float fill into
    an int tensor is truncated, as torch)."""
    return _make(np.full(input.shape, fill_value, dtype=_dtype(dtype, input.dtype)), requires_grad)


def arange(start, end=None, step=1, dtype=None, requires_grad=False):
    """int64 for integer arguments and float32 for float ones, as torch.arange."""
    if end is None:
        start, end = 0, start
    if step == 0:
        raise ValueError("arange: step must be non-zero")
    values = np.arange(start, end, step)
    default = dtypes.DEFAULT_FLOAT if values.dtype.kind == "f" else dtypes.INT64
    return _make(values.astype(_dtype(dtype, default)), requires_grad)


def linspace(start, end, steps, dtype=None, requires_grad=False):
    if steps < 0:
        raise ValueError(f"linspace: steps must be non-negative, got {steps}")
    return _make(np.linspace(start, end, steps).astype(_dtype(dtype)), requires_grad)


def eye(n, m=None, dtype=None, requires_grad=False):
    return _make(np.eye(n, n if m is None else m, dtype=_dtype(dtype)), requires_grad)


# ---- random -----------------------------------------------------------------------------------

def randn(*size, generator=None, dtype=None, requires_grad=False):
    data = rng(generator).standard_normal(_shape(size, "randn")).astype(_dtype(dtype))
    return _make(data, requires_grad)


def rand(*size, generator=None, dtype=None, requires_grad=False):
    data = rng(generator).random(_shape(size, "rand")).astype(_dtype(dtype))
    return _make(data, requires_grad)


def randn_like(input, dtype=None, generator=None, requires_grad=False):  # noqa: A002
    return randn(*input.shape, generator=generator, dtype=_dtype(dtype, input.dtype), requires_grad=requires_grad)


def rand_like(input, dtype=None, generator=None, requires_grad=False):  # noqa: A002
    return rand(*input.shape, generator=generator, dtype=_dtype(dtype, input.dtype), requires_grad=requires_grad)


def randint(*args, size=None, generator=None, dtype=None, requires_grad=False):
    """randint(high, size) or randint(low, high, size): ints drawn uniformly from [low, high),
    int64 unless given, as torch.randint."""
    if size is None:
        *bounds, size = args
    else:
        bounds = list(args)
    if len(bounds) not in (1, 2):
        raise TypeError("randint: expected randint(high, size) or randint(low, high, size)")
    low, high = (0, bounds[0]) if len(bounds) == 1 else bounds
    if low >= high:
        raise ValueError(f"randint: low ({low}) must be less than high ({high})")
    data = rng(generator).integers(low, high, size=_shape((size,), "randint"), dtype=np.int64)
    return _make(data.astype(_dtype(dtype, dtypes.INT64)), requires_grad)


def randint_like(input, low=0, high=None, dtype=None, generator=None):  # noqa: A002
    """randint_like(input, high) or randint_like(input, low, high): input's shape and dtype."""
    low, high = (0, low) if high is None else (low, high)
    return randint(low, high, input.shape, generator=generator, dtype=_dtype(dtype, input.dtype))


def randperm(n, generator=None, dtype=None):
    return _make(rng(generator).permutation(n).astype(_dtype(dtype, dtypes.INT64)), False)
