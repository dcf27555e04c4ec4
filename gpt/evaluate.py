"""Scoring a model on a text: loss, perplexity and bits per byte, every token scored once.

The text is cut into windows of at most block_size tokens; with a stride below
block_size the windows overlap and each token after the first window is scored
with at least block_size - stride tokens of context.
"""
import numpy as np

import minigrad


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
