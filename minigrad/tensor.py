"""The Tensor: an ndarray that remembers the op that made it.

Each method here is a thin, one-line call into functional.py (argument checks,
dtype rules, composites), which applies the ops of ops.py (primitives) and
fused.py (fused kernels), so this file reads as the table of contents of what a
Tensor can do.
"""
import numpy as np

from minigrad import autograd, functional as _F, ops as _ops


class Tensor:
    """An n-d array that can record the ops applied to it and differentiate them."""

    __slots__ = ("data", "grad", "requires_grad", "_ctx", "_retain", "__weakref__")
    __array_priority__ = 1000  # ndarray (op) Tensor defers to the Tensor's reflected op

    def __init__(self, data, requires_grad=False, dtype=None):
        self.data = _F.as_array(data, dtype)
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

    def requires_grad_(self, flag=True):
        if flag and not np.issubdtype(self.data.dtype, np.floating):
            raise TypeError(f"only floating-point tensors can require gradients; this one is {self.dtype}")
        self.requires_grad = flag
        return self

    # ---- plain properties ----------------------------------------------------
    shape = property(lambda self: self.data.shape)
    dtype = property(lambda self: self.data.dtype)
    ndim = property(lambda self: self.data.ndim)
    is_leaf = property(lambda self: self._ctx is None)
    grad_fn = property(lambda self: self._ctx)
    T = property(lambda self: self.permute(*reversed(range(self.ndim))))

    def size(self, dim=None):
        return self.shape if dim is None else self.shape[dim]

    def numel(self):
        return self.data.size

    def __len__(self):
        return len(self.data)

    def __bool__(self):  # without it a 0-d tensor would fall back to len() and raise
        return bool(self.data)

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
        """The same data, cut from the graph (shares memory, as in PyTorch)."""
        return Tensor._make(self.data, None)

    def retain_grad(self):
        """Keep `.grad` on this non-leaf tensor after backward (for study)."""
        self._retain = True
        return self

    # ---- differentiation -----------------------------------------------------
    def backward(self, grad=None, retain_graph=False):
        """Accumulate d(self)/d(leaf) into every leaf's `.grad`. As in PyTorch, grads add
        up across calls and the graph is freed afterwards unless retain_graph=True."""
        if not self.requires_grad:
            raise RuntimeError("backward: this tensor does not require grad and has no grad_fn")
        autograd.backward(self, self._seed_grad(grad), retain_graph)

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

    # ---- arithmetic (broadcasting like NumPy) -----------------------------------
    def __add__(self, other): return _F.binary(_ops.Add, self, _F.lift(other, self))
    def __radd__(self, other): return _F.binary(_ops.Add, _F.lift(other, self), self)
    def __sub__(self, other): return _F.binary(_ops.Sub, self, _F.lift(other, self))
    def __rsub__(self, other): return _F.binary(_ops.Sub, _F.lift(other, self), self)
    def __mul__(self, other): return _F.binary(_ops.Mul, self, _F.lift(other, self))
    def __rmul__(self, other): return _F.binary(_ops.Mul, _F.lift(other, self), self)
    def __truediv__(self, other): return _F.binary(_ops.Div, self, _F.lift(other, self))
    def __rtruediv__(self, other): return _F.binary(_ops.Div, _F.lift(other, self), self)
    def __pow__(self, other): return _F.binary(_ops.Pow, self, _F.lift(other, self))
    def __rpow__(self, other): return _F.binary(_ops.Pow, _F.lift(other, self), self)
    def __matmul__(self, other): return _F.matmul(self, _F.lift(other, self))
    def __rmatmul__(self, other): return _F.matmul(_F.lift(other, self), self)
    def __neg__(self): return _ops.Neg.apply(self)
    matmul = __matmul__

    # comparisons give boolean tensors outside the graph
    def __lt__(self, other): return Tensor(self.data < _F.raw(other))
    def __le__(self, other): return Tensor(self.data <= _F.raw(other))
    def __gt__(self, other): return Tensor(self.data > _F.raw(other))
    def __ge__(self, other): return Tensor(self.data >= _F.raw(other))
    def __eq__(self, other): return Tensor(self.data == _F.raw(other))
    def __ne__(self, other): return Tensor(self.data != _F.raw(other))
    __hash__ = object.__hash__

    # ---- elementwise -------------------------------------------------------------
    def exp(self): return _ops.Exp.apply(self)
    def log(self): return _ops.Log.apply(self)
    def sqrt(self): return _ops.Sqrt.apply(self)
    def tanh(self): return _ops.Tanh.apply(self)
    def sigmoid(self): return _ops.Sigmoid.apply(self)
    def relu(self): return _F.relu(self)
    def gelu(self): return _F.gelu(self)
    def abs(self): return _ops.Abs.apply(self)
    def clip(self, min=None, max=None): return _F.clip(self, min, max)
    clamp = clip
    def masked_fill(self, mask, value): return _F.masked_fill(self, mask, value)

    # ---- reductions ----------------------------------------------------------------
    def sum(self, axis=None, keepdims=False):
        return _ops.Sum.apply(self, axis=_F.axis_arg(axis, self.ndim, "sum"), keepdims=keepdims)
    def max(self, axis=None, keepdims=False):
        return _ops.Max.apply(self, axis=_F.axis_arg(axis, self.ndim, "max"), keepdims=keepdims)
    def min(self, axis=None, keepdims=False): return -((-self).max(axis, keepdims))
    def mean(self, axis=None, keepdims=False): return _F.mean(self, axis, keepdims)
    def var(self, axis=None, keepdims=False, correction=1): return _F.var(self, axis, keepdims, correction)
    def softmax(self, axis=-1): return _F.softmax(self, axis)
    def log_softmax(self, axis=-1): return _F.log_softmax(self, axis)

    # ---- shape -------------------------------------------------------------------
    def reshape(self, *shape): return _F.reshape(self, *shape)
    view = reshape
    def permute(self, *dims): return _F.permute(self, *dims)
    def transpose(self, dim0, dim1): return _F.swapaxes(self, dim0, dim1)
    swapaxes = transpose
    def expand(self, *shape): return _F.expand(self, shape[0] if len(shape) == 1 and
                                               isinstance(shape[0], (tuple, list)) else shape)
    def squeeze(self, axis=None): return _F.squeeze(self, axis)
    def unsqueeze(self, axis): return _F.unsqueeze(self, axis)
    def flatten(self, start_dim=0): return self.reshape(*self.shape[:start_dim], -1)
    def split(self, split_size_or_sections, axis=0): return _F.split(self, split_size_or_sections, axis)
    def __getitem__(self, index): return _F.index(self, index)
    def contiguous(self): return self

    # ---- dtype ---------------------------------------------------------------------
    def to(self, dtype): return _F.cast(self, dtype)
    def float(self): return self.to(np.float32)
    def double(self): return self.to(np.float64)

