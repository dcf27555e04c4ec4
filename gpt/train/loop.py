"""The training loop: steps, evaluation, checkpoints, Ctrl-C and the end-of-run summary.

    summary = train(build_config({"preset": "tiny"}))   # {"iter", "train_loss", "val_loss", "out", ...}

A run folder holds metrics.jsonl, loss.png, data/ (cached token ids) and ckpt/
(gpt/checkpoint.py). A run stopped at step k and resumed gives the same losses as
one that never stopped (same seed and thread count): the checkpoint holds the
weights, AdamW moments and both RNGs (dropout, batches).
"""
import math
import signal
import sys
import time

import minigrad

from gpt.errors import NonFiniteLossError
from gpt.sample import generate
from gpt.train.progress import MetricsLog, Progress, fmt_duration, plot_losses, read_metrics
from gpt.train.run import build_run
from gpt.train.step import evaluate, train_step


def train(cfg, hooks=(), stream=None, explicit=None):
    """Tune the process, build the run (fresh, resumed or fine-tuned) and train it; returns
    the summary. hooks: callables hook(run, it, loss) called after each step."""
    minigrad.runtime.tune()
    if cfg.run.threads:
        set_threads(cfg.run.threads)
    stream = stream or sys.stdout
    run = build_run(cfg, explicit, log=lambda m: print(m, file=stream, flush=True))
    return train_loop(run, hooks, stream)


def set_threads(n):
    """The kernels' threads (minigrad/kernels/threads.py) and BLAS's (matmuls run in OpenBLAS)."""
    import threadpoolctl
    minigrad.kernels.set_num_threads(n)
    threadpoolctl.threadpool_limits(n, user_api="blas")


def train_loop(run, hooks=(), stream=None):
    """Train run from its start_iter to max_iters. Ctrl-C saves the last complete step, then
    re-raises KeyboardInterrupt; a non-finite loss raises NonFiniteLossError."""
    o, r = run.cfg.optim, run.cfg.run
    progress = Progress(o.max_iters, run.start_iter, r.log_interval, stream or sys.stdout)
    _describe(run, progress.print)
    metrics = MetricsLog(run.out / "metrics.jsonl", keep_through=run.start_iter)
    stop = _StopOnCtrlC(progress.print)
    done, inside = run.start_iter, None  # iterations complete; what a step in progress changed
    try:
        for it in range(run.start_iter, o.max_iters):
            inside = (run.sampler.state(), minigrad.get_rng_state(), _optimizer_steps(run.optimizer))
            record = _step(run, it, progress)
            done, inside = it + 1, None
            if done % r.eval_interval == 0 or done == o.max_iters:
                record.update(_eval_and_save(run, done, progress))
            metrics.write(record)
            for hook in hooks:
                hook(run, done, record["loss"])
            if stop.requested:
                raise KeyboardInterrupt
    except KeyboardInterrupt:
        _save_after_interrupt(run, done, inside, progress.print)
        raise
    finally:
        stop.restore()
        metrics.close()
    return _finish(run, progress)


def _step(run, it, progress):
    """train_step on the next batch; returns its metrics.jsonl record."""
    t0 = time.perf_counter()
    lr = run.lr_at(it)
    batch = run.sampler.batch("train")
    try:
        loss, norm = train_step(run.model, run.optimizer, batch, lr, run.cfg.optim.grad_clip)
    except NonFiniteLossError as e:
        kept = (f"the last good checkpoint ({run.ckpt}, iteration {run.last_saved}) is kept"
                if run.last_saved is not None else "no checkpoint had been written yet")
        raise NonFiniteLossError(f"{e} at iteration {it + 1}; stopping ({kept}). Try a lower --lr "
                                 f"or --grad-clip") from None
    tok_s = batch[0].size / max(time.perf_counter() - t0, 1e-9)  # task batches are as long as their longest row
    progress.update(it + 1, loss, lr, tok_s)
    return {"iter": it + 1, "loss": loss, "lr": lr, "tokens_per_s": round(tok_s, 1), "grad_norm": norm,
            "elapsed_s": round(progress.elapsed(), 3),
            "counted_tokens": int((batch[1] != -100).sum())}  # targets with loss: task data masks prompts


def _eval_and_save(run, it, progress):
    t0 = time.perf_counter()
    batches = {split: run.sampler.eval_batches(split, run.cfg.run.eval_iters) for split in ("train", "val")}
    ev = evaluate(run.model, batches)
    run.best_val_loss = min(run.best_val_loss, ev["val_loss"])
    run.save(it)
    progress.eval_time += time.perf_counter() - t0
    progress.print(f"eval @ {it}: train loss {ev['train_loss']:.4f}, val loss {ev['val_loss']:.4f} "
                   f"(ppl {ev['val_ppl']:.2f}), saved {run.ckpt} [{time.perf_counter() - t0:.1f}s]")
    return ev


def _optimizer_steps(optimizer):
    return sum(s["step"] for s in optimizer.state.values())


def _save_after_interrupt(run, done, inside, log):
    """Save the last complete iteration. An interrupt inside a step (`inside`: the batch and
    dropout RNG states and the optimizer's step count before it) rewinds the RNGs the step
    had advanced; one that came after the AdamW update began cannot be undone, so the
    previous checkpoint is kept."""
    if inside is not None:
        if _optimizer_steps(run.optimizer) != inside[2]:
            log(f"interrupted inside a weight update: kept the checkpoint of iteration {run.last_saved}")
            return
        run.sampler.set_state(inside[0])
        minigrad.set_rng_state(inside[1])
    if done != run.last_saved:
        run.save(done)
    log(f"interrupted: saved iteration {done} to {run.ckpt}; continue with "
        f"gpt train --resume --out {run.out}")


class _StopOnCtrlC:
    """First Ctrl-C: finish the current step, save, stop. Second: stop at once (the last
    complete step is saved unless the weights were mid-update). Off the main thread, Ctrl-C
    is left alone."""

    def __init__(self, log):
        self.requested, self.log = False, log
        try:
            self.previous = signal.signal(signal.SIGINT, self._handle)
        except ValueError:  # not the main thread
            self.previous = None

    def _handle(self, signum, frame):
        if self.requested:
            raise KeyboardInterrupt
        self.requested = True
        self.log("Ctrl-C: stopping after this step and saving (Ctrl-C again to stop now)")

    def restore(self):
        if self.previous is not None:
            signal.signal(signal.SIGINT, self.previous)


def _describe(run, log):
    m, rep, cfg = run.model, run.report, run.cfg.model
    log(f"corpus: {', '.join(rep['sources'][:3])}{' ...' if len(rep['sources']) > 3 else ''}"
        f" ({rep['chars']:,} chars{'; ' + '; '.join(rep['notes']) if rep['notes'] else ''})")
    log(f"tokens: {len(run.ids['train']):,} train, {len(run.ids['val']):,} val; "
        f"tokenizer {type(run.tokenizer).__name__} (vocab {run.tokenizer.vocab_size})")
    log(f"model: {m.num_params():,} parameters ({cfg.n_layer} layers, {cfg.n_head} heads, n_embd "
        f"{cfg.n_embd}, block {cfg.block_size}); {minigrad.kernels.get_num_threads()} threads; "
        f"run folder {run.out}")


def _finish(run, progress):
    rows = read_metrics(run.out / "metrics.jsonl")
    last = next((r for r in reversed(rows) if "val_loss" in r), {})
    summary = {"iter": run.cfg.optim.max_iters, "out": str(run.out), "ckpt": str(run.ckpt),
               "train_loss": last.get("train_loss"), "val_loss": last.get("val_loss"),
               "elapsed_s": progress.elapsed()}  # the loop with its evaluations and saves
    notice = plot_losses(run.out / "metrics.jsonl", run.out / "loss.png")
    progress.print(notice or f"loss curve: {run.out / 'loss.png'}")
    if run.cfg.run.sample_tokens:
        progress.print("sample:\n" + sample_text(run.model, run.tokenizer, "\n", run.cfg.run.sample_tokens,
                                                 seed=run.cfg.run.seed))
    progress.print(f"done in {fmt_duration(summary['elapsed_s'])}; sample more with: "
                   f"gpt sample --ckpt {run.ckpt}")
    return summary


def sample_text(model, tokenizer, prompt, max_new_tokens, seed=None, temperature=0.8, top_k=None):
    """Decode a continuation of prompt (the short demo sample at the end of training)."""
    ids = tokenizer.encode(prompt)
    rows = generate(model, ids, max_new_tokens, temperature=temperature, top_k=top_k, seed=seed)
    return tokenizer.decode(rows[0][len(ids):])
