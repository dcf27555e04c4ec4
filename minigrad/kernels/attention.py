"""Causal multi-head attention, fused: scores, bottom-right causal mask, softmax, and both matmuls.

Shapes: q (B, H, Tq, D), k and v (B, H, Tk, D), Tq <= Tk. Query i sits at
absolute position Tk - Tq + i and attends keys j <= Tk - Tq + i.
"""
import numpy as np


def _causal_mask(Tq, Tk):
    # True where a key must be hidden from a query.
    return np.arange(Tk)[None, :] > (np.arange(Tq)[:, None] + (Tk - Tq))


def _probs(q, k, scale, lse=None):
    s = np.matmul(q, k.swapaxes(-1, -2)) * q.dtype.type(scale)
    s = np.where(_causal_mask(q.shape[-2], k.shape[-2]), -np.inf, s).astype(q.dtype, copy=False)
    if lse is None:
        m = s.max(axis=-1, keepdims=True)
        e = np.exp(s - m)
        l = e.sum(axis=-1, keepdims=True)
        return e / l, (m + np.log(l))[..., 0]
    return np.exp(s - lse[..., None]), lse


# attention: P = softmax(mask(q k^T * scale));  out = P v;  lse = logsumexp(mask(q k^T * scale))
def attention_forward_numpy(q, k, v, scale):
    p, lse = _probs(q, k, scale)
    return np.matmul(p, v), lse


# attention': dv = P^T dO;  dP = dO v^T;  dS = P (dP - rowsum(dO * O));  dq = dS k s;  dk = dS^T q s
def attention_backward_numpy(dout, q, k, v, out, lse, scale):
    p, _ = _probs(q, k, scale, lse)
    dv = np.matmul(p.swapaxes(-1, -2), dout)
    dp = np.matmul(dout, v.swapaxes(-1, -2))
    ds = p * (dp - (dout * out).sum(axis=-1, keepdims=True))
    s = q.dtype.type(scale)
    dq = np.matmul(ds, k) * s
    dk = np.matmul(ds.swapaxes(-1, -2), q) * s
    return dq, dk, dv
