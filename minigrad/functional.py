"""Every op as a function of tensors: argument checks, dtype rules and composites.

This is the layer users call (`minigrad.functional as F`, like torch and
torch.nn.functional), and the layer every Tensor method is a one-line call into.
It checks arguments where a message can name the op and the shapes, applies
PyTorch's dtype rules, and then either applies one Function (ops.py for
primitives, fused.py for fused kernels) or composes other functions here
(mean, var, stack, dropout, ...), which need no backward of their own.

It does not import the Tensor class (tensor.py imports this file): a tensor is
recognised by `is_tensor`, and constants become tensors through an operand's
`_make`, the way each op's output does.
"""
import math

import numpy as np

from minigrad import fused, ops, random


def is_tensor(x):
    """True for a minigrad Tensor (or Parameter): the only objects with a graph slot."""
    return hasattr(x, "_ctx") and hasattr(x, "data")


def raw(x):
    """The ndarray behind a Tensor; anything else as it is."""
    return x.data if is_tensor(x) else x


# ---- dtypes: Python numbers, lists and arrays meeting tensors --------------------------

def as_array(data, dtype=None):
    """Convert user data the way torch.tensor does: Python floats become float32,
    Python ints int64, and NumPy arrays keep their dtype unless `dtype` says otherwise."""
    data = raw(data)
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


def lift(x, like):
    """Turn the other operand of a binary op into a tensor. A Python number takes the
    dtype of the tensor it meets (float32 stays float32: no silent upcasting)."""
    if is_tensor(x):
        return x
    if isinstance(x, (int, float, bool, np.integer, np.floating, np.bool_)):
        # NumPy scalars count as numbers too (np.sqrt(d) is an np.float64, not a float64 tensor)
        floating = np.issubdtype(like.dtype, np.floating)
        integral = isinstance(x, (int, bool, np.integer, np.bool_))
        dtype = like.dtype if floating or integral else np.float32
        return like._make(np.asarray(x, dtype=dtype), None)
    return like._make(as_array(x), None)


def binary(op, a, b):
    """Apply a broadcasting binary op; a shape clash names the op and both shapes."""
    fa, fb = (np.issubdtype(t.dtype, np.floating) for t in (a, b))
    if fa != fb:  # integer (x) float -> that float, as torch (NumPy would say float64)
        a, b = (a, cast(b, a.dtype)) if fa else (cast(a, b.dtype), b)
    try:
        return op.apply(a, b)
    except ValueError:
        try:
            np.broadcast_shapes(a.shape, b.shape)
        except ValueError:
            raise ValueError(f"{op.__name__.lower()}: shapes {a.shape} and {b.shape} "
                             f"cannot be broadcast together") from None
        raise


def cast(x, dtype):
    dtype = np.dtype(dtype)
    return x if dtype == x.dtype else ops.Cast.apply(x, dtype=dtype)


# ---- argument checks ------------------------------------------------------------------

def check_axis(axis, ndim, op):
    """Axis `axis` of an ndim-d tensor as a non-negative int; out of range names the op."""
    if not -ndim <= axis < ndim:
        raise IndexError(f"{op}: axis {axis} is out of range for a tensor with {ndim} dims")
    return axis % ndim


def axis_arg(axis, ndim, op):
    """An int or a tuple of axes (NumPy takes no lists), each checked against ndim."""
    if axis is None:
        return None
    axes = tuple(axis) if isinstance(axis, (list, tuple)) else (axis,)
    for a in axes:
        check_axis(a, ndim, op)
    return axes if isinstance(axis, (list, tuple)) else axis


def _axes(axis, ndim, op="reduce"):
    if axis is None:
        return tuple(range(ndim))
    return tuple(check_axis(a, ndim, op) for a in (axis if isinstance(axis, (tuple, list)) else (axis,)))


def shape_arg(shape, size):
    """Accept reshape(2, 3) and reshape((2, 3)); check the element count here, where the
    message can name both shapes."""
    if len(shape) == 1 and isinstance(shape[0], (tuple, list)):
        shape = tuple(shape[0])
    shape = tuple(int(s) for s in shape)
    known = int(np.prod([s for s in shape if s != -1]))
    if shape.count(-1) > 1 or (-1 not in shape and known != size) or (-1 in shape and (known == 0 or size % known)):
        raise ValueError(f"reshape: cannot view {size} elements as shape {shape}")
    return shape


def dims_arg(dims, ndim):
    if len(dims) == 1 and isinstance(dims[0], (tuple, list)):
        dims = tuple(dims[0])
    if sorted(d % ndim for d in dims) != list(range(ndim)) if ndim else dims:
        raise ValueError(f"permute: {dims} is not a permutation of the {ndim} dims")
    return tuple(d % ndim for d in dims)


def index_arg(index):
    """Unwrap Tensors used as indices so NumPy sees plain arrays."""
    if isinstance(index, tuple):
        return tuple(raw(i) for i in index)
    return raw(index)


def check_ids(op, what, ids, n, ignore_index=None):
    """Name the first out-of-range id and its position, rather than fail deep in NumPy."""
    bad = (ids < 0) | (ids >= n)
    if ignore_index is not None:
        bad &= ids != ignore_index
    if bad.any():
        pos = tuple(int(i) for i in np.argwhere(bad)[0])
        raise IndexError(f"{op}: {what} {ids[pos]} at position {pos} is out of range [0, {n})")


# ---- reductions -----------------------------------------------------------------------

def mean(x, axis=None, keepdims=False):
    n = int(np.prod([x.shape[a] for a in _axes(axis, x.ndim, "mean")]))
    return x.sum(axis, keepdims) / n


def var(x, axis=None, keepdims=False, correction=1):
    """Variance with Bessel's correction by default, as torch.var."""
    n = int(np.prod([x.shape[a] for a in _axes(axis, x.ndim, "var")]))
    centered = x - x.mean(axis, keepdims=True)
    return (centered * centered).sum(axis, keepdims) / max(n - correction, 0)


# ---- shape ----------------------------------------------------------------------------

def reshape(x, *shape):
    return ops.Reshape.apply(x, shape=shape_arg(shape, x.data.size))


def permute(x, *dims):
    return ops.Permute.apply(x, dims=dims_arg(dims, x.ndim))


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


def index(x, idx):
    return ops.Index.apply(x, index=index_arg(idx))


def cat(tensors, axis=0):
    tensors = [lift(t, tensors[0]) for t in tensors]
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


# ---- selection ------------------------------------------------------------------------

def where(cond, a, b):
    cond = np.asarray(raw(cond))
    a = a if is_tensor(a) else lift(a, b)
    b = lift(b, a)
    try:
        np.broadcast_shapes(cond.shape, a.shape, b.shape)
    except ValueError:
        raise ValueError(f"where: shapes cond {cond.shape}, a {a.shape} and b {b.shape} "
                         f"cannot be broadcast together") from None
    return ops.Where.apply(a, b, cond=cond.astype(bool))


def masked_fill(x, mask, value):
    """Set x to `value` where mask is True; the gradient there is zero."""
    return where(mask, lift(value, x), x)


def clip(x, min=None, max=None):  # noqa: A002  (torch's names)
    return ops.Clip.apply(x, lo=min, hi=max)


# ---- activations and regularisation ---------------------------------------------------

def relu(x):
    return ops.Relu.apply(x)


def gelu(x):
    """GELU, tanh approximation (GPT-2's "gelu_new"), one fused node (fused.Gelu)."""
    return fused.Gelu.apply(x)


def softmax(x, axis=-1):
    return fused.Softmax.apply(x, axis=check_axis(axis, x.ndim, "softmax"))


def log_softmax(x, axis=-1):
    return fused.LogSoftmax.apply(x, axis=check_axis(axis, x.ndim, "log_softmax"))


def dropout(x, p=0.5, training=True):
    """Zero each element with probability p and scale the rest by 1/(1-p) (inverted dropout)."""
    if not 0 <= p <= 1:
        raise ValueError(f"dropout: p must be in [0, 1], got {p}")
    if not training or p == 0:
        return x
    if p == 1:
        return x * 0
    keep = random.rng().random(x.shape) >= p
    return x * (keep.astype(x.dtype) / np.asarray(1 - p, dtype=x.dtype))


# ---- matmul, normalisation, losses, lookups -----------------------------------------------

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
    return ops.MatMul.apply(a, b)


def linear(x, weight, bias=None):
    """x @ weight^T + bias with weight (out, in), as torch.nn.functional.linear: one node for the
    product, whose weight gradient is written in the weight's own layout."""
    if weight.ndim != 2:
        raise ValueError(f"linear: weight must be (out, in), got shape {weight.shape}")
    if x.ndim < 1 or x.shape[-1] != weight.shape[1]:
        raise ValueError(f"linear: input {x.shape} does not fit weight {weight.shape} (out, in): "
                         f"{x.shape[-1] if x.ndim else 'a 0-d input'} != {weight.shape[1]}")
    if x.ndim == 1:
        return linear(x.unsqueeze(0), weight, bias).squeeze(0)
    y = ops.MatMul.apply(x, weight, transpose_b=True)
    return y if bias is None else y + bias


def layer_norm(x, normalized_shape, weight=None, bias=None, eps=1e-5):
    """Layer norm over the last dimension (the only case a GPT needs)."""
    normalized_shape = tuple(normalized_shape) if isinstance(normalized_shape, (tuple, list)) else (normalized_shape,)
    if normalized_shape != x.shape[-1:]:
        raise ValueError(f"layer_norm: normalized_shape {normalized_shape} must be the last dim of input {x.shape}")
    C = x.shape[-1]
    weight = weight if weight is not None else x._make(np.ones(C, dtype=x.dtype), None)
    bias = bias if bias is not None else x._make(np.zeros(C, dtype=x.dtype), None)
    return fused.LayerNorm.apply(x, weight, bias, eps=eps)


def cross_entropy(logits, targets, ignore_index=-100):
    """Mean cross-entropy of logits (N, C) against class ids (N,), skipping ignore_index."""
    t = np.asarray(raw(targets))
    if logits.ndim != 2 or t.shape != logits.shape[:1]:
        raise ValueError(f"cross_entropy: expected logits (N, C) and targets (N,), got "
                         f"{logits.shape} and {t.shape}")
    if not np.issubdtype(t.dtype, np.integer):
        raise TypeError(f"cross_entropy: targets must be integer class ids, got {t.dtype}")
    check_ids("cross_entropy", "target", t, logits.shape[1], ignore_index)
    return fused.CrossEntropy.apply(logits, targets=t.astype(np.int64, copy=False), ignore_index=ignore_index)


def embedding(ids, weight):
    """Rows of weight (V, C) picked by integer ids of any shape -> ids.shape + (C,)."""
    ids = np.asarray(raw(ids))
    if not np.issubdtype(ids.dtype, np.integer):
        raise TypeError(f"embedding: ids must be integers, got {ids.dtype}")
    check_ids("embedding", "id", ids, weight.shape[0])
    return fused.Embedding.apply(weight, ids=ids.astype(np.int64, copy=False))


# ---- attention ---------------------------------------------------------------------------

def scaled_dot_product_attention(q, k, v, is_causal=True, scale=None):
    """Multi-head attention over q (B, H, Tq, D), k and v (B, H, Tk, D).

    Causal attention is one fused node (fused.CausalAttention); with Tq < Tk the queries
    are the last Tq positions, so query i sees keys up to Tk-Tq+i. Non-causal attention is
    composed from primitives.
    """
    if q.ndim != 4 or k.shape != v.shape or q.shape[:2] != k.shape[:2] or q.shape[3] != k.shape[3] \
            or q.shape[2] > k.shape[2]:
        raise ValueError(f"scaled_dot_product_attention: expected q (B, H, Tq, D) and k, v (B, H, Tk, D) "
                         f"with Tq <= Tk, got {q.shape}, {k.shape}, {v.shape}")
    scale = 1.0 / math.sqrt(q.shape[-1]) if scale is None else float(scale)  # a float: never upcasts
    if is_causal:
        return fused.CausalAttention.apply(q, k, v, scale=scale)
    return ((q @ k.transpose(-2, -1)) * scale).softmax(-1) @ v


def causal_self_attention(qkv, n_head, scale=None):
    """Causal multi-head self-attention straight from a packed (B, T, 3C) projection
    [q | k | v] (GPT-2's c_attn output) to (B, T, C) with the heads merged: the same as
    splitting into heads, scaled_dot_product_attention(is_causal=True) and merging back,
    in one node (fused.PackedCausalAttention)."""
    if qkv.ndim != 3 or qkv.shape[2] % (3 * n_head):
        raise ValueError(f"causal_self_attention: expected qkv (B, T, 3C) with C divisible by n_head={n_head}, "
                         f"got {qkv.shape}")
    D = qkv.shape[2] // (3 * n_head)
    scale = 1.0 / math.sqrt(D) if scale is None else float(scale)
    return fused.PackedCausalAttention.apply(qkv, n_head=n_head, scale=scale)
