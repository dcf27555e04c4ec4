"""Fused ops: one kernel call forward, one backward.

Written as primitives, softmax, layer norm, GELU, cross-entropy and attention
would each take several graph nodes, several temporaries and several passes
over memory; here each is a single node. The math of each op is the comment
above its class; its kernels (minigrad/kernels/<topic>.py) hold a plain-NumPy
twin beside the Numba version, and each op passes gradcheck. `saves_inputs` /
`saves_output` name the arrays backward reads, for autograd's in-place check. Argument checks
and the Tensor-facing signatures (`F.softmax(x, dim)`, ...) are in functional.py.
"""
import numpy as np

from minigrad import kernels
from minigrad.autograd import Function


def _c(a):
    """Kernels get C-contiguous arrays: upstream gradients are often broadcast views
    (strides 0, read-only, e.g. from sum) and inputs may be transposed or sliced views.
    Free when `a` is already contiguous."""
    return np.ascontiguousarray(a)


def _to_last(x, axis):
    return _c(x if axis in (-1, x.ndim - 1) else np.moveaxis(x, axis, -1))


def _from_last(y, axis):
    return y if axis in (-1, y.ndim - 1) else np.moveaxis(y, -1, axis)


# ---- over the last axis ------------------------------------------------------------

# y = softmax(x) = exp(x - max) / sum(exp(x - max));  dx = y * (dy - sum(dy * y))
class Softmax(Function):
    saves_inputs, saves_output = (), True

    def forward(self, x, axis=-1):
        self.axis = axis
        self.y = kernels.softmax_forward(_to_last(x, axis))
        return _from_last(self.y, axis)

    def backward(self, g):
        return _from_last(kernels.softmax_backward(self.y, _to_last(g, self.axis)), self.axis)


# y = log_softmax(x) = x - max - log(sum(exp(x - max)));  dx = dy - exp(y) * sum(dy)
class LogSoftmax(Function):
    saves_inputs, saves_output = (), True

    def forward(self, x, axis=-1):
        self.axis = axis
        self.y = kernels.log_softmax_forward(_to_last(x, axis))
        return _from_last(self.y, axis)

    def backward(self, g):
        return _from_last(kernels.log_softmax_backward(self.y, _to_last(g, self.axis)), self.axis)


# y = 0.5 x (1 + t), t = tanh(sqrt(2/pi) (x + 0.044715 x^3));
# dx = dy (0.5 (1 + t) + 0.5 x (1 - t^2) sqrt(2/pi) (1 + 3 * 0.044715 x^2))   (t kept from forward)
class Gelu(Function):
    def forward(self, x):
        self.x = _c(x)
        y, self.t = kernels.gelu_forward_keep_tanh(self.x)
        return y

    def backward(self, g):
        return kernels.gelu_backward_with_tanh(self.x, self.t, _c(g))


# y = x Phi(x), Phi(x) = (1 + erf(x / sqrt 2)) / 2  (exact GELU, PyTorch's default);
# dx = dy (Phi(x) + x phi(x)),  phi(x) = exp(-x^2 / 2) / sqrt(2 pi)
class GeluErf(Function):
    def forward(self, x):
        self.x = _c(x)
        return kernels.gelu_erf_forward(self.x)

    def backward(self, g):
        return kernels.gelu_erf_backward(self.x, _c(g))


# y = (x - mean) * rstd * w + b;  with g = dy * w:
# dx = rstd (g - mean(g) - xhat mean(g xhat)),  dw = sum(dy xhat),  db = sum(dy)
class LayerNorm(Function):
    saves_inputs = (0, 1)

    def forward(self, x, weight, bias, eps=1e-5):
        self.x, self.weight = _c(x), _c(weight)
        y, self.mean, self.rstd = kernels.layer_norm_forward(self.x, self.weight, _c(bias), eps)
        return y

    def backward(self, g):
        dx, dw, db = kernels.layer_norm_backward(_c(g), self.x, self.weight, self.mean, self.rstd)
        return dx, dw, db


# ---- losses and lookups ----------------------------------------------------------------

# loss = mean over kept rows of (logsumexp(z) - z[target]);  dz = (softmax(z) - onehot) / n
class CrossEntropy(Function):
    def forward(self, logits, targets, ignore_index=-100):
        self.logits, self.targets, self.ignore_index = _c(logits), _c(targets), ignore_index
        loss, self.lse = kernels.cross_entropy_forward(self.logits, self.targets, ignore_index)
        return np.asarray(loss, dtype=logits.dtype)

    def backward(self, g):
        return kernels.cross_entropy_backward(self.logits, self.targets, self.lse,
                                              self.ignore_index, float(g))


# y = W[ids];  dW = scatter-add of dy into the rows named by ids
class Embedding(Function):
    saves_inputs = ()

    def forward(self, weight, ids):
        self.ids, self.shape = ids, weight.shape
        return weight[ids]

    def backward(self, g):
        return RowGradient(self.ids, _c(g), self.shape)


class RowGradient:
    """An embedding's gradient: dy (ids.shape + (C,)) to be added into the rows ids of a
    (V, C) array. Autograd adds it into the weight's own gradient in place (a tied weight's
    other gradient, GPT-2's lm_head, is dense: the embedding costs a scatter of its rows, not
    a (V, C) array of zeros and another pass over all of it); dense() builds the full array."""

    def __init__(self, ids, dy, shape):
        self.ids, self.dy, self.shape, self.dtype = ids, dy, shape, dy.dtype

    def add_to(self, dense):
        kernels.embedding_backward(self.ids, self.dy, self.shape[0], into=dense)

    def dense(self):
        return kernels.embedding_backward(self.ids, self.dy, self.shape[0])


# ---- attention -----------------------------------------------------------------------

# P = softmax(causal_mask(q k^T * scale)), out = P v;
# dv = P^T dout,  dS = P (dout v^T - rowsum(dout * out)),  dq = dS k scale,  dk = dS^T q scale
class CausalAttention(Function):
    saves_output = True

    def forward(self, q, k, v, scale):
        self.q, self.k, self.v, self.scale = _c(q), _c(k), _c(v), scale
        self.out, self.lse = kernels.attention_forward(self.q, self.k, self.v, scale)
        return self.out

    def backward(self, g):
        return kernels.attention_backward(_c(g), self.q, self.k, self.v, self.out, self.lse, self.scale)


def heads_of(qkv, n_head):
    """Views q, k, v (B, H, T, D) into a packed (B, T, 3C) array: no copies (BLAS takes the
    row stride 3C as it is)."""
    B, T, C3 = qkv.shape
    packed = qkv.reshape(B, T, 3, n_head, C3 // (3 * n_head))  # (B, T, 3, H, D)
    return tuple(packed[:, :, i].transpose(0, 2, 1, 3) for i in range(3))  # 3 x (B, H, T, D)


# The same math as CausalAttention, from GPT-2's packed c_attn output (B, T, 3C) [q | k | v]
# straight to (B, T, C) with the heads merged: one node, no split or transpose nodes, and
# one packed gradient dqkv instead of three zero-padded ones summed.
class PackedCausalAttention(Function):
    def forward(self, qkv, n_head, scale):
        self.qkv, self.n_head, self.scale = _c(qkv), n_head, scale
        self.out, self.lse = kernels.attention_forward(*heads_of(self.qkv, n_head), scale)  # (B, H, T, D)
        B, H, T, D = self.out.shape
        return self.out.transpose(0, 2, 1, 3).reshape(B, T, H * D)  # (B, T, H, D) -> (B, T, C)

    def backward(self, g):
        B, T, C = g.shape
        H = self.n_head
        dout = g.reshape(B, T, H, C // H).transpose(0, 2, 1, 3)  # (B, H, T, D)
        grads = kernels.attention_backward(dout, *heads_of(self.qkv, H), self.out, self.lse, self.scale)
        dqkv = np.empty_like(self.qkv)
        for part, d in zip(heads_of(dqkv, H), grads):
            part[...] = d  # writes through the views into the packed gradient
        return dqkv
