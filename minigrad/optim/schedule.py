"""The learning-rate schedule GPT training uses: linear warm-up, then cosine decay (nanoGPT's)."""
import math


def get_lr(it, lr, min_lr, warmup_iters, max_iters):
    """The learning rate of iteration `it`, counted from 0:
      it <  warmup_iters:  lr * (it + 1) / (warmup_iters + 1)            (linear warm-up)
      it >  max_iters:     min_lr
      otherwise:           min_lr + 0.5 * (1 + cos(pi * r)) * (lr - min_lr),
                           r = (it - warmup_iters) / (max_iters - warmup_iters)   (cosine decay)
    """
    if warmup_iters < 0 or max_iters < warmup_iters:
        raise ValueError(f"get_lr: need 0 <= warmup_iters <= max_iters, got warmup_iters={warmup_iters}, "
                         f"max_iters={max_iters}")
    if it < warmup_iters:
        return lr * (it + 1) / (warmup_iters + 1)
    if it > max_iters or max_iters == warmup_iters:
        return min_lr
    ratio = (it - warmup_iters) / (max_iters - warmup_iters)
    return min_lr + 0.5 * (1.0 + math.cos(math.pi * ratio)) * (lr - min_lr)
