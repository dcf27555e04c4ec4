"""In-place writes: `x[i] = v`, `x.add_(y)`, `x += y`, ... as PyTorch does them.

A write changes x's memory (and so every view of it) and bumps the version of
that memory (autograd.py keeps the books). What autograd sees depends on who
needs a gradient:
- grad off (no_grad), or neither x nor the value requires grad: the memory is
  written and nothing else changes. A recorded op that saved this memory then
  raises at backward, naming itself.
- x is a leaf that requires grad (or a view of one): refused outside no_grad,
  since its gradient would no longer be that of the value it held.
- otherwise the write is differentiable: the new value is computed out of
  place from a stand-in for x's old value, copied into x's memory, and x takes
  the new node (autograd.rebind). Ops recorded before the write still reach the
  old value. If x is a view, each tensor it views takes a node too (ViewPut),
  so a write into `h[0]` is seen by a later `h.sum()`.
"""
import numpy as np

from minigrad import autograd, movement, pointwise, random, shape
from minigrad.args import is_tensor, raw
from minigrad.pointwise import cast
from minigrad.shape import clone, expand, index_steps


def _check_target(x, op):
    if not x.data.flags.writeable:
        raise RuntimeError(f"{op}: cannot write into this tensor (shape {x.shape}): its memory is read-only, "
                           f"e.g. an expand() view whose elements share memory; clone() it first")
    if not autograd.is_grad_enabled():
        return
    t = x
    while t is not None:
        if t.requires_grad and t._ctx is None:
            what = "a leaf tensor" if t is x else f"a view of a leaf tensor (shape {t.shape})"
            raise RuntimeError(f"{op}: {what} that requires grad cannot be written in place while grad is "
                               f"enabled; write under minigrad.no_grad() (as an optimizer does) or into a clone()")
        t = _viewed(t)


def _viewed(t):
    """The tensor t is a view of (sharing its memory), or None."""
    base = getattr(t, "_base", None)
    return base[0] if base is not None and np.may_share_memory(t.data, base[0].data) else None


def _previous(x):
    """A new tensor object standing for x as it is now (same memory, same node), for the
    ops that will compute x's new value and for those recorded before the write."""
    old = x._make(x.data, x._ctx)
    old.requires_grad = x.requires_grad
    base = getattr(x, "_base", None)
    if base is not None:
        old._base = base
    return old


def _differentiable(x, *values):
    return autograd.is_grad_enabled() and (x.requires_grad or any(is_tensor(v) and v.requires_grad for v in values))


def _commit(x, new, old):
    """After x's memory holds new's values: x takes new's node, and so do the tensors x views."""
    stamp = autograd.record_write(x.data, differentiable=True)
    autograd.rebind(x, new, old, stamp)
    child, base = x, _viewed(x)
    while base is not None:
        old_base = _previous(base)
        positions = movement.element_positions(base.data, child.data)
        autograd.rebind(base, movement.ViewPut.apply(old_base, child, positions=positions), old_base, stamp)
        child, base = base, _viewed(base)


def write(x, op, compute, *values):
    """x <- compute(x, *values) in place; compute is an out-of-place op giving x's shape."""
    _check_target(x, op)
    if not _differentiable(x, *values):
        with autograd.no_grad():
            _store(x, compute(x, *values), op)
        autograd.record_write(x.data, differentiable=False)
        return x
    old = _previous(x)
    # compute on copies: an op that saves its inputs must not see them overwritten by the store
    values = [clone(v) if is_tensor(v) and np.may_share_memory(v.data, x.data) else v for v in values]
    new = compute(clone(old), *values)
    _store(x, new, op)
    _commit(x, cast(new, x.dtype), old)
    return x


def _store(x, result, op):
    if result.shape != x.shape:
        raise ValueError(f"{op}: the result has shape {result.shape}, but the tensor written in place has "
                         f"shape {x.shape} (the other operand must broadcast to it)")
    if not np.can_cast(result.dtype, x.dtype, casting="same_kind"):
        raise TypeError(f"{op}: the result's dtype {result.dtype} cannot be stored in place into a "
                        f"{x.dtype} tensor")
    np.copyto(x.data, result.data, casting="unsafe")


def setitem(x, idx, value):
    """x[idx] = value, with PyTorch's index rules; value (a tensor, array or number) is
    broadcast to the indexed region and cast to x's dtype."""
    steps = index_steps(idx, x.ndim)
    _check_target(x, "__setitem__")
    try:
        if not _differentiable(x, value):
            target, last = movement.region(x.data, steps)
            target[last] = raw(value)  # NumPy casts to x's dtype, as torch
            autograd.record_write(x.data, differentiable=False)
            return
        old = _previous(x)
        if not is_tensor(value):
            value = x._make(np.asarray(value, dtype=x.dtype), None)
        elif np.may_share_memory(value.data, x.data):
            value = clone(value)
        new = movement.IndexPut.apply(old, cast(value, x.dtype), steps=steps)
    except (IndexError, ValueError) as e:
        raise _setitem_error(x, idx, value, steps, e) from None
    np.copyto(x.data, new.data)
    _commit(x, new, old)


def _setitem_error(x, idx, value, steps, e):
    try:
        target, last = movement.region(x.data, steps)
        region_shape = np.shape(target[last])
    except IndexError as bad_index:
        return IndexError(f"__setitem__: cannot index a tensor of shape {x.shape} with {idx!r}: {bad_index}")
    return ValueError(f"__setitem__: a value of shape {np.shape(raw(value))} cannot be broadcast to the indexed "
                      f"region of shape {region_shape} (tensor of shape {x.shape}, index {idx!r}): {e}")


def copy_(input, src):  # noqa: A002  (torch's names)
    """Copy src (broadcast to input's shape, cast to its dtype) into input; differentiable in src."""
    src = src if is_tensor(src) else input._make(np.asarray(src, dtype=input.dtype), None)
    return write(input, "copy_", lambda x, s: expand(cast(s, x.dtype), *x.shape), src)


def fill_(input, value):  # noqa: A002
    return copy_(input, value)


def zero_(input):  # noqa: A002
    return copy_(input, 0)


def _random_fill(input, op, draw):
    """Overwrite with random draws (weight init, under no_grad as torch.nn.init does)."""
    _check_target(input, op)
    if _differentiable(input):
        raise RuntimeError(f"{op}: cannot refill a tensor that requires grad while grad is enabled; "
                           f"use minigrad.no_grad()")
    np.copyto(input.data, draw(input.shape), casting="unsafe")
    autograd.record_write(input.data, differentiable=False)
    return input


def normal_(input, mean=0.0, std=1.0, *, generator=None):  # noqa: A002
    return _random_fill(input, "normal_", lambda shape: random.rng(generator).normal(mean, std, shape))


def uniform_(input, a=0.0, b=1.0, *, generator=None):  # noqa: A002
    return _random_fill(input, "uniform_", lambda shape: random.rng(generator).uniform(a, b, shape))


def version(x):
    """How many in-place writes x's memory has had (PyTorch's `t._version`)."""
    return autograd.version(x.data)


def _inplace(fn):
    name = fn.__name__ + "_"

    def op_(input, *args, **kwargs):  # noqa: A002
        return write(input, name, lambda x, *values: fn(x, *values, **kwargs), *args)
    op_.__name__ = op_.__qualname__ = name
    op_.__doc__ = f"In-place {fn.__name__}: writes the result into input and returns it."
    return op_


add_, sub_, mul_, div_, pow_, neg_, abs_ = map(_inplace, (pointwise.add, pointwise.sub, pointwise.mul, pointwise.div,
                                                         pointwise.pow, pointwise.neg, pointwise.abs))
exp_, log_, sqrt_, tanh_, sigmoid_, relu_ = map(_inplace, (pointwise.exp, pointwise.log, pointwise.sqrt, pointwise.tanh,
                                                          pointwise.sigmoid, pointwise.relu))
clamp_, masked_fill_ = _inplace(pointwise.clamp), _inplace(pointwise.masked_fill)
scatter_, scatter_add_ = _inplace(shape.scatter), _inplace(shape.scatter_add)
