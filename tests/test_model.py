"""GPT model: config checks, names and init, the inference path's cache, dropout path,
gradcheck, errors."""
import os
import time

import numpy as np
import pytest

import minigrad as mg
from gpt.inference import KVCache, forward
from gpt.model import GPT, GPTConfig

TINY = GPTConfig(vocab_size=11, block_size=5, n_layer=2, n_head=2, n_embd=8)
SMALL = GPTConfig(vocab_size=37, block_size=16, n_layer=2, n_head=4, n_embd=32)


def model_of(config, seed=0, dtype=np.float32):
    mg.manual_seed(seed)
    return GPT(config).to(dtype)


# ---- config ---------------------------------------------------------------------------

@pytest.mark.parametrize("field, value, message", [
    ("n_embd", 30, "n_embd (30) must be divisible by GPTConfig.n_head (4)"),
    ("n_head", 0, "n_head must be a positive integer"),
    ("vocab_size", -1, "vocab_size must be a positive integer"),
    ("block_size", 2.5, "block_size must be a positive integer"),
    ("n_layer", True, "n_layer must be a positive integer"),
    ("dropout", 1.0, "dropout must be in [0, 1)"),
    ("dropout", -0.1, "dropout must be in [0, 1)"),
])
def test_impossible_configs_name_the_field(field, value, message):
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(")", r"\)").replace("[", r"\[")):
        GPTConfig(**{**SMALL.to_dict(), field: value})


def test_defaults_are_gpt2_124m():
    gpt2 = GPTConfig()
    assert (gpt2.n_layer, gpt2.n_head, gpt2.n_embd, gpt2.block_size, gpt2.vocab_size) == (12, 12, 768, 1024, 50257)
    assert gpt2.bias and gpt2.dropout == 0.0


# ---- names, layout, init, sizes ---------------------------------------------------------

def test_parameter_names_and_layouts_are_hugging_faces():
    model = model_of(SMALL)
    sd = model.state_dict()
    C, V = SMALL.n_embd, SMALL.vocab_size
    assert sd["transformer.wte.weight"].shape == (V, C)
    assert sd["transformer.wpe.weight"].shape == (SMALL.block_size, C)
    assert sd["transformer.h.1.attn.c_attn.weight"].shape == (C, 3 * C)  # Conv1D: (in, out)
    assert sd["transformer.h.1.mlp.c_fc.weight"].shape == (C, 4 * C)
    assert sd["transformer.h.1.mlp.c_proj.weight"].shape == (4 * C, C)
    assert sd["lm_head.weight"] is sd["transformer.wte.weight"]  # tied
    assert model.lm_head.weight is model.transformer.wte.weight
    assert len(sd) == 2 + 12 * SMALL.n_layer + 2 + 1
    assert "lm_head.weight" not in dict(model.named_parameters())  # listed once, under wte


def test_gpt2_init():
    config = GPTConfig(vocab_size=500, block_size=64, n_layer=6, n_head=4, n_embd=128)
    sd = model_of(config).state_dict()
    assert abs(sd["transformer.wte.weight"].std() - 0.02) < 1e-3
    assert abs(sd["transformer.h.0.mlp.c_fc.weight"].std() - 0.02) < 1e-3
    residual = 0.02 / np.sqrt(2 * config.n_layer)
    assert abs(sd["transformer.h.3.mlp.c_proj.weight"].std() - residual) < 3e-4
    assert abs(sd["transformer.h.3.attn.c_proj.weight"].std() - residual) < 3e-4
    assert np.all(sd["transformer.h.2.attn.c_attn.bias"] == 0)
    assert np.all(sd["transformer.ln_f.weight"] == 1) and np.all(sd["transformer.h.0.ln_2.bias"] == 0)
    assert model_of(config, seed=1).state_dict()["transformer.wte.weight"][0, 0] != sd["transformer.wte.weight"][0, 0]
    assert np.array_equal(model_of(config).state_dict()["transformer.wte.weight"], sd["transformer.wte.weight"])


def test_num_params_and_flops():
    model = model_of(SMALL)
    C, L, V, T = SMALL.n_embd, SMALL.n_layer, SMALL.vocab_size, SMALL.block_size
    per_block = 2 * 2 * C + (C * 3 * C + 3 * C) + (C * C + C) + (C * 4 * C + 4 * C) + (4 * C * C + C)
    total = V * C + T * C + L * per_block + 2 * C
    assert model.num_params(non_embedding=False) == total
    assert model.num_params() == total - T * C
    assert model.flops_per_token() == 6 * (total - T * C) + 12 * L * SMALL.n_head * (C // SMALL.n_head) * T
    assert model.flops_per_token(seq_len=4) < model.flops_per_token()


def test_resize_token_embeddings_adds_mean_rows_to_the_tied_table():
    mg.manual_seed(0)
    m = GPT(GPTConfig(vocab_size=20, block_size=8, n_layer=1, n_head=2, n_embd=8)).eval()
    ids = np.array([[1, 5, 7, 19]])
    before, old_rows = m(ids)[0].data, m.transformer.wte.weight.data.copy()
    m.resize_token_embeddings(23)
    after = m(ids)[0].data
    assert m.config.vocab_size == 23 and m.lm_head.weight is m.transformer.wte.weight
    assert np.array_equal(m.transformer.wte.weight.data[:20], old_rows)
    assert np.allclose(m.transformer.wte.weight.data[20:], old_rows.mean(0), atol=1e-7)
    assert np.array_equal(after[..., :20], before)  # old tokens' logits unchanged
    assert np.allclose(after[..., 20], before.mean(-1), atol=1e-5)  # a new token's: the mean logit
    assert m.resize_token_embeddings(23) is m.transformer.wte
    with pytest.raises(ValueError, match="would drop trained rows"):
        m.resize_token_embeddings(10)


def test_bias_false_has_no_biases():
    model = model_of(GPTConfig(**{**SMALL.to_dict(), "bias": False}))
    assert not [n for n in model.state_dict() if n.endswith(".bias")]
    logits, loss = model(np.zeros((1, 4), int), np.ones((1, 4), int))
    loss.backward()
    assert logits.shape == (1, 4, SMALL.vocab_size) and np.isfinite(loss.item())


# ---- forward, errors ----------------------------------------------------------------------

def test_forward_shapes_and_ignore_index():
    model = model_of(SMALL)
    idx = np.arange(12).reshape(2, 6)
    logits, loss = model(idx)
    assert logits.shape == (2, 6, SMALL.vocab_size) and loss is None
    targets = idx.copy()
    targets[:, :3] = -100
    _, partial = model(idx, targets)
    _, kept = model(idx[:, 3:], targets[:, 3:])  # not the same: earlier tokens are context
    assert np.isfinite(partial.item()) and np.isfinite(kept.item())
    _, also = model(mg.tensor(idx), mg.tensor(targets))
    assert also.item() == partial.item()


@pytest.mark.parametrize("idx, targets, error, message", [
    (np.array([1, 2, 3]), None, ValueError, "idx must have shape \\(B, T\\), got ndim 1"),
    (np.array([[1, 37, 2]]), None, ValueError, r"idx\[0, 1\] = 37 is out of range \[0, vocab_size=37\)"),
    (np.array([[1, -1, 2]]), None, ValueError, r"idx\[0, 1\] = -1"),
    (np.zeros((1, 17), int), None, ValueError, "sequence length 17 exceeds block_size 16"),
    (np.zeros((1, 3)), None, TypeError, "integer token ids, got dtype float64"),
    (np.zeros((1, 3), int), np.zeros((1, 4), int), ValueError, r"targets shape \(1, 4\) != idx shape \(1, 3\)"),
    (np.zeros((1, 3), int), np.array([[0, 40, 1]]), ValueError, r"targets\[0, 1\] = 40 is out of range"),
    (np.zeros((1, 0), int), None, ValueError, "idx is empty"),
])
def test_bad_inputs_are_clear_errors(idx, targets, error, message):
    with pytest.raises(error, match=message):
        model_of(SMALL)(idx, targets)


def test_residual_gradient_regression():
    """x + f(x): the gradient must reach x through both paths (minigrad's topological
    order once processed x before f's output, dropping f's contribution)."""
    x = mg.tensor([1.0], requires_grad=True, dtype=np.float64)
    (x + x.exp()).sum().backward()
    assert np.allclose(x.grad, 1 + np.e)


# ---- KV cache ---------------------------------------------------------------------------

@pytest.mark.parametrize("chunks", [[16], [1] * 16, [5, 1, 1, 4, 5], [3, 13]])
def test_kv_cache_logits_equal_full_recompute(chunks):
    """The sequence fed to the inference path in chunks: after each chunk, the logits of its
    last position are the training forward's at that position."""
    model = model_of(SMALL, seed=2)
    idx = np.random.default_rng(0).integers(0, SMALL.vocab_size, (2, 16))
    with mg.no_grad():
        full, _ = model(idx)
    cache = KVCache(SMALL, batch_size=2)
    start = 0
    for n in chunks:
        got = forward(model, idx[:, start:start + n], cache)
        start += n
        assert np.abs(got - full.data[:, start - 1]).max() < 1e-5
    assert list(cache.lengths) == [16, 16]


def test_sequence_past_block_size_is_a_clear_error():
    model = model_of(SMALL)
    with pytest.raises(ValueError, match="sequence length 17 exceeds block_size 16"):
        model(np.zeros((1, 17), int))
    cache = KVCache(SMALL, batch_size=1)
    forward(model, np.zeros((1, 10), int), cache)
    with pytest.raises(ValueError, match=r"sequence length 17 \(past 10 \+ new 7\) exceeds block_size 16"):
        forward(model, np.zeros((1, 7), int), cache)


# ---- dropout: composed attention when training with dropout > 0 -------------------------

def test_composed_attention_path_equals_fused_kernel():
    """Training with dropout > 0 takes the composed (primitive) attention; with every
    Dropout's p set to 0 it must compute what the fused kernel does, gradients included."""
    config = GPTConfig(**{**SMALL.to_dict(), "dropout": 0.1})
    idx = np.random.default_rng(1).integers(0, SMALL.vocab_size, (2, 16))
    fused = model_of(config, seed=4, dtype=np.float64).eval()
    composed = model_of(config, seed=4, dtype=np.float64).train()
    for m in composed.modules():
        if isinstance(m, mg.nn.Dropout):
            m.p = 0.0
    (a, la), (b, lb) = fused(idx, idx), composed(idx, idx)
    la.backward()
    lb.backward()
    assert np.abs(a.data - b.data).max() < 1e-12
    for (name, p), q in zip(fused.named_parameters(), composed.parameters()):
        assert np.abs(p.grad - q.grad).max() < 1e-12, name


def test_train_mode_dropout_is_random_and_eval_is_not():
    model = model_of(GPTConfig(**{**SMALL.to_dict(), "dropout": 0.3}))
    idx = np.zeros((1, 8), int)
    assert not np.allclose(model(idx)[0].data, model(idx)[0].data)
    model.eval()
    assert np.array_equal(model(idx)[0].data, model(idx)[0].data)


# ---- gradcheck of the whole model ----------------------------------------------------------

def _bind(model, tensors):
    """Make the model compute with `tensors` (one per parameter, in parameters() order) in
    place of its parameters, tied names included; returns a function that undoes it."""
    by_id = {id(p): t for p, t in zip(model.parameters(), tensors)}
    undo = []
    for name, p in list(model._named_tensors()):
        *path, attr = name.split(".")
        owner = model
        for part in path:
            owner = owner[int(part)] if part.isdigit() else getattr(owner, part)
        undo.append((owner, attr, p))
        setattr(owner, attr, by_id[id(p)])
    return lambda: [setattr(o, a, p) for o, a, p in undo]


def test_whole_model_loss_passes_gradcheck_for_every_parameter():
    model = model_of(TINY, seed=5, dtype=np.float64)
    gen = np.random.default_rng(0)
    idx = gen.integers(0, TINY.vocab_size, (2, 5))
    targets = gen.integers(0, TINY.vocab_size, (2, 5))
    targets[1, 0] = -100
    params = model.parameters()
    for p in params:  # break the init's symmetries (zero biases, unit gains) so every term is exercised
        p.data += gen.normal(0, 0.1, p.shape)

    def loss_of(*tensors):
        restore = _bind(model, tensors)
        try:
            return model(idx, targets)[1]
        finally:
            restore()

    # Every tensor gets 3 random projections u^T J v (fast mode); every tensor of <= 40
    # elements (all biases and LayerNorm gains, wpe) is also checked element by element.
    # MINIGRAD_GRADCHECK_FULL=1 checks all 1888 elements one by one (about 1-2 minutes).
    full_limit = np.inf if os.environ.get("MINIGRAD_GRADCHECK_FULL") else 40
    start = time.perf_counter()
    for seed in range(3):
        assert mg.gradcheck(loss_of, tuple(params), eps=1e-6, atol=1e-7, rtol=1e-5, fast_mode=True, seed=seed)
    small = tuple(mg.Tensor(p.data, requires_grad=p.numel() <= full_limit) for p in params)
    assert mg.gradcheck(loss_of, small, eps=1e-6, atol=1e-7, rtol=1e-5)
    n = sum(p.numel() for p in params)
    n_full = sum(p.numel() for p in small if p.requires_grad)
    print(f"gradcheck of the whole GPT loss, {n} parameters in {len(params)} tensors, "
          f"{n_full} element by element: {time.perf_counter() - start:.1f} s")
