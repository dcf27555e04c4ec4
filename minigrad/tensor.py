"""The Tensor: an ndarray that remembers the op that made it.

Each method here is a thin, one-line call into an op of ops.py (primitives with
a hand-written backward) or functional.py (fused kernels and composites), so
this file reads as the table of contents of what a Tensor can do.
"""
import numpy as np

from minigrad import autograd


class Tensor:
    """An n-d array that can record the ops applied to it and differentiate them."""

    __slots__ = ("data", "grad", "requires_grad", "_ctx", "_retain", "__weakref__")
    __array_priority__ = 1000  # ndarray (op) Tensor defers to the Tensor's reflected op

    def __init__(self, data, requires_grad=False, dtype=None):
        self.data = _as_array(data, dtype)
        self.grad = None
        self._ctx = None
        self._retain = False
        self.requires_grad = False
        if requires_grad:
            self.requires_grad_(True)

    @classmethod
    def _make(cls, data, ctx):
        """Wrap an op's output without __init__'s conversions (the hot path)."""
        t = cls.__new__(cls)
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

    def _accumulate(self, g):
        if self.grad is None:
            self.grad = np.array(g, dtype=self.dtype)  # a copy we own: g may be shared
        else:
            self.grad += g

    # ---- arithmetic (broadcasting like NumPy) -----------------------------------
    def __add__(self, other): return _binary(_ops.Add, self, _lift(other, self))
    def __radd__(self, other): return _binary(_ops.Add, _lift(other, self), self)
    def __sub__(self, other): return _binary(_ops.Sub, self, _lift(other, self))
    def __rsub__(self, other): return _binary(_ops.Sub, _lift(other, self), self)
    def __mul__(self, other): return _binary(_ops.Mul, self, _lift(other, self))
    def __rmul__(self, other): return _binary(_ops.Mul, _lift(other, self), self)
    def __truediv__(self, other): return _binary(_ops.Div, self, _lift(other, self))
    def __rtruediv__(self, other): return _binary(_ops.Div, _lift(other, self), self)
    def __pow__(self, other): return _binary(_ops.Pow, self, _lift(other, self))
    def __rpow__(self, other): return _binary(_ops.Pow, _lift(other, self), self)
    def __matmul__(self, other): return _F.matmul(self, _lift(other, self))
    def __rmatmul__(self, other): return _F.matmul(_lift(other, self), self)
    def __neg__(self): return _ops.Neg.apply(self)
    matmul = __matmul__

    # comparisons give boolean tensors outside the graph
    def __lt__(self, other): return Tensor(self.data < _raw(other))
    def __le__(self, other): return Tensor(self.data <= _raw(other))
    def __gt__(self, other): return Tensor(self.data > _raw(other))
    def __ge__(self, other): return Tensor(self.data >= _raw(other))
    def __eq__(self, other): return Tensor(self.data == _raw(other))
    def __ne__(self, other): return Tensor(self.data != _raw(other))
    __hash__ = object.__hash__

    # ---- elementwise -------------------------------------------------------------
    def exp(self): return _ops.Exp.apply(self)
    def log(self): return _ops.Log.apply(self)
    def sqrt(self): return _ops.Sqrt.apply(self)
    def tanh(self): return _ops.Tanh.apply(self)
    def sigmoid(self): return _ops.Sigmoid.apply(self)
    def relu(self): return _ops.Relu.apply(self)
    def gelu(self): return _F.gelu(self)
    def abs(self): return _ops.Abs.apply(self)
    def clip(self, min=None, max=None): return _ops.Clip.apply(self, lo=min, hi=max)
    clamp = clip
    def masked_fill(self, mask, value): return _F.masked_fill(self, mask, value)

    # ---- reductions ----------------------------------------------------------------
    def sum(self, axis=None, keepdims=False):
        return _ops.Sum.apply(self, axis=_axis_arg(axis, self.ndim, "sum"), keepdims=keepdims)
    def max(self, axis=None, keepdims=False):
        return _ops.Max.apply(self, axis=_axis_arg(axis, self.ndim, "max"), keepdims=keepdims)
    def min(self, axis=None, keepdims=False): return -((-self).max(axis, keepdims))
    def mean(self, axis=None, keepdims=False): return _F.mean(self, axis, keepdims)
    def var(self, axis=None, keepdims=False, correction=1): return _F.var(self, axis, keepdims, correction)
    def softmax(self, axis=-1): return _F.softmax(self, axis)
    def log_softmax(self, axis=-1): return _F.log_softmax(self, axis)

    # ---- shape -------------------------------------------------------------------
    def reshape(self, *shape): return _ops.Reshape.apply(self, shape=_shape_arg(shape, self.data.size))
    view = reshape
    def permute(self, *dims): return _ops.Permute.apply(self, dims=_dims_arg(dims, self.ndim))
    def transpose(self, dim0, dim1): return _F.swapaxes(self, dim0, dim1)
    swapaxes = transpose
    def expand(self, *shape): return _F.expand(self, shape[0] if len(shape) == 1 and
                                               isinstance(shape[0], (tuple, list)) else shape)
    def squeeze(self, axis=None): return _F.squeeze(self, axis)
    def unsqueeze(self, axis): return _F.unsqueeze(self, axis)
    def flatten(self, start_dim=0): return self.reshape(*self.shape[:start_dim], -1)
    def split(self, split_size_or_sections, axis=0): return _F.split(self, split_size_or_sections, axis)
    def __getitem__(self, index): return _ops.Index.apply(self, index=_index_arg(index))
    def contiguous(self): return self

    # ---- dtype ---------------------------------------------------------------------
    def to(self, dtype):
        dtype = np.dtype(dtype)
        return self if dtype == self.dtype else _ops.Cast.apply(self, dtype=dtype)
    def float(self): return self.to(np.float32)
    def double(self): return self.to(np.float64)


def _as_array(data, dtype=None):
    """Convert user data the way torch.tensor does: Python floats become float32,
    Python ints int64, and NumPy arrays keep their dtype unless `dtype` says otherwise."""
    if isinstance(data, Tensor):
        data = data.data
    if dtype is not None:
        return np.array(data, dtype=np.dtype(dtype))
    if isinstance(data, (np.ndarray, np.generic)):
        return np.array(data)
    arr = np.array(data)
    if arr.dtype == np.float64:
        return arr.astype(np.float32)
    if np.issubdtype(arr.dtype, np.integer):
        return arr.astype(np.int64)
    if arr.dtype == object:
        raise TypeError(f"tensor: cannot convert {type(data).__name__} to a numeric array")
    return arr


def _lift(x, like):
    """Turn the other operand of a binary op into a Tensor. A Python number takes the
    dtype of the tensor it meets (float32 stays float32: no silent upcasting)."""
    if isinstance(x, Tensor):
        return x
    if isinstance(x, (int, float, bool, np.integer, np.floating, np.bool_)):
        # NumPy scalars count as numbers too (np.sqrt(d) is an np.float64, not a float64 tensor)
        floating = np.issubdtype(like.dtype, np.floating)
        integral = isinstance(x, (int, bool, np.integer, np.bool_))
        dtype = like.dtype if floating or integral else np.float32
        return Tensor._make(np.asarray(x, dtype=dtype), None)
    return Tensor._make(_as_array(x), None)


def _binary(op, a, b):
    """Apply a broadcasting binary op; a shape clash names the op and both shapes."""
    fa, fb = (np.issubdtype(t.dtype, np.floating) for t in (a, b))
    if fa != fb:  # integer (x) float -> that float, as torch (NumPy would say float64)
        a, b = (a, b.to(a.dtype)) if fa else (a.to(b.dtype), b)
    try:
        return op.apply(a, b)
    except ValueError:
        try:
            np.broadcast_shapes(a.shape, b.shape)
        except ValueError:
            raise ValueError(f"{op.__name__.lower()}: shapes {a.shape} and {b.shape} "
                             f"cannot be broadcast together") from None
        raise


def _raw(x):
    return x.data if isinstance(x, Tensor) else x


def _shape_arg(shape, size):
    """Accept reshape(2, 3) and reshape((2, 3)); check the element count here, where the
    message can name both shapes."""
    if len(shape) == 1 and isinstance(shape[0], (tuple, list)):
        shape = tuple(shape[0])
    shape = tuple(int(s) for s in shape)
    known = int(np.prod([s for s in shape if s != -1]))
    if shape.count(-1) > 1 or (-1 not in shape and known != size) or (-1 in shape and (known == 0 or size % known)):
        raise ValueError(f"reshape: cannot view {size} elements as shape {shape}")
    return shape


def _axis_arg(axis, ndim, op):
    """An int or a tuple of axes (NumPy takes no lists), each checked against ndim."""
    if axis is None:
        return None
    axes = tuple(axis) if isinstance(axis, (list, tuple)) else (axis,)
    for a in axes:
        check_axis(a, ndim, op)
    return axes if isinstance(axis, (list, tuple)) else axis


def check_axis(axis, ndim, op):
    """Axis `axis` of an ndim-d tensor as a non-negative int; out of range names the op."""
    if not -ndim <= axis < ndim:
        raise IndexError(f"{op}: axis {axis} is out of range for a tensor with {ndim} dims")
    return axis % ndim


def _dims_arg(dims, ndim):
    if len(dims) == 1 and isinstance(dims[0], (tuple, list)):
        dims = tuple(dims[0])
    if sorted(d % ndim for d in dims) != list(range(ndim)) if ndim else dims:
        raise ValueError(f"permute: {dims} is not a permutation of the {ndim} dims")
    return tuple(d % ndim for d in dims)


def _index_arg(index):
    """Unwrap Tensors used as indices so NumPy sees plain arrays."""
    if isinstance(index, tuple):
        return tuple(_raw(i) for i in index)
    return _raw(index)


from minigrad import ops as _ops  # noqa: E402  (ops need Tensor defined first)
from minigrad import functional as _F  # noqa: E402
