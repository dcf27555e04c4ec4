"""Hugging Face's config.json for GPT-2, both ways: GPTConfig -> the dict transformers
writes, and a config dict -> GPTConfig, refusing by name every setting our model
does not compute (never ignoring one).
"""
from gpt.errors import CheckpointError

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


def config_from_hf(config_class, cfg, source="config.json"):
    """The config_class (GPTConfig) for a GPT-2 config dict, refusing what our model does not compute."""
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
        return config_class(**sizes, dropout=cfg.get("resid_pdrop", 0.0), bias=cfg.get("minigrad_bias", True))
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
