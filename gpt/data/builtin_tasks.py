"""Built-in tasks that need no download, each with a held-out split disjoint by construction.

    splits = builtin_task("builtin:addition", digits=2)   # {"train": [Example], "val": [Example]}

builtin:addition       "47+385=" -> "432": n-digit addition written as text (minGPT's adder
                       project, without its reversed answers). A pair and its swap
                       (a+b, b+a) always land in the same split, so a held-out sum was
                       never seen in either order.
builtin:reverse-words  "reverse: the value of x =" -> " x of value the": reverse the order
                       of 3 to 5 lowercase words, the phrases cut from CPython's pydoc topics
                       (they ship with Python). The answer starts with a space so that with
                       a BPE tokenizer each word is the same token as in the prompt.

An item goes to the held-out split ("val", what `gpt eval` scores) when a fixed hash of
its canonical text (the sorted pair; the phrase) falls in one tenth of the range, so
the split is the same on every machine and a repeated item is never on both sides.
"""
import hashlib

import numpy as np
import regex

from gpt.data.corpus import builtin_corpus
from gpt.data.tasks import Example
from gpt.errors import DataError

TASKS = ("builtin:addition", "builtin:reverse-words")
HELD_OUT_EVERY = 10     # one item in ten (by hash) is held out
MAX_TRAIN = 50_000      # examples kept when a task has more (sampled once, fixed)
MAX_HELD_OUT = 1_000    # held-out examples kept: enough for a tight exact-match figure
PHRASE = regex.compile(r"(?<![\w.-])[a-z]+(?: [a-z]+){2,}(?![\w-])")  # runs of >= 3 lowercase words


def is_builtin_task(name):
    return isinstance(name, str) and name.startswith("builtin:") and name != "builtin:pydoc"


def builtin_task(name, digits=2):
    """{"train", "val"} lists of Examples for a built-in task."""
    if name == "builtin:addition":
        return addition(digits)
    if name == "builtin:reverse-words":
        return reverse_words()
    raise DataError(f"unknown built-in data {name!r} (built-in: builtin:pydoc for text; "
                    f"{', '.join(TASKS)} for tasks)")


def held_out(key):
    """True for about one key in HELD_OUT_EVERY: a fixed hash (not Python's salted hash())."""
    digest = hashlib.blake2b(key.encode("utf-8"), digest_size=8).digest()
    return int.from_bytes(digest, "little") % HELD_OUT_EVERY == 0


def addition(digits):
    """Pairs of numbers below 10**digits: all of them when there are few, else a fixed sample."""
    if not isinstance(digits, int) or not 1 <= digits <= 9:
        raise DataError(f"--task-digits must be an integer in [1, 9], got {digits!r}")
    n = 10 ** digits
    if n * n <= MAX_TRAIN * 2:
        pairs = [(a, b) for a in range(n) for b in range(n)]
    else:
        pairs = np.random.default_rng([digits, 1]).integers(0, n, size=(4 * MAX_TRAIN, 2)).tolist()
        pairs = list(dict.fromkeys(map(tuple, pairs)))
    splits = {"train": [], "val": []}
    for a, b in pairs:
        split = "val" if held_out(f"{min(a, b)}+{max(a, b)}") else "train"
        splits[split].append(Example(prompt=f"{a}+{b}=", completion=str(a + b),
                                     where=f"builtin:addition {a}+{b}"))
    return _capped(splits, seed=digits)


def reverse_words():
    """Phrases of 3-5 consecutive lowercase words from the pydoc topics, each once."""
    phrases, size = {}, 3
    for line in builtin_corpus().split("\n"):
        for run in PHRASE.finditer(line):
            words = run.group().split(" ")
            while len(words) >= 3:
                phrases.setdefault(" ".join(words[:size]), None)
                words, size = words[size:], 3 + (size - 2) % 3  # lengths cycle 3, 4, 5
    splits = {"train": [], "val": []}
    for phrase in phrases:
        answer = " ".join(reversed(phrase.split(" ")))
        split = "val" if held_out(phrase) else "train"
        splits[split].append(Example(prompt=f"reverse: {phrase} =", completion=" " + answer,
                                     where=f"builtin:reverse-words {phrase!r}"))
    return _capped(splits, seed=0)


def _capped(splits, seed):
    """At most MAX_TRAIN / MAX_HELD_OUT examples per split, a fixed sample in a fixed order."""
    out = {}
    for name, cap in (("train", MAX_TRAIN), ("val", MAX_HELD_OUT)):
        examples = splits[name]
        if len(examples) > cap:
            keep = np.random.default_rng([seed, 7]).choice(len(examples), cap, replace=False)
            examples = [examples[i] for i in np.sort(keep)]
        out[name] = examples
    return out
