"""gpt/inference.py, the graph-free forward pass that sampling runs on, gives the same
last-position logits as GPT.forward: without a cache, with one filled step by step, and
with rows of a batch at different lengths."""
import numpy as np
import pytest

import minigrad as mg
from minigrad import kernels
from conftest import require
from gpt.inference import KVCache, attention_probs, forward
from gpt.model import GPT, GPTConfig


def make(dtype=np.float64, bias=True, dropout=0.0, seed=3):
    mg.manual_seed(seed)
    m = GPT(GPTConfig(vocab_size=19, block_size=12, n_layer=2, n_head=2, n_embd=8, bias=bias,
                      dropout=dropout), dtype=dtype)
    for p in m.parameters():  # non-trivial biases and LayerNorm gains, not GPT-2's 0/1 init
        p.data += (0.1 * mg.random.rng().standard_normal(p.shape)).astype(dtype)
    return m


def reference(model, ids):
    """Last-position logits of the Tensor forward pass, the definition inference must match."""
    model.eval()
    with mg.no_grad():
        logits, _ = model(np.asarray(ids))
    return logits.data[:, -1]


IDS = np.random.default_rng(0).integers(0, 19, size=(3, 12))


@pytest.mark.parametrize("bias", [True, False])
@pytest.mark.parametrize("dtype,tol", [(np.float64, 1e-12), (np.float32, 2e-6)])
def test_forward_without_cache_equals_the_model(bias, dtype, tol):
    model = make(dtype, bias)
    for T in (1, 5, 12):
        got = forward(model, IDS[:, :T])
        assert got.shape == (3, 19) and got.dtype == dtype
        np.testing.assert_allclose(got, reference(model, IDS[:, :T]), rtol=0, atol=tol)


@pytest.mark.parametrize("prefill", [1, 4])
def test_forward_with_cache_equals_the_model_at_every_step(prefill):
    model = make()
    cache = KVCache(model.config, batch_size=3, dtype=np.float64)
    got = [forward(model, IDS[:, :prefill], cache)]
    for t in range(prefill, IDS.shape[1]):
        got.append(forward(model, IDS[:, t:t + 1], cache))  # one new position at a time
    assert list(cache.lengths) == [IDS.shape[1]] * 3
    for i, T in enumerate(range(prefill, IDS.shape[1] + 1)):
        np.testing.assert_allclose(got[i], reference(model, IDS[:, :T]), rtol=0, atol=1e-12)


def test_rows_at_different_lengths_share_a_batch():
    """Each row filled with its own prompt (lengths 2, 7, 4), then all advanced together:
    every row's logits are its own sequence's, as if it ran alone."""
    model = make()
    cache = KVCache(model.config, batch_size=3, dtype=np.float64)
    lengths = [2, 7, 4]
    for row, n in enumerate(lengths):
        got = forward(model, IDS[row:row + 1, :n], cache, rows=[row])
        np.testing.assert_allclose(got, reference(model, IDS[row:row + 1, :n]), rtol=0, atol=1e-12)
    for step in range(3):
        nxt = np.array([[IDS[r, n + step]] for r, n in enumerate(lengths)])
        got = forward(model, nxt, cache)
        for r, n in enumerate(lengths):
            np.testing.assert_allclose(got[r], reference(model, IDS[r:r + 1, :n + step + 1])[0], rtol=0, atol=1e-12)
    assert list(cache.lengths) == [n + 3 for n in lengths]
    got = forward(model, np.array([[IDS[2, 7]], [IDS[0, 5]]]), cache, rows=[2, 0])  # a subset, any order
    np.testing.assert_allclose(got[0], reference(model, IDS[2:3, :8])[0], rtol=0, atol=1e-12)
    np.testing.assert_allclose(got[1], reference(model, IDS[0:1, :6])[0], rtol=0, atol=1e-12)
    cache.reset([1])
    assert list(cache.lengths) == [6, 0, 8]


def test_forward_matches_on_the_numpy_backend_too():
    model = make()
    with kernels.use_backend("numpy"):
        got = forward(model, IDS)
    np.testing.assert_allclose(got, reference(model, IDS), rtol=0, atol=1e-12)


def test_inference_ignores_mode_and_leaves_mode_and_grad_state_alone():
    model = make(dropout=0.5)
    model.train()
    got = forward(model, IDS)  # no dropout: inference, whatever the mode
    assert model.training and mg.is_grad_enabled()
    np.testing.assert_allclose(got, reference(model, IDS), rtol=0, atol=1e-12)


def test_past_block_size_is_a_clear_error():
    model = make()
    cache = KVCache(model.config, batch_size=3, dtype=np.float64)
    forward(model, IDS[:, :10], cache)
    with pytest.raises(ValueError, match=r"sequence length 13 \(past 10 \+ new 3\) exceeds block_size 12"):
        forward(model, IDS[:, :3], cache)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_a_decoding_step_gives_a_row_the_same_bits_alone_or_in_a_batch(dtype):
    """Greedy answers must not depend on the batch: a row's logits after a one-token step are
    bit-identical whether it advances alone or among 8 rows, at equal or different lengths."""
    model = make(dtype)
    ids = np.random.default_rng(1).integers(0, 19, size=(8, 6))
    for lengths in ([4] * 8, [1, 4, 2, 5, 3, 4, 1, 2]):
        batch = KVCache(model.config, batch_size=8, dtype=dtype)
        for r, n in enumerate(lengths):
            forward(model, ids[r:r + 1, :n], batch, rows=[r])
        together = forward(model, np.array([[ids[r, n]] for r, n in enumerate(lengths)]), batch)
        for r, n in enumerate(lengths):
            alone = KVCache(model.config, batch_size=1, dtype=dtype)
            forward(model, ids[r:r + 1, :n], alone)
            np.testing.assert_array_equal(forward(model, ids[r:r + 1, n:n + 1], alone)[0], together[r])


def recomputed_attention(model, ids):
    """Each layer's probabilities recomputed from the training modules: the residual stream
    entering each block, its ln_1 and c_attn, then softmax(q k^T / sqrt(D)) over keys j <= i."""
    tr, H = model.transformer, model.config.n_head
    N, T = ids.shape
    model.eval()
    out = []
    with mg.no_grad():
        x = tr.wte(ids) + tr.wpe(np.arange(T))  # (N, T, C)
        for block in tr.h:
            q, k, _ = np.split(block.attn.c_attn(block.ln_1(x)).data, 3, axis=-1)  # 3 x (N, T, C)
            q, k = (a.reshape(N, T, H, -1).transpose(0, 2, 1, 3) for a in (q, k))  # (N, H, T, D)
            s = np.where(np.tri(T, dtype=bool), q @ k.swapaxes(-1, -2) / np.sqrt(q.shape[-1]), -np.inf)
            e = np.exp(s - s.max(-1, keepdims=True))  # (N, H, T, T)
            out.append(e / e.sum(-1, keepdims=True))
            x = block(x)
    return out


@pytest.mark.parametrize("backend", ["numba", "numpy"])
def test_attention_probs_equal_a_recomputation(backend):
    model = make()
    with kernels.use_backend(backend):
        got = attention_probs(model, IDS)
    want = recomputed_attention(model, IDS)
    assert len(got) == model.config.n_layer
    for g, w in zip(got, want):
        assert g.shape == (3, 2, 12, 12) and g.dtype == np.float64
        np.testing.assert_allclose(g, w, rtol=0, atol=1e-12)
        assert (np.triu(g, k=1) == 0).all()
        np.testing.assert_allclose(g.sum(-1), 1.0, rtol=0, atol=1e-12)
    one = attention_probs(model, IDS[1, :5])  # one sequence: a batch of one
    np.testing.assert_allclose(one[1], want[1][1:2, :, :5, :5], rtol=0, atol=1e-12)  # causal: a prefix
    with pytest.raises(ValueError, match="without a cache only"):
        forward(model, IDS, KVCache(model.config, 3, np.float64), attentions=[])


def test_attention_probs_equal_transformers_output_attentions(tmp_path):
    torch, transformers = require("torch"), require("transformers")
    model = make(np.float32)
    model.save_pretrained(tmp_path)
    theirs = transformers.GPT2LMHeadModel.from_pretrained(tmp_path, attn_implementation="eager").eval()
    with torch.no_grad():
        want = theirs(torch.from_numpy(IDS), output_attentions=True).attentions
    got = attention_probs(model, IDS)
    assert len(got) == len(want)
    for g, w in zip(got, want):
        np.testing.assert_allclose(g, w.numpy(), rtol=0, atol=2e-6)
