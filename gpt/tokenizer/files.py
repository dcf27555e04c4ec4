"""Tokenizer files: our own versioned text format and tiktoken rank files.

Our format is line-oriented UTF-8 text (no pickle, no eval). A BPE file looks like:

    minigrad-tokenizer 1 bpe
    mode pairs                      # or "ranks" (tiktoken rule)
    pattern "<JSON string of the split regex>"
    ignore_merges 0
    vocab 258
    0 Ā                             # id, token bytes in GPT-2's visible byte->char map
    ...
    merges 2
    97 97 256                       # left id, right id, new id; priority = line order
    ...
    special 1
    258 "<|endoftext|>"             # id, JSON string
    end

Counts and the final `end` line catch truncation; every error names the file and line.
The readers receive the tokenizer class (`cls.from_state` builds one), so this file
needs no tokenizer import. Hugging Face formats are in hf.py.
"""
import base64
import binascii
import json

from minigrad.nn.state import write_text

from gpt.errors import TokenizerError, TokenizerFileError
from gpt.tokenizer.rules import bytes_to_visible, visible_to_bytes

MAGIC = "minigrad-tokenizer"
VERSION = 1


class LineReader:
    """Walks the lines of a text file, turning every problem into a TokenizerFileError."""

    def __init__(self, path):
        self.path = str(path)
        try:
            with open(path, encoding="utf-8", newline="") as f:
                text = f.read()
        except FileNotFoundError:
            raise TokenizerFileError(self.path, "no such file") from None
        except UnicodeDecodeError as e:
            raise TokenizerFileError(self.path, f"not UTF-8 text ({e.reason} at byte {e.start})") from None
        except OSError as e:
            raise TokenizerFileError(self.path, f"cannot read: {e.strerror}") from None
        # split("\n"), not splitlines(): token text may hold \x1c, \u2028 and friends.
        self.lines = [line.rstrip("\r") for line in text.split("\n")]
        if self.lines and self.lines[-1] == "":
            self.lines.pop()
        self.pos = 0  # index of the next line; its 1-based number is pos + 1

    def error(self, message, line=None):
        return TokenizerFileError(self.path, message, self.pos if line is None else line)

    def next(self, what):
        if self.pos >= len(self.lines):
            raise TokenizerFileError(self.path, f"file is truncated: expected {what}", self.pos + 1)
        self.pos += 1
        return self.lines[self.pos - 1]

    def keyed(self, key):
        """Read a line `key value` and return value."""
        line = self.next(f"a '{key}' line")
        name, _, value = line.partition(" ")
        if name != key:
            raise self.error(f"expected a '{key}' line, found {line[:60]!r}")
        return value

    def integer(self, text, what):
        try:
            return int(text)
        except ValueError:
            raise self.error(f"{what} must be an integer, found {text[:60]!r}") from None

    def json_string(self, text, what):
        try:
            value = json.loads(text)
        except json.JSONDecodeError as e:
            raise self.error(f"{what} is not a JSON string: {e.msg}") from None
        if not isinstance(value, str):
            raise self.error(f"{what} is not a JSON string")
        return value


def header(path):
    """Return the kind ('bpe' or 'char') named by a tokenizer file's first line."""
    reader = LineReader(path)
    first = reader.next("the header line")
    parts = first.split(" ")
    if len(parts) != 3 or parts[0] != MAGIC:
        raise reader.error(f"not a minigrad tokenizer file (header {first[:60]!r})")
    if parts[1] != str(VERSION):
        raise reader.error(f"unsupported format version {parts[1]!r} (this code reads {VERSION})")
    return parts[2], reader


def save_bpe(tok, path):
    vocab, merges, specials = tok.vocab, tok.merges, tok.special_tokens
    lines = [f"{MAGIC} {VERSION} bpe", f"mode {tok.mode}", f"pattern {json.dumps(tok.pattern)}",
             f"ignore_merges {int(tok.ignore_merges)}", f"vocab {len(vocab)}"]
    lines += [f"{i} {bytes_to_visible(t)}" for i, t in sorted(vocab.items())]
    lines.append(f"merges {len(merges)}")
    lines += [f"{a} {b} {new}" for (a, b), new in merges]
    lines.append(f"special {len(specials)}")
    lines += [f"{i} {json.dumps(s)}" for s, i in sorted(specials.items(), key=lambda kv: kv[1])]
    lines.append("end")
    write_text(path, "\n".join(lines) + "\n")


def load_bpe(cls, path):
    """Read our BPE file into a `cls` (BPETokenizer)."""
    kind, r = header(path)
    if kind != "bpe":
        raise r.error(f"this is a {kind!r} tokenizer file, not a BPE one (use gpt.load_tokenizer)")
    mode = r.keyed("mode")
    if mode not in ("pairs", "ranks"):
        raise r.error(f"mode must be 'pairs' or 'ranks', found {mode!r}")
    pattern = r.json_string(r.keyed("pattern"), "pattern")
    ignore_merges = r.keyed("ignore_merges") == "1"
    vocab = _read_vocab(r)
    merges = _read_merges(r, vocab)
    specials = {}  # str -> int
    for _ in range(r.integer(r.keyed("special"), "special count")):
        id_text, _, text = r.next("a special token line").partition(" ")
        specials[r.json_string(text, "special token")] = r.integer(id_text, "special id")
    if r.next("the 'end' line") != "end":
        raise r.error("expected the 'end' line")
    try:
        return cls.from_state(mode, vocab, merges, pattern, specials, ignore_merges)
    except TokenizerError as e:
        raise TokenizerFileError(r.path, str(e)) from None


def _read_vocab(r):
    vocab = {}  # int -> bytes
    for _ in range(r.integer(r.keyed("vocab"), "vocab count")):
        id_text, _, visible = r.next("a vocab line").partition(" ")
        token_id = r.integer(id_text, "token id")
        try:
            vocab[token_id] = visible_to_bytes(visible)
        except KeyError:
            raise r.error(f"token {visible[:60]!r} has a character outside the byte map") from None
    return vocab


def _read_merges(r, vocab):
    merges = []  # list of ((int, int), int)
    for _ in range(r.integer(r.keyed("merges"), "merge count")):
        fields = r.next("a merge line").split(" ")
        if len(fields) != 3:
            raise r.error(f"a merge line is 'left right new', found {' '.join(fields)[:60]!r}")
        a, b, new = (r.integer(x, "merge id") for x in fields)
        if a not in vocab or b not in vocab or new not in vocab or vocab[new] != vocab[a] + vocab[b]:
            raise r.error(f"merge {a} {b} -> {new} does not match the vocab")
        merges.append(((a, b), new))
    return merges


def load_tiktoken(cls, path, pattern="cl100k", special_tokens=None):
    """Read a tiktoken rank file (one `base64(token) rank` per line) into a `cls` (BPETokenizer)."""
    r = LineReader(path)
    vocab = {}  # int rank -> bytes
    while r.pos < len(r.lines):
        line = r.next("a rank line")
        if not line.strip():
            continue
        fields = line.split()
        if len(fields) != 2:
            raise r.error(f"expected 'base64-token rank', found {line[:60]!r}")
        try:
            token = base64.b64decode(fields[0], validate=True)
        except (binascii.Error, ValueError):
            raise r.error(f"bad base64 token {fields[0][:60]!r}") from None
        rank = r.integer(fields[1], "rank")
        if rank in vocab:
            raise r.error(f"rank {rank} appears twice")
        vocab[rank] = token
    if not vocab:
        raise TokenizerFileError(r.path, "no ranks in file")
    if len(set(vocab.values())) != len(vocab):
        raise TokenizerFileError(r.path, "the same token bytes appear with two ranks")
    try:
        return cls.from_state("ranks", vocab, [], pattern, special_tokens)
    except TokenizerError as e:
        raise TokenizerFileError(r.path, str(e)) from None

