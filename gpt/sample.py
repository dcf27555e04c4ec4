"""Text generation: greedy, temperature, top-k and top-p sampling, with a KV cache.

Prompts may differ in length: each fills its own row of the cache (gpt/inference.py),
then all rows advance together, one new token each per step. GPT-2's positions are
learned and absolute, so once a sequence is longer than block_size its window
slides, every position shifts and every cached key is stale: from then on each of
its tokens is a full forward over its last block_size tokens, exactly what an
uncached sliding-window generator computes.
"""
import warnings

import numpy as np

from minigrad import Tensor

from gpt import inference
from gpt.errors import TokenizerError


def generate(model, idx, max_new_tokens, temperature=1.0, top_k=None, top_p=None, do_sample=True,
             seed=None, eos_token_id=None, num_samples=1, use_cache=True):
    """Continue each prompt by up to max_new_tokens tokens.

    idx: one prompt (a list or 1-d array of ids), or several ((B, T) array, or a list of
    lists of any lengths). Returns a list of B * num_samples lists of ints, each its prompt
    followed by the new tokens; a row stops after eos_token_id (which it includes; an int,
    or a list of ints any of which stops it, as transformers' generate).
    temperature 0 or do_sample=False is greedy (argmax). seed makes sampling repeatable
    through its own np.random.Generator(seed); seed=None draws fresh entropy, leaving
    minigrad's global generator untouched.
    """
    _check_args(max_new_tokens, temperature, top_k, top_p)
    _check_count(num_samples)
    stop = _stop_ids(eos_token_id)
    prompts = [p for p in _prompts(idx, model) for _ in range(num_samples)]
    rows = [list(map(int, p)) for p in prompts]
    done = np.zeros(len(rows), dtype=bool)
    for tokens in _steps(model, prompts, max_new_tokens, temperature, top_k, top_p, do_sample, seed,
                         use_cache):
        for i in np.flatnonzero(~done):
            rows[i].append(int(tokens[i]))
        if stop is not None:
            done |= np.isin(tokens, stop)
            if done.all():
                break
    return rows


def stream(model, idx, max_new_tokens, temperature=1.0, top_k=None, top_p=None, do_sample=True,
           seed=None, eos_token_id=None, use_cache=True):
    """An iterator over the new token ids of one prompt, one int at a time as they are
    sampled; stops after eos_token_id. Same arguments as generate, one sequence.
    Arguments are checked now, not at the first next()."""
    _check_args(max_new_tokens, temperature, top_k, top_p)
    prompts = _prompts(idx, model)
    if len(prompts) != 1:
        raise ValueError(f"stream: expected one prompt, got {len(prompts)}; use generate for a batch")
    return _stream(model, prompts, max_new_tokens, temperature, top_k, top_p, do_sample, seed,
                   _stop_ids(eos_token_id), use_cache)


def _stream(model, prompts, max_new_tokens, temperature, top_k, top_p, do_sample, seed, stop, use_cache):
    for tokens in _steps(model, prompts, max_new_tokens, temperature, top_k, top_p, do_sample, seed,
                         use_cache):
        yield int(tokens[0])
        if stop is not None and tokens[0] in stop:
            return


def _steps(model, prompts, max_new_tokens, temperature, top_k, top_p, do_sample, seed, use_cache):
    """Yield the next token of every row, (N,) ints, max_new_tokens times."""
    greedy = not do_sample or temperature == 0
    gen = np.random.default_rng(seed)
    contexts = [list(p) for p in prompts]  # each row's tokens so far
    cache = inference.KVCache(model.config, len(contexts), dtype=model.dtype) if use_cache else None
    for _ in range(max_new_tokens):
        logits = next_logits(model, contexts, cache).astype(np.float64)  # (N, V)
        tokens = choose(logits, greedy, temperature, top_k, top_p, gen)  # (N,)
        yield tokens
        for ctx, t in zip(contexts, tokens):
            ctx.append(int(t))


def next_logits(model, contexts, cache=None):
    """Logits (N, V) of the token after each context (lists of ids). With a cache, a row whose
    cache holds all of its context but the last token advances by that one token, all such
    rows in one forward; a new row fills its cache from its context, and a row past
    block_size (its window slid, so every position shifted) is recomputed from its last
    block_size tokens without the cache."""
    block = model.config.block_size
    logits = np.empty((len(contexts), model.config.vocab_size), model.dtype)
    if cache is None:
        for b, ctx in enumerate(contexts):
            logits[b] = inference.forward(model, np.array([ctx[-block:]]))[0]
        return logits
    step = [b for b, ctx in enumerate(contexts) if cache.lengths[b] == len(ctx) - 1 and len(ctx) <= block]
    if step:
        ids = np.array([[contexts[b][-1]] for b in step])  # (n, 1)
        logits[step] = inference.forward(model, ids, cache, rows=step)
    for b in sorted(set(range(len(contexts))) - set(step)):
        window = np.array([contexts[b][-block:]])  # (1, <= block)
        if len(contexts[b]) > block:  # the window slid: positions shifted, the cache cannot serve
            logits[b] = inference.forward(model, window)[0]  # the row again (nothing worth storing)
        else:  # a new row: fill its cache
            cache.reset([b])
            logits[b] = inference.forward(model, window, cache, rows=[b])[0]
    return logits


def prompt_ids(tokenizer, text):
    """The ids of a sampling prompt, or [0] when the text is empty or has a character the
    tokenizer lacks (a char vocabulary without a newline): a demo sample must never stop a run."""
    try:
        return tokenizer.encode(text) or [0]
    except TokenizerError:
        return [0]


# ---- choosing the next token ----------------------------------------------------------------

def choose(logits, greedy, temperature, top_k, top_p, gen):
    """One token per row of logits (N, V): the argmax, or a draw from sampling_probs. gen is
    one np.random.Generator for every row, or a list of one per row (a server's requests)."""
    if greedy:
        return np.argmax(logits, axis=-1)
    probs = sampling_probs(logits, temperature, top_k, top_p)
    gens = gen if isinstance(gen, (list, tuple)) else [gen] * len(probs)
    return _draw(probs, gens)


def sampling_probs(logits, temperature=1.0, top_k=None, top_p=None):
    """The distribution sampling draws from, (N, V) float64: softmax(logits / temperature),
    cut to the top_k largest logits (ties with the k-th kept, as nanoGPT), then to the
    nucleus of mass top_p, renormalised."""
    logits = np.asarray(logits, dtype=np.float64) / temperature
    if top_k is not None and top_k < logits.shape[-1]:
        kth = np.partition(logits, -top_k, axis=-1)[:, -top_k][:, None]  # (N, 1) the k-th largest logit
        logits = np.where(logits < kth, -np.inf, logits)
    probs = np.exp(logits - logits.max(axis=-1, keepdims=True))
    probs /= probs.sum(axis=-1, keepdims=True)  # (N, V)
    if top_p is not None and top_p < 1:
        probs = _nucleus(probs, top_p)
    return probs


def _nucleus(probs, top_p):
    """Keep the most likely tokens whose probabilities sum to at least top_p: a token is
    dropped when the tokens ranked above it already reach top_p (the top one always stays)."""
    order = np.argsort(-probs, axis=-1, kind="stable")  # (N, V) most likely first
    ranked = np.take_along_axis(probs, order, axis=-1)
    mass_before = np.cumsum(ranked, axis=-1) - ranked
    drop = mass_before >= top_p
    drop[:, 0] = False
    kept = probs.copy()
    np.put_along_axis(kept, order, np.where(drop, 0.0, ranked), axis=-1)
    return kept / kept.sum(axis=-1, keepdims=True)


def _draw(probs, gens):
    """Inverse-CDF samples, row n of probs (N, V) with gens[n].random(); never a
    zero-probability token, even at the rounding edge where u * total reaches the last
    cumulative value. The O(V) steps run on the whole batch at once; only the O(log V)
    search goes row by row."""
    cdf = np.cumsum(probs, axis=-1)  # (N, V), each row summed in order as np.cumsum(row)
    u = np.array([g.random() for g in gens]) * cdf[:, -1]  # (N,)
    picked = np.array([np.searchsorted(c, x, side="right") for c, x in zip(cdf, u)], np.int64)
    last = probs.shape[-1] - 1 - np.argmax(probs[:, ::-1] != 0, axis=-1)  # last nonzero id of each row
    return np.minimum(picked, last)


# ---- checks -------------------------------------------------------------------------------

def _prompts(idx, model):
    """The prompt(s) as a list of int64 arrays, checked; warns when one is longer than block_size."""
    idx = idx.data if isinstance(idx, Tensor) else idx
    if isinstance(idx, (list, tuple)) and idx and all(isinstance(p, (list, tuple, np.ndarray)) for p in idx):
        prompts = [np.asarray(p) for p in idx]  # a list of prompts, lengths may differ
    else:
        ids = np.asarray(idx)
        if ids.ndim not in (1, 2):
            raise ValueError(f"generate: the prompt must be a list of ids or (B, T), got shape {ids.shape}")
        prompts = list(ids[None, :] if ids.ndim == 1 else ids)
    return [_check_prompt(p, model) for p in prompts]


def _check_prompt(ids, model):
    if ids.ndim != 1:
        raise ValueError(f"generate: the prompt must be a list of ids or (B, T), got a row of shape {ids.shape}")
    if ids.shape[0] == 0:
        raise ValueError("generate: the prompt is empty; start from at least one token "
                         "(e.g. <|endoftext|>, id 50256 in GPT-2)")
    if not np.issubdtype(ids.dtype, np.integer):
        raise TypeError(f"generate: prompt ids must be integers, got dtype {ids.dtype}")
    V, block = model.config.vocab_size, model.config.block_size
    if ids.min() < 0 or ids.max() >= V:
        raise ValueError(f"generate: prompt ids must be in [0, vocab_size={V}), got {ids.min()}..{ids.max()}")
    if ids.shape[0] > block:
        warnings.warn(f"generate: the prompt has {ids.shape[0]} tokens but block_size is {block}; "
                      f"only its last {block} tokens are used", stacklevel=4)
    return ids.astype(np.int64)


def _stop_ids(eos_token_id):
    """eos_token_id (None, an int or a list of ints) as an int64 array, or None."""
    if eos_token_id is None:
        return None
    ids = np.atleast_1d(np.asarray(eos_token_id))
    if ids.size == 0:
        return None
    if ids.ndim != 1 or not np.issubdtype(ids.dtype, np.integer):
        raise ValueError(f"generate: eos_token_id must be an int or a list of ints, got {eos_token_id!r}")
    return ids.astype(np.int64)


def _check_count(num_samples):
    if isinstance(num_samples, bool) or not isinstance(num_samples, (int, np.integer)) or num_samples < 1:
        raise ValueError(f"generate: num_samples must be an integer >= 1, got {num_samples!r}")
    return num_samples


def _check_args(max_new_tokens, temperature, top_k, top_p):
    if isinstance(max_new_tokens, bool) or not isinstance(max_new_tokens, (int, np.integer)) \
            or max_new_tokens < 0:
        raise ValueError(f"generate: max_new_tokens must be an integer >= 0, got {max_new_tokens!r}")
    if not (np.isfinite(temperature) and temperature >= 0):
        raise ValueError(f"generate: temperature must be a finite number >= 0, got {temperature!r}")
    if top_k is not None and (isinstance(top_k, bool) or not isinstance(top_k, (int, np.integer))
                              or top_k < 1):
        raise ValueError(f"generate: top_k must be an integer >= 1 or None, got {top_k!r}")
    if top_p is not None and not 0 < top_p <= 1:
        raise ValueError(f"generate: top_p must be in (0, 1] or None, got {top_p!r}")
