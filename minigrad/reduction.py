"""Reductions, scans and sorting: sum ... var, max/min with indices, cumsum, sort, topk.

PyTorch's signatures: `dim` (an int, a tuple, or None for all dims) and
`keepdim`, with NumPy's `axis`/`keepdims` accepted as aliases. A 0-d tensor
takes dim 0 or -1 and comes back as it is. `max(dim)`/`min(dim)`, `sort` and
`topk` return (values, indices) named tuples; their values are gathered at the
indices, so the gradient goes to the element picked (`amax`/`amin` split it
between ties instead). Indices are int64 tensors outside the graph.
"""
import builtins
from collections import namedtuple

import numpy as np

from minigrad import dtypes, ops
from minigrad.args import check_dim, dims_kw, is_tensor, no_grad_result, reduce_dims
from minigrad.pointwise import cast, exp, log, maximum, minimum
from minigrad.shape import gather, reshape, squeeze

return_types = {name: namedtuple(name, ("values", "indices")) for name in ("max", "min", "sort", "topk")}


def _count(x, axes):
    return int(np.prod([x.shape[a] for a in (range(x.ndim) if axes is None else axes)]))


def sum(input, dim=None, keepdim=False, *, dtype=None, axis=None, keepdims=None):  # noqa: A001, A002
    """Sum over dims; bool and int tensors sum to int64, as torch."""
    dim, keepdim = dims_kw("sum", dim, keepdim, axis, keepdims)
    if dtype is None and input.dtype.kind in "biu":
        dtype = dtypes.INT64
    dtype = None if dtype is None else dtypes.as_dtype(dtype)
    return ops.Sum.apply(input, axis=reduce_dims(dim, input.ndim, "sum"), keepdims=keepdim, dtype=dtype)


def _float_input(input, op, dtype=None):
    if dtype is not None:
        return cast(input, dtype)
    if not dtypes.is_float(input.dtype):
        raise TypeError(f"{op}: needs a floating-point tensor, got {input.dtype} (cast with .float() first)")
    return input


def mean(input, dim=None, keepdim=False, *, dtype=None, axis=None, keepdims=None):  # noqa: A002
    dim, keepdim = dims_kw("mean", dim, keepdim, axis, keepdims)
    x = _float_input(input, "mean", dtype)
    axes = reduce_dims(dim, x.ndim, "mean")
    return sum(x, axes, keepdim) / _count(x, axes)


def var(input, dim=None, unbiased=None, keepdim=False, *, correction=None, axis=None, keepdims=None):  # noqa: A002
    """Variance, divided by n - correction (correction=1, Bessel's, unless unbiased=False)."""
    dim, keepdim = dims_kw("var", dim, keepdim, axis, keepdims)
    if correction is None:
        correction = 0 if unbiased is False else 1
    x = _float_input(input, "var")
    axes = reduce_dims(dim, x.ndim, "var")
    centered = x - mean(x, axes, keepdim=True)
    dof = np.asarray(builtins.max(_count(x, axes) - correction, 0), dtype=x.dtype)  # 0: inf or NaN, as torch
    return sum(centered * centered, axes, keepdim) / dof


def std(input, dim=None, unbiased=None, keepdim=False, *, correction=None, axis=None, keepdims=None):  # noqa: A002
    return var(input, dim, unbiased, keepdim, correction=correction, axis=axis, keepdims=keepdims).sqrt()


def _extreme(op, cls, input, dim, keepdim):
    if input.data.size == 0:
        raise ValueError(f"{op}: cannot reduce an empty tensor of shape {input.shape}")
    return cls.apply(input, axis=reduce_dims(dim, input.ndim, op), keepdims=keepdim)


def amax(input, dim=None, keepdim=False, *, axis=None, keepdims=None):  # noqa: A002
    """The largest values over dims (all by default); the gradient is split between ties."""
    dim, keepdim = dims_kw("amax", dim, keepdim, axis, keepdims)
    return _extreme("amax", ops.Amax, input, None if dim == () else dim, keepdim)


def amin(input, dim=None, keepdim=False, *, axis=None, keepdims=None):  # noqa: A002
    dim, keepdim = dims_kw("amin", dim, keepdim, axis, keepdims)
    return _extreme("amin", ops.Amin, input, None if dim == () else dim, keepdim)


def _pick(op, arg, input, dim, keepdim):
    """(values, indices) of argmax/argmin along one dim; values gathered at the indices."""
    if is_tensor(dim):
        raise TypeError(f"{op}: dim must be an int; for the elementwise {op} of two tensors use "
                        f"{'maximum' if op == 'max' else 'minimum'}")
    if input.data.size == 0:
        raise ValueError(f"{op}: cannot reduce an empty tensor of shape {input.shape}")
    dim = check_dim(dim, input.ndim, op)
    idx = arg(input, dim, keepdim=True)
    values = gather(input, dim, idx) if input.ndim else input
    if not keepdim:
        values, idx = squeeze(values, dim), squeeze(idx, dim)
    return return_types[op](values, idx)


def max(input, dim=None, keepdim=False, *, axis=None, keepdims=None):  # noqa: A001, A002
    """max(x): the largest value (gradient split between ties); max(x, dim): (values,
    indices) along dim; max(x, other_tensor): the elementwise maximum."""
    if is_tensor(dim) or isinstance(dim, np.ndarray):
        return maximum(input, dim)
    dim, keepdim = dims_kw("max", dim, keepdim, axis, keepdims)
    return _extreme("max", ops.Amax, input, None, False) if dim is None else _pick("max", argmax, input, dim, keepdim)


def min(input, dim=None, keepdim=False, *, axis=None, keepdims=None):  # noqa: A001, A002
    if is_tensor(dim) or isinstance(dim, np.ndarray):
        return minimum(input, dim)
    dim, keepdim = dims_kw("min", dim, keepdim, axis, keepdims)
    return _extreme("min", ops.Amin, input, None, False) if dim is None else _pick("min", argmin, input, dim, keepdim)


def _arg(op, fn, input, dim, keepdim):
    if input.data.size == 0:
        raise ValueError(f"{op}: cannot reduce an empty tensor of shape {input.shape}")
    if dim is None:
        out = fn(input.data.reshape(-1))
        return no_grad_result(input, np.full((1,) * input.ndim if keepdim else (), out, np.int64), op)
    dim = check_dim(dim, input.ndim, op)
    if input.ndim == 0:
        return no_grad_result(input, np.zeros((), np.int64), op)
    out = fn(input.data, axis=dim)
    return no_grad_result(input, np.expand_dims(out, dim) if keepdim else out, op)


def argmax(input, dim=None, keepdim=False, *, axis=None, keepdims=None):  # noqa: A002
    """Index of the largest value (the first one on ties; NaN counts as largest)."""
    dim, keepdim = dims_kw("argmax", dim, keepdim, axis, keepdims)
    return _arg("argmax", np.argmax, input, dim, keepdim)


def argmin(input, dim=None, keepdim=False, *, axis=None, keepdims=None):  # noqa: A002
    dim, keepdim = dims_kw("argmin", dim, keepdim, axis, keepdims)
    return _arg("argmin", np.argmin, input, dim, keepdim)


def logsumexp(input, dim, keepdim=False):  # noqa: A002
    """log(sum(exp(x))) over dim, computed as m + log(sum(exp(x - m))) with m the max
    (held constant; an infinite max counts as 0 so that all -inf gives -inf)."""
    x = cast(input, dtypes.float_result(input.dtype))
    axes = reduce_dims(dim, x.ndim, "logsumexp")
    m = x.data.max(axis=axes, keepdims=True) if x.data.size else np.zeros((1,) * x.ndim, x.dtype)
    m = x._make(np.where(np.isfinite(m), m, 0).astype(x.dtype), None)
    out = log(sum(exp(x - m), axes, keepdim=True)) + m
    if keepdim:
        return out
    return reshape(out, *[n for d, n in enumerate(x.shape) if axes is not None and d not in axes])


def cumsum(input, dim, *, dtype=None, axis=None):  # noqa: A002
    """Running sum along dim; bool and int tensors sum in int64, as torch."""
    dim = check_dim(dim if axis is None else axis, input.ndim, "cumsum")
    if input.ndim == 0:
        return reshape(cumsum(reshape(input, 1), 0, dtype=dtype), ())
    if dtype is None and input.dtype.kind in "biu":
        dtype = dtypes.INT64
    return ops.Cumsum.apply(input, axis=dim, dtype=None if dtype is None else dtypes.as_dtype(dtype))


def _argsort(a, axis, descending):
    """Stable: equal values keep their order; NaN sorts as the largest (last, or first when
    descending), as torch."""
    if not descending:
        return np.argsort(a, axis=axis, kind="stable")
    n = a.shape[axis]
    return n - 1 - np.flip(np.argsort(np.flip(a, axis), axis=axis, kind="stable"), axis)


def argsort(input, dim=-1, descending=False, stable=False):  # noqa: A002
    return sort(input, dim, descending, stable).indices


def sort(input, dim=-1, descending=False, stable=False):  # noqa: A002
    """(values, indices) sorted along dim. Always stable (ties keep their order)."""
    dim = check_dim(dim, input.ndim, "sort")
    if input.ndim == 0:
        return return_types["sort"](input, no_grad_result(input, np.zeros((), np.int64), "sort"))
    idx = no_grad_result(input, _argsort(input.data, dim, descending), "sort")
    return return_types["sort"](gather(input, dim, idx), idx)


def topk(input, k, dim=-1, largest=True, sorted=True):  # noqa: A002
    """(values, indices) of the k largest (or smallest) along dim, in order; ties keep the
    lower index first."""
    dim = check_dim(dim, input.ndim, "topk")
    n = input.shape[dim] if input.ndim else 1
    if not 0 <= k <= n:
        raise ValueError(f"topk: k={k} is out of range for dim {dim} of size {n} (shape {input.shape})")
    if input.ndim == 0:
        return return_types["topk"](input, no_grad_result(input, np.zeros((), np.int64), "topk"))
    order = _argsort(input.data, dim, largest)
    idx = no_grad_result(input, np.take(order, np.arange(k), axis=dim), "topk")
    return return_types["topk"](gather(input, dim, idx), idx)


def any(input, dim=None, keepdim=False):  # noqa: A001, A002
    axes = reduce_dims(dim, input.ndim, "any")
    return no_grad_result(input, np.any(input.data, axis=axes, keepdims=keepdim), "any")


def all(input, dim=None, keepdim=False):  # noqa: A001, A002
    axes = reduce_dims(dim, input.ndim, "all")
    return no_grad_result(input, np.all(input.data, axis=axes, keepdims=keepdim), "all")

