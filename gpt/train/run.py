"""Building a run: the model, tokenizer, optimizer and data of a training, three ways.

    run = build_run(cfg, explicit)   # fresh, --resume (from --out) or --init-from a checkpoint

A fresh run draws its weights from the seed and its tokenizer from the corpus; a
resumed run restores weights, AdamW moments, the RNGs and the counters of its
checkpoint (so it continues exactly, whatever flags the user retyped may allow);
--init-from takes another checkpoint's model and tokenizer with a fresh optimizer
(fine-tuning; the tokens task data needs and LoRA adapters are set up by finetune.py).
The data is a text corpus or task examples (gpt/data/datasets.py), each with its own
sampler behind one interface. The loop (loop.py) only ever sees the finished `Run`.
"""
import math
import time
from dataclasses import dataclass
from pathlib import Path

import minigrad
from minigrad.nn.flat import FlatParameters
from minigrad.optim import get_lr

from gpt import checkpoint, data
from gpt.chat import ChatTemplate
from gpt.config import GROUPS, TrainConfig, build_config
from gpt.errors import ConfigError, DataError
from gpt.model import GPT, GPTConfig
from gpt.train import finetune
from gpt.train.ddp import SINGLE, Ranks
from gpt.train.finetune import ARCHITECTURE


@dataclass
class Run:
    """Everything a training holds between steps."""
    cfg: TrainConfig
    out: Path                # the run folder: metrics.jsonl, loss.png, data/, ckpt/
    model: GPT
    tokenizer: object
    optimizer: object        # minigrad.optim.AdamW
    sampler: object          # data.BatchSampler (text) or data.TaskSampler (examples)
    ids: dict                # split -> token ids
    report: dict             # the data: sources, chars, notes, sha256, cache_key
    flat: FlatParameters = None  # the trained parameters and their gradients, in flat buffers
    start_iter: int = 0      # iterations done before this process
    best_val_loss: float = math.inf
    last_saved: int = None   # iteration of the newest checkpoint, if any
    ddp: Ranks = SINGLE      # the processes training it together (gpt/train/ddp.py)
    template: ChatTemplate = None  # chat data's template, saved beside the model
    adapter: object = None   # lora.AdapterConfig: the checkpoint holds adapters, not the model
    base_sha256: str = None  # of the LoRA base's files, checked on resume

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
        """Checkpoint after iteration `it`: weights (or adapters), tokenizer, AdamW, RNGs,
        counters, config. Under MPI only rank 0 writes (the ranks hold the same weights and
        AdamW state)."""
        self.last_saved = it
        if not self.ddp.is_main:
            return
        state = {"iter": it, "best_val_loss": None if math.isinf(self.best_val_loss) else self.best_val_loss,
                 "rng": {"minigrad": minigrad.get_rng_state(), "sampler": self.sampler.state()},
                 "config": self.cfg.to_dict(), "data": self.report,
                 "threads": minigrad.kernels.get_num_threads(), "world_size": self.ddp.size}
        if self.adapter is not None:
            state["base"] = {"path": self.adapter.base, "sha256": self.base_sha256}
        checkpoint.save(self.ckpt, self.model, self.tokenizer, self.optimizer, state,
                        template=self.template, adapter=self.adapter)


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
    dataset = data.open_dataset(cfg.data)
    if cfg.run.init_from:
        model, tokenizer, template = finetune.base_model(cfg.run.init_from, cfg, explicit, log)
    else:
        model, tokenizer, template = None, data.build_tokenizer(cfg.data, *dataset.tokenizer_texts()), None
    template = finetune.chat_template(template, dataset)
    first_new = finetune.add_special_tokens(tokenizer, dataset.special_tokens(template), log)
    if model is None:
        cfg.model.vocab_size = tokenizer.vocab_size
        model = GPT(GPTConfig(**cfg.model.to_dict()))
    else:
        finetune.grow_embedding(model, tokenizer, log)
        cfg.model.vocab_size = model.config.vocab_size
    adapter = digest = None
    if cfg.lora.lora_rank:
        adapter, digest = finetune.setup_lora(cfg, model, first_new, checkpoint.recover(cfg.run.init_from), log)
    ids, sampler = _batches(cfg, out, dataset, tokenizer, template, log, ddp)
    optimizer, flat = _optimizer(model, cfg)
    return Run(cfg, out, model, tokenizer, optimizer, sampler, ids, dataset.report, flat=flat, ddp=ddp,
               template=template, adapter=adapter, base_sha256=digest)


def _resume(out, explicit, log, ddp):
    """The run saved in out/ckpt, with the flags the user typed where they may change."""
    state = checkpoint.read_trainer_state(out / "ckpt")
    saved = TrainConfig.from_dict(state["config"])
    fixed = ARCHITECTURE + ("vocab_size", "tokenizer", "data", "val_fraction", "seed", "task_digits",
                            "lora_rank", "lora_alpha", "lora_dropout", "lora_targets")
    changed = [k for k in fixed if k in explicit and explicit[k] != _get(saved, k)]
    if changed:
        raise ConfigError(f"--resume cannot change {', '.join(changed)}; start a new run "
                          f"(or fine-tune with --init-from)")
    cfg = build_config(explicit, base=saved)
    cfg.run.resume, cfg.run.out = True, str(out)
    if ddp.size != state.get("world_size", 1):
        _keep_global_batch(cfg.optim, saved.optim, state.get("world_size", 1), ddp.size, explicit, log)
    dataset = data.open_dataset(cfg.data)
    if dataset.report["sha256"] != state["data"]["sha256"]:
        raise DataError(f"the data {cfg.data.data or data.BUILTIN} changed since the checkpoint "
                        f"was written; resume needs the same data")
    tokenizer = checkpoint.load_tokenizer(out / "ckpt")
    adapter = digest = None
    if "base" in state:  # a LoRA run: its base plus the adapters saved so far
        model, adapter, digest = finetune.resume_lora(out / "ckpt", cfg, state, tokenizer)
    else:
        model = checkpoint.load_model(out / "ckpt")
    model.train()  # loaded models come in eval mode
    cfg.model.vocab_size = model.config.vocab_size
    template = ChatTemplate.load(checkpoint.recover(out / "ckpt"))
    ids, sampler = _batches(cfg, out, dataset, tokenizer, template, log, ddp)
    optimizer, flat = _optimizer(model, cfg, checkpoint.load_optimizer_state(out / "ckpt"))
    run = Run(cfg, out, model, tokenizer, optimizer, sampler, ids, dataset.report, flat=flat,
              start_iter=state["iter"], best_val_loss=state.get("best_val_loss") or math.inf,
              last_saved=state["iter"], ddp=ddp, template=template, adapter=adapter, base_sha256=digest)
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
    """AdamW over the model's trainable parameters (nanoGPT's decay groups; a LoRA run's frozen
    base is not among them), those and their gradients in one flat buffer (one AdamW call per
    group; one buffer to reduce across processes). Restored moments keep their saved
    hyperparameters except those a flag sets: the config's betas and weight decay win."""
    o = cfg.optim
    optimizer = model.configure_optimizers(o.weight_decay, o.lr, (o.beta1, o.beta2))
    flat = FlatParameters([p for group in optimizer.param_groups for p in group["params"]])
    if saved_state is not None:
        optimizer.load_state_dict(saved_state)
        for group in optimizer.param_groups:
            group["betas"] = (o.beta1, o.beta2)
        optimizer.param_groups[0]["weight_decay"] = o.weight_decay  # the decayed (2-D) group
    return optimizer, flat


def _batches(cfg, out, dataset, tokenizer, template, log, ddp):
    """(split -> token ids, sampler) of the run's data; text's encoded ids are cached in out/data.
    The sampler draws the global batch of all ranks from one seeded stream; each rank keeps
    its shard."""
    out.mkdir(parents=True, exist_ok=True)
    return dataset.batches(tokenizer, template, cfg.model.block_size, cfg.optim.batch_size * ddp.size,
                           cfg.run.seed, out / "data", log)


def _get(cfg, name):
    for group in GROUPS:
        if hasattr(getattr(cfg, group), name):
            return getattr(getattr(cfg, group), name)
    raise KeyError(name)
