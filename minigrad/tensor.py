"""The Tensor: an ndarray that remembers the op that made it.

The class holds the data, the gradient and the graph slot, and differentiates;
every op is a one-line method that is the function of functional.py itself
(`Tensor.exp is F.exp`), so this file reads as the table of contents of what a
Tensor can do, and `x.op(...)` and `F.op(x, ...)` cannot drift apart.

In-place writes (`x[i] = v`, `x.add_(y)`, `x += y`) follow PyTorch: they change
x's memory, which views share; a write into a leaf that requires grad is refused
outside no_grad; a write into a tensor an op saved for backward makes that
backward raise, naming the op; any other write is differentiable (inplace.py,
and the books in autograd.py). `x._version` counts the writes to x's memory.
"""
import numpy as np

from minigrad import autograd, dtypes, functional as _F


class Tensor:
    """An n-d array that can record the ops applied to it and differentiate them."""

    # _base: (tensor, writes) when this tensor is a view of that one's memory (view ops set it);
    # _made_by: the op of a result outside the graph (argmax, a comparison), for error messages.
    # Both are set only where they apply, and read with getattr(t, name, None).
    __slots__ = ("data", "grad", "requires_grad", "_ctx", "_retain", "_base", "_made_by", "__weakref__")
    __array_priority__ = 1000  # ndarray (op) Tensor defers to the Tensor's reflected op

    def __init__(self, data, requires_grad=False, dtype=None):
        self.data = dtypes.as_array(data, dtype)
        self.grad = None
        self._ctx = None
        self._retain = False
        self.requires_grad = False
        if requires_grad:
            self.requires_grad_(True)

    @staticmethod
    def _make(data, ctx):
        """Wrap an op's output (or a constant) as a plain Tensor without __init__'s conversions
        (the hot path); autograd.Function.apply calls it on an op's first input."""
        t = Tensor.__new__(Tensor)
        t.data, t.grad, t._ctx, t._retain = data, None, ctx, False
        t.requires_grad = ctx is not None
        return t

    def requires_grad_(self, requires_grad=True):
        if requires_grad and not dtypes.is_float(self.data.dtype):
            raise TypeError(f"only floating-point tensors can require gradients; this one is {self.dtype}")
        self.requires_grad = requires_grad
        return self

    # ---- plain properties ----------------------------------------------------
    shape = property(lambda self: self.data.shape)
    dtype = property(lambda self: self.data.dtype)
    ndim = property(lambda self: self.data.ndim)
    is_leaf = property(lambda self: self._ctx is None)
    grad_fn = property(lambda self: self._ctx)
    device = property(lambda self: "cpu")
    _version = property(_F.version)
    T = property(lambda self: self.permute(*reversed(range(self.ndim))))
    mT = property(lambda self: self.transpose(-2, -1))

    def size(self, dim=None):
        return self.shape if dim is None else self.shape[dim]

    def dim(self):
        return self.data.ndim

    def numel(self):
        return self.data.size

    def is_floating_point(self):
        return dtypes.is_float(self.dtype)

    def __len__(self):
        if self.ndim == 0:
            raise TypeError("len() of a 0-d tensor")
        return len(self.data)

    def __iter__(self):
        if self.ndim == 0:
            raise TypeError("iteration over a 0-d tensor")
        return (self[i] for i in range(len(self)))

    def __bool__(self):  # without it a 0-d tensor would fall back to len() and raise
        return bool(self.data)

    def __float__(self): return float(self.item())
    def __int__(self): return int(self.item())

    def __index__(self):
        if self.dtype.kind not in "iu" or self.data.size != 1:
            raise TypeError(f"only integer tensors of a single element can be used as an index, not {self.dtype} "
                            f"of shape {self.shape}")
        return int(self.item())

    def __format__(self, spec):
        return format(self.item(), spec) if self.ndim == 0 and spec else repr(self)

    def __repr__(self):
        grad = ", requires_grad=True" if self.requires_grad and self._ctx is None else ""
        fn = f", grad_fn=<{type(self._ctx).__name__}>" if self._ctx is not None else ""
        return f"tensor({np.array2string(self.data, precision=4)}, dtype={self.dtype}{grad}{fn})"

    def item(self):
        return self.data.item()

    def numpy(self):
        return self.data

    def tolist(self):
        return self.data.tolist()

    def detach(self):
        """The same data, cut from the graph (shares memory and its version, as in PyTorch)."""
        return Tensor._make(self.data, None)

    def retain_grad(self):
        """Keep `.grad` on this non-leaf tensor after backward (for study)."""
        self._retain = True
        return self

    # ---- differentiation -----------------------------------------------------
    def backward(self, gradient=None, retain_graph=False):
        """Accumulate d(self)/d(leaf) into every leaf's `.grad`. As in PyTorch, grads add
        up across calls and the graph is freed afterwards unless retain_graph=True."""
        if not self.requires_grad:
            made_by = getattr(self, "_made_by", None)
            if made_by is not None:
                raise RuntimeError(f"backward: this tensor is the output of {made_by}, which is not differentiable "
                                   f"({self.dtype} values outside the graph), so it has no gradient")
            raise RuntimeError("backward: this tensor does not require grad and has no grad_fn")
        autograd.backward(self, self._seed_grad(gradient), retain_graph)

    def _seed_grad(self, grad):
        if grad is None:
            if self.data.size != 1:
                raise RuntimeError(f"backward: grad can be implied only for a scalar output, but this "
                                   f"tensor has shape {self.shape}; pass grad= of that shape")
            return np.ones_like(self.data)
        grad = np.asarray(grad.data if isinstance(grad, Tensor) else grad, dtype=self.dtype)
        if grad.shape != self.shape:
            raise ValueError(f"backward: grad has shape {grad.shape} but the tensor has shape {self.shape}")
        return grad

    def _grad_buffer(self):
        """Where backward may write this leaf's first gradient directly: a plain tensor has no
        slot of its own (a Parameter in a flat buffer does)."""
        return None

    def _accumulate(self, g):
        if autograd.is_sparse(g):  # rows of an embedding: added into place
            if self.grad is None:
                self.grad = g.dense()
            else:
                g.add_to(self.grad)
            return
        if self.grad is None:
            self.grad = np.array(g, dtype=self.dtype)  # a copy we own: g may be shared
        else:
            self.grad += g

    # ---- operators (PyTorch's promotion; comparisons give bool tensors outside the graph) ----
    def __add__(self, other): return _F.add(self, other)
    def __radd__(self, other): return _F.add(other, self)
    def __sub__(self, other): return _F.sub(self, other)
    def __rsub__(self, other): return _F.sub(other, self)
    def __mul__(self, other): return _F.mul(self, other)
    def __rmul__(self, other): return _F.mul(other, self)
    def __truediv__(self, other): return _F.div(self, other)
    def __rtruediv__(self, other): return _F.div(other, self)
    def __floordiv__(self, other): return _F.floor_divide(self, other)
    def __rfloordiv__(self, other): return _F.floor_divide(other, self)
    def __pow__(self, other): return _F.pow(self, other)
    def __rpow__(self, other): return _F.pow(other, self)
    def __matmul__(self, other): return _F.matmul(self, _operand(other, self))
    def __rmatmul__(self, other): return _F.matmul(_operand(other, self), self)
    def __neg__(self): return _F.neg(self)
    def __pos__(self): return self
    def __abs__(self): return _F.abs(self)
    def __invert__(self): return _F.bitwise_not(self)
    def __and__(self, other): return _F.bitwise_and(self, other)
    def __or__(self, other): return _F.bitwise_or(self, other)
    def __xor__(self, other): return _F.bitwise_xor(self, other)
    def __lt__(self, other): return _F.lt(self, other)
    def __le__(self, other): return _F.le(self, other)
    def __gt__(self, other): return _F.gt(self, other)
    def __ge__(self, other): return _F.ge(self, other)
    def __eq__(self, other): return _F.eq(self, other)
    def __ne__(self, other): return _F.ne(self, other)
    __hash__ = object.__hash__

    # in place, as in PyTorch: `x += y` writes into x
    def __iadd__(self, other): return _F.add_(self, other)
    def __isub__(self, other): return _F.sub_(self, other)
    def __imul__(self, other): return _F.mul_(self, other)
    def __itruediv__(self, other): return _F.div_(self, other)
    def __ipow__(self, other): return _F.pow_(self, other)
    def __getitem__(self, index): return _F.index(self, index)
    def __setitem__(self, index, value): _F.setitem(self, index, value)

    # ---- every op, as a method: the function of functional.py with self as its first argument ----
    add, sub, mul, div, pow, neg = _F.add, _F.sub, _F.mul, _F.div, _F.pow, _F.neg
    matmul, floor_divide, maximum, minimum = _F.matmul, _F.floor_divide, _F.maximum, _F.minimum
    abs, exp, log, sqrt, rsqrt, square = _F.abs, _F.exp, _F.log, _F.sqrt, _F.rsqrt, _F.square
    tanh, sigmoid, relu, gelu, erf = _F.tanh, _F.sigmoid, _F.relu, _F.gelu, _F.erf
    clamp = clip = _F.clamp
    masked_fill, softmax, log_softmax = _F.masked_fill, _F.softmax, _F.log_softmax
    eq, ne, lt, le, gt, ge = _F.eq, _F.ne, _F.lt, _F.le, _F.gt, _F.ge
    logical_not, logical_and, logical_or, logical_xor = _F.logical_not, _F.logical_and, _F.logical_or, _F.logical_xor
    isnan, isinf, isfinite, nonzero = _F.isnan, _F.isinf, _F.isfinite, _F.nonzero
    equal, allclose = _F.equal, _F.allclose
    sum, mean, var, std = _F.sum, _F.mean, _F.var, _F.std
    max, min, amax, amin, argmax, argmin = _F.max, _F.min, _F.amax, _F.amin, _F.argmax, _F.argmin
    logsumexp, cumsum, sort, argsort, topk, any, all = (_F.logsumexp, _F.cumsum, _F.sort, _F.argsort, _F.topk,
                                                          _F.any, _F.all)
    reshape = view = _F.reshape
    permute, expand, repeat, flatten, unflatten = _F.permute, _F.expand, _F.repeat, _F.flatten, _F.unflatten
    transpose = swapaxes = swapdims = _F.transpose
    squeeze, unsqueeze, split, chunk, unbind = _F.squeeze, _F.unsqueeze, _F.split, _F.chunk, _F.unbind
    narrow, select, tril, triu, gather, scatter, scatter_add = (_F.narrow, _F.select, _F.tril, _F.triu, _F.gather,
                                                                _F.scatter, _F.scatter_add)
    clone, multinomial, bernoulli = _F.clone, _F.multinomial, _F.bernoulli
    add_, sub_, mul_, div_, pow_, neg_ = _F.add_, _F.sub_, _F.mul_, _F.div_, _F.pow_, _F.neg_
    abs_, exp_, log_, sqrt_ = _F.abs_, _F.exp_, _F.log_, _F.sqrt_
    tanh_, sigmoid_, relu_ = _F.tanh_, _F.sigmoid_, _F.relu_
    clamp_ = clip_ = _F.clamp_
    masked_fill_, copy_, fill_, zero_, normal_, uniform_ = (_F.masked_fill_, _F.copy_, _F.fill_, _F.zero_,
                                                              _F.normal_, _F.uniform_)
    scatter_, scatter_add_ = _F.scatter_, _F.scatter_add_

    def where(self, condition, other): return _F.where(condition, self, other)
    def t(self): return self.transpose(0, 1) if self.ndim == 2 else self
    def view_as(self, other): return self.reshape(other.shape)
    reshape_as = view_as
    def expand_as(self, other): return self.expand(other.shape)
    def contiguous(self): return self

    # ---- dtype and device ------------------------------------------------------------
    def to(self, *args, dtype=None, device=None, copy=False):
        """to(dtype), to("cpu"), to(other) (its dtype), to("cpu", dtype): cpu is the only device."""
        for a in args:
            if isinstance(a, Tensor):
                dtype = a.dtype
            elif isinstance(a, str) and a.split(":")[0] in ("cpu", "cuda", "mps"):
                device = a
            else:
                dtype = a
        if device is not None and str(device).split(":")[0] != "cpu":
            raise ValueError(f"to: minigrad runs on the CPU only, got device {device!r}")
        out = self if dtype is None else _F.cast(self, dtype)
        return _F.clone(out) if copy and out is self else out

    def cpu(self): return self
    def type_as(self, other): return _F.cast(self, other.dtype)
    def float(self): return _F.cast(self, np.float32)
    def double(self): return _F.cast(self, np.float64)
    def half(self): return _F.cast(self, np.float16)
    def long(self): return _F.cast(self, np.int64)
    def int(self): return _F.cast(self, np.int32)
    def short(self): return _F.cast(self, np.int16)
    def byte(self): return _F.cast(self, np.uint8)
    def bool(self): return _F.cast(self, np.bool_)


def _operand(x, like):
    """A non-tensor operand of @ as a tensor (arrays keep their dtype)."""
    return x if isinstance(x, Tensor) else like._make(dtypes.as_array(x), None)
