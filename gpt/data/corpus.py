"""The corpus: read a file, a folder of .txt files or the built-in text, clean it visibly, split it.

    text, report = load_text(cfg.data)     # report: sources, chars, notes, sha256
    train_text, val_text = split_text(text, cfg.data.val_fraction)

Every problem with the data is a DataError raised before training starts.
"""
import hashlib
import unicodedata
from pathlib import Path

from gpt.errors import DataError

BUILTIN = "builtin:pydoc"  # how the default corpus is named in reports and configs


# ---- reading ------------------------------------------------------------------------------

def builtin_corpus():
    """CPython's English documentation topics (ships with every CPython): no download needed."""
    from pydoc_data.topics import topics
    return "\n".join(topics[k] for k in sorted(topics))


def read_text_file(path, errors="strict"):
    """A UTF-8 file's text; DataError naming the byte offset of invalid UTF-8 (or use errors="replace")."""
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
        texts = [read_text_file(f, errors) for f in files]
        return "\n".join(t if t.endswith("\n") else t + "\n" for t in texts), [str(f) for f in files]
    if not p.exists():
        raise DataError(f"no such file or folder: {path}")
    return read_text_file(p, errors), [str(p)]


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
