"""Task data for fine-tuning: prompt/completion and chat examples, as token ids with a mask.

    examples = read_jsonl("train.jsonl")                     # every line checked, file:line errors
    seqs, cut = encode_examples(examples, tok, template, eos_id, block_size)
    x, y = collate(seqs[:8])                                 # padded; y is -100 where no loss

Two JSONL formats, one example per line (blank lines are skipped):

    {"prompt": "2+3=", "completion": "5"}                      Hugging Face TRL's prompt/completion
    {"messages": [{"role": "user", "content": "2+3?"},         OpenAI's chat fine-tuning format
                  {"role": "assistant", "content": "5"}]}

Loss is taken on the completion and the end-of-text token after it, or on each assistant
message and its <|im_end|> (gpt/chat.py); never on prompts, system or user text, or
padding. A sequence longer than block_size + 1 tokens loses tokens from its start (the
prompt side), so the answer it teaches stays whole whenever it fits.
"""
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from gpt.chat import check_messages
from gpt.errors import DataError, TokenizerError

IGNORE = -100  # the label F.cross_entropy skips


@dataclass
class Example:
    """One training or evaluation example: prompt + completion, or a chat."""
    prompt: str = None       # prompt/completion format
    completion: str = None
    messages: list = None    # chat format: OpenAI's messages
    where: str = ""          # "file.jsonl:12", for errors

    @property
    def is_chat(self):
        return self.messages is not None

    def text(self):
        """The example's plain text (content only, no chat markers): what a tokenizer learns from."""
        if self.is_chat:
            return "".join(f"{m['role']}\n{m['content']}\n" for m in self.messages)
        return self.prompt + self.completion


# ---- reading -------------------------------------------------------------------------------

def read_jsonl(path):
    """The examples of a JSONL file; a DataError naming the file and line for any bad line."""
    try:
        raw = Path(path).read_bytes()
    except OSError as e:
        raise DataError(f"cannot read {path}: {e.strerror}") from None
    examples = []
    for number, line in enumerate(raw.split(b"\n"), 1):
        where = f"{path}:{number}"
        try:
            text = line.decode("utf-8")
        except UnicodeDecodeError as e:
            raise DataError(f"{where}: invalid UTF-8 at byte {e.start} of the line") from None
        if text.strip():
            examples.append(parse_example(text, where))
    if not examples:
        raise DataError(f"{path}: no examples (one JSON object per line)")
    return examples


def parse_example(line, where):
    """One JSONL line -> Example, checked."""
    try:
        obj = json.loads(line)
    except json.JSONDecodeError as e:
        raise DataError(f"{where}: invalid JSON ({e.msg} at column {e.colno})") from None
    if not isinstance(obj, dict):
        raise DataError(f"{where}: expected a JSON object, got {type(obj).__name__}")
    has_pair, has_chat = "prompt" in obj or "completion" in obj, "messages" in obj
    if has_pair == has_chat:
        raise DataError(f"{where}: expected either 'prompt' and 'completion' or 'messages' "
                        f"(found keys: {', '.join(sorted(obj)) or 'none'})")
    if has_chat:
        return Example(messages=_check_chat(obj["messages"], where), where=where)
    for key in ("prompt", "completion"):
        if key not in obj:
            raise DataError(f"{where}: missing field '{key}'")
        if not isinstance(obj[key], str):
            raise DataError(f"{where}: '{key}' must be a string, got {type(obj[key]).__name__}")
    if not obj["completion"]:
        raise DataError(f"{where}: empty completion (nothing to learn)")
    return Example(prompt=obj["prompt"], completion=obj["completion"], where=where)


def _check_chat(messages, where):
    check_messages(messages, f"{where}: messages")
    trained = [m for m in messages if m["role"] == "assistant" and m.get("weight", 1) == 1]
    if not trained:
        raise DataError(f"{where}: no assistant message to learn from (with weight 1)")
    for i, m in enumerate(messages):
        if m["role"] == "assistant" and not m["content"]:
            raise DataError(f"{where}: messages[{i}]: empty assistant content")
    return messages


def split_examples(examples, val_fraction, source):
    """Train is the head, val the tail (as for text): val is never trained on."""
    if len(examples) < 2:
        raise DataError(f"{source} has {len(examples)} example; training needs at least 2 "
                        f"(one for validation)")
    n_val = min(len(examples) - 1, max(1, round(len(examples) * val_fraction)))
    return {"train": examples[:-n_val], "val": examples[-n_val:]}


# ---- tokens --------------------------------------------------------------------------------

def encode_example(ex, tokenizer, template, eos_id):
    """(ids, trained): the example's token ids and, per id, whether it is learned. eos_id
    (None: a tokenizer without one, scoring only) ends each completion."""
    if ex.is_chat:
        markers = _markers(tokenizer, template)
        ids, trained = [], []
        for text, learn in template.segments(ex.messages):
            piece = _encode(tokenizer, text, ex, markers)
            ids += piece
            trained += [learn] * len(piece)
        return ids, trained
    prompt = _encode(tokenizer, ex.prompt, ex)
    completion = _encode(tokenizer, ex.completion, ex) + ([] if eos_id is None else [eos_id])
    return prompt + completion, [False] * len(prompt) + [True] * len(completion)


def prompt_and_reference(ex, tokenizer, template):
    """(prompt ids, reference text) for generating an answer: the prompt, or the chat up to
    its last assistant message followed by the generation prompt."""
    if not ex.is_chat:
        return _encode(tokenizer, ex.prompt, ex), ex.completion
    last = max(i for i, m in enumerate(ex.messages) if m["role"] == "assistant")
    return chat_prompt_ids(ex.messages[:last], tokenizer, template, ex.where), ex.messages[last]["content"]


def chat_prompt_ids(messages, tokenizer, template, where="the prompt"):
    """A conversation so far, then the assistant's generation prompt, as ids."""
    text = template.render(messages, add_generation_prompt=True)
    return _encode(tokenizer, text, Example(where=where), _markers(tokenizer, template))


def _markers(tokenizer, template):
    """The template's markers that are special tokens of this tokenizer (a model never tuned
    for chat reads them as text)."""
    return set(template.special_tokens) & set(tokenizer.special_tokens)


def _encode(tokenizer, text, ex, markers=()):
    """Text as ids; only the chat template's markers count as special tokens, any other
    special-token text (e.g. a literal <|endoftext|>) is ordinary text."""
    try:
        return tokenizer.encode(text, allowed_special=set(markers), disallowed_special=())
    except TokenizerError as e:
        raise DataError(f"{ex.where}: cannot encode with this tokenizer: {e}") from None


def fit(ids, trained, block_size):
    """Cut a sequence to at most block_size + 1 tokens (inputs and targets of one row) from
    its start. Returns (ids, trained, cut): cut is None, "prompt", or "completion" when
    learned tokens had to go too."""
    drop = len(ids) - (block_size + 1)
    if drop <= 0:
        return ids, trained, None
    cut = "completion" if any(trained[:drop]) else "prompt"
    return ids[drop:], trained[drop:], cut


def encode_examples(examples, tokenizer, template, eos_id, block_size):
    """Encode and fit every example: (list of (ids, trained) int64/bool arrays, counts of cuts)."""
    seqs, cuts = [], {"prompt": 0, "completion": 0}
    for ex in examples:
        ids, trained, cut = fit(*encode_example(ex, tokenizer, template, eos_id), block_size)
        if cut:
            cuts[cut] += 1
        if not any(trained[1:]):  # the first token is never a target
            raise DataError(f"{ex.where}: nothing left to learn after cutting it to "
                            f"block_size + 1 = {block_size + 1} tokens")
        seqs.append((np.asarray(ids, dtype=np.int64), np.asarray(trained, dtype=bool)))
    return seqs, cuts


def collate(seqs, pad_id=0):
    """Pad sequences (ids, trained) to the longest into x, y (B, T) int64: y[t] = ids[t+1]
    where that token is learned, IGNORE elsewhere (prompts, padding). Padding sits at the
    end of each row, after every real token, so causal attention never sees it."""
    T = max(len(ids) for ids, _ in seqs) - 1
    x = np.full((len(seqs), T), pad_id, dtype=np.int64)     # (B, T)
    y = np.full((len(seqs), T), IGNORE, dtype=np.int64)     # (B, T)
    for b, (ids, trained) in enumerate(seqs):
        n = len(ids) - 1
        x[b, :n] = ids[:-1]
        y[b, :n] = np.where(trained[1:], ids[1:], IGNORE)
    return x, y


class TaskSampler:
    """Batches of examples with BatchSampler's interface (batch, eval_batches, state,
    set_state), so the training loop does not care which data it trains on.

    Training goes through the examples in epochs, each a fresh permutation drawn from
    (seed, epoch), so the state is two integers and resuming repeats nothing. Evaluation
    scores the split's first examples in file order, the same ones every time. batch_size
    is the global batch: under MPI each rank keeps its rows of every batch."""

    def __init__(self, splits, batch_size, seed, pad_id=0):
        self.splits, self.batch_size, self.seed, self.pad_id = splits, batch_size, seed, pad_id
        self.epoch, self.pos = 0, 0
        self._orders = {}  # (split, epoch) -> that epoch's permutation

    def _order(self, split):
        key = (split, self.epoch)
        if key not in self._orders:
            self._orders = {key: np.random.default_rng([self.seed, 2, self.epoch]).permutation(
                len(self.splits[split]))}
        return self._orders[key]

    def batch(self, split="train"):
        seqs, order = [], self._order(split)
        while len(seqs) < self.batch_size:
            if self.pos == len(order):
                self.epoch, self.pos = self.epoch + 1, 0
                order = self._order(split)
            seqs.append(self.splits[split][order[self.pos]])
            self.pos += 1
        return collate(seqs, self.pad_id)

    def eval_batches(self, split, n):
        """Up to n full batches over the split's first examples; the last one wraps around to
        the split's start, so every batch has batch_size rows (what sharding over ranks needs)."""
        seqs, B = self.splits[split], self.batch_size
        count = min(n * B, -(-len(seqs) // B) * B)  # whole batches covering the split at most once
        return [collate([seqs[j % len(seqs)] for j in range(i, i + B)], self.pad_id) for i in range(0, count, B)]

    def state(self):
        return {"epoch": self.epoch, "pos": self.pos}

    def set_state(self, state):
        self.epoch, self.pos = int(state["epoch"]), int(state["pos"])
