"""Hugging Face GPT-2 checkpoints: config.json + model.safetensors, both ways.

Our parameter names and layouts are HF's (Conv1D weights stored (in, out)), so
no tensor is renamed or transposed. Only safetensors is read: pytorch_model.bin
is a pickle, which can run arbitrary code when loaded, so it is refused.
Files are written atomically (temp file in the same directory, fsync, rename):
a crash mid-save never leaves a torn checkpoint behind.
"""
import json
import os
import tempfile

import numpy as np

CONFIG_NAME = "config.json"
WEIGHTS_NAME = "model.safetensors"
TANH_GELUS = ("gelu_new", "gelu_pytorch_tanh")  # both are the tanh approximation we compute
# HF's causal-mask buffers, saved by some older versions; not weights
_BUFFER_SUFFIXES = (".attn.bias", ".attn.masked_bias")


def hf_config(config):
    """GPTConfig -> the dict transformers.GPT2Config would write."""
    gpt2_vocab = config.vocab_size == 50257
    return {
        "model_type": "gpt2",
        "architectures": ["GPT2LMHeadModel"],
        "vocab_size": config.vocab_size,
        "n_positions": config.block_size,
        "n_ctx": config.block_size,
        "n_embd": config.n_embd,
        "n_layer": config.n_layer,
        "n_head": config.n_head,
        "n_inner": None,  # None means 4 * n_embd
        "activation_function": "gelu_new",
        "resid_pdrop": config.dropout,
        "embd_pdrop": config.dropout,
        "attn_pdrop": config.dropout,
        "layer_norm_epsilon": 1e-5,
        "initializer_range": 0.02,
        "scale_attn_weights": True,
        "scale_attn_by_inverse_layer_idx": False,
        "reorder_and_upcast_attn": False,
        "tie_word_embeddings": True,
        "use_cache": True,
        # <|endoftext|> only exists in GPT-2's own vocabulary
        "bos_token_id": 50256 if gpt2_vocab else None,
        "eos_token_id": 50256 if gpt2_vocab else None,
        "torch_dtype": "float32",
        # Not a GPT-2 key: HF has no bias-free GPT-2, so bias=False models are saved with zero
        # biases (the same function) and this flag restores bias=False when we load them.
        "minigrad_bias": config.bias,
    }


def save_pretrained(model, directory):
    """Write config.json and model.safetensors (float32, tied lm_head.weight omitted as HF does)."""
    from safetensors.numpy import save_file

    os.makedirs(directory, exist_ok=True)
    tensors = {}
    for name, p in model.state_dict().items():
        if name != "lm_head.weight":
            tensors[name] = np.ascontiguousarray(p, dtype=np.float32)
    if not model.config.bias:  # zero biases: what GPT2LMHeadModel needs, and the same function
        tensors.update(_zero_biases(model.config))
    # transformers refuses safetensors files without format metadata
    _atomic_write(directory, WEIGHTS_NAME, lambda path: save_file(tensors, path, metadata={"format": "pt"}))
    text = json.dumps(hf_config(model.config), indent=2, sort_keys=True) + "\n"
    _atomic_write(directory, CONFIG_NAME, lambda path: _write_text(path, text))
    return directory


def _zero_biases(config):
    C = config.n_embd
    widths = {"ln_1": C, "attn.c_attn": 3 * C, "attn.c_proj": C, "ln_2": C, "mlp.c_fc": 4 * C, "mlp.c_proj": C}
    out = {f"transformer.h.{i}.{m}.bias": np.zeros(n, np.float32)
           for i in range(config.n_layer) for m, n in widths.items()}
    out["transformer.ln_f.bias"] = np.zeros(C, np.float32)
    return out


def _write_text(path, text):
    with open(path, "w", encoding="utf-8") as f:
        f.write(text)


def _atomic_write(directory, name, write):
    """write(tmp_path) into a temp file beside the target, fsync it, then os.replace."""
    fd, tmp = tempfile.mkstemp(prefix=f".{name}.", suffix=".tmp", dir=directory)
    os.close(fd)
    try:
        write(tmp)
        with open(tmp, "rb+") as f:
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, os.path.join(directory, name))
    except BaseException:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise
    try:  # make the rename itself durable
        dir_fd = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)
    except OSError:
        pass  # some filesystems cannot fsync a directory


def config_from_hf(cfg, source="config.json"):
    """The GPTConfig for a GPT-2 config dict, refusing what our model does not compute."""
    from gpt.model import GPTConfig

    if cfg.get("model_type") != "gpt2":
        raise ValueError(f"{source}: model_type is {cfg.get('model_type')!r}; only 'gpt2' can be loaded")
    act = cfg.get("activation_function", "gelu_new")
    if act not in TANH_GELUS:
        raise ValueError(f"{source}: activation_function {act!r} is not supported; "
                         f"GPT here uses the tanh GELU ({' or '.join(TANH_GELUS)})")
    n_embd = cfg.get("n_embd", 768)
    checks = {"n_inner": (cfg.get("n_inner"), (None, 4 * n_embd)),
              "layer_norm_epsilon": (cfg.get("layer_norm_epsilon", 1e-5), (1e-5,)),
              "scale_attn_weights": (cfg.get("scale_attn_weights", True), (True,)),
              "scale_attn_by_inverse_layer_idx": (cfg.get("scale_attn_by_inverse_layer_idx", False), (False,)),
              "tie_word_embeddings": (cfg.get("tie_word_embeddings", True), (True,))}
    for key, (value, allowed) in checks.items():
        if value not in allowed:
            raise ValueError(f"{source}: {key}={value!r} is not supported (allowed: {list(allowed)})")
    return GPTConfig(vocab_size=cfg.get("vocab_size", 50257), block_size=cfg.get("n_positions", 1024),
                     n_layer=cfg.get("n_layer", 12), n_head=cfg.get("n_head", 12), n_embd=n_embd,
                     dropout=cfg.get("resid_pdrop", 0.0), bias=cfg.get("minigrad_bias", True))


def from_pretrained(cls, directory, dtype=np.float32):
    """Build a GPT from a directory holding config.json and model.safetensors."""
    config_path = os.path.join(directory, CONFIG_NAME)
    weights_path = os.path.join(directory, WEIGHTS_NAME)
    if not os.path.exists(weights_path):
        if os.path.exists(os.path.join(directory, "pytorch_model.bin")):
            raise ValueError(
                f"{directory}: only pytorch_model.bin (a pickle) is there, and pickles are never loaded "
                "here since they can run code. Convert it once with transformers: "
                "GPT2LMHeadModel.from_pretrained(dir).save_pretrained(dir, safe_serialization=True)")
        raise FileNotFoundError(f"{directory}: no {WEIGHTS_NAME} found")
    if not os.path.exists(config_path):
        raise FileNotFoundError(f"{directory}: no {CONFIG_NAME} found")
    with open(config_path, encoding="utf-8") as f:
        config = config_from_hf(json.load(f), config_path)
    model = cls(config, dtype=dtype)
    model.load_state_dict(_read_weights(weights_path, model, dtype), strict=True)
    return model


def _read_weights(path, model, dtype):
    """The file's tensors under our names, checked against the model, with the tied
    lm_head.weight filled in (it is omitted from the file or equal to wte)."""
    from safetensors import safe_open

    expected = {name: p.shape for name, p in model.state_dict().items()}
    found = {}
    with safe_open(path, framework="numpy") as f:
        for key in f.keys():
            name = key if key.startswith(("transformer.", "lm_head.")) else "transformer." + key
            if name.endswith(_BUFFER_SUFFIXES):
                continue
            if not model.config.bias and name.endswith(".bias"):
                continue  # saved as zeros for HF; our bias-free model has none
            if name not in expected:
                raise ValueError(f"{path}: unexpected tensor {key!r} for a GPT-2 model")
            try:
                array = f.get_tensor(key)
            except (TypeError, ValueError) as e:  # e.g. bfloat16, which NumPy lacks
                raise ValueError(f"{path}: cannot read tensor {key!r} as NumPy ({e}); save it as float32") from e
            if array.shape != expected[name]:
                raise ValueError(f"{path}: tensor {key!r} has shape {array.shape}, expected "
                                 f"{expected[name]} from config.json")
            found[name] = array.astype(dtype)
    wte = found.get("transformer.wte.weight")
    head = found.pop("lm_head.weight", None)
    if head is not None and wte is not None and not np.array_equal(head, wte):
        raise ValueError(f"{path}: lm_head.weight differs from transformer.wte.weight, but GPT-2 "
                         "ties them (tie_word_embeddings)")
    found["lm_head.weight"] = wte if wte is not None else head
    missing = [n for n in expected if found.get(n) is None]
    if missing:
        raise ValueError(f"{path}: missing tensor(s) {missing[:5]}{' ...' if len(missing) > 5 else ''}")
    return found
