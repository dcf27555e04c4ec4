"""Argument checks shared by the functional modules: dims, shapes, ids.

Each check raises where its message can name the op, the argument and the
shapes or values at fault, before any NumPy call could fail with a message
about something the user never wrote. PyTorch's spellings (`dim`, `keepdim`)
are the names; NumPy's (`axis`, `keepdims`) are accepted as aliases, as
PyTorch itself does.
"""
import math

import numpy as np


def is_tensor(x):
    """True for a minigrad Tensor (or Parameter): the only objects with a graph slot."""
    return hasattr(x, "_ctx") and hasattr(x, "data")


def raw(x):
    """The ndarray behind a Tensor; anything else as it is."""
    return x.data if is_tensor(x) else x


# ---- dims --------------------------------------------------------------------------------

def alias(op, name, value, alias_name, alias_value, default=None):
    """One argument under its PyTorch name or its NumPy alias, not both."""
    if alias_value is None:
        return default if value is None else value
    if value is not None:
        raise TypeError(f"{op}: got both {name}= and its alias {alias_name}=; pass one")
    return alias_value


def check_dim(dim, ndim, op):
    """Dim `dim` of an ndim-d tensor as a non-negative int. A 0-d tensor accepts 0 and -1,
    as in PyTorch (it has one implicit dim to name); out of range names the op."""
    if isinstance(dim, bool) or not isinstance(dim, (int, np.integer)):
        raise TypeError(f"{op}: dim must be an int, got {dim!r}")
    span = max(ndim, 1)
    if not -span <= dim < span:
        raise IndexError(f"{op}: dim {dim} is out of range for a tensor with {ndim} dims "
                         f"(allowed: {-span} to {span - 1})")
    return int(dim) % span


def reduce_dims(dim, ndim, op):
    """The dims a reduction runs over, as NumPy's `axis`: None for all, else a sorted tuple
    of distinct non-negative dims (empty for a 0-d tensor, whose dim 0 is itself)."""
    if dim is None:
        return None
    dims = tuple(dim) if isinstance(dim, (tuple, list)) else (dim,)
    axes = tuple(sorted({check_dim(d, ndim, op) for d in dims}))
    if len(axes) != len(dims):
        raise ValueError(f"{op}: dim {dim} names a dim twice")
    return axes if ndim else ()


def dims_kw(op, dim, keepdim, axis, keepdims):
    """(dim, keepdim) from PyTorch's names or NumPy's aliases."""
    return alias(op, "dim", dim, "axis", axis), bool(keepdim or keepdims)


# ---- shapes ------------------------------------------------------------------------------

def size_args(shape, op="reshape"):
    """Accept f(2, 3) and f((2, 3)) as PyTorch does; every size an int."""
    if len(shape) == 1 and isinstance(shape[0], (tuple, list)):
        shape = tuple(shape[0])
    if all(type(s) is int for s in shape):
        return shape
    for s in shape:
        if isinstance(s, bool) or not isinstance(s, (int, np.integer)):
            raise TypeError(f"{op}: sizes must be ints, got {shape}")
    return tuple(int(s) for s in shape)


def shape_arg(shape, size, op="reshape"):
    """The target shape of a reshape, with one -1 inferred; the element count is checked
    here, where the message can name both shapes."""
    shape = size_args(shape, op)
    if -1 not in shape and math.prod(shape) == size and min(shape, default=0) >= 0:
        return shape  # the common case, checked cheaply
    known = math.prod(s for s in shape if s != -1)
    bad = shape.count(-1) > 1 or any(s < -1 for s in shape)
    if bad or (-1 not in shape and known != size) or (-1 in shape and (known == 0 or size % known)):
        raise ValueError(f"{op}: cannot view {size} elements as shape {shape}")
    return tuple(size // known if s == -1 else s for s in shape)


def dims_arg(dims, ndim, op="permute"):
    dims = size_args(dims, op)
    if len(dims) != ndim or sorted(d % max(ndim, 1) for d in dims) != list(range(ndim)):
        raise ValueError(f"{op}: {dims} is not a permutation of the {ndim} dims")
    return tuple(d % ndim for d in dims)


# ---- integer ids -------------------------------------------------------------------------

def int_array(op, what, x):
    """An integer ndarray from a tensor, array or list; anything else names the op."""
    a = np.asarray(raw(x))
    if a.dtype.kind not in "iu":
        raise TypeError(f"{op}: {what} must be integers, got {a.dtype}")
    return a.astype(np.int64, copy=False)


def check_ids(op, what, ids, n, ignore_index=None):
    """Name the first out-of-range id and its position, rather than fail deep in NumPy."""
    bad = (ids < 0) | (ids >= n)
    if ignore_index is not None:
        bad &= ids != ignore_index
    if bad.any():
        pos = tuple(int(i) for i in np.argwhere(bad)[0])
        raise IndexError(f"{op}: {what} {ids[pos]} at position {pos} is out of range [0, {n})")


# ---- results outside the graph -----------------------------------------------------------

def no_grad_result(like, data, op):
    """A tensor of `data` that no gradient can flow through (indices, masks, rounded values),
    made like `like`; it remembers `op`, so asking it for a gradient names the op."""
    t = like._make(np.asarray(data), None)
    t._made_by = op
    return t
