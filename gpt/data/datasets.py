"""What a run trains on, one class per kind of data, both with the same four steps:

    dataset = open_dataset(cfg.data)      # TextData (a corpus) or TaskData (examples)
    tok = build_tokenizer(cfg.data, *dataset.tokenizer_texts())      # a fresh run only
    tok.add_special_tokens(dataset.special_tokens(template))         # the markers its data needs
    ids, sampler = dataset.batches(tok, template, block_size, batch_size, seed, cache_dir, log)

`dataset.report` (sources, chars, notes, sha256) goes into the checkpoint, so a resumed
run can check that its data did not change.
"""
import hashlib
from pathlib import Path

import numpy as np

from gpt.data import builtin_tasks, tasks
from gpt.data.batches import BatchSampler
from gpt.data.corpus import load_text, split_text
from gpt.data.tokens import check_lengths, encode_cached, tokenizer_digest
from gpt.tokenizer import ENDOFTEXT  # noqa: F401  (what ends a completion; re-exported by gpt.data)


def is_task(name):
    """Task data: a .jsonl file or a built-in task (everything else is text)."""
    return builtin_tasks.is_builtin_task(name) or (isinstance(name, str) and name.endswith(".jsonl"))


def open_dataset(dcfg):
    return TaskData(dcfg) if is_task(dcfg.data) else TextData(dcfg)


class TextData:
    """A corpus: train is its head, val its tail; random windows of its token ids."""

    def __init__(self, dcfg):
        self.dcfg = dcfg
        self.text, self.report = load_text(dcfg)
        self.train_text, self.val_text = split_text(self.text, dcfg.val_fraction)
        self.has_chat = False

    def tokenizer_texts(self):
        """(train text, whole text): BPE learns from the first, a char vocabulary the second."""
        return self.train_text, self.text

    def special_tokens(self, template):
        return []

    def batches(self, tokenizer, template, block_size, batch_size, seed, cache_dir, log):
        """The splits' token ids, from cache_dir when that cache was made from the same text,
        tokenizer and split, encoded (and cached) otherwise; and their sampler."""
        key = f"{self.report['sha256']}:{tokenizer_digest(tokenizer)}:{self.dcfg.val_fraction}"
        ids = encode_cached(tokenizer, {"train": self.train_text, "val": self.val_text}, cache_dir, key)
        check_lengths(ids, block_size)
        self.report["cache_key"] = key
        return ids, BatchSampler(ids, block_size, batch_size, seed)


class TaskData:
    """Examples (prompt/completion or chat), from a JSONL file (val: its tail) or a built-in
    task (val: the held-out split); padded batches with loss on the answers only."""

    def __init__(self, dcfg):
        self.dcfg = dcfg
        if builtin_tasks.is_builtin_task(dcfg.data):
            self.splits = builtin_tasks.builtin_task(dcfg.data, dcfg.task_digits)
            spec = f"{dcfg.data} digits={dcfg.task_digits}" if dcfg.data.endswith("addition") else dcfg.data
            digest, kind = hashlib.sha256(spec.encode()).hexdigest(), "held-out"
        else:
            examples = tasks.read_jsonl(dcfg.data)
            self.splits = tasks.split_examples(examples, dcfg.val_fraction, dcfg.data)
            digest, kind = hashlib.sha256(Path(dcfg.data).read_bytes()).hexdigest(), "val (the file's tail)"
        everything = self.splits["train"] + self.splits["val"]
        self.has_chat = any(ex.is_chat for ex in everything)
        self.has_completions = any(not ex.is_chat for ex in everything)
        formats = [name for name, yes in (("prompt/completion", self.has_completions),
                                          ("chat", self.has_chat)) if yes]
        note = (f"{len(self.splits['train']):,} train and {len(self.splits['val']):,} {kind} examples "
                f"({' and '.join(formats)})")
        self.report = {"sources": [dcfg.data], "chars": sum(len(ex.text()) for ex in everything),
                       "notes": [note], "sha256": digest}

    def tokenizer_texts(self):
        train = "\n".join(ex.text() for ex in self.splits["train"])
        return train, train + "\n" + "\n".join(ex.text() for ex in self.splits["val"])

    def special_tokens(self, template):
        """The end-of-text token that closes each completion, and the chat template's markers
        when there are chats."""
        return ([ENDOFTEXT] if self.has_completions else []) + (template.special_tokens if self.has_chat else [])

    def batches(self, tokenizer, template, block_size, batch_size, seed, cache_dir, log):
        eos = tokenizer.special_tokens.get(ENDOFTEXT)
        seqs = {}
        for split, examples in self.splits.items():
            seqs[split], cuts = tasks.encode_examples(examples, tokenizer, template, eos, block_size)
            if cuts["prompt"] or cuts["completion"]:
                log(f"{split}: {cuts['prompt'] + cuts['completion']:,} of {len(examples):,} examples are "
                    f"longer than block_size + 1 = {block_size + 1} tokens and lost tokens from the start "
                    f"(prompt side); {cuts['completion']:,} of them lost answer tokens too")
        ids = {split: np.concatenate([s for s, _ in seq]) for split, seq in seqs.items()}
        # what these ids are: the data, the tokenizer, the cut (ranks compare it under MPI)
        self.report["cache_key"] = f"{self.report['sha256']}:{tokenizer_digest(tokenizer)}:{block_size}"
        return ids, tasks.TaskSampler(seqs, batch_size, seed)
