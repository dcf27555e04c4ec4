"""One training step and one evaluation: the heart of training, each on one screen."""
import math

import numpy as np

import minigrad
from minigrad import kernels
from minigrad.nn.utils import clip_coef, get_total_norm

from gpt.data.tasks import IGNORE  # a target the loss skips (prompt and padding tokens of task data)
from gpt.errors import DataError, NonFiniteLossError
from gpt.train.ddp import SINGLE


def train_step(model, optimizer, micro_batches, lr, grad_clip, ddp=SINGLE):
    """One optimizer step over micro_batches [(x, y), ...] at learning rate lr: gradient
    accumulation, and under MPI this rank's share of the global batch (ddp: gpt/train/ddp.py).
    The step equals one batch of all of them: its loss is the mean over every counted target
    (not -100) of every micro-batch on every rank. Returns (loss, gradient norm before
    clipping) as floats; a NaN or Inf raises NonFiniteLossError before reaching the weights."""
    # 1. this step's learning rate, for every parameter group
    for group in optimizer.param_groups:
        group["lr"] = lr
    # 2. the step's counted targets, over all micro-batches and ranks (masked data counts fewer)
    counts = [int(np.count_nonzero(np.asarray(y) != IGNORE)) for _, y in micro_batches]
    total = ddp.sum(sum(counts))
    if total == 0:
        raise DataError("every target of this step is masked (-100): nothing to train on")
    # 3. forward and backward of each micro-batch, its mean loss weighted by its share of the
    #    step's targets; the gradients add up in place
    optimizer.zero_grad()
    nats = 0.0
    for (x, y), n in zip(micro_batches, counts):
        if n:  # a micro-batch with no counted target has no loss (its mean would be 0/0)
            _, loss = model(x, y)
            nats += float(loss.item()) * n
            (loss * (n / total)).backward()
    loss_value = ddp.sum(nats) / total
    if not math.isfinite(loss_value):
        raise NonFiniteLossError(f"loss is {loss_value}")
    # 4. add the gradients up over ranks: each rank then holds the global batch's gradient
    ddp.reduce_gradients()
    # 5. the global gradient norm, and the factor that clips it to grad_clip (tames the
    #    occasional spike); grad_clip 0 only measures. Frozen parameters have no gradient.
    norm = get_total_norm([p.grad for p in model.parameters() if p.grad is not None])
    if not math.isfinite(norm):
        raise NonFiniteLossError(f"gradient norm is {norm}")
    # 6. the AdamW update, in place (the same on every rank: same gradient, same weights); it
    #    scales each gradient by the clip factor as it reads it: the same numbers as
    #    clip_grad_norm_ then step, one pass over the gradients fewer
    optimizer.step(grad_scale=clip_coef(norm, grad_clip) if grad_clip > 0 else 1.0)
    return loss_value, norm


def evaluate(model, batches, ddp=SINGLE):
    """Mean loss (and perplexity) per split over every counted target of its batches (this
    rank's shares under MPI, added up over ranks), in eval mode (no dropout) and without
    building a graph. batches: split name -> list of (x, y)."""
    was_training = model.training
    model.eval()
    out = {}
    with minigrad.no_grad():
        for split, pairs in batches.items():
            nats = counted = 0.0
            for x, y in pairs:
                n = int(np.count_nonzero(np.asarray(y) != IGNORE))
                if n:
                    nats += float(model(x, y)[1].item()) * n
                    counted += n
            nats, counted = ddp.sum([nats, counted])
            loss = nats / counted if counted else math.nan
            out[f"{split}_loss"] = loss
            out[f"{split}_ppl"] = float(math.exp(min(loss, 700)))
    model.train(was_training)
    return out


def compile_step(model, optimizer, batch_size, block_size):
    """Run what a step and an evaluation compile (Numba) once, on a batch of zeros, a scratch
    AdamW update and a gradient norm, leaving weights and RNG as they were; gradients are left
    for the next step's zero_grad. Under MPI rank 0 does this first, so the ranks never write Numba's
    on-disk cache at the same time."""
    x = np.zeros((batch_size, block_size), dtype=np.int64)
    rng = minigrad.get_rng_state()
    optimizer.zero_grad()
    model(x, x)[1].backward()
    evaluate(model, {"warm-up": [(x, x)]})
    scratch = np.zeros(4, dtype=model.dtype)
    kernels.adamw_update(scratch, scratch.copy(), scratch.copy(), scratch.copy(), 1e-3, 0.9, 0.99, 1e-8, 0.1, 1)
    kernels.sum_squares(scratch)  # the gradient norm's kernel
    minigrad.set_rng_state(rng)
