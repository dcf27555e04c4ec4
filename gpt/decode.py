"""GPT.forward for inference on bare arrays: the decoding path of gpt/sample.py.

Sampling with a key-value cache runs the model on one new position at a time.
For the shapes people sample here (4 layers, n_embd 128) that is a few
microseconds of arithmetic per op, and model(ids, kv_cache=...) spends ~2 ms a
token building Tensors and graph nodes it will never differentiate. This file
computes the same thing straight from the parameters' arrays with the same
kernels (minigrad.kernels), ~0.3 ms a token: no Tensor, no graph, no dropout
(inference), and logits for the last position only, which is all a sampler reads.

It mirrors GPT.forward step by step; tests/test_decode.py holds the two equal,
with and without a cache, so gpt/model.py stays the one readable definition.
"""
import math

import numpy as np

from minigrad import kernels


def last_logits(model, ids, cache=None):
    """Logits of the last position (N, V) for ids (N, T) int64, in the model's dtype.

    With a KVCache, ids are the new tokens at positions cache.length onwards; their keys
    and values are appended and cache.length moves on by T. Without one, ids is the
    whole context (positions 0..T-1), recomputed from scratch.
    """
    cfg, tr = model.config, model.transformer
    N, T = ids.shape
    past = 0 if cache is None else cache.length
    if past + T > cfg.block_size:
        raise ValueError(f"decode: sequence length {past + T} (past {past} + new {T}) exceeds "
                         f"block_size {cfg.block_size}")
    x = tr.wte.weight.data[ids] + tr.wpe.weight.data[past:past + T]  # (N, T, C)
    for layer, block in enumerate(tr.h):
        x = x + _attention(block.attn, _layer_norm(block.ln_1, x), cache, layer)  # (N, T, C)
        x = x + _mlp(block.mlp, _layer_norm(block.ln_2, x))  # (N, T, C)
    if cache is not None:
        cache.length += T
    x = _layer_norm(tr.ln_f, x[:, -1])  # (N, C): the last position is all a sampler needs
    return kernels.matmul(x, model.lm_head.weight.data.T)  # (N, C) @ (C, V) -> (N, V)


def _linear(conv, x):
    """Conv1D: x (..., in) @ W (in, out) + b."""
    y = kernels.matmul(x, conv.weight.data)  # (..., out)
    return y if conv.bias is None else y + conv.bias.data


def _layer_norm(ln, x):
    bias = None if ln.bias is None else ln.bias.data
    return kernels.layer_norm_forward(x, ln.weight.data, bias, ln.eps)[0]


def _attention(attn, x, cache, layer):
    N, T, C = x.shape
    H = attn.n_head
    D = C // H
    qkv = _linear(attn.c_attn, x).reshape(N, T, 3, H, D)  # (N, T, 3C) -> (N, T, 3, H, D)
    q, k, v = (qkv[:, :, i].transpose(0, 2, 1, 3) for i in range(3))  # 3 x (N, H, T, D) views
    if cache is not None:
        k, v = cache.append(layer, k, v)  # (N, H, Tk, D), the cached prefix and these T
    y, _ = kernels.attention_forward(q, k, v, 1.0 / math.sqrt(D))  # (N, H, T, D), bottom-right causal
    return _linear(attn.c_proj, y.transpose(0, 2, 1, 3).reshape(N, T, C))  # (N, T, H, D) -> (N, T, C)


def _mlp(mlp, x):
    return _linear(mlp.c_proj, kernels.gelu_forward(_linear(mlp.c_fc, x)))
