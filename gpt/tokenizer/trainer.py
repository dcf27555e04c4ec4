"""BPE training with incremental pair counts.

Instead of recounting every pair of the whole corpus at each merge, we:

1. pre-tokenize the text and count each distinct chunk once (a word seen 10 000
   times is one entry of weight 10 000);
2. count pairs once, weighted by chunk frequency, and index pair -> chunks holding it;
3. keep a max-heap of (count, pair) with lazy invalidation: counts of old pairs
   only ever go down, so a popped entry whose count is stale is pushed back with
   its current count, and the first fresh entry popped is the true best;
4. at each merge touch only the chunks that contain the pair, and adjust the
   counts of the pairs that changed in them.

Tie-break (documented, deterministic): the pair with the highest count wins; among
equal counts the pair with the smallest (left id, right id) wins. Ids are bytes
0..255 then merges 256, 257, ... in order, so the result does not depend on dict
or set iteration order.
"""
import heapq
import sys
import time
from collections import Counter

from gpt.errors import TokenizerError


def count_chunks(texts, pattern, special_regex=None):
    """Count distinct pre-token chunks over texts (a str or an iterable of str).

    Special-token text is cut out first so it is never learned as ordinary text.
    Example: count_chunks("a b a", compile_pattern(r"\\S+|\\s")) == Counter({"a": 2, " ": 2, "b": 1})
    """
    if isinstance(texts, str):
        texts = [texts]
    counts = Counter()  # str chunk -> int frequency
    for text in texts:
        if not isinstance(text, str):
            raise TokenizerError(f"training text must be str, got {type(text).__name__}")
        pieces = special_regex.split(text) if special_regex is not None else [text]
        for piece in pieces:
            counts.update(pattern.findall(piece))
    return counts


class _PairState:
    """Words (distinct chunks as id lists), their weights, pair counts and the pair index."""

    def __init__(self, chunk_counts):
        self.words = [list(chunk.encode("utf-8")) for chunk in chunk_counts]  # list of list[int]
        self.freqs = list(chunk_counts.values())                             # parallel to words
        self.counts = {}  # (int, int) -> int weighted count
        self.where = {}   # (int, int) -> set of word indices (may hold stale entries)
        for w, (word, f) in enumerate(zip(self.words, self.freqs)):
            for pair in zip(word, word[1:]):
                self.counts[pair] = self.counts.get(pair, 0) + f
                self.where.setdefault(pair, set()).add(w)
        self.heap = [(-c, pair) for pair, c in self.counts.items()]
        heapq.heapify(self.heap)

    def pop_best(self):
        """Return (pair, count) of the best pair, or None when no pair is left."""
        heap, counts = self.heap, self.counts
        while heap:
            neg, pair = heapq.heappop(heap)
            current = counts.get(pair, 0)
            if current == -neg:
                return pair, current
            if current > 0:  # stale upper bound: requeue at the true count
                heapq.heappush(heap, (-current, pair))
        return None

    def merge(self, pair, new_id):
        """Merge `pair` into new_id in every word holding it; update counts, index, heap."""
        a, b = pair
        counts, where, words, freqs = self.counts, self.where, self.words, self.freqs
        touched = {}  # (int, int) -> int, new pairs (containing new_id) with their counts
        for w in where.pop(pair, ()):
            word = words[w]
            new = _merge_word(word, a, b, new_id)
            if new is None:  # stale index entry: the pair left this word earlier
                continue
            f = freqs[w]
            for p in zip(word, word[1:]):
                counts[p] -= f
            for p in zip(new, new[1:]):
                counts[p] = counts.get(p, 0) + f
                if new_id in p:
                    touched[p] = counts[p]
                    where.setdefault(p, set()).add(w)
            words[w] = new
        counts.pop(pair, None)
        for p, c in touched.items():
            heapq.heappush(self.heap, (-c, p))


def _merge_word(word, a, b, new_id):
    """Left-to-right non-overlapping merge of (a, b); None if the pair is absent."""
    out, i, n, hit = [], 0, len(word), False
    while i < n:
        if word[i] == a and i + 1 < n and word[i + 1] == b:
            out.append(new_id)
            i += 2
            hit = True
        else:
            out.append(word[i])
            i += 1
    return out if hit else None


def train_merges(chunk_counts, num_merges, verbose=False, progress=None):
    """Learn up to num_merges merges from chunk counts.

    Returns a list of ((left, right), new_id) in merge order, new ids 256, 257, ...
    Stops early when no pair occurs any more (tiny corpora).
    progress: optional callable(done, total, pair, count) called every ~5% of merges;
    verbose prints the same to stderr.
    Example: [m for m, _ in train_merges(Counter({"aaabdaaabac": 1}), 3)]
             == [(97, 97), (97, 98), (256, 257)]
    """
    state = _PairState(chunk_counts)
    merges = []
    step = max(1, num_merges // 20)
    start = time.perf_counter()
    for i in range(num_merges):
        best = state.pop_best()
        if best is None:
            break
        pair, count = best
        new_id = 256 + i
        state.merge(pair, new_id)
        merges.append((pair, new_id))
        if (i + 1) % step == 0 or i + 1 == num_merges:
            if progress is not None:
                progress(i + 1, num_merges, pair, count)
            if verbose:
                print(f"bpe train: merge {i + 1}/{num_merges} {pair} -> {new_id} "
                      f"(count {count}, {time.perf_counter() - start:.1f}s)", file=sys.stderr)
    return merges
