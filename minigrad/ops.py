"""The primitive ops: each one's forward and backward side by side.

Every op works on plain ndarrays. `backward(g)` receives d loss / d output and
returns d loss / d input for each input, in input order; it may return a
gradient of the broadcast shape, since autograd.unbroadcast sums it back down.
The one-line comment above each class is its derivative. Argument checks and the
Tensor-facing signatures are in functional.py; fused ops (softmax, layer norm,
attention, ...) in fused.py.
"""
import numpy as np

from minigrad import kernels
from minigrad.autograd import Function


# ---- elementwise binary ----------------------------------------------------

# d(a+b) = da + db
class Add(Function):
    def forward(self, a, b):
        return a + b

    def backward(self, g):
        return g, g


# d(a-b) = da - db
class Sub(Function):
    def forward(self, a, b):
        return a - b

    def backward(self, g):
        return g, -g


# d(a*b) = b da + a db
class Mul(Function):
    def forward(self, a, b):
        self.a, self.b = a, b
        return a * b

    def backward(self, g):
        da = g * self.b if self.needs_input_grad[0] else None
        db = g * self.a if self.needs_input_grad[1] else None
        return da, db


# d(a/b) = da / b - a db / b^2
class Div(Function):
    def forward(self, a, b):
        self.a, self.b = a, b
        return a / b

    def backward(self, g):
        da = g / self.b if self.needs_input_grad[0] else None
        db = -g * self.a / (self.b * self.b) if self.needs_input_grad[1] else None
        return da, db


# d(a^b) = b a^(b-1) da + a^b log(a) db
class Pow(Function):
    def forward(self, a, b):
        self.a, self.b = a, b
        self.out = a ** b
        return self.out

    def backward(self, g):
        da = g * self.b * self.a ** (self.b - 1) if self.needs_input_grad[0] else None
        db = g * self.out * np.log(self.a) if self.needs_input_grad[1] else None
        return da, db


# ---- elementwise unary -------------------------------------------------------

# d(-x) = -dx
class Neg(Function):
    def forward(self, x):
        return -x

    def backward(self, g):
        return -g


# d exp(x) = exp(x) dx
class Exp(Function):
    def forward(self, x):
        self.out = np.exp(x)
        return self.out

    def backward(self, g):
        return g * self.out


# d log(x) = dx / x
class Log(Function):
    def forward(self, x):
        self.x = x
        return np.log(x)

    def backward(self, g):
        return g / self.x


# d sqrt(x) = dx / (2 sqrt(x))
class Sqrt(Function):
    def forward(self, x):
        self.out = np.sqrt(x)
        return self.out

    def backward(self, g):
        return g / (2 * self.out)


# d tanh(x) = (1 - tanh(x)^2) dx
class Tanh(Function):
    def forward(self, x):
        self.out = np.tanh(x)
        return self.out

    def backward(self, g):
        return g * (1 - self.out * self.out)


# d sigmoid(x) = s (1 - s) dx
class Sigmoid(Function):
    def forward(self, x):
        # exp of a non-positive number never overflows, whatever the sign of x
        e = np.exp(-np.abs(x))
        self.out = np.where(x >= 0, 1 / (1 + e), e / (1 + e)).astype(x.dtype, copy=False)
        return self.out

    def backward(self, g):
        return g * self.out * (1 - self.out)


# d relu(x) = [x > 0] dx
class Relu(Function):
    def forward(self, x):
        self.mask = x > 0
        return np.where(self.mask, x, 0)  # not x * mask: -inf * 0 would be NaN

    def backward(self, g):
        return g * self.mask


# d |x| = sign(x) dx
class Abs(Function):
    def forward(self, x):
        self.sign = np.sign(x)
        return np.abs(x)

    def backward(self, g):
        return g * self.sign


# d clip(x, lo, hi) = [lo <= x <= hi] dx
class Clip(Function):
    def forward(self, x, lo=None, hi=None):
        self.inside = np.ones(x.shape, dtype=bool)
        if lo is not None:
            self.inside &= x >= lo
        if hi is not None:
            self.inside &= x <= hi
        return np.clip(x, lo, hi).astype(x.dtype, copy=False)

    def backward(self, g):
        return g * self.inside


# d cast(x) = cast back(dx)
class Cast(Function):
    def forward(self, x, dtype):
        return x.astype(dtype)

    def backward(self, g):
        return g  # autograd casts the gradient to the input's dtype


# d where(c, a, b) = [c] da + [not c] db
class Where(Function):
    def forward(self, a, b, cond):
        self.cond = cond
        return np.where(cond, a, b)

    def backward(self, g):
        zero = np.zeros((), dtype=g.dtype)
        da = np.where(self.cond, g, zero) if self.needs_input_grad[0] else None
        db = np.where(self.cond, zero, g) if self.needs_input_grad[1] else None
        return da, db


# ---- reductions ------------------------------------------------------------------

def _expand_reduced(g, shape, axis, keepdims):
    """Bring a reduced gradient back to broadcastable form (re-insert the summed axes)."""
    if axis is not None and not keepdims:
        g = np.expand_dims(g, axis)
    elif axis is None and not keepdims:
        g = g.reshape((1,) * len(shape))
    return g


# d sum(x) = broadcast(d out)
class Sum(Function):
    def forward(self, x, axis=None, keepdims=False):
        self.shape, self.axis, self.keepdims = x.shape, axis, keepdims
        return np.asarray(x.sum(axis=axis, keepdims=keepdims))

    def backward(self, g):
        g = _expand_reduced(g, self.shape, self.axis, self.keepdims)
        return np.broadcast_to(g, self.shape)


# d max(x) = d out at the maxima, split evenly between ties (as torch.amax)
class Max(Function):
    def forward(self, x, axis=None, keepdims=False):
        if x.size == 0:
            raise ValueError(f"max: cannot reduce an empty tensor of shape {x.shape}")
        self.x, self.axis, self.keepdims = x, axis, keepdims
        self.out = np.asarray(x.max(axis=axis, keepdims=keepdims))
        return self.out

    def backward(self, g):
        out = _expand_reduced(self.out, self.x.shape, self.axis, self.keepdims)
        g = _expand_reduced(g, self.x.shape, self.axis, self.keepdims)
        hit = self.x == out
        return g * hit / hit.sum(axis=self.axis, keepdims=True)


# ---- movement: no arithmetic, only where the numbers go --------------------------

# d reshape(x) = reshape back(d out)
class Reshape(Function):
    def forward(self, x, shape):
        self.shape = x.shape
        return x.reshape(shape)

    def backward(self, g):
        return g.reshape(self.shape)


# d permute(x) = inverse permute(d out)
class Permute(Function):
    def forward(self, x, dims):
        self.inverse = tuple(np.argsort(dims))
        return x.transpose(dims)

    def backward(self, g):
        return g.transpose(self.inverse)


# d expand(x) = d out, summed back over the expanded dims (by autograd.unbroadcast)
class Expand(Function):
    def forward(self, x, shape):
        return np.broadcast_to(x, shape)

    def backward(self, g):
        return g


# d x[i] = scatter-add of d out into zeros (repeated indices accumulate)
class Index(Function):
    def forward(self, x, index):
        self.shape, self.index = x.shape, index
        self.fancy = _has_array(index)
        try:
            return np.asarray(x[index])
        except IndexError as e:
            raise IndexError(f"index: cannot index a tensor of shape {x.shape} with {index!r}: {e}") from None

    def backward(self, g):
        dx = np.zeros(self.shape, dtype=g.dtype)
        if self.fancy:
            np.add.at(dx, self.index, g)
        else:
            dx[self.index] = g  # basic slicing never repeats an element
        return dx


def _has_array(index):
    parts = index if isinstance(index, tuple) else (index,)
    return any(isinstance(p, (np.ndarray, list)) for p in parts)


# d cat(xs) = the matching slice of d out for each x
class Cat(Function):
    def forward(self, *xs, axis=0):
        self.axis = axis
        self.bounds = np.cumsum([x.shape[axis] for x in xs])[:-1]
        return np.concatenate(xs, axis=axis)

    def backward(self, g):
        return tuple(np.split(g, self.bounds, axis=self.axis))


# ---- matmul ---------------------------------------------------------------------

# d(a@b) = d out @ b^T da + a^T @ d out db   (transpose_b: a @ b^T, b an (out, in) weight)
class MatMul(Function):
    def forward(self, a, b, transpose_b=False):
        self.a, self.b, self.transpose_b = a, b, transpose_b
        return kernels.matmul(a, b.T if transpose_b else b)  # (B, T, C) @ (C, N): one (B*T, C) GEMM

    def backward(self, g):
        g = np.ascontiguousarray(g)  # often a read-only broadcast view (from sum)
        a, b = self.a, self.b.T if self.transpose_b else self.b  # b as it was multiplied
        da = kernels.matmul(g, np.swapaxes(b, -1, -2)) if self.needs_input_grad[0] else None
        if not self.needs_input_grad[1]:
            return da, None
        if b.ndim == 2:  # b is shared by every row of a: its gradient is one GEMM over all rows
            a, g = a.reshape(-1, a.shape[-1]), g.reshape(-1, g.shape[-1])  # (B*T, C), (B*T, N)
        if self.transpose_b:  # the weight's gradient in its own (out, in) layout, into its slot
            return da, kernels.matmul(g.T, a, out=self.grad_buffer(1))
        if _transposed(b):  # x @ W.T written with a transpose: dW in W's layout all the same
            return da, kernels.matmul(g.T, a).T
        return da, kernels.matmul(np.swapaxes(a, -1, -2), g, out=self.grad_buffer(1) if b.ndim == 2 else None)


def _transposed(b):
    return b.ndim == 2 and not b.flags.c_contiguous and b.T.flags.c_contiguous
