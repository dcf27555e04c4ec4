"""Training data: read a corpus, clean it visibly, tokenize, cache the ids, draw batches.

    text, report = load_text(cfg.data)          # file, folder of .txt, or the built-in corpus
    tok = build_tokenizer(cfg.data, train_text)  # char, bpe (trained on the train split) or a file
    ids = encode_cached(tok, text, run_dir/"data", key)  # .npy, uint16 when the vocab allows
    sampler = BatchSampler(train_ids, val_ids, block_size, batch_size, seed)

Every problem with the data is a DataError (a ValueError) raised before training
starts; the CLI prints it as one `error: ...` line.
"""
import hashlib
import json
import os
import unicodedata
from pathlib import Path

import numpy as np

from gpt.tokenizer_errors import TokenizerError

BUILTIN = "builtin:pydoc"  # how the default corpus is named in reports and configs


class DataError(ValueError):
    """A corpus we cannot train on: missing, empty, undecodable or too short."""


# ---- reading ------------------------------------------------------------------------------

def builtin_corpus():
    """CPython's English documentation topics (ships with every CPython): no download needed."""
    from pydoc_data.topics import topics
    return "\n".join(topics[k] for k in sorted(topics))


def _decode(path, errors):
    try:
        raw = Path(path).read_bytes()
    except OSError as e:
        raise DataError(f"cannot read {path}: {e.strerror}") from None
    try:
        return raw.decode("utf-8", errors=errors)
    except UnicodeDecodeError as e:
        raise DataError(f"{path}: invalid UTF-8 at byte offset {e.start} ({e.reason}); "
                        f"fix the file or pass --errors replace") from None


def read_corpus(path, errors="strict"):
    """Return (text, sources): one file, or a folder's .txt files sorted and joined by a blank line."""
    if path is None or path == BUILTIN:
        return builtin_corpus(), [BUILTIN]
    p = Path(path)
    if p.is_dir():
        files = sorted(f for f in p.iterdir() if f.suffix == ".txt" and f.is_file())
        if not files:
            raise DataError(f"folder {path} has no .txt files")
        texts = [_decode(f, errors) for f in files]
        return "\n".join(t if t.endswith("\n") else t + "\n" for t in texts), [str(f) for f in files]
    if not p.exists():
        raise DataError(f"no such file or folder: {path}")
    return _decode(p, errors), [str(p)]


# ---- cleaning -----------------------------------------------------------------------------

def _is_stripped_control(ch):
    return ch not in "\n\t" and unicodedata.category(ch) == "Cc"


def preprocess(text, dcfg):
    """Apply the switchable clean-ups in a fixed order; return (text, list of notes)."""
    notes = []
    if dcfg.normalize_newlines and "\r" in text:
        n = text.count("\r")
        text = text.replace("\r\n", "\n").replace("\r", "\n")
        notes.append(f"normalised {n} carriage returns to \\n")
    if dcfg.nfc and not unicodedata.is_normalized("NFC", text):
        before = len(text)
        text = unicodedata.normalize("NFC", text)
        notes.append(f"NFC normalised ({before - len(text)} code points fewer)")
    if not dcfg.keep_control:
        bad = {ch for ch in set(text) if _is_stripped_control(ch)}
        if bad:
            n = sum(text.count(ch) for ch in bad)
            text = text.translate({ord(ch): None for ch in bad})
            notes.append(f"stripped {n} control characters")
    if dcfg.dedup_lines:
        text, removed = dedup_lines(text)
        notes.append(f"removed {removed} duplicate lines")
    return text, notes


def dedup_lines(text):
    """Drop exact repeats of non-blank lines, keeping the first; blank lines stay (paragraphs)."""
    seen, out, removed = set(), [], 0
    for line in text.split("\n"):
        if line.strip() and line in seen:
            removed += 1
            continue
        seen.add(line)
        out.append(line)
    return "\n".join(out), removed


def load_text(dcfg):
    """Read and clean the corpus named by a DataConfig; return (text, report dict)."""
    raw, sources = read_corpus(dcfg.data, dcfg.errors)
    text, notes = preprocess(raw, dcfg)
    if not text.strip():
        raise DataError(f"corpus {dcfg.data or BUILTIN} is empty")
    digest = hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()
    return text, {"sources": sources, "chars": len(text), "notes": notes, "sha256": digest}


def split_text(text, val_fraction):
    """Train is the head, val the tail (as nanoGPT), so val is text the model never saw."""
    cut = int(len(text) * (1 - val_fraction))
    return text[:cut], text[cut:]


# ---- tokenizer ----------------------------------------------------------------------------

def build_tokenizer(dcfg, train_text, full_text):
    """char: the characters of the whole text (val may not hold a char the vocab lacks);
    bpe: trained on the train split only; anything else: a saved tokenizer file."""
    from gpt.char_tokenizer import CharTokenizer
    from gpt.tokenizer import BPETokenizer
    from gpt.tokenizer_io import load_tokenizer
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


def tokenizer_digest(tok, tmp_path):
    """A hash of the saved tokenizer file: the cache key part that says which ids these are."""
    tok.save(tmp_path)
    digest = hashlib.sha256(Path(tmp_path).read_bytes()).hexdigest()
    os.remove(tmp_path)
    return digest


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
        tmp = cache_dir / f".{name}.tmp.npy"
        np.save(tmp, ids)
        os.replace(tmp, cache_dir / f"{name}.npy")
    tmp = cache_dir / ".meta.tmp"
    tmp.write_text(json.dumps({"key": key, "dtype": str(ids.dtype)}))
    os.replace(tmp, meta_path)
    return {name: np.load(cache_dir / f"{name}.npy", mmap_mode="r") for name in splits}


def check_lengths(ids_by_split, block_size):
    for name, ids in ids_by_split.items():
        if len(ids) < block_size + 1:
            raise DataError(f"the {name} split has {len(ids)} tokens, fewer than block_size + 1 = "
                            f"{block_size + 1}; use more text, a smaller --block-size or a "
                            f"different --val-fraction")


# ---- batches ------------------------------------------------------------------------------

class BatchSampler:
    """Random contiguous windows: x = ids[i:i+T], y = ids[i+1:i+T+1].

    Training batches come from one seeded generator whose state goes into the
    checkpoint (exact resume). Evaluation batches come from a generator re-seeded
    at every evaluation, so every evaluation scores the same windows (comparable
    numbers) and never disturbs the training stream."""

    def __init__(self, splits, block_size, batch_size, seed):
        self.splits, self.block_size, self.batch_size, self.seed = splits, block_size, batch_size, seed
        self.rng = np.random.default_rng(seed)

    def _windows(self, ids, starts):
        T = self.block_size
        x = np.stack([np.asarray(ids[i:i + T], dtype=np.int64) for i in starts])
        y = np.stack([np.asarray(ids[i + 1:i + T + 1], dtype=np.int64) for i in starts])
        return x, y

    def batch(self, split="train", rng=None):
        ids = self.splits[split]
        starts = (rng or self.rng).integers(0, len(ids) - self.block_size, size=self.batch_size)
        return self._windows(ids, starts)

    def eval_batches(self, split, n):
        rng = np.random.default_rng([self.seed, 1, 0 if split == "train" else 1])
        return [self.batch(split, rng) for _ in range(n)]

    def state(self):
        return self.rng.bit_generator.state

    def set_state(self, state):
        self.rng.bit_generator.state = state
