"""The rules of byte-level BPE, as pure functions: split patterns, the GPT-2 byte<->unicode map,
pair counting and the two merge rules used when encoding one pre-token chunk.

Two merge rules exist because the two families of published tokenizers differ:

* pair rule (minbpe, Hugging Face `tokenizers`): a learned list of merges
  (left id, right id) -> new id, applied lowest merge rank first;
* rank rule (tiktoken): any adjacent pair whose *concatenated bytes* is a token
  may merge, lowest token rank first.

Both merge the leftmost occurrence first when several pairs share the lowest rank.
"""
import regex

from gpt.errors import TokenizerError

# The GPT-2 split pattern (OpenAI's encoder.py), also used by HF's ByteLevel pre-tokenizer.
GPT2_PATTERN = r"""'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+"""

# The GPT-4 (cl100k_base) split pattern, in the possessive form current tiktoken ships;
# it splits text exactly like the original form but backtracks less.
CL100K_PATTERN = (r"""'(?i:[sdmt]|ll|ve|re)|[^\r\n\p{L}\p{N}]?+\p{L}++|\p{N}{1,3}+|"""
                  r""" ?[^\s\p{L}\p{N}]++[\r\n]*+|\s++$|\s*[\r\n]|\s+(?!\S)|\s""")

PATTERNS = {"gpt2": GPT2_PATTERN, "cl100k": CL100K_PATTERN}  # name -> regex source

_INF = float("inf")
_NO_MERGE = (_INF, -1)  # score of a pair that is not a merge


def resolve_pattern(pattern):
    """Return the regex source for a pattern name ('gpt2', 'cl100k') or a custom regex.

    Example: resolve_pattern("gpt2") == GPT2_PATTERN
    """
    if pattern is None:
        return GPT2_PATTERN
    if not isinstance(pattern, str) or pattern == "":
        raise TokenizerError(f"split pattern must be a non-empty string or one of {sorted(PATTERNS)}, "
                             f"got {pattern!r}")
    return PATTERNS.get(pattern, pattern)


def compile_pattern(source):
    """Compile a split regex with the `regex` package, turning its error into ours.

    Example: compile_pattern(r"\\w+|\\s+").findall("hi there") == ["hi", " ", "there"]
    """
    try:
        return regex.compile(source)
    except regex.error as e:
        raise TokenizerError(f"split pattern {source!r} does not compile: {e}") from None


def bytes_to_unicode():
    """GPT-2's reversible map from each byte to a printable unicode character.

    Printable Latin-1 bytes map to themselves; the other 68 bytes (controls,
    space, ...) map to chr(256 + k) in byte order, so no token string holds
    whitespace and vocab.json / merges.txt stay line- and space-safe.
    Example: bytes_to_unicode()[ord(" ")] == "Ġ"
    """
    keep = list(range(ord("!"), ord("~") + 1)) + list(range(0xA1, 0xAD)) + list(range(0xAE, 0x100))
    table = {}  # int byte -> str char
    extra = 0
    for b in range(256):
        if b in keep:
            table[b] = chr(b)
        else:
            table[b] = chr(256 + extra)
            extra += 1
    return table


BYTE_TO_UNICODE = bytes_to_unicode()                          # int -> str
UNICODE_TO_BYTE = {c: b for b, c in BYTE_TO_UNICODE.items()}  # str -> int


def bytes_to_visible(data):
    """Token bytes -> the GPT-2 visible string. Example: bytes_to_visible(b" a") == "Ġa" """
    return "".join(BYTE_TO_UNICODE[b] for b in data)


def visible_to_bytes(text):
    """Inverse of bytes_to_visible; KeyError on a char outside the map.

    Example: visible_to_bytes("Ġa") == b" a"
    """
    return bytes(UNICODE_TO_BYTE[c] for c in text)


def count_pairs(ids, counts=None, weight=1):
    """Add `weight` to counts[(a, b)] for each adjacent pair of ids.

    Example: count_pairs([1, 2, 1, 2]) == {(1, 2): 2, (2, 1): 1}
    """
    counts = {} if counts is None else counts  # (int, int) -> int
    for pair in zip(ids, ids[1:]):
        counts[pair] = counts.get(pair, 0) + weight
    return counts


def merge_pair(ids, a, b, new_id):
    """Replace every non-overlapping (a, b), scanning left to right, by new_id.

    Example: merge_pair([1, 1, 1, 2], 1, 1, 9) == [9, 1, 2]
    """
    out = []
    i, n = 0, len(ids)
    while i < n:
        if ids[i] == a and i + 1 < n and ids[i + 1] == b:
            out.append(new_id)
            i += 2
        else:
            out.append(ids[i])
            i += 1
    return out


def pair_merge(ids, merges):
    """Apply learned merges to one chunk: lowest merge rank first, leftmost on ties.

    merges: (int, int) -> (rank, new_id). Returns a new list of ids.
    Example: pair_merge([1, 2, 3], {(2, 3): (0, 7), (1, 7): (1, 8)}) == [8]
    """
    ids = list(ids)
    get = merges.get
    # scores[i] is the (rank, new id) of the pair (ids[i], ids[i+1]); kept in step with ids.
    scores = [get(pair, _NO_MERGE) for pair in zip(ids, ids[1:])]
    while scores:
        best = min(scores)
        if best is _NO_MERGE or best[0] == _INF:
            break
        # Merging only the leftmost occurrence keeps overlapping runs ("aaa") exact.
        i = scores.index(best)
        del ids[i + 1]
        ids[i] = best[1]
        del scores[i]
        if i > 0:
            scores[i - 1] = get((ids[i - 1], ids[i]), _NO_MERGE)
        if i < len(scores):
            scores[i] = get((ids[i], ids[i + 1]), _NO_MERGE)
    return ids


def rank_merge(piece, ranks):
    """tiktoken's rule on one chunk of bytes: merge the adjacent parts whose
    concatenation has the lowest rank, leftmost first, until none is a token.

    ranks: bytes -> int. Returns the list of ranks (= token ids).
    Example: rank_merge(b"abc", {b"a": 0, b"b": 1, b"c": 2, b"bc": 3, b"abc": 4}) == [4]
    """
    if piece in ranks:  # tiktoken's rule: a chunk that is itself a token is emitted whole
        return [ranks[piece]]
    get = ranks.get
    n = len(piece)
    parts = [piece[i:i + 1] for i in range(n)]
    # scores[i] is the rank of parts[i] + parts[i+1]; kept in step with parts.
    scores = [get(piece[i:i + 2], _INF) for i in range(n - 1)]
    while scores:
        best = min(scores)
        if best == _INF:
            break
        i = scores.index(best)  # leftmost minimum
        merged = parts[i] + parts.pop(i + 1)
        parts[i] = merged
        del scores[i]
        if i > 0:
            scores[i - 1] = get(parts[i - 1] + merged, _INF)
        if i < len(scores):
            scores[i] = get(merged + parts[i + 1], _INF)
    return [ranks[p] for p in parts]
