"""LoRA: low-rank adapters on a frozen GPT, saved and read in Hugging Face PEFT's layout.

    spec = AdapterConfig(r=8, alpha=16, targets=["c_attn"], base="runs/base/ckpt")
    trainable = apply_lora(model, spec)          # base frozen; adapters (and new token rows) train
    save_adapter(model, spec, folder)            # adapter_config.json + adapter_model.safetensors
    load_adapter(model, folder)                  # ours, or one PEFT wrote for GPT-2
    merge(model)                                 # fold them into the weights: a plain GPT again

A targeted Conv1D (W of shape (in, out), as GPT-2's) computes
    y = x W + b + (alpha / r) * dropout(x) A^T B^T,      A (r, in), B (out, r)
with A drawn as nn.Linear's default (PEFT's kaiming-uniform) and B zero, so training
starts from the base model exactly. The names are PEFT's: `...c_attn.lora_A.weight`.
Targets are module-path suffixes as PEFT matches them (a list: "c_proj" matches
attn.c_proj and mlp.c_proj; one string: a regular expression over the full path).

Token rows a tokenizer gained (chat markers, an end-of-text) have no trained base
value, so they train too, as PEFT's `trainable_token_indices`: the rows [first, V) of
the tied wte/lm_head matrix, held in `trainable_tokens_delta` (PEFT keeps the rows'
values there, not a difference, despite the name).
"""
import json
import os
import re
from dataclasses import dataclass, field

import numpy as np

from minigrad import Tensor, functional as F, nn
from minigrad.nn.state import StateFileError, safe_load, safe_save, write_json

from gpt.errors import CheckpointError, ConfigError
from gpt.model import Conv1D, LMHead

CONFIG_NAME = "adapter_config.json"
WEIGHTS_NAME = "adapter_model.safetensors"
PREFIX = "base_model.model."                 # PEFT's prefix for a causal LM's tensors
TOKENS_KEY = "transformer.wte.token_adapter.trainable_tokens_delta"
# Whole embedding tables PEFT adds when the vocabulary was resized (save_embedding_layers);
# GPT-2's lm_head is tied to wte, so its copies must equal wte's.
TABLE_KEYS = ("transformer.wte.token_adapter.base_layer.weight", "transformer.wte.weight")
TIED_KEYS = {"lm_head.token_adapter.base_layer.weight": TABLE_KEYS, "lm_head.weight": TABLE_KEYS,
             "lm_head.token_adapter.trainable_tokens_delta": (TOKENS_KEY,)}
# PEFT features whose adapters this code cannot compute: (config key, value that is fine)
UNSUPPORTED = (("use_dora", False), ("lora_bias", False), ("bias", "none"), ("modules_to_save", None),
               ("layers_to_transform", None), ("rank_pattern", {}), ("alpha_pattern", {}),
               ("layer_replication", None), ("target_parameters", None))


@dataclass
class AdapterConfig:
    """What adapter_config.json records, in our terms."""
    r: int = 8                                    # rank of A and B
    alpha: float = 8.0                            # scaling = alpha / r (alpha / sqrt(r) with rslora)
    dropout: float = 0.0                          # on the adapter's input, training only
    targets: object = field(default_factory=lambda: ["c_attn"])  # suffixes (list) or a regex (str)
    exclude: object = None                        # same form as targets: modules left alone
    token_indices: list = field(default_factory=list)  # trainable rows of wte (new tokens)
    base: str = None                              # base_model_name_or_path
    use_rslora: bool = False

    @property
    def scaling(self):
        return self.alpha / (np.sqrt(self.r) if self.use_rslora else self.r)


class LoRAConv1D(Conv1D):
    """A Conv1D with a low-rank update beside it: the base weight and bias are the wrapped
    layer's own (frozen) Parameters, so its names stay `c_attn.weight`, `c_attn.bias`."""

    def __init__(self, base, r, alpha_scaling, dropout):
        self.weight, self.bias = base.weight, base.bias
        n_in, n_out = base.weight.shape
        self.lora_dropout = nn.Dropout(dropout)
        self.lora_A = nn.Linear(n_in, r, bias=False, dtype=base.weight.dtype)   # weight (r, in)
        self.lora_B = nn.Linear(r, n_out, bias=False, dtype=base.weight.dtype)  # weight (out, r)
        self.lora_B.weight.data[...] = 0.0
        self.scaling = alpha_scaling

    def forward(self, x):
        return super().forward(x) + self.lora_B(self.lora_A(self.lora_dropout(x))) * self.scaling

    def merged(self):
        """A plain Conv1D with W + scaling * A^T B^T (in, out)."""
        delta = self.lora_A.weight.data.T @ self.lora_B.weight.data.T  # (in, r) @ (r, out)
        conv = Conv1D(*self.weight.shape, bias=self.bias is not None, dtype=self.weight.dtype)
        conv.weight.data[...] = self.weight.data + self.scaling * delta
        if self.bias is not None:
            conv.bias.data[...] = self.bias.data
        return conv


class TrainableTokens(nn.Module):
    """The token embedding with its last rows [first, V) trainable and the others frozen."""

    def __init__(self, embedding, first):
        self.base_layer = embedding
        self.first = first
        self.trainable_tokens_delta = nn.Parameter(embedding.weight.data[first:].copy())

    @property
    def weight(self):
        """The whole (V, C) table with the trained rows written in: what inference and merging
        read (gpt/inference.py takes wte.weight and lm_head.weight as arrays)."""
        table = self.base_layer.weight
        table.data[self.first:] = self.trainable_tokens_delta.data
        return table

    def effective_weight(self):
        """(V, C) for the training forward, its gradient reaching the trainable rows only."""
        frozen = Tensor(self.base_layer.weight.data[:self.first])
        return F.cat([frozen, self.trainable_tokens_delta], axis=0)

    def forward(self, ids):
        return F.embedding(ids, self.effective_weight())


class TiedHead(nn.Module):
    """lm_head tied to a TrainableTokens embedding (the table is referenced, not owned)."""

    def __init__(self, tokens):
        self._tokens = (tokens,)  # a tuple: not a child module, so nothing is listed twice

    @property
    def weight(self):
        return self._tokens[0].weight

    def forward(self, x):
        return F.linear(x, self._tokens[0].effective_weight())  # (B, T, C) @ W^T (C, V) -> (B, T, V)


# ---- applying, merging ----------------------------------------------------------------------

def matches(name, targets, exclude=None):
    """PEFT's rule: a list matches a module path equal to or ending in "." + an entry; a
    string must match the whole path as a regular expression."""
    def hit(spec):
        if isinstance(spec, str):
            return re.fullmatch(spec, name) is not None
        return any(name == t or name.endswith("." + t) for t in spec)
    return hit(targets) and not (exclude and hit(exclude))


def apply_lora(model, spec):
    """Freeze every parameter of model, then wrap the targeted Conv1D layers and make the
    token rows spec.token_indices trainable. Returns the number of trainable parameters."""
    for p in model.parameters():
        p.requires_grad = False
    named = [(n, m) for n, m in model.named_modules() if n and matches(n, spec.targets, spec.exclude)]
    if not named:
        raise ConfigError(f"LoRA targets {spec.targets!r} match no module of the model (its layers: "
                          f"c_attn, c_proj, c_fc, by path e.g. transformer.h.0.attn.c_attn)")
    for name, module in named:
        if type(module) is not Conv1D:
            raise ConfigError(f"LoRA target {name} is a {type(module).__name__}; adapters wrap the "
                              f"Conv1D layers (c_attn, c_proj, c_fc)")
        parent, attr = _parent(model, name)
        setattr(parent, attr, LoRAConv1D(module, spec.r, spec.scaling, spec.dropout))
    if spec.token_indices:
        _train_token_rows(model, spec.token_indices)
    return trainable_count(model)


def _train_token_rows(model, indices):
    V = model.config.vocab_size
    first = min(indices)
    if sorted(indices) == list(range(first, V)):
        tokens = TrainableTokens(model.transformer.wte, first)
        model.transformer.wte, model.lm_head = tokens, TiedHead(tokens)
    elif min(indices) < 0 or max(indices) >= V:
        raise CheckpointError(f"trainable token indices {indices[:5]} ... fall outside the "
                              f"{V}-row embedding")
    # other index sets (an adapter PEFT wrote) only load: their rows are written in place


def _parent(model, name):
    *path, attr = name.split(".")
    module = model
    for part in path:
        module = module[int(part)] if part.isdigit() else getattr(module, part)
    return module, attr


def merge(model):
    """Fold every adapter into the base weights, in place: model becomes a plain GPT that
    save_pretrained writes and transformers opens. Returns model."""
    for name, module in list(model.named_modules()):
        if isinstance(module, LoRAConv1D):
            parent, attr = _parent(model, name)
            setattr(parent, attr, module.merged())
    tokens = model.transformer.wte
    if isinstance(tokens, TrainableTokens):
        table = tokens.weight  # the base table, the trained rows written in
        model.transformer.wte = tokens.base_layer
        model.lm_head = LMHead(table)
    for p in model.parameters():
        p.requires_grad = True
    return model


def trainable_count(model):
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


# ---- files ----------------------------------------------------------------------------------

def adapter_tensors(model):
    """PEFT's tensor names -> arrays of the model's adapters."""
    out = {}
    for name, array in model.state_dict().items():
        if ".lora_A." in name or ".lora_B." in name:
            out[PREFIX + name] = array
        elif name == "transformer.wte.trainable_tokens_delta":
            out[PREFIX + TOKENS_KEY] = array
    return out


def peft_config(spec):
    """adapter_config.json as PEFT writes it for a GPT-2 LoRA (the keys it reads back)."""
    return {"peft_type": "LORA", "task_type": "CAUSAL_LM", "base_model_name_or_path": spec.base,
            "r": spec.r, "lora_alpha": spec.alpha, "lora_dropout": spec.dropout,
            "target_modules": spec.targets, "exclude_modules": spec.exclude,
            "fan_in_fan_out": True,  # GPT-2's Conv1D stores W as (in, out)
            "bias": "none", "use_rslora": spec.use_rslora, "use_dora": False, "lora_bias": False,
            "init_lora_weights": True, "inference_mode": True, "modules_to_save": None,
            "trainable_token_indices": list(spec.token_indices) or None,
            "layers_to_transform": None, "layers_pattern": None, "rank_pattern": {},
            "alpha_pattern": {}, "revision": None}


def save_adapter(model, spec, folder):
    os.makedirs(folder, exist_ok=True)
    safe_save(adapter_tensors(model), os.path.join(folder, WEIGHTS_NAME), metadata={"format": "pt"})
    write_json(os.path.join(folder, CONFIG_NAME), peft_config(spec), indent=2)


def is_adapter(folder):
    return os.path.exists(os.path.join(folder, CONFIG_NAME))


def read_config(folder):
    """The AdapterConfig of an adapter folder, refusing what this code cannot compute."""
    path = os.path.join(folder, CONFIG_NAME)
    try:
        with open(path, encoding="utf-8") as f:
            cfg = json.load(f)
    except FileNotFoundError:
        raise CheckpointError(f"{folder}: no {CONFIG_NAME} (not a LoRA adapter folder)") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise CheckpointError(f"{path}: not valid JSON ({e})") from None
    if not isinstance(cfg, dict) or cfg.get("peft_type") != "LORA":
        raise CheckpointError(f"{path}: peft_type is {cfg.get('peft_type') if isinstance(cfg, dict) else cfg!r};"
                              f" only LORA adapters are read")
    for key, fine in UNSUPPORTED:
        if cfg.get(key) not in (fine, None):
            raise CheckpointError(f"{path}: {key}={cfg[key]!r} is not supported here")
    r, targets = cfg.get("r", 8), cfg.get("target_modules")
    if isinstance(r, bool) or not isinstance(r, int) or r < 1 or not isinstance(targets, (str, list)):
        raise CheckpointError(f"{path}: needs an integer r >= 1 and target_modules (got r={r!r}, "
                              f"target_modules={targets!r})")
    return AdapterConfig(r=r, alpha=cfg.get("lora_alpha", 8), dropout=cfg.get("lora_dropout", 0.0),
                         targets=targets, exclude=cfg.get("exclude_modules"),
                         token_indices=_token_indices(cfg.get("trainable_token_indices"), path),
                         base=cfg.get("base_model_name_or_path"), use_rslora=bool(cfg.get("use_rslora")))


def _token_indices(value, path):
    if isinstance(value, dict):  # {module name: indices}: only the input embedding has rows here
        unknown = [k for k in value if k not in ("wte", "transformer.wte", "embed_tokens")]
        if unknown:
            raise CheckpointError(f"{path}: trainable_token_indices for {unknown}; GPT-2 has them "
                                  f"on wte only")
        value = [i for v in value.values() for i in v]
    if value and not all(isinstance(i, int) and not isinstance(i, bool) for i in value):
        raise CheckpointError(f"{path}: trainable_token_indices must be integers")
    return list(value or [])


def load_adapter(model, folder):
    """Wrap model as the adapter in folder says and read its weights. The model's vocabulary
    must already cover every token row of the adapter. Returns the AdapterConfig."""
    spec = read_config(folder)
    path = os.path.join(folder, WEIGHTS_NAME)
    try:
        tensors = safe_load(path)
    except (StateFileError, FileNotFoundError) as e:
        raise CheckpointError(f"{folder}: cannot read {WEIGHTS_NAME}: {e}") from None
    if spec.token_indices and max(spec.token_indices) >= model.config.vocab_size:
        raise CheckpointError(f"{folder}: the adapter trains token row {max(spec.token_indices)} but the "
                              f"model has {model.config.vocab_size} rows (use the adapter's tokenizer)")
    tensors = {k[len(PREFIX):] if k.startswith(PREFIX) else k: v for k, v in tensors.items()}
    _embedding_table(model, tensors, path)
    apply_lora(model, spec)
    _fill(model, spec, tensors, path)
    return spec


def _embedding_table(model, tensors, path):
    """A whole embedding table PEFT saved (the resized base's) replaces the model's."""
    for tied, sources in TIED_KEYS.items():
        if tied in tensors:
            value = tensors.pop(tied)
            if not any(k in tensors and np.array_equal(tensors[k], value) for k in sources):
                raise CheckpointError(f"{path}: {tied} differs from the embedding, but GPT-2 ties them")
    table = next((tensors.pop(k) for k in TABLE_KEYS if k in tensors), None)
    if table is not None:
        if table.shape[1] != model.config.n_embd or table.shape[0] < model.config.vocab_size:
            raise CheckpointError(f"{path}: embedding table of shape {table.shape} does not fit the "
                                  f"model ({model.config.vocab_size} x {model.config.n_embd})")
        model.resize_token_embeddings(table.shape[0])
        model.transformer.wte.weight.data[...] = table


def _fill(model, spec, tensors, path):
    """Copy the adapter's tensors into the wrapped model, every name and shape checked first."""
    own = {name: p for name, p in model.state_dict().items() if ".lora_" in name}
    rows = tensors.pop(TOKENS_KEY, None)
    if sorted(own) != sorted(tensors):
        missing, extra = sorted(set(own) - set(tensors)), sorted(set(tensors) - set(own))
        raise CheckpointError(f"{path}: tensors do not fit the targets {spec.targets!r}: missing "
                              f"{missing[:3]}, unexpected {extra[:3]}")
    for name, value in tensors.items():
        if value.shape != own[name].shape:
            raise CheckpointError(f"{path}: {name} has shape {value.shape}, expected {own[name].shape}")
        own[name][...] = value
    if (rows is None) != (not spec.token_indices) or (rows is not None and rows.shape !=
                                                      (len(spec.token_indices), model.config.n_embd)):
        raise CheckpointError(f"{path}: trainable token rows do not match trainable_token_indices")
    if rows is not None:
        wte = model.transformer.wte
        if isinstance(wte, TrainableTokens):
            wte.trainable_tokens_delta.data[...] = rows[np.argsort(spec.token_indices)]  # by row
        else:
            wte.weight.data[spec.token_indices] = rows
