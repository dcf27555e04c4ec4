"""One training step and one evaluation: the heart of training, each on one screen."""
import math

import numpy as np

import minigrad
from minigrad.nn.utils import clip_coef, get_total_norm

from gpt.errors import NonFiniteLossError


def train_step(model, optimizer, batch, lr, grad_clip):
    """Forward, backward, clip, AdamW: one optimizer step on batch (x, y) at learning rate lr.
    Returns (loss, gradient norm before clipping) as floats. A NaN or Inf loss or gradient
    norm raises NonFiniteLossError before it can reach the weights."""
    x, y = batch
    # 1. this step's learning rate, for every parameter group
    for group in optimizer.param_groups:
        group["lr"] = lr
    # 2. forward: mean cross-entropy of next-token prediction
    _, loss = model(x, y)
    loss_value = float(loss.item())
    if not math.isfinite(loss_value):
        raise NonFiniteLossError(f"loss is {loss_value}")
    # 3. backward: the gradient of every parameter
    optimizer.zero_grad()
    loss.backward()
    # 4. the global gradient norm, and the factor that clips it to grad_clip (tames the
    #    occasional spike); grad_clip 0 only measures
    norm = get_total_norm([p.grad for p in model.parameters() if p.grad is not None])
    if not math.isfinite(norm):
        raise NonFiniteLossError(f"gradient norm is {norm}")
    # 5. the AdamW update, in place; it scales each gradient by the clip factor as it reads it,
    #    the same numbers as clip_grad_norm_ then step, one pass over the gradients fewer
    optimizer.step(grad_scale=clip_coef(norm, grad_clip) if grad_clip > 0 else 1.0)
    return loss_value, norm


def evaluate(model, batches):
    """Mean loss (and perplexity) over each split's batches, in eval mode (no dropout) and
    without building a graph. batches: split name -> list of (x, y)."""
    was_training = model.training
    model.eval()
    out = {}
    with minigrad.no_grad():
        for split, pairs in batches.items():
            loss = float(np.mean([float(model(x, y)[1].item()) for x, y in pairs]))
            out[f"{split}_loss"] = loss
            out[f"{split}_ppl"] = float(math.exp(min(loss, 700)))
    model.train(was_training)
    return out
