"""Interop with Hugging Face beyond tests/test_hf.py: GPT-2 config variants, half-precision
and sharded checkpoints, generation both ways, and folders that must be refused clearly.

Models are built with `transformers` inside each test (nothing is downloaded); the
oracles come through conftest.require, so CI (MINIGRAD_REQUIRE_REFERENCE=1) never skips.
"""
import json
import os

import numpy as np
import pytest
from safetensors.numpy import load_file, save_file

import minigrad as mg
from conftest import require
from gpt import GPT, GPTConfig, generate
from gpt.errors import CheckpointError
from minigrad.nn.state import read_header

# (name, GPT2Config keyword arguments); every variant is a model we compute exactly.
VARIANTS = [
    ("tiny-4-heads", dict(vocab_size=97, n_positions=32, n_embd=48, n_layer=2, n_head=4)),
    ("one-head", dict(vocab_size=50, n_positions=24, n_embd=32, n_layer=1, n_head=1)),
    ("12-heads", dict(vocab_size=211, n_positions=40, n_embd=96, n_layer=2, n_head=12)),
    ("head-dim-64", dict(vocab_size=130, n_positions=48, n_embd=128, n_layer=3, n_head=2,
                         n_inner=512, activation_function="gelu_pytorch_tanh")),
    ("gelu-fast-reordered", dict(vocab_size=64, n_positions=28, n_embd=40, n_layer=2, n_head=5,
                                 activation_function="gelu_fast", reorder_and_upcast_attn=True,
                                 layer_norm_epsilon=1e-5)),
]
PROMPT = [3, 1, 4, 1, 5]


# a user's config keeps transformers' default dropout 0.1 (the model is in eval mode)
from test_hf import hf_logits, random_hf_model as hf_model  # noqa: E402


def our_logits(model, idx):
    model.eval()
    with mg.no_grad():
        return model(idx)[0].data


def hf_greedy(model, prompt, n):
    torch = require("torch")
    ids = torch.tensor([prompt])
    with torch.no_grad():  # an explicit mask: HF would mask prompt tokens equal to pad_token_id
        return model.generate(ids, attention_mask=torch.ones_like(ids), max_new_tokens=n, do_sample=False,
                              pad_token_id=0, eos_token_id=None)[0].tolist()


def ids_for(config, seed=0):
    return np.random.default_rng(seed).integers(0, config.vocab_size, (2, config.block_size))


@pytest.mark.parametrize("name, kwargs", VARIANTS, ids=[v[0] for v in VARIANTS])
def test_config_variants_load_with_same_logits_and_greedy_tokens(tmp_path, name, kwargs):
    theirs = hf_model(**kwargs)
    theirs.save_pretrained(tmp_path)
    ours = GPT.from_pretrained(tmp_path)
    idx = ids_for(ours.config)
    diff = float(np.abs(our_logits(ours, idx) - hf_logits(theirs, idx)).max())
    print(f"\n{name}: max |logit diff| {diff:.2e}")
    assert diff < 1e-4
    assert generate(ours, PROMPT, 20, do_sample=False) == [hf_greedy(theirs, PROMPT, 20)]


@pytest.mark.parametrize("dtype", ["float16", "bfloat16"])
def test_half_precision_checkpoints_are_widened_exactly(tmp_path, dtype):
    torch = require("torch")
    theirs = hf_model(vocab_size=80, n_positions=16, n_embd=32, n_layer=2, n_head=4)
    theirs.to(getattr(torch, dtype)).save_pretrained(tmp_path)
    stored = {entry[0] for entry in read_header(str(tmp_path / "model.safetensors"))[1].values()}
    assert stored == {{"float16": "F16", "bfloat16": "BF16"}[dtype]}
    theirs.float()  # the same rounded values, in float32
    ours = GPT.from_pretrained(tmp_path)
    assert ours.dtype == np.float32
    for key, value in theirs.state_dict().items():
        if key in ours.state_dict():
            assert np.array_equal(ours.state_dict()[key], value.numpy()), key
    idx = ids_for(ours.config)
    assert np.abs(our_logits(ours, idx) - hf_logits(theirs, idx)).max() < 1e-4


def test_sharded_checkpoint_loads(tmp_path):
    theirs = hf_model(vocab_size=90, n_positions=16, n_embd=32, n_layer=3, n_head=2)
    theirs.save_pretrained(tmp_path, max_shard_size="20KB")
    assert (tmp_path / "model.safetensors.index.json").exists() and not (tmp_path / "model.safetensors").exists()
    shards = sorted(p.name for p in tmp_path.glob("model-*.safetensors"))
    assert len(shards) > 2
    ours = GPT.from_pretrained(tmp_path)
    idx = ids_for(ours.config)
    assert np.abs(our_logits(ours, idx) - hf_logits(theirs, idx)).max() < 1e-4

    os.remove(tmp_path / shards[-1])
    with pytest.raises(FileNotFoundError, match=f"shard {shards[-1]} is missing"):
        GPT.from_pretrained(tmp_path)
    index = json.loads((tmp_path / "model.safetensors.index.json").read_text())
    index["weight_map"]["transformer.wte.weight"] = "../elsewhere.safetensors"
    (tmp_path / "model.safetensors.index.json").write_text(json.dumps(index))
    with pytest.raises(CheckpointError, match="bad shard file name '../elsewhere.safetensors'"):
        GPT.from_pretrained(tmp_path)


def test_our_checkpoint_generates_the_same_tokens_in_transformers(tmp_path):
    transformers = require("transformers")
    mg.manual_seed(5)
    ours = GPT(GPTConfig(vocab_size=75, block_size=24, n_layer=2, n_head=3, n_embd=36))
    for p in ours.parameters():  # larger weights than init, so greedy tokens vary
        p.data += np.random.default_rng(6).normal(0, 0.2, p.shape).astype(p.dtype)
    ours.save_pretrained(tmp_path)
    theirs = transformers.GPT2LMHeadModel.from_pretrained(tmp_path, attn_implementation="eager").eval()
    idx = ids_for(ours.config, seed=7)
    diff = float(np.abs(our_logits(ours, idx) - hf_logits(theirs, idx)).max())
    print(f"\nours -> transformers: max |logit diff| {diff:.2e}")
    assert diff < 1e-4
    assert generate(ours, PROMPT, 19, do_sample=False) == [hf_greedy(theirs, PROMPT, 19)]


# ---- folders that must be refused, with the file, key or tensor named ------------------------

from test_hf import edit_config, saved  # noqa: E402,F401  (the same saved folder and config editor)


@pytest.mark.parametrize("changes, message", [
    (dict(scale_attn_weights=False), "scale_attn_weights=False is not supported"),
    (dict(tie_word_embeddings=False), "tie_word_embeddings=False .*tied"),
    (dict(add_cross_attention=True), "add_cross_attention=True"),
    (dict(layer_norm_epsilon=1e-6), "layer_norm_epsilon=1e-06 .*every released GPT-2 uses 1e-5"),
    (dict(n_inner=4 * 8 + 1), "n_inner=33 .*4 \\* n_embd"),
    (dict(n_head=3), "config.json: GPTConfig.n_embd \\(8\\) must be divisible by GPTConfig.n_head \\(3\\)"),
    (dict(vocab_size="30"), "config.json: GPTConfig.vocab_size must be a positive integer"),
])
def test_unsupported_settings_name_the_key(saved, changes, message):
    edit_config(saved, **changes)
    with pytest.raises(CheckpointError, match=message):
        GPT.from_pretrained(saved)


def test_equivalent_settings_are_accepted(saved):
    edit_config(saved, n_inner=32, reorder_and_upcast_attn=True, layer_norm_epsilon=1.0000000000000002e-05)
    assert GPT.from_pretrained(saved).config.n_embd == 8


def test_loaded_model_is_in_eval_mode(saved):
    """As transformers: dropout (0.1 in HF's default config) is off until a trainer turns it on."""
    edit_config(saved, resid_pdrop=0.1)
    model = GPT.from_pretrained(saved)
    assert model.config.dropout == 0.1 and not model.training
    idx = np.arange(8)[None] % 30
    with mg.no_grad():  # no dropout: two calls agree
        assert np.array_equal(model(idx)[0].data, model(idx)[0].data)


def test_missing_config_names_the_file(saved):
    os.remove(saved / "config.json")
    with pytest.raises(FileNotFoundError, match="no config.json found"):
        GPT.from_pretrained(saved)


def test_config_that_is_not_json(saved):
    (saved / "config.json").write_text("{not json")
    with pytest.raises(CheckpointError, match="config.json: not valid JSON"):
        GPT.from_pretrained(saved)


def test_not_a_folder(tmp_path):
    with pytest.raises(FileNotFoundError, match="no such checkpoint folder"):
        GPT.from_pretrained(tmp_path / "nowhere")


@pytest.mark.parametrize("name, message", [
    ("pytorch_model.bin.index.json", "only pytorch_model.bin.index.json \\(a pickle\\)"),
    ("tf_model.h5", "no model.safetensors found .*found tf_model.h5"),
])
def test_other_weight_formats_are_refused(saved, name, message):
    os.remove(saved / "model.safetensors")
    (saved / name).write_text("{}")
    with pytest.raises((CheckpointError, FileNotFoundError), match=message):
        GPT.from_pretrained(saved)


def test_truncated_weights(saved):
    data = (saved / "model.safetensors").read_bytes()
    (saved / "model.safetensors").write_bytes(data[:-10])
    with pytest.raises(CheckpointError, match="truncated"):
        GPT.from_pretrained(saved)


@pytest.mark.parametrize("data, message", [
    (b"\xff" * 64, "not a safetensors file"),
    (len(b"[1, 2]").to_bytes(8, "little") + b"[1, 2]", "damaged safetensors header"),
    (len(b"{nope").to_bytes(8, "little") + b"{nope", "damaged safetensors header"),
    (len(b'{"a": 3}').to_bytes(8, "little") + b'{"a": 3}', "tensor 'a' has a malformed header entry"),
])
def test_garbage_weights(saved, data, message):
    (saved / "model.safetensors").write_bytes(data)
    with pytest.raises(CheckpointError, match=message):
        GPT.from_pretrained(saved)


def test_integer_weights_name_the_tensor(saved):
    tensors = load_file(str(saved / "model.safetensors"))
    tensors["transformer.ln_f.weight"] = np.ones(8, np.int32)
    save_file(tensors, str(saved / "model.safetensors"), metadata={"format": "pt"})
    with pytest.raises(CheckpointError, match="'transformer.ln_f.weight' is I32; weights must be floating"):
        GPT.from_pretrained(saved)


def test_lm_head_alone_supplies_the_tied_embedding(saved):
    tensors = load_file(str(saved / "model.safetensors"))
    tensors["lm_head.weight"] = tensors.pop("transformer.wte.weight")
    save_file(tensors, str(saved / "model.safetensors"), metadata={"format": "pt"})
    back = GPT.from_pretrained(saved)
    assert np.array_equal(back.transformer.wte.weight.data, tensors["lm_head.weight"])
