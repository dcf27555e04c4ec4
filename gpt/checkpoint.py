"""Checkpoints: one folder, no pickle, replaced atomically.

    ckpt/
      config.json            GPT-2 keys (Hugging Face can read it)      model.save_pretrained
      model.safetensors      weights                                    model.save_pretrained
      tokenizer.txt          our tokenizer format (gpt.load_tokenizer)
      optimizer.safetensors  optimizer arrays (moments), by tree path
      optimizer.json         the rest of the optimizer state, arrays replaced by references
      trainer_state.json     iteration, RNG states, best val loss, the train config
      chat_template.json     the chat template, when the model was trained on chats (gpt/chat.py)

A LoRA run's folder holds adapter_config.json + adapter_model.safetensors (PEFT's
layout, gpt/lora.py) instead of config.json + model.safetensors: the frozen base is
the folder its base_model_name_or_path names, and loading such a folder loads that
base with the adapters on it.

A save writes a complete new folder `ckpt.tmp-XXXX` beside the old one (every
file fsynced), then swaps it in with two renames: ckpt -> ckpt.old-XXXX,
ckpt.tmp-XXXX -> ckpt. A crash before the first rename leaves the old folder
untouched; a crash between the two leaves it under `ckpt.old-XXXX`, which
`recover` puts back (every load and save calls it first). So some complete
checkpoint always loads.

A plain Hugging Face GPT-2 folder (config.json + model.safetensors, with its
vocab.json + merges.txt or tokenizer.json) loads too, for sampling and for
`--init-from`: it has no trainer state, and its tokenizer is HF's files.
"""
import json
import os
import shutil
import tempfile
from pathlib import Path

from minigrad.nn.state import fsync_path, join_tree, safe_load, safe_save, split_tree, write_json

from gpt import lora
from gpt.chat import ChatTemplate
from gpt.errors import CheckpointError
from gpt.model import GPT
from gpt.tokenizer import load_tokenizer as _load_tokenizer_file

FORMAT = 1
TRAINER_STATE = "trainer_state.json"  # written last: its presence marks a complete folder
TOKENIZER = "tokenizer.txt"
HF_TOKENIZER_FILES = (("vocab.json", "merges.txt"), ("tokenizer.json",))  # the order load_tokenizer tries


# ---- save ---------------------------------------------------------------------------------

def save(path, model, tokenizer, optimizer, trainer_state, template=None, adapter=None):
    """Write a complete checkpoint at `path`, replacing any previous one atomically. With an
    adapter (lora.AdapterConfig) the folder holds the model's adapters, not its weights."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    recover(path)  # finish an interrupted swap before starting a new one
    for stale in path.parent.glob(f"{path.name}.tmp-*"):  # leftovers of a crashed save
        shutil.rmtree(stale, ignore_errors=True)
    tmp = Path(tempfile.mkdtemp(prefix=f"{path.name}.tmp-", dir=path.parent))
    try:
        _write_folder(tmp, model, tokenizer, optimizer, trainer_state, template, adapter)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    old = None
    if path.exists():
        old = Path(tempfile.mkdtemp(prefix=f"{path.name}.old-", dir=path.parent))
        os.rmdir(old)
        os.rename(path, old)
    os.rename(tmp, path)
    fsync_path(path.parent)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)
    return path


def _write_folder(folder, model, tokenizer, optimizer=None, trainer_state=None, template=None, adapter=None):
    """Fill folder (fresh from mkdtemp) with the checkpoint's files; without optimizer and
    trainer_state: a plain model folder (save_plain)."""
    if adapter is None:
        model.save_pretrained(folder)
    else:
        lora.save_adapter(model, adapter, folder)
    tokenizer.save(folder / TOKENIZER)
    if template is not None:
        template.save(folder)
    if optimizer is not None:
        tree, arrays = split_tree(optimizer.state_dict())
        safe_save(arrays, folder / "optimizer.safetensors")
        write_json(folder / "optimizer.json", {"format": FORMAT, "state": tree})
    if trainer_state is not None:
        write_json(folder / TRAINER_STATE, dict(trainer_state, format=FORMAT))
    os.chmod(folder, 0o777 & ~_umask())  # mkdtemp makes 0700; give the usual permissions
    fsync_path(folder)


def _umask():
    mask = os.umask(0)
    os.umask(mask)
    return mask


def save_plain(path, model, tokenizer, template=None):
    """A plain model folder: config.json + model.safetensors (transformers opens it), the
    tokenizer and the chat template, no optimizer or trainer state (what `gpt merge` writes;
    --init-from, sample and eval read it). Written beside and renamed into place; a folder
    that exists and is not empty is refused, never overwritten."""
    path = Path(path)
    if path.exists() and (not path.is_dir() or any(path.iterdir())):
        raise CheckpointError(f"{path} already exists and is not an empty folder; choose another --out")
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f"{path.name}.tmp-", dir=path.parent))
    try:
        _write_folder(tmp, model, tokenizer, template=template)
        if path.exists():
            os.rmdir(path)
        os.rename(tmp, path)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    fsync_path(path.parent)
    return path


# ---- find and recover ---------------------------------------------------------------------

def folder_of(path):
    """The checkpoint folder for `path`: the folder itself, or a run folder's `ckpt/`."""
    path = Path(path)
    if (path / "ckpt").is_dir() or list(path.glob("ckpt.old-*")):
        return path / "ckpt"
    return path


def recover(path):
    """Finish a save that a crash cut between its two renames: with no complete checkpoint
    at the folder but one under `<name>.old-*`, put that one back. Returns the folder."""
    path = folder_of(path)
    if not (path / TRAINER_STATE).exists():
        olds = sorted(p for p in path.parent.glob(f"{path.name}.old-*") if (p / TRAINER_STATE).exists())
        if olds:
            if path.exists():
                shutil.rmtree(path)
            os.rename(olds[-1], path)
    return path


# ---- load ---------------------------------------------------------------------------------

def read_trainer_state(path):
    path = recover(path)
    try:
        state = json.loads((path / TRAINER_STATE).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise CheckpointError(f"no checkpoint at {path} (missing {TRAINER_STATE})") from None
    except json.JSONDecodeError as e:
        raise CheckpointError(f"{path / TRAINER_STATE} is damaged: {e}") from None
    if state.get("format") != FORMAT:
        raise CheckpointError(f"{path}: checkpoint format {state.get('format')} (this code reads {FORMAT})")
    return state


def read_trainer_state_or_none(path):
    """read_trainer_state, or None for a Hugging Face GPT-2 folder (config.json, no trainer
    state) or an adapter folder PEFT wrote."""
    folder = recover(path)
    if not (folder / TRAINER_STATE).exists() and ((folder / "config.json").exists() or lora.is_adapter(folder)):
        return None
    return read_trainer_state(folder)


def is_adapter_folder(path):
    """A LoRA adapter folder (adapter_config.json) without a model of its own."""
    folder = recover(path)
    return lora.is_adapter(folder) and not (folder / "config.json").exists()


def base_of(adapter):
    """The base model folder an adapter names (base_model_name_or_path)."""
    base = lora.read_config(adapter).base
    if not base or not Path(base).is_dir():
        raise CheckpointError(f"{adapter}: its base model {base!r} is not a folder here; "
                              f"name the base yourself: --ckpt BASE --adapter {adapter}")
    return base


def with_adapter(path, adapter):
    """(model folder, adapter folder or None): path with adapter on it; a path that is itself
    an adapter folder stands for the base it names with that adapter."""
    path, adapter = recover(path), None if adapter is None else recover(adapter)
    if adapter is None and is_adapter_folder(path):
        return recover(base_of(path)), path
    return path, adapter


def load_model(path, adapter=None, merge=False):
    """The model of a checkpoint folder. With `adapter` (a LoRA adapter folder), or when path
    is itself one, the base with the adapters on it (unmerged, unless merge), its vocabulary
    grown to the adapter's token rows."""
    folder, adapter = with_adapter(path, adapter)
    model = GPT.from_pretrained(str(folder))
    if adapter is not None:
        attach_adapter(model, adapter)
        if merge:
            lora.merge(model)
    return model


def attach_adapter(model, adapter):
    """Put the LoRA adapter folder's layers on model, its vocabulary grown to the rows the
    adapter fills (new special tokens)."""
    rows = lora.read_config(adapter).token_indices
    if rows and max(rows) >= model.config.vocab_size:
        model.resize_token_embeddings(max(rows) + 1)
    lora.load_adapter(model, adapter)


def tokenizer_path(path):
    """The tokenizer of a checkpoint folder: our tokenizer.txt, else the folder itself when it
    holds Hugging Face tokenizer files (gpt.load_tokenizer reads those from a folder)."""
    folder = recover(path)
    if (folder / TOKENIZER).exists():
        return folder / TOKENIZER
    if any(all((folder / name).exists() for name in names) for names in HF_TOKENIZER_FILES):
        return folder
    looked = ", ".join([TOKENIZER] + [" + ".join(names) for names in HF_TOKENIZER_FILES])
    raise CheckpointError(f"{folder} has no tokenizer: looked for {looked}")


def load_tokenizer(path, adapter=None):
    """The checkpoint's tokenizer, or the adapter's when it has one: new tokens live there."""
    own = adapter if adapter is not None and _has_tokenizer(adapter) else path
    return _load_tokenizer_file(str(tokenizer_path(own)))


def load_optimizer_state(path):
    """The optimizer's state_dict as saved, or None if the checkpoint has no optimizer."""
    path = recover(path)
    if not (path / "optimizer.json").exists():
        return None
    meta = json.loads((path / "optimizer.json").read_text(encoding="utf-8"))
    return join_tree(meta["state"], safe_load(path / "optimizer.safetensors"))


def load(path, adapter=None):
    """(model, tokenizer, trainer_state) of a checkpoint or run folder, with a LoRA adapter
    folder on it if given; trainer_state is None for a Hugging Face folder, which has none.
    The tokenizer (and state) are the adapter's when it has them: new tokens live there."""
    path, adapter = with_adapter(path, adapter)
    state = read_trainer_state_or_none(adapter if adapter is not None and
                                       (adapter / TRAINER_STATE).exists() else path)
    model, tokenizer = load_model(path, adapter), load_tokenizer(path, adapter)
    check_vocab(model, tokenizer, adapter or path)
    return model, tokenizer, state


def load_template(path, adapter=None):
    """The chat template saved with the adapter or the checkpoint, or None."""
    path, adapter = with_adapter(path, adapter)
    found = ChatTemplate.load(adapter) if adapter is not None else None
    return found or ChatTemplate.load(path)


def _has_tokenizer(path):
    try:
        tokenizer_path(path)
        return True
    except CheckpointError:
        return False


def check_vocab(model, tokenizer, where):
    """Every id the tokenizer can produce must have an embedding (more rows are fine: padded vocabs)."""
    if tokenizer.vocab_size > model.config.vocab_size:
        raise CheckpointError(f"{where}: the tokenizer has {tokenizer.vocab_size} ids but the model only "
                              f"{model.config.vocab_size} (config.json vocab_size); they do not belong together")
