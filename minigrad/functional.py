"""Ops built on the primitives, and the fused ops a fast GPT needs.

Composites (mean, var, stack, masked_fill, dropout, ...) are a few lines of
primitives each, so they need no backward of their own. The fused ops
(matmul, softmax, layer_norm, gelu, cross_entropy, embedding, attention) call
one kernel forward and one backward: written as primitives they would be
slower and hold more memory. Each is gradchecked in the test suite.
"""
import numpy as np

from minigrad import kernels, ops, random
from minigrad.autograd import Function
from minigrad.tensor import Tensor, _lift, check_axis
from minigrad.fused import (  # noqa: F401  (re-exported: one namespace, like torch.nn.functional)
    causal_self_attention, cross_entropy, embedding, gelu, layer_norm, log_softmax, scaled_dot_product_attention,
    softmax)


# ---- composites of primitives ------------------------------------------------------

def _axes(axis, ndim, op="reduce"):
    if axis is None:
        return tuple(range(ndim))
    return tuple(check_axis(a, ndim, op) for a in (axis if isinstance(axis, (tuple, list)) else (axis,)))


def mean(x, axis=None, keepdims=False):
    n = int(np.prod([x.shape[a] for a in _axes(axis, x.ndim, "mean")]))
    return x.sum(axis, keepdims) / n


def var(x, axis=None, keepdims=False, correction=1):
    """Variance with Bessel's correction by default, as torch.var."""
    n = int(np.prod([x.shape[a] for a in _axes(axis, x.ndim, "var")]))
    centered = x - x.mean(axis, keepdims=True)
    return (centered * centered).sum(axis, keepdims) / max(n - correction, 0)


def swapaxes(x, a, b):
    dims = list(range(x.ndim))
    a, b = check_axis(a, x.ndim, "transpose"), check_axis(b, x.ndim, "transpose")
    dims[a], dims[b] = dims[b], dims[a]
    return x.permute(*dims)


def expand(x, shape):
    shape = tuple(x.shape[i - len(shape) + x.ndim] if s == -1 else s for i, s in enumerate(shape))
    try:
        ok = np.broadcast_shapes(x.shape, shape) == shape  # expand may only grow size-1 dims
    except ValueError:
        ok = False
    if not ok:
        raise ValueError(f"expand: cannot expand shape {x.shape} to {shape}")
    return ops.Expand.apply(x, shape=shape)


def squeeze(x, axis=None):
    axes = [a for a in range(x.ndim) if x.shape[a] == 1] if axis is None else _axes(axis, x.ndim, "squeeze")
    return x.reshape(*[n for i, n in enumerate(x.shape) if i not in axes or n != 1])


def unsqueeze(x, axis):
    axis = check_axis(axis, x.ndim + 1, "unsqueeze")
    return x.reshape(*x.shape[:axis], 1, *x.shape[axis:])


def cat(tensors, axis=0):
    tensors = [_lift(t, tensors[0]) for t in tensors]
    shapes = [t.shape for t in tensors]
    if len({t.ndim for t in tensors}) != 1:
        raise ValueError(f"cat: tensors {shapes} differ in number of dims")
    axis = check_axis(axis, tensors[0].ndim, "cat")
    if len({s[:axis] + s[axis + 1:] for s in shapes}) != 1:
        raise ValueError(f"cat: shapes {shapes} differ outside axis {axis}")
    return ops.Cat.apply(*tensors, axis=axis)


def stack(tensors, axis=0):
    shapes = [t.shape for t in tensors]
    if len(set(shapes)) != 1:
        raise ValueError(f"stack: tensors must all have the same shape, got {shapes}")
    axis = check_axis(axis, tensors[0].ndim + 1, "stack")
    return cat([unsqueeze(t, axis) for t in tensors], axis)


def split(x, split_size_or_sections, axis=0):
    """Split into chunks of a given size (int) or of the given sizes (list), as torch.split."""
    axis = check_axis(axis, x.ndim, "split")
    n = x.shape[axis]
    if isinstance(split_size_or_sections, int):
        if split_size_or_sections < 1:
            raise ValueError(f"split: split size must be positive, got {split_size_or_sections}")
        sizes = [min(split_size_or_sections, n - s) for s in range(0, n, split_size_or_sections)]
    else:
        sizes = list(split_size_or_sections)
        if sum(sizes) != n:
            raise ValueError(f"split: sections {sizes} do not add up to {n} along axis {axis}")
    starts = np.cumsum([0] + sizes[:-1])
    lead = (slice(None),) * axis
    return tuple(x[lead + (slice(s, s + k),)] for s, k in zip(starts, sizes))


def where(cond, a, b):
    cond = cond.data if isinstance(cond, Tensor) else np.asarray(cond)
    a = a if isinstance(a, Tensor) else _lift(a, b)
    b = _lift(b, a)
    try:
        np.broadcast_shapes(cond.shape, a.shape, b.shape)
    except ValueError:
        raise ValueError(f"where: shapes cond {cond.shape}, a {a.shape} and b {b.shape} "
                         f"cannot be broadcast together") from None
    return ops.Where.apply(a, b, cond=cond.astype(bool))


def masked_fill(x, mask, value):
    """Set x to `value` where mask is True; the gradient there is zero."""
    return where(mask, _lift(value, x), x)


def dropout(x, p=0.5, training=True):
    """Zero each element with probability p and scale the rest by 1/(1-p) (inverted dropout)."""
    if not 0 <= p <= 1:
        raise ValueError(f"dropout: p must be in [0, 1], got {p}")
    if not training or p == 0:
        return x
    if p == 1:
        return x * 0
    keep = random.rng().random(x.shape) >= p
    return x * Tensor(keep.astype(x.dtype) / np.asarray(1 - p, dtype=x.dtype))


def relu(x):
    return x.relu()


# ---- matmul --------------------------------------------------------------------

# d(a@b) = d out @ b^T da + a^T @ d out db
class MatMul(Function):
    def forward(self, a, b):
        self.a, self.b = a, b
        return kernels.matmul(a, b)

    def backward(self, g):
        g = np.ascontiguousarray(g)  # often a read-only broadcast view (from sum)
        da = kernels.matmul(g, np.swapaxes(self.b, -1, -2)) if self.needs_input_grad[0] else None
        db = kernels.matmul(np.swapaxes(self.a, -1, -2), g) if self.needs_input_grad[1] else None
        return da, db


def matmul(a, b):
    """N-d matmul with NumPy broadcasting of the batch dims; 1-d operands as in np.matmul."""
    if a.ndim == 0 or b.ndim == 0:
        raise ValueError(f"matmul: operands must be at least 1-d, got shapes {a.shape} and {b.shape}")
    if a.ndim == 1:  # (n,) @ (..., n, m) -> (..., m);  (n,) @ (n,) -> ()
        out = matmul(a.unsqueeze(0), b)
        return out.squeeze(-2) if b.ndim > 1 else out.squeeze(-1)
    if b.ndim == 1:
        return matmul(a, b.unsqueeze(-1)).squeeze(-1)
    if a.shape[-1] != b.shape[-2]:
        raise ValueError(f"matmul: shapes {a.shape} and {b.shape} cannot be multiplied "
                         f"({a.shape[-1]} != {b.shape[-2]})")
    try:
        np.broadcast_shapes(a.shape[:-2], b.shape[:-2])
    except ValueError:
        raise ValueError(f"matmul: batch dims of {a.shape} and {b.shape} do not broadcast") from None
    if b.ndim == 2 and a.ndim > 2:
        # (B, T, C) @ (C, N) as one (B*T, C) @ (C, N) GEMM, so the weight's gradient is one GEMM too
        return MatMul.apply(a.reshape(-1, a.shape[-1]), b).reshape(*a.shape[:-1], b.shape[1])
    return MatMul.apply(a, b)


