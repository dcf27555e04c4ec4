"""Checkpoints: one folder, no pickle, replaced atomically.

    ckpt/
      config.json            GPT-2 keys (Hugging Face can read it)      model.save_pretrained
      model.safetensors      weights                                    model.save_pretrained
      tokenizer.txt          our tokenizer format (gpt.load_tokenizer)
      optimizer.safetensors  optimizer arrays (moments), by tree path
      optimizer.json         the rest of the optimizer state, arrays replaced by references
      trainer_state.json     iteration, RNG states, best val loss, the train config

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

from gpt.errors import CheckpointError
from gpt.model import GPT
from gpt.tokenizer import load_tokenizer as _load_tokenizer_file

FORMAT = 1
TRAINER_STATE = "trainer_state.json"  # written last: its presence marks a complete folder
TOKENIZER = "tokenizer.txt"
HF_TOKENIZER_FILES = (("vocab.json", "merges.txt"), ("tokenizer.json",))  # the order load_tokenizer tries


# ---- save ---------------------------------------------------------------------------------

def save(path, model, tokenizer, optimizer, trainer_state):
    """Write a complete checkpoint at `path`, replacing any previous one atomically."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    recover(path)  # finish an interrupted swap before starting a new one
    for stale in path.parent.glob(f"{path.name}.tmp-*"):  # leftovers of a crashed save
        shutil.rmtree(stale, ignore_errors=True)
    tmp = Path(tempfile.mkdtemp(prefix=f"{path.name}.tmp-", dir=path.parent))
    try:
        _write_folder(tmp, model, tokenizer, optimizer, trainer_state)
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


def _write_folder(folder, model, tokenizer, optimizer, trainer_state):
    model.save_pretrained(folder)
    tokenizer.save(folder / TOKENIZER)
    if optimizer is not None:
        tree, arrays = split_tree(optimizer.state_dict())
        safe_save(arrays, folder / "optimizer.safetensors")
        write_json(folder / "optimizer.json", {"format": FORMAT, "state": tree})
    write_json(folder / TRAINER_STATE, dict(trainer_state, format=FORMAT))
    os.chmod(folder, 0o777 & ~_umask())  # mkdtemp makes 0700; give the usual permissions
    fsync_path(folder)


def _umask():
    mask = os.umask(0)
    os.umask(mask)
    return mask


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
    """read_trainer_state, or None for a Hugging Face GPT-2 folder (config.json, no trainer state)."""
    folder = recover(path)
    if not (folder / TRAINER_STATE).exists() and (folder / "config.json").exists():
        return None
    return read_trainer_state(folder)


def load_model(path):
    return GPT.from_pretrained(str(recover(path)))


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


def load_tokenizer(path):
    return _load_tokenizer_file(str(tokenizer_path(path)))


def load_optimizer_state(path):
    """The optimizer's state_dict as saved, or None if the checkpoint has no optimizer."""
    path = recover(path)
    if not (path / "optimizer.json").exists():
        return None
    meta = json.loads((path / "optimizer.json").read_text(encoding="utf-8"))
    return join_tree(meta["state"], safe_load(path / "optimizer.safetensors"))


def load(path):
    """(model, tokenizer, trainer_state) of a checkpoint or run folder; trainer_state is None
    for a Hugging Face folder, which has none."""
    state = read_trainer_state_or_none(path)
    model, tokenizer = load_model(path), load_tokenizer(path)
    check_vocab(model, tokenizer, recover(path))
    return model, tokenizer, state


def check_vocab(model, tokenizer, where):
    """Every id the tokenizer can produce must have an embedding (more rows are fine: padded vocabs)."""
    if tokenizer.vocab_size > model.config.vocab_size:
        raise CheckpointError(f"{where}: the tokenizer has {tokenizer.vocab_size} ids but the model only "
                              f"{model.config.vocab_size} (config.json vocab_size); they do not belong together")
