"""GPT.decode (gpt/decode.py), the graph-free inference path that sampling runs on, gives
the same last-position logits as the Tensor forward pass, with and without a KV cache."""
import numpy as np
import pytest

import minigrad as mg
from minigrad import kernels
from gpt.model import GPT, GPTConfig, KVCache


def make(dtype=np.float64, bias=True, dropout=0.0, seed=3):
    mg.manual_seed(seed)
    m = GPT(GPTConfig(vocab_size=19, block_size=12, n_layer=2, n_head=2, n_embd=8, bias=bias,
                      dropout=dropout), dtype=dtype)
    for p in m.parameters():  # non-trivial biases and LayerNorm gains, not GPT-2's 0/1 init
        p.data += (0.1 * mg.random.rng().standard_normal(p.shape)).astype(dtype)
    return m


def reference(model, ids):
    """Last-position logits of the Tensor forward pass, the definition decode must match."""
    model.eval()
    with mg.no_grad():
        logits, _ = model(ids)
    return logits.data[:, -1]


IDS = np.random.default_rng(0).integers(0, 19, size=(3, 12))


@pytest.mark.parametrize("bias", [True, False])
@pytest.mark.parametrize("dtype,tol", [(np.float64, 1e-12), (np.float32, 2e-6)])
def test_decode_without_cache_equals_forward(bias, dtype, tol):
    model = make(dtype, bias)
    for T in (1, 5, 12):
        got = model.decode(IDS[:, :T])
        assert got.shape == (3, 19) and got.dtype == dtype
        np.testing.assert_allclose(got, reference(model, IDS[:, :T]), rtol=0, atol=tol)


@pytest.mark.parametrize("prefill", [1, 4])
def test_decode_with_cache_equals_forward_at_every_step(prefill):
    model = make()
    cache = KVCache(model.config, batch_size=3, dtype=np.float64)
    got = [model.decode(IDS[:, :prefill], cache)]
    for t in range(prefill, IDS.shape[1]):
        got.append(model.decode(IDS[:, t:t + 1], cache))  # one new position at a time
    assert cache.length == IDS.shape[1]
    for i, T in enumerate(range(prefill, IDS.shape[1] + 1)):
        np.testing.assert_allclose(got[i], reference(model, IDS[:, :T]), rtol=0, atol=1e-12)


def test_decode_matches_on_the_numpy_backend_too():
    model = make()
    with kernels.use_backend("numpy"):
        got = model.decode(IDS)
    np.testing.assert_allclose(got, reference(model, IDS), rtol=0, atol=1e-12)


def test_decode_is_eval_mode_and_leaves_mode_and_grad_state_alone():
    model = make(dropout=0.5)
    model.train()
    got = model.decode(IDS)  # no dropout: inference, whatever the mode
    assert model.training and mg.is_grad_enabled()
    np.testing.assert_allclose(got, reference(model, IDS), rtol=0, atol=1e-12)


def test_decode_past_block_size_is_a_clear_error():
    model = make()
    cache = KVCache(model.config, batch_size=3, dtype=np.float64)
    model.decode(IDS[:, :10], cache)
    with pytest.raises(ValueError, match=r"sequence length 13 \(past 10 \+ new 3\) exceeds block_size 12"):
        model.decode(IDS[:, :3], cache)
    with pytest.raises(ValueError, match=r"out of range \[0, vocab_size=19\)"):
        model.decode(np.array([[19]]))
