"""Random ops on tensors: multinomial and bernoulli, drawn from minigrad's generators.

They cannot reproduce PyTorch's random numbers (a different generator), so
tests hold them to their distributions and to repeatability under
`manual_seed` (or a `generator=`). Their results are outside the graph.
"""
import numpy as np

from minigrad import random
from minigrad.args import no_grad_result


def _weights(input, op):
    w = np.asarray(input.data, dtype=np.float64)
    if input.ndim not in (1, 2) or w.shape[-1] == 0:
        raise ValueError(f"{op}: expected weights of shape (C,) or (B, C) with C >= 1, got {input.shape}")
    if not np.isfinite(w).all() or (w < 0).any():
        raise ValueError(f"{op}: weights must be finite and non-negative (got {w.min()} .. {w.max()})")
    rows = w.reshape(-1, w.shape[-1])
    if (rows.sum(axis=1) <= 0).any():
        raise ValueError(f"{op}: every row of weights must have a positive sum (row "
                         f"{int(np.argmax(rows.sum(axis=1) <= 0))} sums to 0)")
    return rows


def multinomial(input, num_samples, replacement=False, *, generator=None):  # noqa: A002  (torch's names)
    """num_samples category ids per row of input (C,) or (B, C), drawn with probabilities
    proportional to the (non-negative, not necessarily normalised) weights; without
    replacement by default, as torch.multinomial. int64, shape (num_samples,) or (B, num_samples)."""
    rows = _weights(input, "multinomial")
    R, C = rows.shape
    if num_samples < 1 or (not replacement and num_samples > (rows > 0).sum(axis=1).min()):
        raise ValueError(f"multinomial: cannot draw num_samples={num_samples} from rows with "
                         f"{int((rows > 0).sum(axis=1).min())} non-zero weights"
                         f"{'' if replacement else ' without replacement'}")
    gen = random.rng(generator)
    if replacement:  # inverse CDF: the category whose cumulative interval holds u
        cdf = np.cumsum(rows, axis=1)
        u = gen.random((R, num_samples)) * cdf[:, -1:]
        last = C - 1 - np.argmax(rows[:, ::-1] > 0, axis=1)  # u may round up to the total
        out = np.stack([np.minimum(np.searchsorted(cdf[r], u[r], side="right"), last[r]) for r in range(R)])
    else:  # exponential races: sorting E_i / w_i draws without replacement, in draw order
        with np.errstate(divide="ignore"):
            keys = gen.exponential(size=(R, C)) / rows
        out = np.argsort(keys, axis=1, kind="stable")[:, :num_samples]
    out = out.astype(np.int64)
    return no_grad_result(input, out.reshape(num_samples) if input.ndim == 1 else out, "multinomial")


def bernoulli(input, p=None, *, generator=None):  # noqa: A002
    """1 with probability input (or p), else 0, elementwise, in input's dtype."""
    probs = np.asarray(input.data if p is None else p, dtype=np.float64)
    if (probs < 0).any() or (probs > 1).any():
        raise ValueError("bernoulli: probabilities must be in [0, 1]")
    draw = random.rng(generator).random(input.shape) < probs
    return no_grad_result(input, draw.astype(input.dtype), "bernoulli")
