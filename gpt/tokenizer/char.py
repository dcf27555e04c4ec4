"""`CharTokenizer`: one token per character, for the classic char-level recipes
(nanoGPT's shakespeare_char). Same interface as BPETokenizer, minus special tokens.

File format (UTF-8 text, one JSON string per character, ids in line order):

    minigrad-tokenizer 1 char
    vocab 65
    "\\n"
    " "
    ...
    end
"""
import json

from minigrad.nn.state import write_text

from gpt.errors import TokenizerError, TokenizerFileError
from gpt.tokenizer.files import MAGIC, VERSION, header


class CharTokenizer:
    """Maps each character of a sorted vocabulary to its index."""

    def __init__(self, chars=()):
        self._set_chars(chars)

    def _set_chars(self, chars):
        self.chars = list(chars)                                  # int -> str
        self._index = {c: i for i, c in enumerate(self.chars)}    # str -> int
        if len(self._index) != len(self.chars):
            raise TokenizerError("character vocabulary holds a character twice")

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
        self._set_chars(sorted(seen))
        return self

    @property
    def vocab_size(self):
        return len(self.chars)

    @property
    def special_tokens(self):
        return {}

    def encode(self, text, allowed_special="none", disallowed_special="all"):
        """Encode text; the special arguments exist for interface parity and are unused."""
        index = self._index
        try:
            return [index[c] for c in text]
        except KeyError:
            bad = next(c for c in text if c not in index)
            raise TokenizerError(f"character {bad!r} (U+{ord(bad):04X}) is not in the "
                                 f"{len(self.chars)}-character vocabulary") from None

    encode_ordinary = encode

    def encode_batch(self, texts, allowed_special="none", disallowed_special="all"):
        return [self.encode(t) for t in texts]

    def token_to_bytes(self, token_id):
        return self._char(token_id).encode("utf-8")

    def _char(self, token_id):
        if not isinstance(token_id, int) or not 0 <= token_id < len(self.chars):
            raise TokenizerError(f"unknown token id {token_id!r} (vocab_size {self.vocab_size})")
        return self.chars[token_id]

    def decode(self, ids):
        return "".join([self._char(i) for i in ids])

    def decode_bytes(self, ids):
        return self.decode(ids).encode("utf-8", errors="surrogatepass")

    def save(self, path):
        """Write the file format above, atomically."""
        lines = [f"{MAGIC} {VERSION} char", f"vocab {len(self.chars)}"]
        lines += [json.dumps(c) for c in self.chars]  # ASCII-escaped: safe for any char
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
        if r.next("the 'end' line") != "end":
            raise r.error("expected the 'end' line")
        try:
            return cls(chars)
        except TokenizerError as e:
            raise TokenizerFileError(r.path, str(e)) from None

    def __repr__(self):
        return f"CharTokenizer(vocab_size={self.vocab_size})"
