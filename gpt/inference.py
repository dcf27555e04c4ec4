"""Inference: GPT's forward pass on bare arrays, with a key-value cache per sequence.

    cache = KVCache(model.config, batch_size=3)
    logits = forward(model, prompt_ids[None], cache, rows=[1])   # fill row 1 with its prompt
    logits = forward(model, next_ids[:, None], cache)           # one new token for every row
    probs = attention_probs(model, ids)     # every layer's (N, H, T, T) attention, for study

Sampling, batched evaluation and serving all run here. Each row of the cache is
one sequence with its own length: a forward appends the given tokens to the
rows named by `rows`, at each row's own next positions, and attends over that
row's keys only, so sequences of different lengths share one batch (prompts
are filled one row at a time, then every row advances together). No Tensor and
no graph: the same kernels as GPT.forward (minigrad.kernels) on the parameters'
arrays, and logits for the last position only, which is all a sampler reads.
tests/test_inference.py holds it equal to GPT.forward.

A step of one token per row (T == 1: decoding) runs its linear layers and the
lm_head on kernels.linear_rowwise instead of BLAS (an int8 model on its int8
product's row-wise kernel), so that each row's logits are the same bits whether it
advances alone or among other rows, on any number of threads: a greedy answer does
not depend on what else is in the batch. Every other op here is computed row by
row already. A longer forward (a prompt, filled one row at a time) stays on BLAS:
its shape does not depend on the batch.
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

    def copy_row(self, src, dst):
        """Row dst continues from row src's positions (several samples of one prompt)."""
        n = self.lengths[src]
        self.k[:, dst, :, :n] = self.k[:, src, :, :n]
        self.v[:, dst, :, :n] = self.v[:, src, :, :n]
        self.lengths[dst] = n


def attention_probs(model, ids):
    """The attention probabilities of every layer for ids ((N, T), or one sequence (T,)): a
    list of n_layer arrays (N, n_head, T, T), where [b, h, i, j] is the weight query i puts
    on key j; each row sums to 1, and is 0 past the diagonal (j > i: causal). What
    transformers returns with output_attentions=True, from the forward pass sampling runs.

    Example: attention_probs(model, [5, 1, 2])[0].shape == (1, model.config.n_head, 3, 3)
    """
    attentions = []
    forward(model, np.atleast_2d(np.asarray(ids)), attentions=attentions)
    return attentions


def forward(model, ids, cache=None, rows=None, attentions=None):
    """Logits of the last position (N, V) for ids (N, T) int, in the model's dtype.

    With a cache, ids are the next T tokens of cache rows `rows` (default: all rows, N of
    them), at positions lengths[row] onwards; their keys and values are stored and lengths
    move on by T. Without one, ids is each sequence's whole context (positions 0..T-1), and
    a list given as attentions receives each layer's probabilities (attention_probs).
    """
    if attentions is not None and cache is not None:
        raise ValueError("inference: attention probabilities are recorded without a cache only")
    cfg, tr = model.config, model.transformer
    ids = np.asarray(ids, dtype=np.int64)
    N, T = ids.shape
    rows = np.arange(N) if rows is None else np.asarray(rows, dtype=np.int64).reshape(N)
    past = np.zeros(N, dtype=np.int64) if cache is None else cache.lengths[rows]
    if (past + T).max() > cfg.block_size:
        raise ValueError(f"inference: sequence length {int((past + T).max())} (past {int(past.max())} + new {T}) "
                         f"exceeds block_size {cfg.block_size}")
    step = T == 1  # a decoding step: batch-invariant products
    x = tr.wte.weight.data[ids] + tr.wpe.weight.data[past[:, None] + np.arange(T)]  # (N, T, C)
    for layer, block in enumerate(tr.h):
        x = x + _attention(block.attn, _layer_norm(block.ln_1, x), cache, layer, rows, past, step, attentions)
        x = x + _mlp(block.mlp, _layer_norm(block.ln_2, x), step)  # (N, T, C)
    if cache is not None:
        cache.lengths[rows] += T
    x = _layer_norm(tr.ln_f, x[:, -1])  # (N, C): the last position is all a sampler needs
    if isinstance(model.lm_head, Int8Linear):  # int8 head (gpt/quantize.py)
        return model.lm_head.product(x, step)  # (N, C) -> (N, V)
    head = model.lm_head.weight.data.T  # (C, V), a view of wte (tied)
    return kernels.linear_rowwise(x, head) if step else kernels.matmul(x, head)  # (N, C) @ (C, V) -> (N, V)


def _linear(conv, x, step):
    """Conv1D: x (..., in) @ W (in, out) + b, plus a LoRA adapter's scaling * x A^T B^T when
    the layer has one (gpt/lora.py), computed low-rank rather than merged. A decoding step
    uses the batch-invariant product, so a row's answer does not depend on the others."""
    if isinstance(conv, Int8Linear):  # int8 weights (gpt/quantize.py) bring their own product
        return conv.product(x, step)
    product = kernels.linear_rowwise if step else kernels.matmul
    y = product(x, conv.weight.data)  # (..., out)
    if getattr(conv, "lora_A", None) is not None:
        h = product(x, conv.lora_A.weight.data.T)  # (..., in) @ (in, r) -> (..., r)
        y = y + conv.scaling * product(h, conv.lora_B.weight.data.T)  # (..., r) @ (r, out)
    return y if conv.bias is None else y + conv.bias.data


def _layer_norm(ln, x):
    bias = None if ln.bias is None else ln.bias.data
    return kernels.layer_norm_forward(x, ln.weight.data, bias, ln.eps)[0]


def _attention(attn, x, cache, layer, rows, past, step, attentions=None):
    N, T, C = x.shape
    H = attn.n_head
    D = C // H
    scale = 1.0 / math.sqrt(D)
    qkv = _linear(attn.c_attn, x, step).reshape(N, T, 3, H, D)  # (N, T, 3C) -> (N, T, 3, H, D)
    q, k, v = (qkv[:, :, i].transpose(0, 2, 1, 3) for i in range(3))  # 3 x (N, H, T, D) views
    if cache is not None and T == 1:  # a decoding step: each row over its own keys, in one call
        cache.k[layer, rows, :, past] = k[:, :, 0]  # (n, H, D) at each row's own position
        cache.v[layer, rows, :, past] = v[:, :, 0]
        y = kernels.attention_decode(q[:, :, 0], cache.k[layer], cache.v[layer], rows, past + 1, scale)[:, :, None]
    elif cache is None:
        y, lse = kernels.attention_forward(q, k, v, scale)  # (N, H, T, D), causal; lse (N, H, T)
        if attentions is not None:
            attentions.append(_probs(q, k, lse, scale))
    elif (past == past[0]).all() and (rows == rows[0] + np.arange(N)).all():
        y = _cached_attention(cache, layer, slice(rows[0], rows[0] + N), int(past[0]), q, k, v, scale)
    else:  # rows at different lengths: each attends over its own keys
        y = np.concatenate([_cached_attention(cache, layer, slice(r, r + 1), int(p), q[b:b + 1], k[b:b + 1],
                                              v[b:b + 1], scale) for b, (r, p) in enumerate(zip(rows, past))])
    return _linear(attn.c_proj, y.transpose(0, 2, 1, 3).reshape(N, T, C), step)  # (N, T, H, D) -> (N, T, C)


def _probs(q, k, lse, scale):
    """The probabilities the attention kernel weighted v with, (N, H, T, T): exp(scale q.k - lse)
    on the visible keys, with lse the kernel's log-normaliser of each row; 0 above the diagonal."""
    T = q.shape[2]
    s = np.matmul(q, k.swapaxes(-1, -2)) * scale - lse[..., None]  # (N, H, T, D) @ (N, H, D, T)
    return np.exp(np.where(np.tri(T, dtype=bool), s, -np.inf)).astype(q.dtype, copy=False)


def _cached_attention(cache, layer, rows, start, q, k, v, scale):
    """Store k, v (n, H, T, D) at positions start.. of cache rows `rows` (a slice: views, no
    copies), then attend q over each row's keys 0..start+T-1, bottom-right causal."""
    end = start + q.shape[2]
    cache.k[layer, rows, :, start:end] = k
    cache.v[layer, rows, :, start:end] = v
    keys, values = cache.k[layer, rows, :, :end], cache.v[layer, rows, :, :end]  # (n, H, end, D)
    return kernels.attention_forward(q, keys, values, scale)[0]  # (n, H, T, D)


def _mlp(mlp, x, step):
    return _linear(mlp.c_proj, kernels.gelu_forward(_linear(mlp.c_fc, x, step)), step)
