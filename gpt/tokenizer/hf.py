"""Hugging Face byte-level BPE files: GPT-2's vocab.json + merges.txt, and tokenizer.json.

Token strings in these files are bytes seen through GPT-2's byte->unicode map (a space
is "Ġ"). merges.txt lists merges by priority, after an optional "#version" line.
HF encodes with the pair rule (rules.py: pair_merge), so loaded tokenizers run in
"pairs" mode and give HF's ids exactly. The readers receive the tokenizer class
(`cls.from_state` builds one), so this file needs no tokenizer import.
"""
import json
import os

from minigrad.nn.state import write_text

from gpt.errors import TokenizerError, TokenizerFileError
from gpt.tokenizer.files import LineReader
from gpt.tokenizer.rules import BYTE_TO_UNICODE, GPT2_PATTERN, bytes_to_visible, visible_to_bytes


def load_hf(cls, directory, pattern="gpt2"):
    """Read vocab.json + merges.txt from a directory, else its tokenizer.json, into a `cls`."""
    directory = str(directory)
    vocab_path = os.path.join(directory, "vocab.json")
    merges_path = os.path.join(directory, "merges.txt")
    if os.path.exists(vocab_path) and os.path.exists(merges_path):
        return _load_vocab_merges(cls, vocab_path, merges_path, pattern)
    json_path = os.path.join(directory, "tokenizer.json")
    if os.path.exists(json_path):
        return _load_tokenizer_json(cls, json_path, pattern)
    raise TokenizerFileError(directory, "no vocab.json + merges.txt and no tokenizer.json here")


def _read_json(path):
    r = LineReader(path)
    try:
        return json.loads("\n".join(r.lines))
    except json.JSONDecodeError as e:
        raise TokenizerFileError(path, f"invalid JSON: {e.msg}", e.lineno) from None


def _check_vocab(vocab, path):
    if not isinstance(vocab, dict) or not all(isinstance(k, str) and isinstance(v, int)
                                              for k, v in vocab.items()):
        raise TokenizerFileError(path, "the vocab must be a JSON object of token string -> id")
    return vocab


def _load_vocab_merges(cls, vocab_path, merges_path, pattern):
    vocab = _check_vocab(_read_json(vocab_path), vocab_path)
    r = LineReader(merges_path)
    merges = []  # list of (str, str, line number)
    for number, line in enumerate(r.lines, 1):
        if (number == 1 and line.startswith("#version")) or not line.strip():
            continue
        parts = line.split(" ")
        if len(parts) != 2:
            raise TokenizerFileError(merges_path, f"a merge line is 'left right', found {line[:60]!r}", number)
        merges.append((parts[0], parts[1], number))
    # GPT-2's vocab.json also holds <|endoftext|>: a token that is neither a byte nor
    # a merge result can only be a special token.
    reachable = set(BYTE_TO_UNICODE.values()) | {a + b for a, b, _ in merges}
    specials = {s: i for s, i in vocab.items() if s not in reachable}
    return _build(cls, vocab, merges, specials, pattern, False, merges_path)


def _build(cls, vocab, merges, specials, pattern, ignore_merges, path):
    """vocab: visible str -> id; merges: list of (left, right, line); specials: str -> id."""
    ordinary = {}  # int -> bytes
    for token, i in vocab.items():
        if token in specials:
            continue
        try:
            ordinary[i] = visible_to_bytes(token)
        except KeyError:
            raise TokenizerFileError(path, f"token {token[:60]!r} is not in GPT-2's byte map; "
                                           f"not a byte-level BPE vocabulary") from None
    id_merges = []  # list of ((int, int), int)
    for a, b, line in merges:
        if a not in vocab or b not in vocab or a + b not in vocab:
            raise TokenizerFileError(path, f"merge {a!r} {b!r} uses a token missing from the vocab", line)
        id_merges.append(((vocab[a], vocab[b]), vocab[a + b]))
    try:
        return cls.from_state("pairs", ordinary, id_merges, pattern, specials, ignore_merges)
    except TokenizerError as e:
        raise TokenizerFileError(path, str(e)) from None


def _load_tokenizer_json(cls, path, pattern):
    spec = _read_json(path)
    model = spec.get("model") if isinstance(spec, dict) else None
    if not isinstance(model, dict) or model.get("type", "BPE") != "BPE":
        raise TokenizerFileError(path, "not a BPE tokenizer.json (model.type must be 'BPE')")
    if model.get("continuing_subword_prefix") or model.get("end_of_word_suffix"):
        raise TokenizerFileError(path, "subword prefixes/suffixes are not byte-level BPE; unsupported")
    vocab = _check_vocab(model.get("vocab"), path)
    merges = []
    for m in model.get("merges") or []:
        # Older files store merges as "a b", newer ones as ["a", "b"].
        parts = m.split(" ") if isinstance(m, str) else m
        if not isinstance(parts, list) or len(parts) != 2:
            raise TokenizerFileError(path, f"bad merge entry {m!r}")
        merges.append((parts[0], parts[1], None))
    specials = {}
    for added in spec.get("added_tokens") or []:
        specials[added["content"]] = added["id"]
    vocab = {**vocab, **specials}
    found = _pattern_of(spec.get("pre_tokenizer"), path)
    return _build(cls, vocab, merges, specials, found or pattern, bool(model.get("ignore_merges")), path)


def _pattern_of(pre, path):
    """The split regex of an HF pre_tokenizer spec, or None if it does not say."""
    if not isinstance(pre, dict):
        return None
    kind = pre.get("type")
    if kind == "Sequence":
        for sub in pre.get("pretokenizers", []):
            found = _pattern_of(sub, path)
            if found:
                return found
    if kind == "Split":
        pat = pre.get("pattern", {})
        if "Regex" in pat:
            return pat["Regex"]
    if kind == "ByteLevel":
        if pre.get("add_prefix_space"):
            raise TokenizerFileError(path, "ByteLevel add_prefix_space=true is not supported")
        if pre.get("use_regex", True):
            return GPT2_PATTERN
    return None


def save_hf(tok, directory):
    """Write vocab.json + merges.txt (GPT-2 layout; specials go in vocab.json too)."""
    if tok.mode != "pairs":
        raise TokenizerError("only a merges-based ('pairs') tokenizer can be written as merges.txt; "
                             "a tiktoken rank tokenizer has no merge list")
    ordinary = tok.vocab  # int -> bytes
    vocab = {}  # visible str -> int
    for i, token in sorted(ordinary.items()):
        visible = bytes_to_visible(token)
        if visible in vocab:
            raise TokenizerError(f"tokens {vocab[visible]} and {i} have the same bytes; "
                                 f"vocab.json cannot hold both")
        vocab[visible] = i
    for text, i in tok.special_tokens.items():
        if text in vocab:
            raise TokenizerError(f"special token {text!r} collides with an ordinary token in vocab.json")
        vocab[text] = i
    os.makedirs(directory, exist_ok=True)
    write_text(os.path.join(directory, "vocab.json"), json.dumps(vocab, ensure_ascii=False))
    lines = ["#version: 0.2"]
    lines += [f"{bytes_to_visible(ordinary[a])} {bytes_to_visible(ordinary[b])}" for (a, b), _ in tok.merges]
    write_text(os.path.join(directory, "merges.txt"), "\n".join(lines) + "\n")
