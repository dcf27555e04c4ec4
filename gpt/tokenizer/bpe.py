"""`BPETokenizer`: byte-level BPE with regex pre-tokenization and tiktoken-style special tokens.

A tokenizer runs in one of two modes (see rules.py for the two merge rules):

* "pairs": learned merges, as produced by `train` or read from HF vocab.json + merges.txt;
* "ranks": tiktoken rank files, merged by the rank of the concatenated bytes.

Each distinct pre-token chunk is encoded once and kept in a cache (str -> ids), so
repeated words cost one dict lookup. File formats live in files.py (ours and
tiktoken's) and hf.py (Hugging Face's); they receive this class rather than import it.
"""
import sys

from gpt.errors import TokenizerError
from gpt.tokenizer import files, hf, rules, specials
from gpt.tokenizer.trainer import count_chunks, train_merges

ENDOFTEXT = "<|endoftext|>"
_CACHE_LIMIT = 200_000  # chunks; the cache is simply cleared when it grows past this


class BPETokenizer:
    """Byte-level BPE tokenizer. `BPETokenizer()` is the bare 256-byte tokenizer;
    call `train`, or build one with `load`, `from_tiktoken` or `from_hf`."""

    def __init__(self, pattern="gpt2", special_tokens=None):
        vocab = {b: bytes([b]) for b in range(256)}
        self._setup("pairs", vocab, [], pattern, special_tokens)

    # ----- construction -------------------------------------------------------------
    def _setup(self, mode, vocab, merges, pattern, special_tokens, ignore_merges=False):
        """Install a complete state. vocab: int -> bytes (no specials);
        merges: list of ((left, right), new_id) in priority order (pairs mode only)."""
        self.mode = mode
        self.pattern = rules.resolve_pattern(pattern)
        self._pat = rules.compile_pattern(self.pattern)
        self._vocab = dict(vocab)               # int -> bytes, ordinary tokens
        self._merges = list(merges)             # list of ((int, int), int)
        self._merge_table = {pair: (rank, new) for rank, (pair, new) in enumerate(self._merges)}
        self._encoder = {t: i for i, t in self._vocab.items()}  # bytes -> int
        self.ignore_merges = ignore_merges
        self._check_bytes()
        self._byte_ids = [self._encoder[bytes([b])] for b in range(256)]  # byte -> id
        self._set_specials(special_tokens)
        self._cache = {}                         # str chunk -> list of ids

    def _check_bytes(self):
        missing = [b for b in range(256) if bytes([b]) not in self._encoder]
        if missing:
            raise TokenizerError(f"vocabulary lacks {len(missing)} single-byte tokens "
                                 f"(e.g. byte {missing[0]}); byte-level BPE needs all 256")

    def _set_specials(self, special_tokens):
        """special_tokens: None, a list of str (ids after the vocab) or a dict str -> id."""
        if not isinstance(special_tokens, dict):
            special_tokens = specials.with_added({}, special_tokens or [], max(self._vocab) + 1)
        self._specials = specials.check(special_tokens, self._vocab)       # str -> int
        self._decoder = dict(self._vocab)                                   # int -> bytes
        self._decoder.update({i: s.encode("utf-8") for s, i in self._specials.items()})
        self._vocab_size = max(self._decoder) + 1
        self._special_regexes = {}                                          # frozenset of str -> regex

    @classmethod
    def from_state(cls, mode, vocab, merges, pattern, special_tokens, ignore_merges=False):
        """A tokenizer from a complete state (what the file readers call)."""
        tok = cls.__new__(cls)
        tok._setup(mode, vocab, merges, pattern, special_tokens, ignore_merges)
        return tok

    def train(self, texts, vocab_size, pattern=None, special_tokens=None, verbose=False, progress=None):
        """Learn merges from a str or an iterable of str; returns self.

        vocab_size counts the 256 bytes, the merges and the special tokens, whose ids
        follow the merges. Ties between equally frequent pairs go to the smallest
        (left id, right id); see trainer.py. Stops early if the text runs out of pairs.
        """
        pattern = self.pattern if pattern is None else pattern
        special_texts = list(self._specials) if special_tokens is None else list(special_tokens)
        if not isinstance(vocab_size, int):
            raise TokenizerError(f"vocab_size must be an int, got {vocab_size!r}")
        num_merges = vocab_size - 256 - len(special_texts)
        if num_merges < 0:
            raise TokenizerError(f"vocab_size {vocab_size} is smaller than 256 bytes + "
                                 f"{len(special_texts)} special tokens = {256 + len(special_texts)}")
        compiled = rules.compile_pattern(rules.resolve_pattern(pattern))
        chunks = count_chunks(texts, compiled, specials.alternation(special_texts))
        if not chunks:
            raise TokenizerError("training text is empty (no pre-token chunks found)")
        if verbose:
            print(f"bpe train: {len(chunks)} distinct chunks, {sum(chunks.values())} in all; "
                  f"learning {num_merges} merges", file=sys.stderr)
        merges = train_merges(chunks, num_merges, verbose=verbose, progress=progress)
        vocab = {b: bytes([b]) for b in range(256)}
        for (a, b), new in merges:
            vocab[new] = vocab[a] + vocab[b]
        self._setup("pairs", vocab, merges, pattern, special_texts)
        return self

    # ----- properties ---------------------------------------------------------------
    @property
    def vocab_size(self):
        """Size an embedding table needs: the largest id + 1 (as tiktoken's n_vocab)."""
        return self._vocab_size

    @property
    def special_tokens(self):
        """str -> id of the special tokens."""
        return dict(self._specials)

    @property
    def vocab(self):
        """id -> bytes of the ordinary tokens (bytes and merges; special tokens not included)."""
        return dict(self._vocab)

    @property
    def merges(self):
        return list(self._merges)

    def token_to_bytes(self, token_id):
        try:
            return self._decoder[token_id]
        except (KeyError, TypeError):
            raise TokenizerError(f"unknown token id {token_id!r} (vocab_size {self.vocab_size})") from None

    # ----- encoding -----------------------------------------------------------------
    def encode_ordinary(self, text):
        """Encode text, treating special-token text as ordinary text."""
        try:
            return self._encode_chunks(self._findall(text))
        except UnicodeEncodeError:
            # Lone surrogates cannot be UTF-8: replace them as tiktoken does.
            text = text.encode("utf-16", "surrogatepass").decode("utf-16", "replace")
            return self._encode_chunks(self._findall(text))

    def _findall(self, text):
        if self._pat.groups:  # a custom pattern with groups: findall would return groups
            return [m.group() for m in self._pat.finditer(text)]
        return self._pat.findall(text)

    def _encode_chunks(self, chunks):
        # Look every chunk up at C speed first; only misses run Python BPE code.
        cache = self._cache
        found = list(map(cache.get, chunks))  # list of (list of ids or None)
        if None in found:
            for i, ids in enumerate(found):
                if ids is None:
                    ids = cache.get(chunks[i])  # an earlier miss may have filled it
                    found[i] = ids if ids is not None else self._encode_chunk(chunks[i])
        out = []
        for ids in found:
            out += ids
        return out

    def _encode_chunk(self, chunk):
        """Cache miss: BPE one chunk and remember the result."""
        data = chunk.encode("utf-8")
        if self.mode == "ranks":
            ids = rules.rank_merge(data, self._encoder)
        elif self.ignore_merges and data in self._encoder:
            ids = [self._encoder[data]]
        else:
            ids = rules.pair_merge([self._byte_ids[b] for b in data], self._merge_table)
        if len(self._cache) >= _CACHE_LIMIT:
            self._cache.clear()
        self._cache[chunk] = ids
        return ids

    def encode(self, text, allowed_special="none", disallowed_special="all"):
        """Encode text with tiktoken's special-token rules.

        allowed_special: "all", "none" or a set of special-token strings encoded as specials.
        disallowed_special: "all" (every special not allowed), "none"/() or a set; such
        text raises DisallowedSpecialError. Pass disallowed_special=() to encode it as text.
        """
        return specials.encode_with_specials(text, self._specials, allowed_special, disallowed_special,
                                             self.encode_ordinary, self._special_regexes)

    def add_special_tokens(self, tokens):
        """Add the special tokens (a list of str) this tokenizer lacks, with ids after the
        largest one, so a model's embedding grows by rows at its end. Returns how many were
        added (as transformers' add_special_tokens); saved and loaded by every file format."""
        before = len(self._specials)
        self._set_specials(specials.with_added(self._specials, tokens, self.vocab_size))
        return len(self._specials) - before

    def encode_batch(self, texts, allowed_special="none", disallowed_special="all"):
        return [self.encode(t, allowed_special, disallowed_special) for t in texts]

    # ----- decoding -----------------------------------------------------------------
    def decode_bytes(self, ids):
        try:
            return b"".join([self._decoder[i] for i in ids])
        except (KeyError, TypeError):
            bad = next(i for i in ids if not isinstance(i, int) or i not in self._decoder)
            raise TokenizerError(f"unknown token id {bad!r} (vocab_size {self.vocab_size})") from None

    def decode(self, ids):
        """ids -> str; invalid UTF-8 (e.g. a cut multi-byte char) becomes U+FFFD, as tiktoken."""
        return self.decode_bytes(ids).decode("utf-8", errors="replace")

    # ----- files (formats in files.py and hf.py) ------------------------------------
    def save(self, path):
        """Write our text format (files.py), atomically."""
        files.save_bpe(self, path)

    @classmethod
    def load(cls, path):
        return files.load_bpe(cls, path)

    @classmethod
    def from_tiktoken(cls, path, pattern="cl100k", special_tokens=None):
        """Read a tiktoken `.tiktoken` rank file; encodes by rank exactly as tiktoken."""
        return files.load_tiktoken(cls, path, pattern, special_tokens)

    @classmethod
    def from_hf(cls, directory, pattern="gpt2"):
        """Read vocab.json + merges.txt (or tokenizer.json) from an HF checkpoint directory."""
        return hf.load_hf(cls, directory, pattern)

    def save_hf(self, directory):
        """Write vocab.json + merges.txt that HF `tokenizers` / GPT2Tokenizer can read."""
        hf.save_hf(self, directory)

    def __repr__(self):
        return (f"BPETokenizer(mode={self.mode!r}, vocab_size={self.vocab_size}, "
                f"merges={len(self._merges)}, specials={len(self._specials)})")
