"""Elementwise ops: arithmetic, math, comparisons, selection, casts.

Every binary op takes tensors, arrays or Python numbers on either side and
returns `dtypes.result_type` of them (PyTorch's promotion: an int tensor times
2.5 is float32, a float32 tensor plus a float64 0-d tensor stays float32);
true division and the float-only functions (exp, log, sqrt, ...) turn bool and
int tensors into the default float. Then it applies one primitive of ops.py.
Comparisons and logical ops give bool tensors outside the graph.
"""
import numpy as np

from minigrad import dtypes, ops
from minigrad.args import is_tensor, no_grad_result, raw


def cast(x, dtype):
    """x in `dtype`; differentiable between float dtypes, outside the graph into int or bool."""
    dtype = dtypes.as_dtype(dtype)
    if dtype == x.dtype:
        return x
    if not dtypes.is_float(dtype):
        return no_grad_result(x, x.data.astype(dtype), f"cast to {dtype}")
    return ops.Cast.apply(x, dtype=dtype)


def _operand(x, dtype, like):
    if is_tensor(x):
        return cast(x, dtype)
    return like._make(np.asarray(x, dtype=dtype), None)


def binary(op, a, b, name, dtype=None):
    """a (op) b, broadcasting, in the promoted dtype (or `dtype`); a shape clash names the op."""
    if dtype is None and is_tensor(a) and is_tensor(b) and a.dtype == b.dtype:
        return _apply(op, a, b, name)   # the common case: no conversions
    if isinstance(a, (list, tuple)) or isinstance(b, (list, tuple)):
        a, b = (dtypes.as_array(v) if isinstance(v, (list, tuple)) else v for v in (a, b))
    like = a if is_tensor(a) else b
    dtype = dtypes.result_type(a, b) if dtype is None else dtype
    return _apply(op, _operand(a, dtype, like), _operand(b, dtype, like), name)


def _apply(op, a, b, name):
    try:
        return op.apply(a, b)
    except ValueError:
        try:
            np.broadcast_shapes(a.shape, b.shape)
        except ValueError:
            raise ValueError(f"{name}: shapes {a.shape} and {b.shape} cannot be broadcast together") from None
        raise


# ---- arithmetic ----------------------------------------------------------------------------

def _scaled(other, alpha):
    if alpha == 1:
        return other
    return mul(other, alpha) if is_tensor(other) else np.multiply(other, alpha)


def add(input, other, alpha=1):  # noqa: A002  (torch's names)
    """input + alpha * other."""
    return binary(ops.Add, input, _scaled(other, alpha), "add")


def sub(input, other, alpha=1):  # noqa: A002
    """input - alpha * other."""
    return binary(ops.Sub, input, _scaled(other, alpha), "sub")


def mul(input, other):  # noqa: A002
    return binary(ops.Mul, input, other, "mul")


def div(input, other, rounding_mode=None):  # noqa: A002
    """True division (ints give the default float), or rounded ('trunc', 'floor') in the
    promoted dtype, outside the graph."""
    if rounding_mode is None:
        dtype = dtypes.float_result(dtypes.result_type(input, other))
        return binary(ops.Div, input, other, "div", dtype)
    if rounding_mode not in ("trunc", "floor"):
        raise ValueError(f"div: rounding_mode must be None, 'trunc' or 'floor', got {rounding_mode!r}")
    like = input if is_tensor(input) else other
    dtype = dtypes.result_type(input, other)
    a, b = (np.asarray(raw(v), dtype=dtype) for v in (input, other))
    with np.errstate(divide="ignore", invalid="ignore"):
        if dtype.kind in "iu":
            if (b == 0).any():
                raise ZeroDivisionError(f"div: integer division by zero (rounding_mode={rounding_mode!r})")
            out = a // b if rounding_mode == "floor" else np.trunc(a / b).astype(dtype)
        else:
            out = np.floor(a / b) if rounding_mode == "floor" else np.trunc(a / b)
    return no_grad_result(like, out.astype(dtype, copy=False), f"div(rounding_mode={rounding_mode!r})")


def floor_divide(input, other):  # noqa: A002
    return div(input, other, rounding_mode="floor")


def pow(input, exponent):  # noqa: A001, A002
    dtype = dtypes.result_type(input, exponent)
    if dtype.kind in "iu" and np.any(np.asarray(raw(exponent)) < 0):
        raise ValueError(f"pow: integers to negative integer powers are not allowed (exponent {raw(exponent)})")
    return binary(ops.Pow, input, exponent, "pow", dtype)


def maximum(input, other):  # noqa: A002
    return binary(ops.Maximum, input, other, "maximum")


def minimum(input, other):  # noqa: A002
    return binary(ops.Minimum, input, other, "minimum")


def neg(input):  # noqa: A002
    if input.dtype == np.bool_:
        raise TypeError("neg: negation of a bool tensor is not defined; use logical_not")
    return ops.Neg.apply(input)


def abs(input):  # noqa: A001, A002
    return ops.Abs.apply(input)


def relu(input):  # noqa: A002
    return ops.Relu.apply(input)


# ---- float math: bool and int tensors become the default float first ------------------------

def _float_op(op, x):
    return op.apply(cast(x, dtypes.float_result(x.dtype)))


def exp(input): return _float_op(ops.Exp, input)  # noqa: A002, E704
def log(input): return _float_op(ops.Log, input)  # noqa: A002, E704
def sqrt(input): return _float_op(ops.Sqrt, input)  # noqa: A002, E704
def tanh(input): return _float_op(ops.Tanh, input)  # noqa: A002, E704
def sigmoid(input): return _float_op(ops.Sigmoid, input)  # noqa: A002, E704
def erf(input): return _float_op(ops.Erf, input)  # noqa: A002, E704


def rsqrt(input):  # noqa: A002
    """1 / sqrt(x), as x ** -0.5 (one node; inf at 0, as PyTorch)."""
    x = cast(input, dtypes.float_result(input.dtype))
    return binary(ops.Pow, x, -0.5, "rsqrt")


def square(input):  # noqa: A002
    return mul(input, input)


# ---- selection -------------------------------------------------------------------------------

def clamp(input, min=None, max=None):  # noqa: A001, A002
    """Values outside [min, max] set to the bound; numbers or tensors as bounds. The
    gradient flows to x inside the bounds (bounds included), to a tensor bound outside."""
    if min is None and max is None:
        raise ValueError("clamp: at least one of min and max must be given (both are None)")
    dtype = dtypes.result_type(input, *[v for v in (min, max) if v is not None])
    x = cast(input, dtype)
    if not (is_tensor(min) or is_tensor(max)):
        lo, hi = (None if v is None else np.asarray(v, dtype=dtype) for v in (min, max))
        return ops.Clip.apply(x, lo=lo, hi=hi)  # min > max gives max everywhere, as torch
    out = x
    if min is not None:
        out = where(raw(x) < raw(min), min, out)
    if max is not None:
        out = where(raw(out) > raw(max), max, out)
    return out


def where(condition, input=None, other=None):  # noqa: A002
    """input where condition is True, else other (tensors or numbers, promoted together).
    With the condition alone, the indices of its True elements, one tensor per dim."""
    if input is None and other is None:
        return nonzero(condition, as_tuple=True)
    cond = np.asarray(raw(condition)).astype(bool, copy=False)
    like = next((v for v in (input, other, condition) if is_tensor(v)), None)
    if like is None:
        raise TypeError("where: condition must be a tensor when input and other are both numbers")
    dtype = dtypes.result_type(*[v for v in (input, other)])
    a, b = _operand(input, dtype, like), _operand(other, dtype, like)
    try:
        np.broadcast_shapes(cond.shape, a.shape, b.shape)
    except ValueError:
        raise ValueError(f"where: shapes condition {cond.shape}, input {a.shape} and other {b.shape} "
                         f"cannot be broadcast together") from None
    return ops.Where.apply(a, b, cond=cond)


def masked_fill(input, mask, value):  # noqa: A002
    """input with `value` where mask is True (mask broadcasts to input's shape; value keeps
    input's dtype); the gradient there is zero."""
    mask = np.asarray(raw(mask))
    if mask.dtype != np.bool_:
        raise TypeError(f"masked_fill: mask must be bool, got {mask.dtype}")
    if not _broadcasts(mask, input) or np.broadcast_shapes(mask.shape, input.shape) != input.shape:
        raise ValueError(f"masked_fill: mask of shape {mask.shape} does not broadcast to input {input.shape}")
    value = cast(value, input.dtype) if is_tensor(value) else input._make(np.asarray(value, dtype=input.dtype), None)
    return ops.Where.apply(value, input, cond=mask)


def _broadcasts(a, b):
    try:
        np.broadcast_shapes(np.shape(a), np.shape(b))
        return True
    except ValueError:
        return False


def nonzero(input, as_tuple=False):  # noqa: A002
    idx = np.nonzero(raw(input))
    if as_tuple:
        return tuple(no_grad_result(input, i, "nonzero") for i in idx)
    return no_grad_result(input, np.stack(idx, axis=-1) if idx else np.zeros((0, 0), np.int64), "nonzero")


# ---- comparisons and logic: bool results, outside the graph --------------------------------

def _compare(fn, name):
    def compare(input, other):  # noqa: A002
        like = input if is_tensor(input) else other
        a, b = raw(input), raw(other)
        if not _broadcasts(a, b):
            raise ValueError(f"{name}: shapes {np.shape(a)} and {np.shape(b)} cannot be broadcast together")
        return no_grad_result(like, fn(a, b), name)
    compare.__name__ = name
    return compare


eq, ne = _compare(np.equal, "eq"), _compare(np.not_equal, "ne")
lt, le = _compare(np.less, "lt"), _compare(np.less_equal, "le")
gt, ge = _compare(np.greater, "gt"), _compare(np.greater_equal, "ge")
logical_and, logical_or = _compare(np.logical_and, "logical_and"), _compare(np.logical_or, "logical_or")
logical_xor = _compare(np.logical_xor, "logical_xor")
bitwise_and, bitwise_or = _compare(np.bitwise_and, "bitwise_and"), _compare(np.bitwise_or, "bitwise_or")
bitwise_xor = _compare(np.bitwise_xor, "bitwise_xor")


def bitwise_not(input):  # noqa: A002
    if dtypes.is_float(input.dtype):
        raise TypeError(f"bitwise_not: needs a bool or integer tensor, got {input.dtype}")
    return no_grad_result(input, np.invert(input.data), "bitwise_not")


def logical_not(input):  # noqa: A002
    return no_grad_result(input, np.logical_not(input.data), "logical_not")


def isnan(input): return no_grad_result(input, np.isnan(input.data), "isnan")  # noqa: A002, E704
def isinf(input): return no_grad_result(input, np.isinf(input.data), "isinf")  # noqa: A002, E704
def isfinite(input): return no_grad_result(input, np.isfinite(input.data), "isfinite")  # noqa: A002, E704


def allclose(input, other, rtol=1e-05, atol=1e-08, equal_nan=False):  # noqa: A002
    return bool(np.allclose(raw(input), raw(other), rtol=rtol, atol=atol, equal_nan=equal_nan))


def equal(input, other):  # noqa: A002
    """True when both have the same shape and elements (torch.equal)."""
    a, b = raw(input), raw(other)
    return np.shape(a) == np.shape(b) and bool(np.array_equal(a, b))

