"""Attention: torch's scaled_dot_product_attention, and GPT-2's packed causal self-attention.

`scaled_dot_product_attention` follows PyTorch exactly: not causal by default;
`is_causal=True` masks with the top-left aligned lower triangle (query i sees
keys 0..i, whatever the key length); a bool `attn_mask` keeps the True
positions, a float one is added to the scores (both may be given: the masks
combine); a row that may see no key gives zeros, as PyTorch does. The common
training case (causal, query and key lengths equal, no mask, no dropout) is one
fused node; every other case is composed of primitives.

The GPT calls `causal_self_attention` (packed q|k|v in, merged heads out: one
node), and sampling calls the kernels directly (gpt/inference.py).
"""
import math

import numpy as np

from minigrad import fused
from minigrad.activations import dropout, softmax
from minigrad.args import is_tensor, raw
from minigrad.pointwise import cast, masked_fill, where


def _check(q, k, v, attn_mask):
    ok = q.ndim >= 2 and k.ndim == q.ndim and v.ndim == q.ndim and q.shape[-1] == k.shape[-1] \
        and k.shape[-2] == v.shape[-2]
    try:
        batch = np.broadcast_shapes(q.shape[:-2], k.shape[:-2], v.shape[:-2])
    except ValueError:
        ok = False
    if not ok:
        raise ValueError(f"scaled_dot_product_attention: expected query (..., L, E), key (..., S, E) and value "
                         f"(..., S, Ev) with broadcastable batch dims, got {q.shape}, {k.shape}, {v.shape}")
    scores = batch + (q.shape[-2], k.shape[-2])
    if attn_mask is not None:
        m = np.shape(raw(attn_mask))
        try:
            ok = np.broadcast_shapes(m, scores) == scores
        except ValueError:
            ok = False
        if not ok:
            raise ValueError(f"scaled_dot_product_attention: attn_mask of shape {m} does not broadcast to the "
                             f"scores' shape {scores} (..., L, S)")


def scaled_dot_product_attention(query, key, value, attn_mask=None, dropout_p=0.0, is_causal=False, scale=None,
                                 enable_gqa=False):
    """softmax(q k^T * scale + mask) v over query (..., L, E), key (..., S, E), value (..., S, Ev)."""
    q, k, v = query, key, value
    _check(q, k, v, attn_mask)
    if enable_gqa:
        raise ValueError("scaled_dot_product_attention: enable_gqa=True is not supported; repeat the key/value "
                         "heads to the query's count first")
    scale = 1.0 / math.sqrt(q.shape[-1]) if scale is None else float(scale)  # a float: never upcasts
    L, S = q.shape[-2], k.shape[-2]
    if is_causal and attn_mask is None and dropout_p == 0 and q.ndim == 4 and q.shape == k.shape == v.shape \
            and q.dtype == k.dtype == v.dtype:
        return fused.CausalAttention.apply(q, k, v, scale=scale)  # with L == S its mask is the same triangle
    scores = (q @ k.transpose(-2, -1)) * scale  # (..., L, S)
    keep = np.tri(L, S, dtype=bool) if is_causal else None  # top-left: key j <= query i
    if attn_mask is not None and np.asarray(raw(attn_mask)).dtype == np.bool_:
        m = np.asarray(raw(attn_mask))
        keep = m if keep is None else keep & m
    elif attn_mask is not None:
        bias = cast(attn_mask, scores.dtype) if is_tensor(attn_mask) else np.asarray(attn_mask, dtype=scores.dtype)
        scores = scores + bias
    if keep is not None:
        scores = masked_fill(scores, np.broadcast_to(~keep, scores.shape), -math.inf)
    dead = np.isneginf(scores.data).all(axis=-1, keepdims=True)  # rows that see no key
    if dead.any():  # softmax of all -inf is NaN: give those rows zeros (and zero gradient), as torch
        scores = where(dead, 0.0, scores)
    p = softmax(scores, -1)
    if dead.any():
        p = where(dead, 0.0, p)
    if dropout_p > 0:
        p = dropout(p, dropout_p)
    return p @ v  # (..., L, Ev)


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
