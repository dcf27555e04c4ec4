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
`resolve` finds and renames back. So some complete checkpoint always loads.

A plain Hugging Face GPT-2 folder (config.json + model.safetensors, with its
vocab.json + merges.txt or tokenizer.json) loads too, for sampling and for
`--init-from`: it has no trainer state, and its tokenizer is HF's files.
"""
import json
import os
import shutil
import tempfile
from pathlib import Path

import numpy as np

FORMAT = 1
TRAINER_STATE = "trainer_state.json"  # written last: its presence marks a complete folder
TOKENIZER = "tokenizer.txt"
HF_TOKENIZER_FILES = (("vocab.json", "merges.txt"), ("tokenizer.json",))  # gpt.tokenizer_hf.load_hf's order


class CheckpointError(ValueError):
    pass


# ---- small atomic-file helpers ------------------------------------------------------------

def fsync_path(path):
    """fsync a file or a directory (directories: so renames inside them are durable)."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    except OSError:
        pass  # some filesystems refuse fsync on directories; nothing more we can do
    finally:
        os.close(fd)


def write_json(path, obj):
    """Atomic JSON write: temp name in the same folder, fsync, os.replace."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp")
    with open(tmp, "w", encoding="utf-8") as f:
        json.dump(obj, f, indent=1)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


# ---- optimizer state: a tree of dicts/lists with ndarrays in it ------------------------------

def split_tree(tree, prefix="", arrays=None):
    """Replace each ndarray leaf by {"__array__": key}; return (json tree, key -> ndarray)."""
    arrays = {} if arrays is None else arrays
    if isinstance(tree, np.ndarray):
        arrays[prefix] = np.ascontiguousarray(tree)
        return {"__array__": prefix}, arrays
    if isinstance(tree, dict):  # as pairs: JSON would turn int keys (param indices) into str
        return {"__dict__": [[k, split_tree(v, f"{prefix}.{k}" if prefix else str(k), arrays)[0]]
                             for k, v in tree.items()]}, arrays
    if isinstance(tree, (list, tuple)):
        return [split_tree(v, f"{prefix}.{i}" if prefix else str(i), arrays)[0]
                for i, v in enumerate(tree)], arrays
    if isinstance(tree, np.generic):
        return tree.item(), arrays
    return tree, arrays


def join_tree(tree, arrays):
    if isinstance(tree, dict):
        if "__array__" in tree:
            return arrays[tree["__array__"]]
        return {k: join_tree(v, arrays) for k, v in tree["__dict__"]}
    if isinstance(tree, list):
        return [join_tree(v, arrays) for v in tree]
    return tree


# ---- save ---------------------------------------------------------------------------------

def _write_folder(folder, model, tokenizer, optimizer, trainer_state):
    from safetensors.numpy import save_file
    model.save_pretrained(folder)
    tokenizer.save(str(folder / TOKENIZER))
    if optimizer is not None:
        tree, arrays = split_tree(optimizer.state_dict())
        save_file(arrays, str(folder / "optimizer.safetensors"))
        write_json(folder / "optimizer.json", {"format": FORMAT, "state": tree})
    write_json(folder / TRAINER_STATE, dict(trainer_state, format=FORMAT))
    umask = os.umask(0)
    os.umask(umask)
    for f in folder.iterdir():  # temp files are created 0600; give the usual permissions
        os.chmod(f, 0o666 & ~umask)
        fsync_path(f)
    os.chmod(folder, 0o777 & ~umask)
    fsync_path(folder)


def save(path, model, tokenizer, optimizer, trainer_state):
    """Write a complete checkpoint at `path`, replacing any previous one atomically."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    resolve(path)  # finish an interrupted swap before starting a new one
    _remove_stale(path)
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


def _remove_stale(path):
    """Leftover temp folders from a crashed save (never the .old one resolve may need)."""
    for p in path.parent.glob(f"{path.name}.tmp-*"):
        shutil.rmtree(p, ignore_errors=True)


# ---- load ---------------------------------------------------------------------------------

def resolve(path):
    """Return the checkpoint folder for `path`, repairing a swap a crash interrupted.

    Accepts the checkpoint folder itself or a run folder holding `ckpt/`."""
    path = Path(path)
    if (path / "ckpt").is_dir() or list(path.glob("ckpt.old-*")):
        path = path / "ckpt"
    if not (path / TRAINER_STATE).exists():
        olds = sorted(p for p in path.parent.glob(f"{path.name}.old-*") if (p / TRAINER_STATE).exists())
        if olds:
            if path.exists():
                shutil.rmtree(path)
            os.rename(olds[-1], path)
    return path


def read_trainer_state(path):
    path = resolve(path)
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
    folder = resolve(path)
    if not (folder / TRAINER_STATE).exists() and (folder / "config.json").exists():
        return None
    return read_trainer_state(folder)


def load_model(path):
    from gpt.model import GPT
    return GPT.from_pretrained(str(resolve(path)))


def tokenizer_path(path):
    """The tokenizer of a checkpoint folder: our tokenizer.txt, else the folder itself when it
    holds Hugging Face tokenizer files (gpt.load_tokenizer reads those from a folder)."""
    folder = resolve(path)
    if (folder / TOKENIZER).exists():
        return folder / TOKENIZER
    if any(all((folder / name).exists() for name in names) for names in HF_TOKENIZER_FILES):
        return folder
    looked = ", ".join([TOKENIZER] + [" + ".join(names) for names in HF_TOKENIZER_FILES])
    raise CheckpointError(f"{folder} has no tokenizer: looked for {looked}")


def load_tokenizer(path):
    from gpt.tokenizer_io import load_tokenizer as load
    return load(str(tokenizer_path(path)))


def load_optimizer_state(path):
    """The optimizer's state_dict as saved, or None if the checkpoint has no optimizer."""
    from safetensors.numpy import load_file
    path = resolve(path)
    if not (path / "optimizer.json").exists():
        return None
    meta = json.loads((path / "optimizer.json").read_text(encoding="utf-8"))
    return join_tree(meta["state"], load_file(str(path / "optimizer.safetensors")))


def load(path):
    """(model, tokenizer, trainer_state) of a checkpoint or run folder; trainer_state is None
    for a Hugging Face folder, which has none."""
    state = read_trainer_state_or_none(path)
    model, tokenizer = load_model(path), load_tokenizer(path)
    check_vocab(model, tokenizer, resolve(path))
    return model, tokenizer, state


def check_vocab(model, tokenizer, where):
    """Every id the tokenizer can produce must have an embedding (more rows are fine: padded vocabs)."""
    if tokenizer.vocab_size > model.config.vocab_size:
        raise CheckpointError(f"{where}: the tokenizer has {tokenizer.vocab_size} ids but the model only "
                              f"{model.config.vocab_size} (config.json vocab_size); they do not belong together")
