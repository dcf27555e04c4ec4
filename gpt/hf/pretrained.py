"""A Hugging Face GPT-2 folder, both ways: config.json + model.safetensors.

Our parameter names and layouts are HF's (Conv1D weights stored (in, out)), so no
tensor is renamed or transposed. Files are written atomically
(minigrad.nn.state): a crash mid-save never leaves a torn file behind. The model
class is received, not imported, so gpt/model.py can offer these as methods.
"""
import json
import os

import numpy as np

from minigrad.nn.state import safe_save, write_text

from gpt.errors import CheckpointError
from gpt.hf import weights
from gpt.hf.config import config_from_hf, hf_config

CONFIG_NAME = "config.json"


def save_pretrained(model, directory):
    """Write config.json and model.safetensors (float32, tied lm_head.weight omitted as HF does)."""
    os.makedirs(directory, exist_ok=True)
    tensors = {name: np.asarray(p, dtype=np.float32) for name, p in model.state_dict().items()
               if name != "lm_head.weight"}
    if not model.config.bias:  # zero biases: what GPT2LMHeadModel needs, and the same function
        tensors.update(_zero_biases(model.config))
    # transformers refuses safetensors files without format metadata
    safe_save(tensors, os.path.join(directory, weights.WEIGHTS_NAME), metadata={"format": "pt"})
    text = json.dumps(hf_config(model.config), indent=2, sort_keys=True) + "\n"
    write_text(os.path.join(directory, CONFIG_NAME), text)
    return directory


def _zero_biases(config):
    C = config.n_embd
    widths = {"ln_1": C, "attn.c_attn": 3 * C, "attn.c_proj": C, "ln_2": C, "mlp.c_fc": 4 * C, "mlp.c_proj": C}
    out = {f"transformer.h.{i}.{m}.bias": np.zeros(n, np.float32)
           for i in range(config.n_layer) for m, n in widths.items()}
    out["transformer.ln_f.bias"] = np.zeros(C, np.float32)
    return out


def from_pretrained(cls, directory, dtype=np.float32):
    """A `cls` (GPT) from a folder holding config.json and model.safetensors (or shards with
    model.safetensors.index.json). Weights stored as float16/bfloat16/float64 are converted
    to `dtype` (float32 by default; widening half precision is exact)."""
    model, files = open_pretrained(cls, directory, dtype)
    return weights.load_into(model, files).eval()  # as transformers: dropout off until trained


def open_pretrained(cls, directory, dtype=np.float32):
    """from_pretrained short of reading the weights: (model with unread parameters, weight
    files), with config.json and every file header already checked, so that a server can
    refuse a bad folder before it binds its port and read the weights afterwards."""
    directory = os.fspath(directory)
    if not os.path.isdir(directory):
        raise FileNotFoundError(f"{directory}: no such checkpoint folder")
    files = weights.weight_files(directory)
    config_path = os.path.join(directory, CONFIG_NAME)
    if not os.path.exists(config_path):
        raise FileNotFoundError(f"{directory}: no {CONFIG_NAME} found (it holds the model's sizes)")
    try:
        with open(config_path, encoding="utf-8") as f:
            cfg = json.load(f)
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise CheckpointError(f"{config_path}: not valid JSON ({e})") from None
    config = config_from_hf(cls.config_class, cfg, config_path)
    model = cls(config, dtype=dtype, init_weights=False)  # load_into fills every parameter
    weights.plan(model, files)
    return model, files
