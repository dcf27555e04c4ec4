"""The primitive ops on numbers: each one's forward and backward side by side.

Every op works on plain ndarrays. `backward(g)` receives d loss / d output and
returns d loss / d input for each input, in input order; it may return a
gradient of the broadcast shape, since autograd.unbroadcast sums it back down.
The one-line comment above each class is its derivative. `saves_inputs` /
`saves_output` name the arrays backward reads, for autograd's in-place check.
Movement and indexing primitives (reshape, index, gather, ...) are in
movement.py; argument checks and dtype rules in the functional modules; fused
ops (softmax, layer norm, attention, ...) in fused.py.
"""
import math

import numpy as np

from minigrad import kernels
from minigrad.autograd import Function


# ---- elementwise binary ----------------------------------------------------

# d(a+b) = da + db
class Add(Function):
    saves_inputs = ()

    def forward(self, a, b):
        return a + b

    def backward(self, g):
        return g, g


# d(a-b) = da - db
class Sub(Function):
    saves_inputs = ()

    def forward(self, a, b):
        return a - b

    def backward(self, g):
        return g, -g


def _other_needs_grad(ctx):
    """a product's backward reads a only for db and b only for da"""
    return [i for i in (0, 1) if ctx.needs_input_grad[1 - i]]


# d(a*b) = b da + a db
class Mul(Function):
    saved_inputs = _other_needs_grad

    def forward(self, a, b):
        self.a, self.b = a, b
        return a * b

    def backward(self, g):
        da = g * self.b if self.needs_input_grad[0] else None
        db = g * self.a if self.needs_input_grad[1] else None
        return da, db


# d(a/b) = da / b - a db / b^2
class Div(Function):
    def saved_inputs(self):
        return [i for i in (0, 1) if self.needs_input_grad[1] or (i == 1 and self.needs_input_grad[0])]

    def forward(self, a, b):
        self.a, self.b = a, b
        return a / b

    def backward(self, g):
        da = g / self.b if self.needs_input_grad[0] else None
        db = -g * self.a / (self.b * self.b) if self.needs_input_grad[1] else None
        return da, db


# d(a^b) = b a^(b-1) da + a^b log(a) db;  as PyTorch, the first term is 0 where b = 0 and the
# second where a = 0 and b >= 0 (the limits, where the formulas would give 0*inf or 0*log 0)
class Pow(Function):
    saves_output = True

    def forward(self, a, b):
        self.a, self.b = a, b
        with np.errstate(divide="ignore", invalid="ignore"):  # 0 ** -1 = inf, (-1) ** 0.5 = nan, silently
            self.out = a ** b
        return self.out

    def backward(self, g):
        zero = np.zeros((), dtype=g.dtype)
        da = db = None
        with np.errstate(divide="ignore", invalid="ignore"):
            if self.needs_input_grad[0]:
                da = np.where(self.b == 0, zero, g * self.b * self.a ** (self.b - 1))
            if self.needs_input_grad[1]:
                db = np.where((self.a == 0) & (self.b >= 0), zero, g * self.out * np.log(self.a))
        return da, db


def _tie_split(g, win, tie):
    """g where this input won, half of g where both tied (as PyTorch's maximum/minimum)."""
    return g * (win + 0.5 * tie).astype(g.dtype)


# d max(a, b) = [a > b] da + [b > a] db, ties split evenly
class Maximum(Function):
    pick, wins = staticmethod(np.maximum), staticmethod(np.greater)

    def forward(self, a, b):
        self.a, self.b = a, b
        return self.pick(a, b)

    def backward(self, g):
        tie = self.a == self.b
        return _tie_split(g, self.wins(self.a, self.b), tie), _tie_split(g, self.wins(self.b, self.a), tie)


# d min(a, b) = [a < b] da + [b < a] db, ties split evenly
class Minimum(Maximum):
    pick, wins = staticmethod(np.minimum), staticmethod(np.less)


# ---- elementwise unary -------------------------------------------------------

# d(-x) = -dx
class Neg(Function):
    saves_inputs = ()

    def forward(self, x):
        return -x

    def backward(self, g):
        return -g


# d exp(x) = exp(x) dx
class Exp(Function):
    saves_inputs, saves_output = (), True

    def forward(self, x):
        self.out = np.exp(x)
        return self.out

    def backward(self, g):
        return g * self.out


# d log(x) = dx / x
class Log(Function):
    def forward(self, x):
        self.x = x
        with np.errstate(divide="ignore", invalid="ignore"):  # log 0 = -inf, log -1 = nan, as torch: silently
            return np.log(x)

    def backward(self, g):
        return g / self.x


# d sqrt(x) = dx / (2 sqrt(x))
class Sqrt(Function):
    saves_inputs, saves_output = (), True

    def forward(self, x):
        with np.errstate(invalid="ignore"):  # sqrt -1 = nan, silently
            self.out = np.sqrt(x)
        return self.out

    def backward(self, g):
        return g / (2 * self.out)


# d tanh(x) = (1 - tanh(x)^2) dx
class Tanh(Function):
    saves_inputs, saves_output = (), True

    def forward(self, x):
        self.out = np.tanh(x)
        return self.out

    def backward(self, g):
        return g * (1 - self.out * self.out)


# d sigmoid(x) = s (1 - s) dx
class Sigmoid(Function):
    saves_inputs, saves_output = (), True

    def forward(self, x):
        # exp of a non-positive number never overflows, whatever the sign of x
        e = np.exp(-np.abs(x))
        self.out = np.where(x >= 0, 1 / (1 + e), e / (1 + e)).astype(x.dtype, copy=False)
        return self.out

    def backward(self, g):
        return g * self.out * (1 - self.out)


# d erf(x) = 2/sqrt(pi) exp(-x^2) dx
class Erf(Function):
    def forward(self, x):
        self.x = x
        return kernels.erf(x)

    def backward(self, g):
        return g * ((2 / math.sqrt(math.pi)) * np.exp(-self.x * self.x))


# d relu(x) = [x > 0] dx
class Relu(Function):
    saves_inputs = ()

    def forward(self, x):
        self.mask = x > 0
        return np.where(self.mask, x, 0)  # not x * mask: -inf * 0 would be NaN

    def backward(self, g):
        return g * self.mask


# d |x| = sign(x) dx
class Abs(Function):
    saves_inputs = ()

    def forward(self, x):
        self.sign = np.sign(x)
        return np.abs(x)

    def backward(self, g):
        return g * self.sign


# d clip(x, lo, hi) = [lo <= x <= hi] dx
class Clip(Function):
    saves_inputs = ()

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
    saves_inputs = ()

    def forward(self, x, dtype):
        return x.astype(dtype)

    def backward(self, g):
        return g  # autograd casts the gradient to the input's dtype


# d clone(x) = dx  (a copy with its own memory, so in-place writes leave x alone)
class Clone(Function):
    saves_inputs = ()

    def forward(self, x):
        return x.copy()

    def backward(self, g):
        return g


# d where(c, a, b) = [c] da + [not c] db
class Where(Function):
    saves_inputs = ()

    def forward(self, a, b, cond):
        self.cond = cond
        return np.where(cond, a, b)

    def backward(self, g):
        zero = np.zeros((), dtype=g.dtype)
        da = np.where(self.cond, g, zero) if self.needs_input_grad[0] else None
        db = np.where(self.cond, zero, g) if self.needs_input_grad[1] else None
        return da, db


# ---- reductions and scans --------------------------------------------------------

def _expand_reduced(g, shape, axis, keepdims):
    """Bring a reduced gradient back to broadcastable form (re-insert the summed axes)."""
    if axis is not None and not keepdims:
        g = np.expand_dims(g, axis)
    elif axis is None and not keepdims:
        g = g.reshape((1,) * len(shape))
    return g


# d sum(x) = broadcast(d out)
class Sum(Function):
    saves_inputs = ()

    def forward(self, x, axis=None, keepdims=False, dtype=None):
        self.shape, self.axis, self.keepdims = x.shape, axis, keepdims
        return np.asarray(x.sum(axis=axis, keepdims=keepdims, dtype=dtype))

    def backward(self, g):
        g = _expand_reduced(g, self.shape, self.axis, self.keepdims)
        return np.broadcast_to(g, self.shape)


# d amax(x) = d out at the maxima, split evenly between ties (as torch.amax)
class Amax(Function):
    saves_output = True
    reduce = staticmethod(np.max)

    def forward(self, x, axis=None, keepdims=False):
        self.x, self.axis, self.keepdims = x, axis, keepdims
        self.out = np.asarray(self.reduce(x, axis=axis, keepdims=keepdims))
        return self.out

    def backward(self, g):
        out = _expand_reduced(self.out, self.x.shape, self.axis, self.keepdims)
        g = _expand_reduced(g, self.x.shape, self.axis, self.keepdims)
        hit = self.x == out
        return g * hit / hit.sum(axis=self.axis, keepdims=True)


# d amin(x) = d out at the minima, split evenly between ties (as torch.amin)
class Amin(Amax):
    reduce = staticmethod(np.min)


# d cumsum(x)_i = sum over j >= i of d out_j  (a cumulative sum from the far end)
class Cumsum(Function):
    saves_inputs = ()

    def forward(self, x, axis, dtype=None):
        self.axis = axis
        return np.cumsum(x, axis=axis, dtype=dtype)

    def backward(self, g):
        return np.flip(np.cumsum(np.flip(g, self.axis), axis=self.axis), self.axis)


# ---- matmul ---------------------------------------------------------------------

# d(a@b) = d out @ b^T da + a^T @ d out db   (transpose_b: a @ b^T, b an (out, in) weight)
class MatMul(Function):
    saved_inputs = _other_needs_grad

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
