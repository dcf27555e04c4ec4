"""The training loop: data -> model -> AdamW steps, with evaluation, checkpoints and exact resume.

    trainer = Trainer(build_config({"preset": "tiny"}))
    summary = trainer.run()      # {"iter", "train_loss", "val_loss", "out", ...}

A run folder holds metrics.jsonl, loss.png, data/ (cached token ids) and ckpt/
(gpt/checkpoint.py). Resuming restores weights, AdamW moments, the minigrad RNG
(dropout) and the batch sampler's RNG, so a run stopped at step k and resumed
gives the same losses as one that never stopped (same seed and thread count).
"""
import math
import signal
import sys
import time
from pathlib import Path

import numpy as np

import minigrad
from gpt import checkpoint, data
from gpt.config import ConfigError, TrainConfig, build_config
from gpt.optim import AdamW, clip_grad_norm_, get_lr, param_groups
from gpt.progress import MetricsLog, Progress, fmt_duration, plot_losses, read_metrics

MODEL_FIELDS = ("n_layer", "n_head", "n_embd", "block_size", "bias")  # fixed once a model exists


class NonFiniteLossError(RuntimeError):
    """The loss became NaN or Inf; the message names the step and the kept checkpoint."""


class Trainer:
    def __init__(self, cfg, hooks=(), stream=None, explicit=None):
        """cfg: a TrainConfig; hooks: callables hook(trainer, it, loss) run after each step
        (tests use them to interrupt a run); explicit: the flags the user typed (resume)."""
        self.cfg, self.hooks, self.explicit = cfg, list(hooks), explicit or {}
        self.stream = stream or sys.stdout
        self.start_iter, self.best_val_loss, self.last_saved = 0, math.inf, None
        self.stop_requested = False

    # ---- setup --------------------------------------------------------------------------

    def setup(self):
        r = self.cfg.run
        self.out = Path(r.out or f"runs/{r.preset}-{time.strftime('%Y%m%d-%H%M%S')}")
        self.ckpt = self.out / "ckpt"
        if r.threads:
            set_threads(r.threads)
        if r.resume:
            self._setup_resume()
        else:
            if (checkpoint.resolve(self.ckpt) / checkpoint.TRAINER_STATE).exists():
                raise ConfigError(f"{self.out} already holds a checkpoint: pass --resume to continue "
                                  f"it, or choose another --out")
            minigrad.manual_seed(r.seed)  # before any weight is drawn: init is part of the seed
            self._setup_fresh()
        self._setup_data_ids()
        self.sampler = data.BatchSampler(self.ids, self.cfg.model.block_size, self.cfg.optim.batch_size,
                                         self.cfg.run.seed)
        if r.resume:
            self._restore_states()
        return self

    def _setup_fresh(self):
        self.text, self.report = data.load_text(self.cfg.data)
        self.train_text, self.val_text = data.split_text(self.text, self.cfg.data.val_fraction)
        if self.cfg.run.init_from:
            self._setup_init_from()
        else:
            self.tokenizer = data.build_tokenizer(self.cfg.data, self.train_text, self.text)
            self.model = self._new_model()
        self.optimizer = self._new_optimizer()

    def _setup_init_from(self):
        """The checkpoint's tokenizer, architecture and weights; the checkpoint is one of ours or
        a Hugging Face GPT-2 folder. Only dropout may be retyped, and block_size lowered."""
        import dataclasses
        from gpt.model import GPT
        src = self.cfg.run.init_from
        state = checkpoint.read_trainer_state_or_none(src)
        source = checkpoint.load_model(src)
        self.tokenizer = checkpoint.load_tokenizer(src)
        checkpoint.check_vocab(source, self.tokenizer, src)
        saved, m = source.config, self.cfg.model
        # --block-size may shorten the context (GPT-2's 1024 positions need over 1024 tokens per
        # split), never lengthen it: a position the checkpoint never learned has no embedding
        block = self.explicit.get("block_size", saved.block_size)
        if block > saved.block_size:
            raise ConfigError(f"--init-from keeps the checkpoint's {saved.block_size} positions; "
                              f"--block-size {block} can only lower it")
        typed = {k: v for k, v in self.explicit.items()
                 if k in MODEL_FIELDS and k != "block_size" and v != getattr(saved, k)}
        if typed:
            raise ConfigError(f"--init-from keeps the checkpoint's model; {typed} differ from it")
        dropout = m.dropout if "dropout" in self.explicit else saved.dropout
        for k in MODEL_FIELDS:
            setattr(m, k, getattr(saved, k))
        m.block_size, m.dropout = block, dropout
        self.model = GPT(dataclasses.replace(saved, dropout=dropout, block_size=block))
        weights = source.state_dict()
        # a shorter context uses only the first learned positions (nanoGPT's crop_block_size)
        weights["transformer.wpe.weight"] = weights["transformer.wpe.weight"][:block]
        self.model.load_state_dict(weights)
        self.cfg.data.tokenizer = str(checkpoint.tokenizer_path(src))
        origin = f"iteration {state['iter']}" if state else "a Hugging Face GPT-2 folder"
        cropped = f", positions cropped to {block}" if block < saved.block_size else ""
        self.print(f"fine-tuning from {src} ({origin}{cropped}), fresh optimizer")

    def _new_model(self):
        from gpt.model import GPT, GPTConfig
        m = self.cfg.model
        return GPT(GPTConfig(vocab_size=self.tokenizer.vocab_size, block_size=m.block_size,
                             n_layer=m.n_layer, n_head=m.n_head, n_embd=m.n_embd,
                             dropout=m.dropout, bias=m.bias))

    def _new_optimizer(self):
        o = self.cfg.optim
        return AdamW(param_groups(self.model, o.weight_decay), lr=o.lr, betas=(o.beta1, o.beta2),
                     weight_decay=o.weight_decay)

    def _setup_resume(self):
        self.state = checkpoint.read_trainer_state(self.ckpt)
        saved = TrainConfig.from_dict(self.state["config"])
        changed = [k for k in MODEL_FIELDS + ("vocab_size", "tokenizer", "data", "val_fraction", "seed")
                   if k in self.explicit and self.explicit[k] != _get(saved, k)]
        if changed:
            raise ConfigError(f"--resume cannot change {', '.join(changed)}; start a new run "
                              f"(or fine-tune with --init-from)")
        cfg = build_config(self.explicit, base=saved)
        cfg.run.resume, cfg.run.out = True, str(self.out)
        self.cfg = cfg
        self.text, self.report = data.load_text(cfg.data)
        if self.report["sha256"] != self.state["data"]["sha256"]:
            raise data.DataError(f"the corpus {cfg.data.data or data.BUILTIN} changed since the "
                                 f"checkpoint was written; resume needs the same text")
        self.train_text, self.val_text = data.split_text(self.text, cfg.data.val_fraction)
        self.tokenizer = checkpoint.load_tokenizer(self.ckpt)
        self.model = checkpoint.load_model(self.ckpt).train()  # loaded models come in eval mode
        self.optimizer = self._new_optimizer()
        self.optimizer.load_state_dict(checkpoint.load_optimizer_state(self.ckpt))
        o = cfg.optim  # the saved groups carry the old hyperparameters: typed flags win
        for group in self.optimizer.param_groups:
            group["betas"] = (o.beta1, o.beta2)
        self.optimizer.param_groups[0]["weight_decay"] = o.weight_decay  # the decayed (2-D) group

    def _restore_states(self):
        s = self.state
        self.start_iter, self.best_val_loss = s["iter"], s.get("best_val_loss") or math.inf
        minigrad.set_rng_state(s["rng"]["minigrad"])
        self.sampler.set_state(s["rng"]["sampler"])
        self.last_saved = self.start_iter
        self.print(f"resuming {self.out} at iteration {self.start_iter}")
        if s.get("threads") != minigrad.kernels.get_num_threads():
            self.print(f"note: the run was saved with {s.get('threads')} threads, this one has "
                       f"{minigrad.kernels.get_num_threads()}; losses can differ in the last bits")

    def _setup_data_ids(self):
        self.out.mkdir(parents=True, exist_ok=True)
        digest = data.tokenizer_digest(self.tokenizer, self.out / ".tokenizer-digest.tmp")
        key = f"{self.report['sha256']}:{digest}:{self.cfg.data.val_fraction}"
        self.ids = data.encode_cached(self.tokenizer, {"train": self.train_text, "val": self.val_text},
                                      self.out / "data", key)
        data.check_lengths(self.ids, self.cfg.model.block_size)
        self.report["cache_key"] = key

    # ---- one step -----------------------------------------------------------------------

    def lr_at(self, it):
        o = self.cfg.optim
        decay = o.lr_decay_iters or o.max_iters
        return get_lr(it, o.lr, o.min_lr, min(o.warmup_iters, decay), decay)

    def step(self, it):
        """Optimizer step number `it` (from 0); returns (loss, lr, grad_norm)."""
        o = self.cfg.optim
        # 1. learning rate of this step: linear warm-up, then cosine decay to min_lr
        lr = self.lr_at(it)
        for group in self.optimizer.param_groups:
            group["lr"] = lr
        # 2. a batch of random windows from the train split (seeded, checkpointed generator)
        x, y = self.sampler.batch("train")
        # 3. forward: mean cross-entropy of next-token prediction
        _, loss = self.model(x, y)
        loss_value = float(loss.item())
        # 4. stop before a NaN/Inf can reach the weights (the last checkpoint stays good)
        if not math.isfinite(loss_value):
            raise NonFiniteLossError(self._nonfinite_message("loss", loss_value, it))
        # 5. backward: gradients of every parameter
        self.optimizer.zero_grad()
        loss.backward()
        # 6. clip the global gradient norm (tames the occasional spike; 0 = measure only)
        norm = clip_grad_norm_(self.model.parameters(), o.grad_clip if o.grad_clip > 0 else math.inf)
        if not math.isfinite(norm):
            raise NonFiniteLossError(self._nonfinite_message("gradient norm", norm, it))
        # 7. AdamW update, in place (the only phase an interrupt must not cut in half)
        self._phase = "update"
        self.optimizer.step()
        self._phase = "between"  # from here on the step is complete, and saved as such
        return loss_value, lr, norm

    def _nonfinite_message(self, what, value, it):
        kept = (f"the last good checkpoint ({self.ckpt}, iteration {self.last_saved}) is kept"
                if self.last_saved is not None else "no checkpoint had been written yet")
        return (f"{what} is {value} at iteration {it + 1}; stopping ({kept}). Try a lower --lr "
                f"or --grad-clip")

    # ---- evaluation and saving ----------------------------------------------------------

    def evaluate(self):
        """Mean loss over eval_iters fixed batches of each split, without dropout or graph."""
        self.model.eval()
        out = {}
        with minigrad.no_grad():
            for split in ("train", "val"):
                losses = [float(self.model(x, y)[1].item())
                          for x, y in self.sampler.eval_batches(split, self.cfg.run.eval_iters)]
                out[f"{split}_loss"] = float(np.mean(losses))
                out[f"{split}_ppl"] = float(math.exp(min(out[f"{split}_loss"], 700)))
        self.model.train()
        return out

    def save(self, it):
        state = {"iter": it, "best_val_loss": None if math.isinf(self.best_val_loss) else self.best_val_loss,
                 "rng": {"minigrad": minigrad.get_rng_state(), "sampler": self.sampler.state()},
                 "config": self.cfg.to_dict(), "data": self.report,
                 "threads": minigrad.kernels.get_num_threads()}
        checkpoint.save(self.ckpt, self.model, self.tokenizer, self.optimizer, state)
        self.last_saved = it

    def print(self, message):
        (self.progress.print if hasattr(self, "progress") else
         lambda m: print(m, file=self.stream, flush=True))(message)

    # ---- the loop -----------------------------------------------------------------------

    def run(self):
        """Train from start_iter to max_iters; returns a summary dict. Ctrl-C saves, then
        re-raises KeyboardInterrupt; a non-finite loss raises NonFiniteLossError."""
        o, r = self.cfg.optim, self.cfg.run
        self.progress = Progress(o.max_iters, self.start_iter, r.log_interval, self.stream)
        self._describe()
        self.metrics = MetricsLog(self.out / "metrics.jsonl", keep_through=self.start_iter)
        self._phase, self._completed = "between", self.start_iter
        previous = _install_sigint(self)
        try:
            it = self._loop()
        except KeyboardInterrupt:
            self._save_after_interrupt()
            raise
        finally:
            signal.signal(signal.SIGINT, previous) if previous is not None else None
            self.metrics.close()
        return self._finish(it)

    def _loop(self):
        o, r = self.cfg.optim, self.cfg.run
        tokens = o.batch_size * self.cfg.model.block_size
        for it in range(self.start_iter, o.max_iters):
            self._snapshot = (self.sampler.state(), minigrad.get_rng_state())
            self._phase, t0 = "step", time.perf_counter()
            loss, lr, norm = self.step(it)
            self._completed = it + 1
            tok_s = tokens / max(time.perf_counter() - t0, 1e-9)
            record = {"iter": it + 1, "loss": loss, "lr": lr, "tokens_per_s": round(tok_s, 1),
                      "grad_norm": norm, "elapsed_s": round(self.progress.elapsed(), 3)}
            self.progress.update(it + 1, loss, lr, tok_s)
            if (it + 1) % r.eval_interval == 0 or it + 1 == o.max_iters:
                record.update(self._eval_and_save(it + 1))
            self.metrics.write(record)
            for hook in self.hooks:
                hook(self, it + 1, loss)
            if self.stop_requested:
                raise KeyboardInterrupt
        return o.max_iters

    def _eval_and_save(self, it):
        t0 = time.perf_counter()
        ev = self.evaluate()
        self.best_val_loss = min(self.best_val_loss, ev["val_loss"])
        self.save(it)
        self.progress.eval_time += time.perf_counter() - t0
        self.print(f"eval @ {it}: train loss {ev['train_loss']:.4f}, val loss {ev['val_loss']:.4f} "
                   f"(ppl {ev['val_ppl']:.2f}), saved {self.ckpt} [{time.perf_counter() - t0:.1f}s]")
        return ev

    def _save_after_interrupt(self):
        """Save the last complete step. An interrupt inside step() rewinds the RNGs that step
        had advanced (batch, dropout); one inside the weight update cannot be undone."""
        if self._phase == "update":
            self.print(f"interrupted inside a weight update: kept the checkpoint of iteration "
                       f"{self.last_saved}")
            return
        if self._phase == "step":
            self.sampler.set_state(self._snapshot[0])
            minigrad.set_rng_state(self._snapshot[1])
        if self._completed != self.last_saved:
            self.save(self._completed)
        self.print(f"interrupted: saved iteration {self._completed} to {self.ckpt}; continue with "
                   f"gpt train --resume --out {self.out}")

    def _describe(self):
        m, rep = self.model, self.report
        self.print(f"corpus: {', '.join(rep['sources'][:3])}{' ...' if len(rep['sources']) > 3 else ''}"
                   f" ({rep['chars']:,} chars{'; ' + '; '.join(rep['notes']) if rep['notes'] else ''})")
        self.print(f"tokens: {len(self.ids['train']):,} train, {len(self.ids['val']):,} val; "
                   f"tokenizer {type(self.tokenizer).__name__} (vocab {self.tokenizer.vocab_size})")
        self.print(f"model: {m.num_params():,} parameters ({self.cfg.model.n_layer} layers, "
                   f"{self.cfg.model.n_head} heads, n_embd {self.cfg.model.n_embd}, block "
                   f"{self.cfg.model.block_size}); {minigrad.kernels.get_num_threads()} threads; "
                   f"run folder {self.out}")

    def _finish(self, it):
        last = next((r for r in reversed(read_metrics(self.out / "metrics.jsonl")) if "val_loss" in r), {})
        summary = {"iter": it, "out": str(self.out), "ckpt": str(self.ckpt),
                   "train_loss": last.get("train_loss"), "val_loss": last.get("val_loss"),
                   "elapsed_s": self.progress.elapsed()}  # the loop with its evaluations and saves
        notice = plot_losses(self.out / "metrics.jsonl", self.out / "loss.png")
        self.print(notice or f"loss curve: {self.out / 'loss.png'}")
        if self.cfg.run.sample_tokens:
            self.print("sample:\n" + sample_text(self.model, self.tokenizer, "\n",
                                                   self.cfg.run.sample_tokens, seed=self.cfg.run.seed))
        self.print(f"done in {fmt_duration(summary['elapsed_s'])}; sample more with: "
                   f"gpt sample --ckpt {self.ckpt}")
        return summary


def _get(cfg, name):
    for group in ("data", "model", "optim", "run"):
        if hasattr(getattr(cfg, group), name):
            return getattr(getattr(cfg, group), name)
    raise KeyError(name)


def set_threads(n):
    """The kernels' threads (minigrad/kernels/threads.py) and BLAS's (matmuls run in OpenBLAS)."""
    import threadpoolctl
    minigrad.kernels.set_num_threads(n)
    threadpoolctl.threadpool_limits(n, user_api="blas")


def _install_sigint(trainer):
    """First Ctrl-C: finish the current step, save, stop. Second: stop at once (the previous
    checkpoint stays). Returns the handler to restore, or None off the main thread."""
    def handler(signum, frame):
        if trainer.stop_requested:
            raise KeyboardInterrupt
        trainer.stop_requested = True
        trainer.print("Ctrl-C: stopping after this step and saving (Ctrl-C again to stop now)")
    try:
        return signal.signal(signal.SIGINT, handler)
    except ValueError:  # not the main thread
        return None


def sample_text(model, tokenizer, prompt, max_new_tokens, seed=None, temperature=0.8, top_k=None):
    """Decode a continuation of prompt (the short demo sample at the end of training)."""
    from gpt.sample import generate
    ids = tokenizer.encode(prompt)
    rows = generate(model, ids, max_new_tokens, temperature=temperature, top_k=top_k, seed=seed)
    return tokenizer.decode(rows[0][len(ids):])


def train(cfg, hooks=(), stream=None, explicit=None):
    """Set up and run a training; returns the summary dict."""
    return Trainer(cfg, hooks, stream, explicit).setup().run()
