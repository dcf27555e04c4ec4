"""Hugging Face checkpoints both ways: transformers' GPT2LMHeadModel -> ours -> transformers,
same logits and greedy tokens; refusal of pickles and of models we do not compute."""
import json
import os
import pickle

import numpy as np
import pytest
from safetensors.numpy import load_file, save_file

import minigrad as mg
from conftest import require
from gpt import GPT, GPTConfig, generate

HF_CONFIGS = [  # (vocab, positions, width, layers, heads)
    (97, 32, 48, 2, 4),
    (50, 24, 32, 1, 1),
    (120, 40, 64, 3, 8),
]


def random_hf_model(seed=0, **config):
    """A random transformers GPT-2 built from GPT2Config(**config), with biases and LayerNorms
    randomised too (HF zero-inits them, which would hide mistakes in their handling)."""
    torch = require("torch")
    transformers = require("transformers")
    torch.manual_seed(seed)
    cfg = transformers.GPT2Config(bos_token_id=None, eos_token_id=None, attn_implementation="eager", **config)
    model = transformers.GPT2LMHeadModel(cfg).eval()
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith(".bias") or ".ln_" in name:
                p.add_(torch.randn_like(p) * 0.1)
    return model


def hf_model(vocab, positions, width, layers, heads, seed=0):
    return random_hf_model(seed, vocab_size=vocab, n_positions=positions, n_embd=width, n_layer=layers,
                           n_head=heads, activation_function="gelu_new", resid_pdrop=0.0,
                           embd_pdrop=0.0, attn_pdrop=0.0)


def hf_logits(model, idx):
    torch = require("torch")
    with torch.no_grad():
        return model(torch.from_numpy(idx)).logits.float().numpy()


def our_logits(model, idx):
    with mg.no_grad():
        return model(idx)[0].data


@pytest.mark.parametrize("shape", HF_CONFIGS)
def test_transformers_checkpoint_loads_with_same_logits_and_greedy_tokens(tmp_path, shape):
    torch = require("torch")
    theirs = hf_model(*shape)
    theirs.save_pretrained(tmp_path, safe_serialization=True)
    ours = GPT.from_pretrained(tmp_path)
    assert ours.config == GPTConfig(vocab_size=shape[0], block_size=shape[1], n_embd=shape[2],
                                    n_layer=shape[3], n_head=shape[4])
    idx = np.random.default_rng(0).integers(0, shape[0], (2, shape[1]))
    diff = np.abs(our_logits(ours, idx) - hf_logits(theirs, idx)).max()
    assert diff < 1e-4, diff

    prompt = [3, 1, 4, 1]
    with torch.no_grad():
        expected = theirs.generate(torch.tensor([prompt]), max_new_tokens=20, do_sample=False,
                                   pad_token_id=0, eos_token_id=None)[0].tolist()
    assert generate(ours, prompt, 20, do_sample=False) == [expected]


@pytest.mark.parametrize("bias", [True, False])
def test_our_checkpoint_loads_in_transformers_with_same_logits(tmp_path, bias):
    transformers = require("transformers")
    mg.manual_seed(0)
    ours = GPT(GPTConfig(vocab_size=61, block_size=16, n_layer=2, n_head=2, n_embd=24, bias=bias))
    for p in ours.parameters():
        p.data += np.random.default_rng(1).normal(0, 0.1, p.shape).astype(p.dtype)
    ours.save_pretrained(tmp_path)
    assert sorted(os.listdir(tmp_path)) == ["config.json", "model.safetensors"]  # no temp files left
    config = json.loads((tmp_path / "config.json").read_text())
    assert config["model_type"] == "gpt2" and config["architectures"] == ["GPT2LMHeadModel"]
    assert config["activation_function"] == "gelu_new" and config["n_inner"] is None
    assert config["n_positions"] == 16 and config["tie_word_embeddings"] is True
    tensors = load_file(str(tmp_path / "model.safetensors"))
    assert "lm_head.weight" not in tensors and "transformer.wte.weight" in tensors
    assert all(t.dtype == np.float32 for t in tensors.values())

    theirs = transformers.GPT2LMHeadModel.from_pretrained(tmp_path, attn_implementation="eager").eval()
    idx = np.random.default_rng(2).integers(0, 61, (2, 16))
    assert np.abs(our_logits(ours, idx) - hf_logits(theirs, idx)).max() < 1e-5

    back = GPT.from_pretrained(tmp_path, dtype=np.float64)
    assert back.config == ours.config and back.dtype == np.float64
    assert np.abs(our_logits(back, idx) - our_logits(ours, idx)).max() < 1e-5


def test_keys_without_transformer_prefix_and_mask_buffers_are_accepted(tmp_path):
    """Older files (like the original gpt2 upload) name tensors `h.0...` and carry
    the attention-mask buffers `h.0.attn.bias`; both must load."""
    mg.manual_seed(3)
    ours = GPT(GPTConfig(vocab_size=30, block_size=8, n_layer=1, n_head=2, n_embd=8))
    ours.save_pretrained(tmp_path)
    tensors = load_file(str(tmp_path / "model.safetensors"))
    old = {k.removeprefix("transformer."): v for k, v in tensors.items()}
    old["h.0.attn.bias"] = np.tril(np.ones((1, 1, 8, 8), np.float32))
    old["lm_head.weight"] = tensors["transformer.wte.weight"]  # present and equal: fine
    save_file(old, str(tmp_path / "model.safetensors"), metadata={"format": "pt"})
    back = GPT.from_pretrained(tmp_path)
    idx = np.arange(8)[None] % 30
    assert np.array_equal(our_logits(back, idx), our_logits(ours, idx))


@pytest.fixture
def saved(tmp_path):
    mg.manual_seed(4)
    GPT(GPTConfig(vocab_size=30, block_size=8, n_layer=1, n_head=2, n_embd=8)).save_pretrained(tmp_path)
    return tmp_path


def edit_config(path, **changes):
    cfg = json.loads((path / "config.json").read_text())
    cfg.update(changes)
    (path / "config.json").write_text(json.dumps(cfg))


def edit_tensors(path, fn):
    tensors = load_file(str(path / "model.safetensors"))
    fn(tensors)
    save_file(tensors, str(path / "model.safetensors"), metadata={"format": "pt"})


def test_pickle_is_refused_without_being_unpickled(tmp_path):
    marker = tmp_path / "unpickled"

    class Bomb:
        def __reduce__(self):
            return (open, (str(marker), "w"))

    (tmp_path / "pytorch_model.bin").write_bytes(pickle.dumps(Bomb()))
    (tmp_path / "config.json").write_text(json.dumps({"model_type": "gpt2"}))
    with pytest.raises(ValueError, match="pytorch_model.bin .*safe_serialization=True"):
        GPT.from_pretrained(tmp_path)
    assert not marker.exists()


@pytest.mark.parametrize("changes, message", [
    (dict(model_type="llama"), "model_type is 'llama'; only 'gpt2'"),
    (dict(activation_function="relu"), "activation_function 'relu' is not supported"),
    (dict(n_inner=7), "n_inner=7 is not supported"),
    (dict(scale_attn_by_inverse_layer_idx=True), "scale_attn_by_inverse_layer_idx=True"),
    (dict(layer_norm_epsilon=1e-6), "layer_norm_epsilon=1e-06"),
])
def test_unsupported_configs_name_the_key(saved, changes, message):
    edit_config(saved, **changes)
    with pytest.raises(ValueError, match=message):
        GPT.from_pretrained(saved)


def test_gelu_pytorch_tanh_is_accepted(saved):
    edit_config(saved, activation_function="gelu_pytorch_tanh")
    assert GPT.from_pretrained(saved).config.n_embd == 8


@pytest.mark.parametrize("edit, message", [
    (lambda t: t.pop("transformer.h.0.mlp.c_fc.weight"), r"missing tensor\(s\) \['transformer.h.0.mlp.c_fc.weight'\]"),
    (lambda t: t.__setitem__("transformer.h.0.attn.c_attn.weight", np.zeros((24, 8), np.float32)),
     r"'transformer.h.0.attn.c_attn.weight' has shape \(24, 8\), expected \(8, 24\)"),
    (lambda t: t.__setitem__("transformer.h.0.attn.q_proj.weight", np.zeros(3, np.float32)),
     "unexpected tensor 'transformer.h.0.attn.q_proj.weight'"),
    (lambda t: t.__setitem__("lm_head.weight", np.ones((30, 8), np.float32)), "lm_head.weight differs"),
])
def test_bad_tensors_name_the_tensor(saved, edit, message):
    edit_tensors(saved, edit)
    with pytest.raises(ValueError, match=message):
        GPT.from_pretrained(saved)


def test_missing_files(tmp_path):
    with pytest.raises(FileNotFoundError, match="no model.safetensors"):
        GPT.from_pretrained(tmp_path)


def test_failed_save_leaves_the_previous_checkpoint_intact(saved, monkeypatch):
    before = (saved / "model.safetensors").read_bytes()
    import safetensors.numpy

    def torn_write(tensors, path, metadata=None):
        with open(path, "wb") as f:
            f.write(b"half a file")
        raise OSError("disk full")

    monkeypatch.setattr(safetensors.numpy, "save_file", torn_write)
    mg.manual_seed(9)
    with pytest.raises(OSError, match="disk full"):
        GPT(GPTConfig(vocab_size=30, block_size=8, n_layer=1, n_head=2, n_embd=8)).save_pretrained(saved)
    assert (saved / "model.safetensors").read_bytes() == before
    assert sorted(os.listdir(saved)) == ["config.json", "model.safetensors"]
