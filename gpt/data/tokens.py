"""From text to token ids: the run's tokenizer, encoding, and the cache of encoded splits.

    tok = build_tokenizer(cfg.data, train_text, text)    # char, bpe (trained on train) or a file
    ids = encode_cached(tok, {"train": t, "val": v}, run_dir / "data", key)   # .npy, memory-mapped
"""
import hashlib
import json
import os
import tempfile
from pathlib import Path

import numpy as np

from minigrad.nn.state import atomic_write, write_json

from gpt.errors import DataError, TokenizerError
from gpt.tokenizer import BPETokenizer, CharTokenizer, load_tokenizer


def build_tokenizer(dcfg, train_text, full_text):
    """char: the characters of the whole text (val may not hold a char the vocab lacks);
    bpe: trained on the train split only; anything else: a saved tokenizer file."""
    try:
        if dcfg.tokenizer == "char":
            return CharTokenizer().train(full_text)
        if dcfg.tokenizer == "bpe":
            return BPETokenizer().train(train_text, dcfg.vocab_size)
        if not os.path.exists(dcfg.tokenizer):
            raise DataError(f"--tokenizer must be 'char', 'bpe' or a tokenizer file; "
                            f"{dcfg.tokenizer!r} is none of these")
        return load_tokenizer(dcfg.tokenizer)
    except TokenizerError as e:
        raise DataError(f"tokenizer: {e}") from None


def encode(tok, text, what="text"):
    try:
        ids = tok.encode_ordinary(text) if hasattr(tok, "encode_ordinary") else tok.encode(text)
    except TokenizerError as e:
        raise DataError(f"cannot encode the {what} with this tokenizer: {e}") from None
    return np.asarray(ids, dtype=np.uint16 if tok.vocab_size < 65536 else np.uint32)


def tokenizer_digest(tok):
    """A hash of the saved tokenizer file: the cache key part that says which ids these are."""
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "tokenizer.txt"
        tok.save(path)
        return hashlib.sha256(path.read_bytes()).hexdigest()


def encode_cached(tok, splits, cache_dir, key):
    """Encode each named split, or reuse the .npy files in cache_dir made with the same key.

    splits: name -> text. Returns name -> read-only memory-mapped id array."""
    cache_dir = Path(cache_dir)
    meta_path = cache_dir / "meta.json"
    if meta_path.exists() and json.loads(meta_path.read_text()).get("key") == key:
        try:
            return {name: np.load(cache_dir / f"{name}.npy", mmap_mode="r") for name in splits}
        except (OSError, ValueError):
            pass  # a damaged cache is simply rebuilt
    cache_dir.mkdir(parents=True, exist_ok=True)
    for name, text in splits.items():
        ids = encode(tok, text, f"{name} split")
        atomic_write(cache_dir / f"{name}.npy", lambda tmp: _save_npy(tmp, ids))
    write_json(meta_path, {"key": key, "dtype": str(ids.dtype)})
    return {name: np.load(cache_dir / f"{name}.npy", mmap_mode="r") for name in splits}


def check_lengths(ids_by_split, block_size):
    for name, ids in ids_by_split.items():
        if len(ids) < block_size + 1:
            raise DataError(f"the {name} split has {len(ids)} tokens, fewer than block_size + 1 = "
                            f"{block_size + 1}; use more text, a smaller --block-size or a "
                            f"different --val-fraction")


def _save_npy(path, ids):
    with open(path, "wb") as f:  # a file object: np.save would add .npy to a temp name
        np.save(f, ids)
