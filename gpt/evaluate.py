"""Scoring a model: on a text (loss, perplexity, bits per byte) or on task examples (loss on
the answers, then generated answers scored against the references).

A text is cut into windows of at most block_size tokens; with a stride below
block_size the windows overlap and each token after the first window is scored
with at least block_size - stride tokens of context, every token once.

Task examples (gpt/data/tasks.py) are scored twice: the loss on their completion
tokens (teacher-forced, as in training), and answers generated for their prompts,
batched over prompts of similar length, stopped at an end-of-turn or end-of-text
token, and scored by gpt/metrics.py.
"""
import numpy as np

import minigrad

from gpt import metrics
from gpt.data import ENDOFTEXT, tasks
from gpt.sample import generate


def windows(n_tokens, block_size, stride):
    """(begin, end, n_scored) of each window over ids[0:n]: inputs ids[begin:end], targets
    ids[begin+1:end+1], of which the last n_scored are scored. Every target once, and with
    stride < block_size each one after the first window sees >= block_size - stride context."""
    out, scored_to = [], 0  # targets ids[1:scored_to+1] are already scored
    for begin in range(0, n_tokens - 1, stride):
        end = min(begin + block_size, n_tokens - 1)
        out.append((begin, end, end - max(scored_to, begin)))
        scored_to = end
        if end == n_tokens - 1:
            break
    return out


def score_tokens(model, ids, block_size, stride, batch_size):
    """Total next-token negative log-likelihood (nats) of ids[1:] under model."""
    model.eval()
    total, groups = 0.0, {}
    for w in windows(len(ids), block_size, stride):  # windows of one length share a batch
        groups.setdefault(w[1] - w[0], []).append(w)
    with minigrad.no_grad():
        for length, ws in groups.items():
            for i in range(0, len(ws), batch_size):
                chunk = ws[i:i + batch_size]
                x = np.stack([ids[b:e] for b, e, _ in chunk]).astype(np.int64)  # (B, T)
                y = np.stack([ids[b + 1:e + 1] for b, e, _ in chunk]).astype(np.int64)  # (B, T)
                nll = token_nll(model(x)[0].data, y)  # (B, T)
                total += sum(float(nll[j, length - k:].sum()) for j, (_, _, k) in enumerate(chunk))
    return total


def token_nll(logits, targets):
    """-log p(target) at each position, in float64: logits (..., V), targets (...) -> (...)."""
    logits = logits.astype(np.float64)
    m = logits.max(-1, keepdims=True)
    lse = (m + np.log(np.exp(logits - m).sum(-1, keepdims=True)))[..., 0]
    return lse - np.take_along_axis(logits, targets[..., None], -1)[..., 0]


# ---- task examples --------------------------------------------------------------------------

def task_loss(model, seqs, batch_size):
    """(mean nats per learned token, number of learned tokens) over (ids, trained) sequences,
    in eval mode (the model's mode is restored after)."""
    was_training, total, count = model.training, 0.0, 0
    model.eval()
    with minigrad.no_grad():
        for i in range(0, len(seqs), batch_size):
            x, y = tasks.collate(seqs[i:i + batch_size])  # (B, T) each
            learned = y != tasks.IGNORE
            nll = token_nll(model(x)[0].data, np.where(learned, y, 0))  # (B, T)
            total += float(nll[learned].sum())
            count += int(learned.sum())
    model.train(was_training)
    return total / max(count, 1), count


def stop_ids(tokenizer, template):
    """The ids that end an answer: end-of-text, and the chat template's end of turn."""
    names = [ENDOFTEXT] + ([template.end] if template is not None else [])
    return [tokenizer.special_tokens[n] for n in names if n in tokenizer.special_tokens]


def generate_answers(model, prompts, max_new_tokens, stop, batch_size, progress=None, **sampling):
    """The new tokens generated after each prompt (lists of ids), the stop token left out.
    Prompts are batched in order of length, so most batches fill their cache rows together;
    sampling: temperature, top_k, top_p, seed (temperature 0: greedy)."""
    order = sorted(range(len(prompts)), key=lambda i: len(prompts[i]))
    seed, answers = sampling.pop("seed", None), [None] * len(prompts)
    greedy = sampling.get("temperature", 0) == 0
    for k in range(0, len(order), batch_size):
        chunk = order[k:k + batch_size]
        rows = generate(model, [prompts[i] for i in chunk], max_new_tokens, do_sample=not greedy,
                        seed=None if seed is None else seed + k, eos_token_id=stop or None, **sampling)
        for i, row in zip(chunk, rows):
            new = row[len(prompts[i]):]
            ends = [j for j, t in enumerate(new) if t in stop]
            answers[i] = new[:ends[0]] if ends else new
        if progress:
            progress(min(k + batch_size, len(order)), len(order))
    return answers


def score_task(model, tokenizer, template, examples, max_new_tokens=64, batch_size=32, progress=None,
               **sampling):
    """Loss on the completion tokens, then generated answers scored against the references.
    Returns {"loss", "tokens", "exact_match", "f1", "rouge_l", "bleu", "notes", "rows"}, rows
    holding per example: prompt, reference, answer and its four scores."""
    block = model.config.block_size
    eos = tokenizer.special_tokens.get(ENDOFTEXT)
    seqs, cuts = tasks.encode_examples(examples, tokenizer, template, eos, block)
    loss, count = task_loss(model, seqs, batch_size)
    prompts, references = zip(*(tasks.prompt_and_reference(ex, tokenizer, template) for ex in examples))
    long = sum(len(p) > block for p in prompts)
    notes = [f"{long} prompts longer than block_size {block} keep their last {block} tokens"] if long else []
    if eos is None and any(not ex.is_chat for ex in examples):
        notes.append(f"the tokenizer has no {ENDOFTEXT}: completions are scored without it, and "
                     f"answers run to --max-new-tokens unless the template's end of turn stops them")
    stop = stop_ids(tokenizer, template)
    new = generate_answers(model, [list(p[-block:]) for p in prompts], max_new_tokens, stop, batch_size,
                           progress, **sampling)
    answers = [tokenizer.decode(ids) for ids in new]
    scores = metrics.score_answers(answers, list(references))
    rows = [dict(prompt=_prompt_text(ex), reference=ref, answer=ans, **row)
            for ex, ref, ans, row in zip(examples, references, answers, scores["per_example"])]
    return {"loss": loss, "tokens": count, "exact_match": scores["exact_match"], "f1": scores["f1"],
            "rouge_l": scores["rouge_l"], "bleu": scores["bleu"], "rows": rows,
            "notes": notes + scores["notes"] + ([f"{sum(cuts.values())} examples cut to block_size + 1 "
                                                  f"tokens for the loss"] if any(cuts.values()) else [])}


def _prompt_text(ex):
    """What results.jsonl shows as the prompt: the prompt, or the chat before its last answer."""
    if not ex.is_chat:
        return ex.prompt
    last = max(i for i, m in enumerate(ex.messages) if m["role"] == "assistant")
    return ex.messages[:last]
