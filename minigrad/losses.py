"""Losses, with torch.nn.functional's signatures: cross_entropy, nll_loss, mse_loss.

The GPT's case (logits (N, C), class ids, mean, no weights, no smoothing) is one
fused node (fused.CrossEntropy). Every other form is composed: the class dim is
moved last and the rest flattened into rows, then log_softmax, a pick of each
row's target and a reduction. Class weights are constants (no gradient).
"""
import numpy as np

from minigrad import dtypes, fused
from minigrad.activations import log_softmax
from minigrad.args import check_ids, int_array, is_tensor, raw
from minigrad.reduction import mean, sum
from minigrad.shape import index, permute, reshape

REDUCTIONS = ("mean", "sum", "none")


def _rows(input, target, op):
    """input (C,), (N, C) or (N, C, d...) and its targets -> rows (M, C), targets (M,) and the
    targets' shape, to restore for reduction='none'."""
    t = np.asarray(raw(target))
    expected = () if input.ndim == 1 else input.shape[:1] + input.shape[2:]
    if input.ndim == 0 or t.shape != expected:
        raise ValueError(f"{op}: expected input (C,), (N, C) or (N, C, d1, ...) and class-id targets of shape "
                         f"(), (N,) or (N, d1, ...), got {input.shape} and {t.shape}")
    if input.ndim == 1:
        return reshape(input, 1, -1), t.reshape(1), t.shape
    if input.ndim > 2:  # (N, C, d...) -> (N, d..., C) -> (M, C)
        input = permute(input, 0, *range(2, input.ndim), 1)
    return reshape(input, -1, input.shape[-1]), t.reshape(-1), t.shape


def _class_weights(weight, C, op, dtype):
    if weight is None:
        return None
    w = np.asarray(raw(weight), dtype=dtype)
    if w.shape != (C,):
        raise ValueError(f"{op}: weight must have one entry per class, shape ({C},), got {w.shape}")
    return w


def _check(op, reduction, input):
    if reduction not in REDUCTIONS:
        raise ValueError(f"{op}: reduction must be one of {', '.join(REDUCTIONS)}, got {reduction!r}")
    if not dtypes.is_float(input.dtype):
        raise TypeError(f"{op}: input must be floating point, got {input.dtype}")


def nll_loss(input, target, weight=None, ignore_index=-100, reduction="mean"):  # noqa: A002
    """-input[target] per row (input holds log-probabilities), weighted, skipping ignore_index;
    'mean' divides by the kept rows' total weight (NaN when every row is ignored, as torch)."""
    _check("nll_loss", reduction, input)
    logp, t, shape = _rows(input, int_array("nll_loss", "target", target), "nll_loss")
    return _nll("nll_loss", logp, t, shape, _class_weights(weight, logp.shape[1], "nll_loss", input.dtype),
                ignore_index, reduction)


def _nll(op, logp, t, shape, w, ignore_index, reduction):
    M, C = logp.shape
    check_ids(op, "target", t, C, ignore_index)
    keep = t != ignore_index
    safe = np.where(keep, t, 0)
    row_w = (keep if w is None else w[safe] * keep).astype(logp.dtype)  # (M,)
    losses = -index(logp, (np.arange(M), safe)) * row_w  # (M,)
    if reduction == "none":
        return reshape(losses, *shape)
    total = sum(losses)
    return total if reduction == "sum" else total / np.asarray(row_w.sum(), dtype=logp.dtype)


def cross_entropy(input, target, weight=None, ignore_index=-100, reduction="mean", label_smoothing=0.0):  # noqa: A002
    """Cross-entropy of logits against class ids (or class probabilities: a float target of
    input's shape), as torch.nn.functional.cross_entropy."""
    _check("cross_entropy", reduction, input)
    if not 0.0 <= label_smoothing <= 1.0:
        raise ValueError(f"cross_entropy: label_smoothing must be in [0, 1], got {label_smoothing}")
    t = np.asarray(raw(target))
    if t.dtype.kind == "f":
        return _soft_cross_entropy(input, target, weight, reduction, label_smoothing)
    t = int_array("cross_entropy", "target", t)
    if input.ndim == 2 and weight is None and reduction == "mean" and label_smoothing == 0.0:
        if t.shape != input.shape[:1]:
            raise ValueError(f"cross_entropy: expected logits (N, C) and targets (N,), got {input.shape} and {t.shape}")
        check_ids("cross_entropy", "target", t, input.shape[1], ignore_index)
        return fused.CrossEntropy.apply(input, targets=t, ignore_index=ignore_index)  # the GPT's case
    logits, t, shape = _rows(input, t, "cross_entropy")
    C = logits.shape[1]
    w = _class_weights(weight, C, "cross_entropy", input.dtype)
    logp = log_softmax(logits, -1)
    loss = _nll("cross_entropy", logp, t, shape, w, ignore_index, reduction)
    if label_smoothing == 0.0:
        return loss
    keep = (t != ignore_index).astype(input.dtype)
    per_class = logp if w is None else logp * w  # (M, C)
    smooth = -sum(per_class, 1) * keep  # (M,)
    if reduction == "none":
        smooth = reshape(smooth, *shape)
    elif reduction == "sum":
        smooth = sum(smooth)
    else:
        kept_w = keep.sum() if w is None else (w[np.where(keep > 0, t, 0)] * keep).sum()
        smooth = sum(smooth) / np.asarray(kept_w, dtype=input.dtype)
    return loss * (1.0 - label_smoothing) + smooth * (label_smoothing / C)


def _soft_cross_entropy(input, target, weight, reduction, label_smoothing):
    """-sum_c w_c p_c log softmax(x)_c per row, for class-probability targets p."""
    p = np.asarray(raw(target))
    if p.shape != input.shape or input.ndim == 0:
        raise TypeError(f"cross_entropy: targets must be integer class ids, or class probabilities of the input's "
                        f"shape {input.shape}; got {p.dtype} of shape {p.shape}")
    p = p.astype(input.dtype, copy=False)
    C = input.shape[1] if input.ndim > 1 else input.shape[0]
    if label_smoothing:
        p = p * (1 - label_smoothing) + label_smoothing / C
    dim = 1 if input.ndim > 1 else 0
    w = _class_weights(weight, C, "cross_entropy", input.dtype)
    if w is not None:
        p = p * w.reshape((C,) + (1,) * (input.ndim - dim - 1))
    losses = -sum(log_softmax(input, dim) * p, dim)
    if reduction == "none":
        return losses
    total = sum(losses)
    return total if reduction == "sum" else total / (input.shape[0] if input.ndim > 1 else 1)


def mse_loss(input, target, reduction="mean"):  # noqa: A002
    _check("mse_loss", reduction, input)
    diff = input - (target if is_tensor(target) else input._make(np.asarray(target, dtype=input.dtype), None))
    sq = diff * diff
    return sq if reduction == "none" else mean(sq) if reduction == "mean" else sum(sq)
