"""Fused ops: one kernel call forward, one backward.

Written as primitives, softmax, layer norm, GELU, cross-entropy and attention
would each take several graph nodes, several temporaries and several passes
over memory; here each is a single node whose kernels (minigrad/kernels) are
tested against their NumPy twins and whose gradients pass gradcheck.
"""
import math

import numpy as np

from minigrad import kernels
from minigrad.autograd import Function
from minigrad.tensor import Tensor, check_axis


# ---- fused ops over the last axis --------------------------------------------------

def _c(a):
    """Kernels get C-contiguous arrays: upstream gradients are often broadcast views
    (strides 0, read-only, e.g. from sum) and inputs may be transposed or sliced views.
    Free when `a` is already contiguous."""
    return np.ascontiguousarray(a)


def _to_last(x, axis):
    return _c(x if axis in (-1, x.ndim - 1) else np.moveaxis(x, axis, -1))


def _from_last(y, axis):
    return y if axis in (-1, y.ndim - 1) else np.moveaxis(y, -1, axis)


# d softmax = y * (d out - sum(d out * y))
class Softmax(Function):
    def forward(self, x, axis=-1):
        self.axis = axis
        self.y = kernels.softmax_forward(_to_last(x, axis))
        return _from_last(self.y, axis)

    def backward(self, g):
        return _from_last(kernels.softmax_backward(self.y, _to_last(g, self.axis)), self.axis)


# d log_softmax = d out - softmax * sum(d out)
class LogSoftmax(Function):
    def forward(self, x, axis=-1):
        self.axis = axis
        self.y = kernels.log_softmax_forward(_to_last(x, axis))
        return _from_last(self.y, axis)

    def backward(self, g):
        return _from_last(kernels.log_softmax_backward(self.y, _to_last(g, self.axis)), self.axis)


def softmax(x, axis=-1):
    return Softmax.apply(x, axis=check_axis(axis, x.ndim, "softmax"))


def log_softmax(x, axis=-1):
    return LogSoftmax.apply(x, axis=check_axis(axis, x.ndim, "log_softmax"))


# d gelu(x) = gelu'(x) dx  (tanh approximation, as GPT-2; the forward's tanh is kept for it)
class Gelu(Function):
    def forward(self, x):
        self.x = _c(x)
        y, self.t = kernels.gelu_forward_keep_tanh(self.x)
        return y

    def backward(self, g):
        return kernels.gelu_backward_with_tanh(self.x, self.t, _c(g))


def gelu(x):
    return Gelu.apply(x)


# y = (x - mean) * rstd * w + b;  dx, dw, db from the kernel
class LayerNorm(Function):
    def forward(self, x, weight, bias, eps=1e-5):
        self.x, self.weight = _c(x), _c(weight)
        y, self.mean, self.rstd = kernels.layer_norm_forward(self.x, self.weight, _c(bias), eps)
        return y

    def backward(self, g):
        dx, dw, db = kernels.layer_norm_backward(_c(g), self.x, self.weight, self.mean, self.rstd)
        return dx, dw, db


def layer_norm(x, normalized_shape, weight=None, bias=None, eps=1e-5):
    """Layer norm over the last dimension (the only case a GPT needs)."""
    normalized_shape = tuple(normalized_shape) if isinstance(normalized_shape, (tuple, list)) else (normalized_shape,)
    if normalized_shape != x.shape[-1:]:
        raise ValueError(f"layer_norm: normalized_shape {normalized_shape} must be the last dim of input {x.shape}")
    C = x.shape[-1]
    weight = weight if weight is not None else Tensor(np.ones(C, dtype=x.dtype))
    bias = bias if bias is not None else Tensor(np.zeros(C, dtype=x.dtype))
    return LayerNorm.apply(x, weight, bias, eps=eps)


# loss = mean over kept rows of (logsumexp(z) - z[target]);  dz = (softmax(z) - onehot) / n
class CrossEntropy(Function):
    def forward(self, logits, targets, ignore_index=-100):
        self.logits, self.targets, self.ignore_index = _c(logits), _c(targets), ignore_index
        loss, self.lse = kernels.cross_entropy_forward(self.logits, self.targets, ignore_index)
        return np.asarray(loss, dtype=logits.dtype)

    def backward(self, g):
        return kernels.cross_entropy_backward(self.logits, self.targets, self.lse,
                                              self.ignore_index, float(g))


def cross_entropy(logits, targets, ignore_index=-100):
    """Mean cross-entropy of logits (N, C) against class ids (N,), skipping ignore_index."""
    t = np.asarray(targets.data if isinstance(targets, Tensor) else targets)
    if logits.ndim != 2 or t.shape != logits.shape[:1]:
        raise ValueError(f"cross_entropy: expected logits (N, C) and targets (N,), got "
                         f"{logits.shape} and {t.shape}")
    if not np.issubdtype(t.dtype, np.integer):
        raise TypeError(f"cross_entropy: targets must be integer class ids, got {t.dtype}")
    _check_ids("cross_entropy", "target", t, logits.shape[1], ignore_index)
    return CrossEntropy.apply(logits, targets=t.astype(np.int64, copy=False), ignore_index=ignore_index)


def _check_ids(op, what, ids, n, ignore_index=None):
    """Name the first out-of-range id and its position, rather than fail deep in NumPy."""
    bad = (ids < 0) | (ids >= n)
    if ignore_index is not None:
        bad &= ids != ignore_index
    if bad.any():
        pos = tuple(int(i) for i in np.argwhere(bad)[0])
        raise IndexError(f"{op}: {what} {ids[pos]} at position {pos} is out of range [0, {n})")


# y = W[ids];  dW = scatter-add of d out into the rows named by ids
class Embedding(Function):
    def forward(self, weight, ids):
        self.ids, self.num = ids, weight.shape[0]
        return weight[ids]

    def backward(self, g):
        return kernels.embedding_backward(self.ids, _c(g), self.num)


def embedding(ids, weight):
    """Rows of weight (V, C) picked by integer ids of any shape -> ids.shape + (C,)."""
    ids = np.asarray(ids.data if isinstance(ids, Tensor) else ids)
    if not np.issubdtype(ids.dtype, np.integer):
        raise TypeError(f"embedding: ids must be integers, got {ids.dtype}")
    _check_ids("embedding", "id", ids, weight.shape[0])
    return Embedding.apply(weight, ids=ids.astype(np.int64, copy=False))


# out = softmax(mask(q k^T * scale)) v;  dq, dk, dv from the kernel
class CausalAttention(Function):
    def forward(self, q, k, v, scale):
        self.q, self.k, self.v, self.scale = _c(q), _c(k), _c(v), scale
        self.out, self.lse = kernels.attention_forward(self.q, self.k, self.v, scale)
        return self.out

    def backward(self, g):
        return kernels.attention_backward(_c(g), self.q, self.k, self.v, self.out, self.lse, self.scale)


def scaled_dot_product_attention(q, k, v, is_causal=True, scale=None):
    """Multi-head attention over q (B, H, Tq, D), k and v (B, H, Tk, D).

    Causal attention is one fused kernel; with Tq < Tk the queries are the last
    Tq positions (the key-value cache case), so query i sees keys up to Tk-Tq+i.
    Non-causal attention is composed from primitives.
    """
    if q.ndim != 4 or k.shape != v.shape or q.shape[:2] != k.shape[:2] or q.shape[3] != k.shape[3] \
            or q.shape[2] > k.shape[2]:
        raise ValueError(f"scaled_dot_product_attention: expected q (B, H, Tq, D) and k, v (B, H, Tk, D) "
                         f"with Tq <= Tk, got {q.shape}, {k.shape}, {v.shape}")
    scale = 1.0 / math.sqrt(q.shape[-1]) if scale is None else float(scale)  # a float: never upcasts
    if is_causal:
        return CausalAttention.apply(q, k, v, scale=scale)
    return ((q @ k.transpose(-2, -1)) * scale).softmax(-1) @ v


def _heads_of(qkv, n_head):
    """Views q, k, v (B, H, T, D) into a packed (B, T, 3C) array: no copies (BLAS takes the
    row stride 3C as it is)."""
    B, T, C3 = qkv.shape
    packed = qkv.reshape(B, T, 3, n_head, C3 // (3 * n_head))
    return tuple(packed[:, :, i].transpose(0, 2, 1, 3) for i in range(3))


# y = merge_heads(attention(split_heads(qkv)));  dqkv = the three head gradients packed back
class PackedCausalAttention(Function):
    def forward(self, qkv, n_head, scale):
        self.qkv, self.n_head, self.scale = _c(qkv), n_head, scale
        out, self.lse = kernels.attention_forward(*_heads_of(self.qkv, n_head), scale)  # (B, H, T, D)
        self.out = out
        B, H, T, D = out.shape
        return out.transpose(0, 2, 1, 3).reshape(B, T, H * D)

    def backward(self, g):
        B, T, C = g.shape
        H = self.n_head
        dout = g.reshape(B, T, H, C // H).transpose(0, 2, 1, 3)
        grads = kernels.attention_backward(dout, *_heads_of(self.qkv, H), self.out, self.lse, self.scale)
        dqkv = np.empty_like(self.qkv)
        for part, d in zip(_heads_of(dqkv, H), grads):
            part[...] = d  # writes through the views into the packed gradient
        return dqkv


def causal_self_attention(qkv, n_head, scale=None):
    """Causal multi-head self-attention straight from a packed (B, T, 3C) projection
    [q | k | v] (GPT-2's c_attn output) to (B, T, C) with the heads merged.

    The same as splitting, viewing as heads, scaled_dot_product_attention(is_causal=True) and
    merging back, but one graph node: no split, reshape or transpose nodes, no copies of
    q, k, v, and one packed gradient instead of three zero-padded ones summed.
    """
    if qkv.ndim != 3 or qkv.shape[2] % (3 * n_head):
        raise ValueError(f"causal_self_attention: expected qkv (B, T, 3C) with C divisible by n_head={n_head}, "
                         f"got {qkv.shape}")
    D = qkv.shape[2] // (3 * n_head)
    scale = 1.0 / math.sqrt(D) if scale is None else float(scale)
    return PackedCausalAttention.apply(qkv, n_head=n_head, scale=scale)
