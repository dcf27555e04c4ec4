"""`CharTokenizer`: one token per character, for the classic char-level recipes
(nanoGPT's shakespeare_char). Same interface as BPETokenizer, special tokens included
(ids after the characters, tiktoken's allowed/disallowed rules: specials.py).

File format (UTF-8 text, one JSON string per character, ids in line order; the
`special` section appears only when there are special tokens, so files without
them read as before):

    minigrad-tokenizer 1 char
    vocab 65
    "\\n"
    " "
    ...
    special 2
    65 "<|im_start|>"
    66 "<|im_end|>"
    end
"""
import json

from minigrad.nn.state import write_text

from gpt.errors import TokenizerError, TokenizerFileError
from gpt.tokenizer import specials
from gpt.tokenizer.files import MAGIC, VERSION, header


class CharTokenizer:
    """Maps each character of a sorted vocabulary to its index."""

    def __init__(self, chars=(), special_tokens=None):
        self._set_chars(chars, special_tokens)

    def _set_chars(self, chars, special_tokens=None):
        """special_tokens: None, a list of str (ids after the characters) or a dict str -> id."""
        self.chars = list(chars)                                  # int -> str
        self._index = {c: i for i, c in enumerate(self.chars)}    # str -> int
        if len(self._index) != len(self.chars):
            raise TokenizerError("character vocabulary holds a character twice")
        if not isinstance(special_tokens, dict):
            special_tokens = specials.with_added({}, special_tokens or [], len(self.chars))
        self._specials = specials.check(special_tokens, range(len(self.chars)))  # str -> int
        self._special_text = {i: s for s, i in self._specials.items()}           # int -> str
        self._special_regexes = {}                                               # frozenset -> regex

    def train(self, texts, vocab_size=None, **unused):
        """Build the sorted set of characters of a str or iterable of str; returns self.

        vocab_size, if given, must be at least the number of distinct characters
        (a char vocabulary cannot be truncated without losing text).
        """
        if isinstance(texts, str):
            texts = [texts]
        seen = set()
        for text in texts:
            seen.update(text)
        if not seen:
            raise TokenizerError("training text is empty")
        if vocab_size is not None and vocab_size < len(seen):
            raise TokenizerError(f"vocab_size {vocab_size} is smaller than the {len(seen)} "
                                 f"distinct characters of the text")
        self._set_chars(sorted(seen), list(self._specials))  # specials keep their order, after the chars
        return self

    @property
    def vocab_size(self):
        """The largest id + 1: the characters, then the special tokens."""
        return max([len(self.chars) - 1, *self._specials.values()]) + 1

    @property
    def special_tokens(self):
        """str -> id of the special tokens."""
        return dict(self._specials)

    def add_special_tokens(self, tokens):
        """Add the special tokens (a list of str) this tokenizer lacks, with ids after the
        largest one. Returns how many were added (as transformers' add_special_tokens)."""
        before = len(self._specials)
        self._set_chars(self.chars, specials.with_added(self._specials, tokens, self.vocab_size))
        return len(self._specials) - before

    def encode(self, text, allowed_special="none", disallowed_special="all"):
        """Encode text with tiktoken's special-token rules (see BPETokenizer.encode)."""
        return specials.encode_with_specials(text, self._specials, allowed_special, disallowed_special,
                                             self.encode_ordinary, self._special_regexes)

    def encode_ordinary(self, text):
        """Encode text, special-token text included, one id per character."""
        index = self._index
        try:
            return [index[c] for c in text]
        except KeyError:
            bad = next(c for c in text if c not in index)
            raise TokenizerError(f"character {bad!r} (U+{ord(bad):04X}) is not in the "
                                 f"{len(self.chars)}-character vocabulary") from None

    def encode_batch(self, texts, allowed_special="none", disallowed_special="all"):
        return [self.encode(t, allowed_special, disallowed_special) for t in texts]

    def token_to_bytes(self, token_id):
        return self._char(token_id).encode("utf-8")

    def _char(self, token_id):
        """The character (or special token text) of an id."""
        if isinstance(token_id, int) and 0 <= token_id < len(self.chars):
            return self.chars[token_id]
        if isinstance(token_id, int) and token_id in self._special_text:
            return self._special_text[token_id]
        raise TokenizerError(f"unknown token id {token_id!r} (vocab_size {self.vocab_size})")

    def decode(self, ids):
        return "".join([self._char(i) for i in ids])

    def decode_bytes(self, ids):
        return self.decode(ids).encode("utf-8", errors="surrogatepass")

    def save(self, path):
        """Write the file format above, atomically."""
        lines = [f"{MAGIC} {VERSION} char", f"vocab {len(self.chars)}"]
        lines += [json.dumps(c) for c in self.chars]  # ASCII-escaped: safe for any char
        if self._specials:
            lines.append(f"special {len(self._specials)}")
            lines += [f"{i} {json.dumps(s)}" for s, i in sorted(self._specials.items(), key=lambda kv: kv[1])]
        lines.append("end")
        write_text(path, "\n".join(lines) + "\n")

    @classmethod
    def load(cls, path):
        kind, r = header(path)
        if kind != "char":
            raise r.error(f"this is a {kind!r} tokenizer file, not a char one (use gpt.load_tokenizer)")
        chars = []
        for _ in range(r.integer(r.keyed("vocab"), "vocab count")):
            c = r.json_string(r.next("a character line"), "character")
            if len(c) != 1:
                raise r.error(f"expected one character, found {c[:20]!r}")
            chars.append(c)
        special_tokens, line = {}, r.next("the 'end' line")
        if line.startswith("special "):
            for _ in range(r.integer(line[len("special "):], "special count")):
                id_text, _, text = r.next("a special token line").partition(" ")
                special_tokens[r.json_string(text, "special token")] = r.integer(id_text, "special id")
            line = r.next("the 'end' line")
        if line != "end":
            raise r.error("expected the 'end' line")
        try:
            return cls(chars, special_tokens)
        except TokenizerError as e:
            raise TokenizerFileError(r.path, str(e)) from None

    def __repr__(self):
        return f"CharTokenizer(vocab_size={self.vocab_size})"
