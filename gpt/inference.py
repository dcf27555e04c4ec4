"""Inference: GPT's forward pass on bare arrays, with a key-value cache per sequence.

    cache = KVCache(model.config, batch_size=3)
    logits = forward(model, prompt_ids[None], cache, rows=[1])   # fill row 1 with its prompt
    logits = forward(model, next_ids[:, None], cache)           # one new token for every row

Sampling, batched evaluation and serving all run here. Each row of the cache is
one sequence with its own length: a forward appends the given tokens to the
rows named by `rows`, at each row's own next positions, and attends over that
row's keys only, so sequences of different lengths share one batch (prompts
are filled one row at a time, then every row advances together). No Tensor and
no graph: the same kernels as GPT.forward (minigrad.kernels) on the parameters'
arrays, and logits for the last position only, which is all a sampler reads.
tests/test_inference.py holds it equal to GPT.forward.
"""
import math

import numpy as np

from minigrad import kernels

from gpt.quantize import Int8Linear


class KVCache:
    """Keys and values of every layer for a batch of sequences, allocated once.

    k, v: (n_layer, batch_size, n_head, capacity, head_dim); lengths[b] is how many
    positions row b holds, i.e. the position of its next token.
    """

    def __init__(self, config, batch_size, dtype=np.float32, capacity=None):
        head_dim = config.n_embd // config.n_head
        self.capacity = config.block_size if capacity is None else capacity
        shape = (config.n_layer, batch_size, config.n_head, self.capacity, head_dim)
        self.k = np.zeros(shape, dtype=dtype)
        self.v = np.zeros(shape, dtype=dtype)
        self.lengths = np.zeros(batch_size, dtype=np.int64)

    @property
    def batch_size(self):
        return len(self.lengths)

    def reset(self, rows=None):
        """Empty the given rows (all by default) for new sequences."""
        self.lengths[slice(None) if rows is None else rows] = 0


def forward(model, ids, cache=None, rows=None):
    """Logits of the last position (N, V) for ids (N, T) int, in the model's dtype.

    With a cache, ids are the next T tokens of cache rows `rows` (default: all rows, N of
    them), at positions lengths[row] onwards; their keys and values are stored and lengths
    move on by T. Without one, ids is each sequence's whole context (positions 0..T-1).
    """
    cfg, tr = model.config, model.transformer
    ids = np.asarray(ids, dtype=np.int64)
    N, T = ids.shape
    rows = np.arange(N) if rows is None else np.asarray(rows, dtype=np.int64).reshape(N)
    past = np.zeros(N, dtype=np.int64) if cache is None else cache.lengths[rows]
    if (past + T).max() > cfg.block_size:
        raise ValueError(f"inference: sequence length {int((past + T).max())} (past {int(past.max())} + new {T}) "
                         f"exceeds block_size {cfg.block_size}")
    x = tr.wte.weight.data[ids] + tr.wpe.weight.data[past[:, None] + np.arange(T)]  # (N, T, C)
    for layer, block in enumerate(tr.h):
        x = x + _attention(block.attn, _layer_norm(block.ln_1, x), cache, layer, rows, past)  # (N, T, C)
        x = x + _mlp(block.mlp, _layer_norm(block.ln_2, x))  # (N, T, C)
    if cache is not None:
        cache.lengths[rows] += T
    x = _layer_norm(tr.ln_f, x[:, -1])  # (N, C): the last position is all a sampler needs
    if isinstance(model.lm_head, Int8Linear):  # int8 head (gpt/quantize.py)
        return model.lm_head.product(x)  # (N, C) -> (N, V)
    return kernels.matmul(x, model.lm_head.weight.data.T)  # (N, C) @ (C, V) -> (N, V)


def _linear(conv, x):
    """Conv1D: x (..., in) @ W (in, out) + b."""
    if isinstance(conv, Int8Linear):  # int8 weights (gpt/quantize.py) bring their own product
        return conv.product(x)
    y = kernels.matmul(x, conv.weight.data)  # (..., out)
    return y if conv.bias is None else y + conv.bias.data


def _layer_norm(ln, x):
    bias = None if ln.bias is None else ln.bias.data
    return kernels.layer_norm_forward(x, ln.weight.data, bias, ln.eps)[0]


def _attention(attn, x, cache, layer, rows, past):
    N, T, C = x.shape
    H = attn.n_head
    D = C // H
    scale = 1.0 / math.sqrt(D)
    qkv = _linear(attn.c_attn, x).reshape(N, T, 3, H, D)  # (N, T, 3C) -> (N, T, 3, H, D)
    q, k, v = (qkv[:, :, i].transpose(0, 2, 1, 3) for i in range(3))  # 3 x (N, H, T, D) views
    if cache is None:
        y, _ = kernels.attention_forward(q, k, v, scale)  # (N, H, T, D), causal
    elif (past == past[0]).all() and (rows == rows[0] + np.arange(N)).all():
        y = _cached_attention(cache, layer, slice(rows[0], rows[0] + N), int(past[0]), q, k, v, scale)
    else:  # rows at different lengths: each attends over its own keys
        y = np.concatenate([_cached_attention(cache, layer, slice(r, r + 1), int(p), q[b:b + 1], k[b:b + 1],
                                              v[b:b + 1], scale) for b, (r, p) in enumerate(zip(rows, past))])
    return _linear(attn.c_proj, y.transpose(0, 2, 1, 3).reshape(N, T, C))  # (N, T, H, D) -> (N, T, C)


def _cached_attention(cache, layer, rows, start, q, k, v, scale):
    """Store k, v (n, H, T, D) at positions start.. of cache rows `rows` (a slice: views, no
    copies), then attend q over each row's keys 0..start+T-1, bottom-right causal."""
    end = start + q.shape[2]
    cache.k[layer, rows, :, start:end] = k
    cache.v[layer, rows, :, start:end] = v
    keys, values = cache.k[layer, rows, :, :end], cache.v[layer, rows, :, :end]  # (n, H, end, D)
    return kernels.attention_forward(q, keys, values, scale)[0]  # (n, H, T, D)


def _mlp(mlp, x):
    return _linear(mlp.c_proj, kernels.gelu_forward(_linear(mlp.c_fc, x)))
