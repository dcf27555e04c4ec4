"""Tokenizers: byte-level BPE (GPT-2 and cl100k patterns) and characters.

    rules.py    the BPE rules as pure functions: split patterns, GPT-2's byte map, merges
    trainer.py  learning merges from text
    bpe.py      BPETokenizer          char.py   CharTokenizer
    files.py    our text format, tiktoken rank files
    hf.py       Hugging Face's vocab.json + merges.txt and tokenizer.json
    cli.py      `gpt tokenizer train|encode|decode|stats`
"""
import os

from gpt.errors import DisallowedSpecialError, TokenizerError, TokenizerFileError  # noqa: F401
from gpt.tokenizer import files
from gpt.tokenizer.bpe import ENDOFTEXT, BPETokenizer  # noqa: F401
from gpt.tokenizer.char import CharTokenizer


def load_tokenizer(path):
    """Load any tokenizer we can read: our BPE or char file (by its header) or a Hugging Face
    folder (vocab.json + merges.txt, or tokenizer.json)."""
    if os.path.isdir(path):
        return BPETokenizer.from_hf(path)
    kind, reader = files.header(path)
    if kind == "bpe":
        return BPETokenizer.load(path)
    if kind == "char":
        return CharTokenizer.load(path)
    raise reader.error(f"unknown tokenizer kind {kind!r}", 1)
