"""Hugging Face GPT-2 checkpoints: config.json + model.safetensors, both ways.

Our parameter names and layouts are HF's (Conv1D weights stored (in, out)), so
no tensor is renamed or transposed. Only safetensors is read (gpt/hf_weights.py):
pytorch_model.bin is a pickle, which can run arbitrary code when loaded, so it is
refused. Settings our model does not compute are refused by name, never ignored.
Files are written atomically (temp file in the same directory, fsync, rename):
a crash mid-save never leaves a torn checkpoint behind.
"""
import json
import os
import tempfile

import numpy as np

from gpt.checkpoint import CheckpointError

CONFIG_NAME = "config.json"
WEIGHTS_NAME = "model.safetensors"
# All three are the tanh approximation of GELU that we compute (HF's three spellings of it).
TANH_GELUS = ("gelu_new", "gelu_pytorch_tanh", "gelu_fast")


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

    if not isinstance(cfg, dict) or cfg.get("model_type") != "gpt2":
        found = cfg.get("model_type") if isinstance(cfg, dict) else type(cfg).__name__
        raise CheckpointError(f"{source}: model_type is {found!r}; only 'gpt2' can be loaded")
    act = cfg.get("activation_function", "gelu_new")
    if act not in TANH_GELUS:
        raise CheckpointError(f"{source}: activation_function {act!r} is not supported; "
                              f"GPT here uses the tanh GELU ({', '.join(TANH_GELUS)})")
    n_embd = cfg.get("n_embd", 768)
    for key, (value, allowed) in _settings(cfg, n_embd).items():
        if value not in allowed:
            raise CheckpointError(f"{source}: {key}={value!r} is not supported (allowed: {list(allowed)})"
                                  f"{_WHY.get(key, '')}")
    sizes = dict(vocab_size=cfg.get("vocab_size", 50257), block_size=cfg.get("n_positions", 1024),
                 n_layer=cfg.get("n_layer", 12), n_head=cfg.get("n_head", 12), n_embd=n_embd)
    try:
        return GPTConfig(**sizes, dropout=cfg.get("resid_pdrop", 0.0), bias=cfg.get("minigrad_bias", True))
    except (TypeError, ValueError) as e:
        raise CheckpointError(f"{source}: {e}") from None


def _settings(cfg, n_embd):
    """key -> (value in cfg, allowed values) for the GPT-2 options our model has one setting of.
    reorder_and_upcast_attn is not here: it only changes the order of the float32 operations
    (HF added it for float16 training), not the function, so either value loads."""
    eps = cfg.get("layer_norm_epsilon", 1e-5)
    if isinstance(eps, float) and abs(eps - 1e-5) <= 1e-5 * 1e-6:
        eps = 1e-5  # the same float32 value written with more digits
    return {"n_inner": (cfg.get("n_inner"), (None, 4 * n_embd)),
            "layer_norm_epsilon": (eps, (1e-5,)),
            "scale_attn_weights": (cfg.get("scale_attn_weights", True), (True,)),
            "scale_attn_by_inverse_layer_idx": (cfg.get("scale_attn_by_inverse_layer_idx", False), (False,)),
            "tie_word_embeddings": (cfg.get("tie_word_embeddings", True), (True,)),
            "add_cross_attention": (cfg.get("add_cross_attention", False), (False,))}


_WHY = {
    "n_inner": "; the MLP here is 4 * n_embd wide",
    "layer_norm_epsilon": "; GPTConfig has no epsilon (every released GPT-2 uses 1e-5)",
    "scale_attn_weights": "; attention here always scales by 1/sqrt(head_dim)",
    "scale_attn_by_inverse_layer_idx": "; attention here has no per-layer scaling",
    "tie_word_embeddings": "; lm_head here is always transformer.wte (tied)",
    "add_cross_attention": "; GPT here is decoder-only, without cross-attention",
}


def from_pretrained(cls, directory, dtype=np.float32):
    """Build a GPT from a folder holding config.json and model.safetensors (or shards with
    model.safetensors.index.json). Weights stored as float16/bfloat16/float64 are converted
    to `dtype` (float32 by default; widening half precision is exact)."""
    from gpt import hf_weights

    directory = os.fspath(directory)
    if not os.path.isdir(directory):
        raise FileNotFoundError(f"{directory}: no such checkpoint folder")
    files = hf_weights.weight_files(directory)
    config_path = os.path.join(directory, CONFIG_NAME)
    if not os.path.exists(config_path):
        raise FileNotFoundError(f"{directory}: no {CONFIG_NAME} found (it holds the model's sizes)")
    try:
        with open(config_path, encoding="utf-8") as f:
            cfg = json.load(f)
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise CheckpointError(f"{config_path}: not valid JSON ({e})") from None
    model = cls(config_from_hf(cfg, config_path), dtype=dtype, init_weights=False)  # load_into fills every one
    return hf_weights.load_into(model, files).eval()  # as transformers: dropout off until trained
