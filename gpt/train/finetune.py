"""Fine-tuning setup that run.py calls: the chat template, the special tokens task data
needs (and the embedding rows they get), the base model of --init-from, LoRA adapters.

Order for a task run: tokenizer (fresh or the base's) -> add_special_tokens ->
the model built at that vocabulary, or the base grown to it (grow_embedding) ->
setup_lora when --lora-rank is given, which also trains the new rows, since a frozen
base has never seen those tokens.
"""
import dataclasses
import hashlib
from pathlib import Path

from gpt import checkpoint, lora
from gpt.chat import ChatTemplate
from gpt.config import lora_targets
from gpt.errors import CheckpointError, ConfigError
from gpt.hf.weights import weight_files
from gpt.model import GPT

# Fixed once a model exists: --resume and --init-from refuse to change them.
ARCHITECTURE = ("n_layer", "n_head", "n_embd", "block_size", "bias")


def chat_template(inherited, dataset):
    """The base's template if it has one (so prompts render as before), ChatML for chat data."""
    if inherited is not None:
        return inherited
    return ChatTemplate() if dataset.has_chat else None


def add_special_tokens(tokenizer, needed, log):
    """Give the tokenizer the special tokens it lacks; returns the first new id, or None."""
    before = tokenizer.vocab_size
    if not tokenizer.add_special_tokens(needed):
        return None
    new = [t for t, i in tokenizer.special_tokens.items() if i >= before]
    log(f"tokenizer: added special tokens {', '.join(new)} as ids {before}..{tokenizer.vocab_size - 1}")
    return before


def grow_embedding(model, tokenizer, log):
    """One embedding row (tied with lm_head) for every id the tokenizer has."""
    old = model.config.vocab_size
    if tokenizer.vocab_size > old:
        model.resize_token_embeddings(tokenizer.vocab_size)
        log(f"model: token embedding (tied lm_head) grown from {old} to {tokenizer.vocab_size} rows; "
            f"the new rows start as the mean of the others")


def base_model(src, cfg, explicit, log):
    """(model, tokenizer, template) of --init-from: the checkpoint's architecture and weights
    (ours, a Hugging Face GPT-2 folder, or a LoRA run's base with its adapter merged). Only
    dropout may be retyped, and block_size lowered; cfg.model is set to what is built."""
    state = checkpoint.read_trainer_state_or_none(src)
    source = checkpoint.load_model(src, merge=True)
    tokenizer = checkpoint.load_tokenizer(src)
    checkpoint.check_vocab(source, tokenizer, src)
    saved = source.config
    # --block-size may shorten the context (GPT-2's 1024 positions need over 1024 tokens per
    # split), never lengthen it: a position the checkpoint never learned has no embedding
    block = explicit.get("block_size", saved.block_size)
    if block > saved.block_size:
        raise ConfigError(f"--init-from keeps the checkpoint's {saved.block_size} positions; "
                          f"--block-size {block} can only lower it")
    typed = {k: v for k, v in explicit.items()
             if k in ARCHITECTURE and k != "block_size" and v != getattr(saved, k)}
    if typed:
        raise ConfigError(f"--init-from keeps the checkpoint's model; {typed} differ from it")
    dropout = cfg.model.dropout if "dropout" in explicit else saved.dropout
    cfg.model = dataclasses.replace(saved, dropout=dropout, block_size=block)
    model = cropped(source, cfg.model)
    cfg.data.tokenizer = str(checkpoint.tokenizer_path(src))
    origin = f"iteration {state['iter']}" if state else "a Hugging Face GPT-2 folder"
    cut = f", positions cropped to {block}" if block < saved.block_size else ""
    log(f"fine-tuning from {src} ({origin}{cut}), fresh optimizer")
    return model, tokenizer, ChatTemplate.load(checkpoint.recover(src))


def cropped(source, config):
    """A GPT of `config` (source's sizes, maybe fewer positions and other dropout) holding
    source's weights; a shorter context keeps the first positions (nanoGPT's crop_block_size)."""
    model = GPT(dataclasses.replace(config, vocab_size=source.config.vocab_size))
    weights = source.state_dict()
    weights["transformer.wpe.weight"] = weights["transformer.wpe.weight"][:config.block_size]
    model.load_state_dict(weights)
    return model


# ---- LoRA ------------------------------------------------------------------------------------

def setup_lora(cfg, model, first_new, base, log):
    """Freeze model and wrap it with fresh adapters as cfg.lora says; new token rows (from
    first_new on) train too. Returns (AdapterConfig, sha256 of the base's files)."""
    if checkpoint.is_adapter_folder(base):
        raise ConfigError(f"--lora-rank needs a plain base model, and {base} holds an adapter; "
                          f"merge it first: gpt merge --ckpt BASE --adapter {base} --out MERGED")
    V, total = model.config.vocab_size, model.num_params(non_embedding=False)
    spec = lora.AdapterConfig(r=cfg.lora.lora_rank, alpha=cfg.lora.lora_alpha, dropout=cfg.lora.lora_dropout,
                              targets=lora_targets(cfg.lora), base=str(Path(base).resolve()),
                              token_indices=list(range(first_new, V)) if first_new is not None else [])
    n = lora.apply_lora(model, spec)
    rows = f", with embedding rows {first_new}..{V - 1} (new tokens)" if spec.token_indices else ""
    log(f"LoRA rank {spec.r}, alpha {spec.alpha:g} on {', '.join(spec.targets)}{rows}: {n:,} trainable "
        f"parameters of {total:,} ({100 * n / total:.2f}%), the rest frozen")
    return spec, base_digest(spec.base)


def resume_lora(folder, cfg, state, tokenizer):
    """The model of a LoRA run's checkpoint: its base (checked unchanged) built as the run
    built it, grown to the tokenizer, its adapters read back. Returns (model, spec, digest)."""
    spec = lora.read_config(folder)
    digest = base_digest(spec.base)
    if digest != state["base"]["sha256"]:
        raise CheckpointError(f"the LoRA base {spec.base} changed since {folder} was written; "
                              f"resuming needs the same base weights")
    model = cropped(checkpoint.load_model(spec.base), cfg.model)
    model.resize_token_embeddings(max(tokenizer.vocab_size, model.config.vocab_size))
    lora.load_adapter(model, folder)
    return model, spec, digest


def base_digest(folder):
    """sha256 of a model folder's config.json and weight files, so a resumed LoRA run can
    tell that its frozen base is still the one it adapted."""
    folder = checkpoint.recover(folder)
    h = hashlib.sha256()
    for path in [folder / "config.json", *map(Path, weight_files(str(folder)))]:
        with open(path, "rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                h.update(block)
    return h.hexdigest()
