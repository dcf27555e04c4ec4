"""Text generation: greedy, temperature, top-k and top-p sampling, with a KV cache.

With the cache each new token costs a forward over one position: its keys and
values are appended to those of the tokens before it. GPT-2's positions are
learned and absolute, so once the context is longer than block_size the window
slides, every position shifts, and every cached key is stale: from then on each
token is a full forward over the last block_size tokens, exactly what an
uncached sliding-window generator computes.
"""
import warnings

import numpy as np

from minigrad import Tensor
from gpt.model import KVCache


def generate(model, idx, max_new_tokens, temperature=1.0, top_k=None, top_p=None, do_sample=True,
             seed=None, eos_token_id=None, num_samples=1, use_cache=True):
    """Continue each prompt by up to max_new_tokens tokens.

    idx: one prompt (a list or 1-d array of ids) or several of equal length ((B, T)).
    Returns a list of B * num_samples lists of ints, each its prompt followed by the
    new tokens; a row stops after eos_token_id (which it includes).
    temperature 0 or do_sample=False is greedy (argmax). seed makes sampling
    repeatable through its own np.random.Generator(seed); seed=None draws fresh
    entropy, leaving minigrad's global generator untouched.
    """
    _check_args(max_new_tokens, temperature, top_k, top_p)
    _check_count(num_samples)
    prompts = np.repeat(_prompts(idx, model), num_samples, axis=0)  # (B * num_samples, T)
    rows = [list(map(int, p)) for p in prompts]
    done = np.zeros(len(rows), dtype=bool)
    for tokens in _steps(model, prompts, max_new_tokens, temperature, top_k, top_p, do_sample, seed,
                         use_cache):
        for i in np.flatnonzero(~done):
            rows[i].append(int(tokens[i]))
        if eos_token_id is not None:
            done |= tokens == eos_token_id
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
                   eos_token_id, use_cache)


def _stream(model, prompts, max_new_tokens, temperature, top_k, top_p, do_sample, seed, eos_token_id,
            use_cache):
    for tokens in _steps(model, prompts, max_new_tokens, temperature, top_k, top_p, do_sample, seed,
                         use_cache):
        yield int(tokens[0])
        if tokens[0] == eos_token_id:
            return


generate_stream = stream


def _steps(model, prompts, max_new_tokens, temperature, top_k, top_p, do_sample, seed, use_cache):
    """Yield the next token of every row, (N,) ints, max_new_tokens times."""
    greedy = not do_sample or temperature == 0
    gen = np.random.default_rng(seed)
    block = model.config.block_size
    ids = prompts[:, -block:]  # (N, T) the context the model sees
    cache = None
    for step in range(max_new_tokens):
        if step == 0 and use_cache:
            cache = KVCache(model.config, len(ids), dtype=model.dtype)
            logits = _forward(model, ids, cache)  # prefill: the whole prompt at once
        elif cache is not None and cache.length < block:
            logits = _forward(model, ids[:, -1:], cache)  # one new position
        else:
            cache = None  # the window slides (or no cache): positions shift, recompute it all
            logits = _forward(model, ids[:, -block:], None)
        tokens = _choose(logits, greedy, temperature, top_k, top_p, gen)  # (N,)
        yield tokens
        ids = np.concatenate([ids, tokens[:, None]], axis=1)  # (N, T + 1)


def _forward(model, ids, cache):
    """Last-position logits (N, V) as float64 from GPT.decode (gpt/decode.py): the forward
    pass on bare arrays, no graph and no dropout, so the model's mode and grad state are
    untouched."""
    return model.decode(ids, cache).astype(np.float64)  # (N, V)


def _choose(logits, greedy, temperature, top_k, top_p, gen):
    """One token per row of logits (N, V)."""
    if greedy:
        return np.argmax(logits, axis=-1)
    logits = logits / temperature
    if top_k is not None and top_k < logits.shape[-1]:
        kth = np.sort(logits, axis=-1)[:, -top_k][:, None]  # (N, 1) the k-th largest logit
        logits = np.where(logits < kth, -np.inf, logits)  # ties with the k-th are kept, as nanoGPT
    probs = np.exp(logits - logits.max(axis=-1, keepdims=True))
    probs /= probs.sum(axis=-1, keepdims=True)  # (N, V)
    if top_p is not None and top_p < 1:
        probs = _nucleus(probs, top_p)
    return np.array([_draw(p, gen) for p in probs])


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


def _draw(p, gen):
    """Inverse-CDF sample from p (V,); never a zero-probability token, even at the
    rounding edge where u * total reaches the last cumulative value."""
    cdf = np.cumsum(p)
    i = int(np.searchsorted(cdf, gen.random() * cdf[-1], side="right"))
    return min(i, int(np.flatnonzero(p)[-1]))


def _prompts(idx, model):
    """The prompt(s) as an int64 array (B, T), checked; warns when longer than block_size."""
    ids = np.asarray(idx.data if isinstance(idx, Tensor) else idx)
    if ids.ndim == 1:
        ids = ids[None, :]
    if ids.ndim != 2:
        raise ValueError(f"generate: the prompt must be a list of ids or (B, T), got shape {ids.shape}")
    if ids.shape[1] == 0:
        raise ValueError("generate: the prompt is empty; start from at least one token "
                         "(e.g. <|endoftext|>, id 50256 in GPT-2)")
    if not np.issubdtype(ids.dtype, np.integer):
        raise TypeError(f"generate: prompt ids must be integers, got dtype {ids.dtype}")
    V, block = model.config.vocab_size, model.config.block_size
    if ids.min() < 0 or ids.max() >= V:
        raise ValueError(f"generate: prompt ids must be in [0, vocab_size={V}), got {ids.min()}..{ids.max()}")
    if ids.shape[1] > block:
        warnings.warn(f"generate: the prompt has {ids.shape[1]} tokens but block_size is {block}; "
                      f"only its last {block} tokens are used", stacklevel=3)
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
