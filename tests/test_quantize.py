"""Weight-only int8 (minigrad/kernels/int8.py, gpt/quantize.py): the kernel against its NumPy
twin and against the float32 product with the dequantised weights; rows that do not depend
on the batch or the thread count; a quantised GPT equal to the float32 GPT whose weights are
the dequantised ones, through both forward passes."""
import numpy as np
import pytest

import minigrad as mg
from minigrad import kernels
from minigrad.kernels import numba_impl as nb, numpy_impl as twin
from gpt.inference import KVCache, forward
from gpt.model import GPT, GPTConfig, LMHead
from gpt.quantize import Int8Linear, quantize_int8

RNG = np.random.default_rng(0)


def weights(M, K, scale=0.05):
    w = (RNG.standard_normal((M, K)) * scale).astype(np.float32)
    w[1] *= 40  # one loud channel: per-row scales keep the others precise
    return w


def test_quantize_rows_round_trip():
    w = weights(37, 50)
    w[3] = 0  # an all-zero row
    wq, scale = kernels.quantize_rows(w)
    assert wq.dtype == np.int8 and scale.dtype == np.float32 and scale.shape == (37,)
    assert kernels.quantize_rows(w.T.copy().T)[0].flags.c_contiguous  # rows contiguous, whatever w's layout
    assert np.abs(wq).max() == 127 and wq.min() >= -127
    assert (wq[3] == 0).all() and scale[3] == 0
    err = np.abs(wq * scale[:, None] - w)
    assert (err <= scale[:, None] / 2 + 1e-7).all()  # rounding: at most half a step per weight


@pytest.mark.parametrize("N", [1, 3, 8, 9, 40])  # the dot-product kernel up to 8 rows, BLAS above
@pytest.mark.parametrize("bias", [False, True])
def test_linear_int8_equals_twin_and_dequantised_product(N, bias):
    M, K = 300, 200
    wq, scale = kernels.quantize_rows(weights(M, K))
    b = RNG.standard_normal(M).astype(np.float32) if bias else None
    x = RNG.standard_normal((N, K)).astype(np.float32)
    got, want = nb.linear_int8(x, wq, scale, b), twin.linear_int8(x, wq, scale, b)
    assert got.dtype == np.float32 and got.shape == (N, M)
    dequantised = x @ (wq * scale[:, None]).T + (0 if b is None else b)  # float32 weights, float32 product
    for ref in (want, dequantised):
        np.testing.assert_allclose(got, ref, rtol=1e-5, atol=1e-5 * np.abs(ref).max())


def test_linear_int8_keeps_leading_dims():
    wq, scale = kernels.quantize_rows(weights(12, 8))
    x = RNG.standard_normal((2, 3, 8)).astype(np.float32)
    assert nb.linear_int8(x, wq, scale).shape == (2, 3, 12)


def test_a_row_is_the_same_alone_in_a_batch_and_on_any_thread_count():
    wq, scale = kernels.quantize_rows(weights(5000, 64))  # 320k weights: split over threads
    x = RNG.standard_normal((8, 64)).astype(np.float32)
    before = kernels.get_num_threads()
    try:
        kernels.set_num_threads(1)
        alone = nb.linear_int8(x[:1], wq, scale)
        for n in (2, 3):
            kernels.set_num_threads(n)
            np.testing.assert_array_equal(nb.linear_int8(x, wq, scale)[:1], alone)
    finally:
        kernels.set_num_threads(before)


def test_rowwise_rows_are_the_same_in_any_batch_beyond_the_dot_kernel_rows():
    """A serving step may decode more rows than the dot kernel's usual 8: rowwise keeps them
    on it, so a row is the same bits alone, among 12 and on any thread count."""
    wq, scale = kernels.quantize_rows(weights(5000, 64))
    x = RNG.standard_normal((12, 64)).astype(np.float32)
    before = kernels.get_num_threads()
    try:
        kernels.set_num_threads(1)
        alone = [nb.linear_int8(x[n:n + 1], wq, scale, rowwise=True)[0] for n in range(12)]
        for n_threads in (1, 2, 3):
            kernels.set_num_threads(n_threads)
            np.testing.assert_array_equal(nb.linear_int8(x, wq, scale, rowwise=True), np.stack(alone))
    finally:
        kernels.set_num_threads(before)
    np.testing.assert_allclose(np.stack(alone), twin.linear_int8(x, wq, scale), rtol=1e-5, atol=1e-4)


def test_a_lora_model_is_quantised_with_its_adapters_merged():
    from gpt import lora
    model, merged = make_model(), make_model()
    for m in (model, merged):
        lora.apply_lora(m, lora.AdapterConfig(r=2, alpha=4.0, targets=["c_attn", "c_fc"]))
    for (name, p), twin_p in zip(model.named_parameters(), merged.parameters()):
        if ".lora_B" in name:  # B = 0 at the start: give the adapter something to add
            p.data[...] = 0.1 * np.cos(np.arange(p.data.size)).reshape(p.shape)
        twin_p.data[...] = p.data
    lora.merge(merged)
    q, qm = quantize_int8(model), quantize_int8(merged)
    for block, mblock in zip(q.transformer.h, qm.transformer.h):
        for name in ("c_attn", "c_proj"):
            np.testing.assert_array_equal(getattr(block.attn, name).weight_q, getattr(mblock.attn, name).weight_q)
    ids = np.random.default_rng(3).integers(0, 23, (2, 16))
    np.testing.assert_array_equal(forward(q, ids), forward(qm, ids))


def make_model(bias=True):
    mg.manual_seed(5)
    model = GPT(GPTConfig(vocab_size=23, block_size=16, n_layer=2, n_head=2, n_embd=16, bias=bias))
    for p in model.parameters():
        p.data += (0.05 * mg.random.rng().standard_normal(p.shape)).astype(np.float32)
    return model


def dequantised_twin(q):
    """A float32 GPT whose matmul weights are exactly what q's int8 weights stand for (its head
    untied from the embedding, as q's)."""
    ref = make_model()
    for block, qblock in zip(ref.transformer.h, q.transformer.h):
        for owner, qowner, name in ((block.attn, qblock.attn, "c_attn"), (block.attn, qblock.attn, "c_proj"),
                                    (block.mlp, qblock.mlp, "c_fc"), (block.mlp, qblock.mlp, "c_proj")):
            getattr(owner, name).weight.data[...] = getattr(qowner, name).dequantized().T
    ref.lm_head = LMHead(mg.nn.Parameter(q.lm_head.dequantized()))
    return ref


def test_quantized_gpt_equals_the_dequantised_float32_gpt():
    q = quantize_int8(make_model())
    assert isinstance(q.lm_head, Int8Linear) and isinstance(q.transformer.h[0].mlp.c_fc, Int8Linear)
    ref = dequantised_twin(q)
    ids = np.random.default_rng(1).integers(0, 23, (3, 16))
    with mg.no_grad():
        want, _ = ref(ids)
        got, _ = q(ids)  # the Tensor forward pass (gpt eval)
    np.testing.assert_allclose(got.data, want.data, rtol=1e-4, atol=1e-4)
    # the graph-free pass (sampling), with and without the cache, gives the same last logits
    np.testing.assert_allclose(forward(q, ids), got.data[:, -1], rtol=1e-4, atol=1e-4)
    cache = KVCache(q.config, 3)
    forward(q, ids[:, :10], cache)
    steps = [forward(q, ids[:, t:t + 1], cache) for t in range(10, 16)]
    np.testing.assert_allclose(steps[-1], got.data[:, -1], rtol=1e-4, atol=1e-4)


def test_quantized_model_is_close_to_float32_and_inference_only():
    model = make_model()
    ids = np.random.default_rng(2).integers(0, 23, (2, 16))
    with mg.no_grad():
        fp32 = model(ids)[0].data
        int8 = quantize_int8(model)(ids)[0].data
    assert np.abs(int8 - fp32).max() < 0.05 * np.abs(fp32).max()
    assert quantize_int8(model) is model  # quantising twice leaves it as it is
    with pytest.raises(RuntimeError, match="no_grad"):
        model(ids)  # the layer norms still want gradients: a clear error, not silent zeros
