"""Building a run: the model, tokenizer, optimizer and data of a training, three ways.

    run = build_run(cfg, explicit)   # fresh, --resume (from --out) or --init-from a checkpoint

A fresh run draws its weights from the seed and its tokenizer from the corpus; a
resumed run restores weights, AdamW moments, the RNGs and the counters of its
checkpoint (so it continues exactly, whatever flags the user retyped may allow);
--init-from takes another checkpoint's model and tokenizer with a fresh optimizer
(fine-tuning). The loop (loop.py) only ever sees the finished `Run`.
"""
import dataclasses
import math
import time
from dataclasses import dataclass
from pathlib import Path

import minigrad
from minigrad.nn.flat import FlatParameters
from minigrad.optim import get_lr

from gpt import checkpoint, data
from gpt.config import TrainConfig, build_config
from gpt.errors import ConfigError, DataError
from gpt.model import GPT, GPTConfig
from gpt.train.ddp import SINGLE, Ranks

# Fixed once a model exists: --resume and --init-from refuse to change them.
ARCHITECTURE = ("n_layer", "n_head", "n_embd", "block_size", "bias")


@dataclass
class Run:
    """Everything a training holds between steps."""
    cfg: TrainConfig
    out: Path                # the run folder: metrics.jsonl, loss.png, data/, ckpt/
    model: GPT
    tokenizer: object
    optimizer: object        # minigrad.optim.AdamW
    sampler: data.BatchSampler
    ids: dict                # split -> token ids
    report: dict             # the corpus: sources, chars, notes, sha256, cache_key
    flat: FlatParameters = None  # the trained parameters and their gradients, in flat buffers
    start_iter: int = 0      # iterations done before this process
    best_val_loss: float = math.inf
    last_saved: int = None   # iteration of the newest checkpoint, if any
    ddp: Ranks = SINGLE      # the processes training it together (gpt/train/ddp.py)

    def __post_init__(self):
        self.ddp.attach(self.flat)

    @property
    def ckpt(self):
        return self.out / "ckpt"

    def lr_at(self, it):
        """The learning rate of iteration `it` (from 0): warm-up, then cosine decay to min_lr."""
        o = self.cfg.optim
        decay = o.lr_decay_iters or o.max_iters
        return get_lr(it, o.lr, o.min_lr, min(o.warmup_iters, decay), decay)

    def save(self, it):
        """Checkpoint after iteration `it`: weights, tokenizer, AdamW, RNGs, counters, config.
        Under MPI only rank 0 writes (the ranks hold the same weights and AdamW state)."""
        self.last_saved = it
        if not self.ddp.is_main:
            return
        state = {"iter": it, "best_val_loss": None if math.isinf(self.best_val_loss) else self.best_val_loss,
                 "rng": {"minigrad": minigrad.get_rng_state(), "sampler": self.sampler.state()},
                 "config": self.cfg.to_dict(), "data": self.report,
                 "threads": minigrad.kernels.get_num_threads(), "world_size": self.ddp.size}
        checkpoint.save(self.ckpt, self.model, self.tokenizer, self.optimizer, state)


def default_out(cfg):
    return f"runs/{cfg.run.preset}-{time.strftime('%Y%m%d-%H%M%S')}"


def build_run(cfg, explicit=None, log=print, ddp=SINGLE):
    """The Run for cfg: resumed from --out's checkpoint, initialised from --init-from's, or
    fresh. explicit: the flags the user typed (what a resume may change); log(str): notices;
    ddp: the ranks of a data-parallel run (the sampler draws their global batch)."""
    explicit = explicit or {}
    out = Path(cfg.run.out or default_out(cfg))
    if cfg.run.resume:
        return _resume(out, explicit, log, ddp)
    if (checkpoint.recover(out / "ckpt") / checkpoint.TRAINER_STATE).exists():
        raise ConfigError(f"{out} already holds a checkpoint: pass --resume to continue it, "
                          f"or choose another --out")
    minigrad.manual_seed(cfg.run.seed)  # before any weight is drawn: init is part of the seed
    text, report = data.load_text(cfg.data)
    train_text, val_text = data.split_text(text, cfg.data.val_fraction)
    if cfg.run.init_from:
        model, tokenizer = _init_from(cfg, explicit, log)
    else:
        tokenizer = data.build_tokenizer(cfg.data, train_text, text)
        cfg.model.vocab_size = tokenizer.vocab_size
        model = GPT(GPTConfig(**cfg.model.to_dict()))
    ids = _token_ids(cfg, out, tokenizer, train_text, val_text, report)
    optimizer, flat = _optimizer(model, cfg)
    return Run(cfg, out, model, tokenizer, optimizer, _sampler(cfg, ids, ddp), ids, report, flat=flat, ddp=ddp)


def _init_from(cfg, explicit, log):
    """The checkpoint's tokenizer, architecture and weights (ours or a Hugging Face GPT-2
    folder). Only dropout may be retyped, and block_size lowered."""
    src = cfg.run.init_from
    state = checkpoint.read_trainer_state_or_none(src)
    source = checkpoint.load_model(src)
    tokenizer = checkpoint.load_tokenizer(src)
    checkpoint.check_vocab(source, tokenizer, src)
    saved = source.config
    # --block-size may shorten the context (GPT-2's 1024 positions need over 1024 tokens per
    # split), never lengthen it: a position the checkpoint never learned has no embedding
    block = explicit.get("block_size", saved.block_size)
    if block > saved.block_size:
        raise ConfigError(f"--init-from keeps the checkpoint's {saved.block_size} positions; "
                          f"--block-size {block} can only lower it")
    typed = {k: v for k, v in explicit.items()
             if k in ARCHITECTURE and k != "block_size" and v != getattr(saved, k)}
    if typed:
        raise ConfigError(f"--init-from keeps the checkpoint's model; {typed} differ from it")
    dropout = cfg.model.dropout if "dropout" in explicit else saved.dropout
    cfg.model = dataclasses.replace(saved, dropout=dropout, block_size=block)
    model = GPT(cfg.model)
    weights = source.state_dict()
    # a shorter context uses only the first learned positions (nanoGPT's crop_block_size)
    weights["transformer.wpe.weight"] = weights["transformer.wpe.weight"][:block]
    model.load_state_dict(weights)
    cfg.data.tokenizer = str(checkpoint.tokenizer_path(src))
    origin = f"iteration {state['iter']}" if state else "a Hugging Face GPT-2 folder"
    cropped = f", positions cropped to {block}" if block < saved.block_size else ""
    log(f"fine-tuning from {src} ({origin}{cropped}), fresh optimizer")
    return model, tokenizer


def _resume(out, explicit, log, ddp):
    """The run saved in out/ckpt, with the flags the user typed where they may change."""
    state = checkpoint.read_trainer_state(out / "ckpt")
    saved = TrainConfig.from_dict(state["config"])
    fixed = ARCHITECTURE + ("vocab_size", "tokenizer", "data", "val_fraction", "seed")
    changed = [k for k in fixed if k in explicit and explicit[k] != _get(saved, k)]
    if changed:
        raise ConfigError(f"--resume cannot change {', '.join(changed)}; start a new run "
                          f"(or fine-tune with --init-from)")
    cfg = build_config(explicit, base=saved)
    cfg.run.resume, cfg.run.out = True, str(out)
    if ddp.size != state.get("world_size", 1):
        _keep_global_batch(cfg.optim, saved.optim, state.get("world_size", 1), ddp.size, explicit, log)
    text, report = data.load_text(cfg.data)
    if report["sha256"] != state["data"]["sha256"]:
        raise DataError(f"the corpus {cfg.data.data or data.BUILTIN} changed since the checkpoint "
                        f"was written; resume needs the same text")
    tokenizer = checkpoint.load_tokenizer(out / "ckpt")
    model = checkpoint.load_model(out / "ckpt").train()  # loaded models come in eval mode
    cfg.model.vocab_size = model.config.vocab_size
    ids = _token_ids(cfg, out, tokenizer, *data.split_text(text, cfg.data.val_fraction), report)
    optimizer, flat = _optimizer(model, cfg, checkpoint.load_optimizer_state(out / "ckpt"))
    run = Run(cfg, out, model, tokenizer, optimizer, _sampler(cfg, ids, ddp), ids, report, flat=flat,
              start_iter=state["iter"], best_val_loss=state.get("best_val_loss") or math.inf,
              last_saved=state["iter"], ddp=ddp)
    minigrad.set_rng_state(state["rng"]["minigrad"])
    run.sampler.set_state(state["rng"]["sampler"])
    log(f"resuming {out} at iteration {run.start_iter}")
    if state.get("threads") != minigrad.kernels.get_num_threads():
        log(f"note: the run was saved with {state.get('threads')} threads, this one has "
            f"{minigrad.kernels.get_num_threads()}; losses can differ in the last bits")
    return run


def _keep_global_batch(o, saved, saved_world, world, explicit, log):
    """Resuming on another number of processes: the global batch (processes x batch_size x
    grad_accum_steps sequences per step) must stay, so the run draws the same windows per step
    as before. An untyped --batch-size is set per process to keep it (and printed)."""
    size = saved_world * saved.batch_size * saved.grad_accum_steps
    if "batch_size" not in explicit and size % (world * o.grad_accum_steps) == 0:
        o.batch_size = size // (world * o.grad_accum_steps)
    if world * o.batch_size * o.grad_accum_steps != size:
        raise ConfigError(f"the run was saved by {saved_world} processes x --batch-size {saved.batch_size} x "
                          f"--grad-accum-steps {saved.grad_accum_steps} = {size} sequences per step; on "
                          f"{world} processes pick --batch-size and --grad-accum-steps with {world} x "
                          f"batch x steps = {size}")
    log(f"resuming on {world} processes (saved by {saved_world}): --batch-size {o.batch_size} per process "
        f"x --grad-accum-steps {o.grad_accum_steps} keeps the global batch of {size} sequences")


def _optimizer(model, cfg, saved_state=None):
    """AdamW over the model (nanoGPT's decay groups), its parameters and gradients in one flat
    buffer (one AdamW call per group; one buffer to reduce across processes). Restored moments
    keep their saved hyperparameters except those a flag sets: the config's betas and weight
    decay win."""
    o = cfg.optim
    optimizer = model.configure_optimizers(o.weight_decay, o.lr, (o.beta1, o.beta2))
    flat = FlatParameters([p for group in optimizer.param_groups for p in group["params"]])
    if saved_state is not None:
        optimizer.load_state_dict(saved_state)
        for group in optimizer.param_groups:
            group["betas"] = (o.beta1, o.beta2)
        optimizer.param_groups[0]["weight_decay"] = o.weight_decay  # the decayed (2-D) group
    return optimizer, flat


def _token_ids(cfg, out, tokenizer, train_text, val_text, report):
    """The splits' token ids, from out/data when that cache was made from the same text,
    tokenizer and split; encoded (and cached) otherwise."""
    out.mkdir(parents=True, exist_ok=True)
    key = f"{report['sha256']}:{data.tokenizer_digest(tokenizer)}:{cfg.data.val_fraction}"
    ids = data.encode_cached(tokenizer, {"train": train_text, "val": val_text}, out / "data", key)
    data.check_lengths(ids, cfg.model.block_size)
    report["cache_key"] = key
    return ids


def _sampler(cfg, ids, ddp):
    """The global batch of all ranks from one seeded stream; each rank keeps its shard."""
    return data.BatchSampler(ids, cfg.model.block_size, cfg.optim.batch_size * ddp.size, cfg.run.seed)


def _get(cfg, name):
    for group in ("data", "model", "optim", "run"):
        if hasattr(getattr(cfg, group), name):
            return getattr(getattr(cfg, group), name)
    raise KeyError(name)
