"""The training loop: steps, evaluation, checkpoints, Ctrl-C and the end-of-run summary.

    summary = train(build_config({"preset": "tiny"}))   # {"iter", "train_loss", "val_loss", "out", ...}

A run folder holds metrics.jsonl, loss.png, data/ (cached token ids) and ckpt/
(gpt/checkpoint.py). A run stopped at step k and resumed gives the same losses as
one that never stopped (same seed and thread count): the checkpoint holds the
weights, AdamW moments and both RNGs (dropout, batches).

Under mpiexec every rank runs train() (gpt/train/ddp.py): rank 0 prepares first, the
ranks check they start alike, and only rank 0 prints, writes and samples.
"""
import signal
import sys
import time

import minigrad

from gpt.errors import NonFiniteLossError
from gpt.sample import generate, prompt_ids
from gpt.train.progress import MetricsLog, Progress, fmt_duration, plot_losses, read_metrics
from gpt.train.ddp import connect
from gpt.train.run import build_run, default_out
from gpt.train.step import IGNORE, compile_step, evaluate, train_step
from gpt.train.tensorboard import Board, summary_writer


def train(cfg, hooks=(), stream=None, explicit=None):
    """Tune the process, build the run (fresh, resumed or fine-tuned) and train it; returns
    the summary. hooks: callables hook(run, it, loss) called after each step (on every rank)."""
    minigrad.runtime.tune()
    if cfg.run.tensorboard:
        summary_writer()  # a missing extra stops the run before any work
    ddp = connect(cfg.run.ddp_timeout)
    if cfg.run.threads or ddp.threads():
        set_threads(cfg.run.threads or ddp.threads())
    stream = stream or sys.stdout
    log = (lambda m: print(m, file=stream, flush=True)) if ddp.is_main else (lambda m: None)
    with ddp.abort_on_error():
        if ddp.size > 1:
            cfg.run.out = cfg.run.out or ddp.share_from_main(default_out(cfg))
        run = ddp.main_first(lambda: _prepare(cfg, explicit, log, ddp))
        ddp.check_same({"config": run.cfg.to_dict(), "data": run.report["cache_key"], "weights": run.flat.data,
                        "iteration": run.start_iter, "batches": run.sampler.state()})
        return train_loop(run, hooks, stream)


def _prepare(cfg, explicit, log, ddp):
    run = build_run(cfg, explicit, log, ddp)
    if ddp.size > 1:  # rank 0 (main_first) fills Numba's cache; the others then only read it
        compile_step(run.model, run.optimizer, cfg.optim.batch_size, cfg.model.block_size)
    return run


def set_threads(n):
    """The kernels' threads (minigrad/kernels/threads.py) and BLAS's (matmuls run in OpenBLAS)."""
    import threadpoolctl
    minigrad.kernels.set_num_threads(n)
    threadpoolctl.threadpool_limits(n, user_api="blas")


def train_loop(run, hooks=(), stream=None, tensorboard=True):
    """Train run from its start_iter to max_iters. Ctrl-C saves the last complete step, then
    re-raises KeyboardInterrupt; a non-finite loss raises NonFiniteLossError. tensorboard=False
    keeps this process from writing TensorBoard files even with --tensorboard."""
    o, r = run.cfg.optim, run.cfg.run
    main = run.ddp.is_main  # under MPI only rank 0 prints and writes
    progress = Progress(o.max_iters, run.start_iter, r.log_interval, (stream or sys.stdout) if main else _Silent())
    _describe(run, progress.print)
    metrics = MetricsLog(run.out / "metrics.jsonl", keep_through=run.start_iter) if main else None
    board = Board(run, tensorboard and main, progress.print)  # after MetricsLog: it reads the kept lines
    stop = _StopOnCtrlC(progress.print)
    done, inside = run.start_iter, None  # iterations complete; what a step in progress changed
    try:
        for it in range(run.start_iter, o.max_iters):
            inside = (run.sampler.state(), minigrad.get_rng_state(), _optimizer_steps(run.optimizer))
            record = _step(run, it, progress)
            done, inside = it + 1, None
            evaluating = done % r.eval_interval == 0 or done == o.max_iters
            board.after_step(run, record, histograms=evaluating)  # the gradients exist only now
            if evaluating:
                record.update(_eval_and_save(run, done, progress))
                board.after_eval(run, record)
            if metrics:
                metrics.write(record)
            for hook in hooks:
                hook(run, done, record["loss"])
            asked = run.ddp.agree_stop(stop.requested)  # every rank stops after the same step
            if asked is not None:
                if not stop.requested:
                    progress.print(f"rank {asked} was interrupted: stopping after this step")
                raise KeyboardInterrupt
    except KeyboardInterrupt:
        _save_after_interrupt(run, done, inside, progress.print)
        raise
    finally:
        stop.restore()
        if metrics:
            metrics.close()
        board.close()
    return _finish(run, progress)


def _step(run, it, progress):
    """train_step on the next grad_accum_steps micro-batches (this rank's shares of the global
    batches); returns its metrics.jsonl record."""
    t0, reduced = time.perf_counter(), getattr(run.ddp, "reduce_seconds", 0.0)
    lr = run.lr_at(it)
    run.ddp.seed_dropout(run.cfg.run.seed, it)
    batches = [run.ddp.shard(run.sampler.batch("train")) for _ in range(run.cfg.optim.grad_accum_steps)]
    try:
        loss, norm = train_step(run.model, run.optimizer, batches, lr, run.cfg.optim.grad_clip, run.ddp)
    except NonFiniteLossError as e:
        kept = (f"the last good checkpoint ({run.ckpt}, iteration {run.last_saved}) is kept"
                if run.last_saved is not None else "no checkpoint had been written yet")
        raise NonFiniteLossError(f"{e} at iteration {it + 1}; stopping ({kept}). Try a lower --lr "
                                 f"or --grad-clip") from None
    tokens = sum(x.size for x, _ in batches) * run.ddp.size  # of every rank
    tok_s = tokens / max(time.perf_counter() - t0, 1e-9)
    progress.update(it + 1, loss, lr, tok_s)
    record = {"iter": it + 1, "loss": loss, "lr": lr, "tokens_per_s": round(tok_s, 1), "grad_norm": norm,
              "elapsed_s": round(progress.elapsed(), 3),  # targets with a loss (task data masks prompts),
              "counted_tokens": sum(int((y != IGNORE).sum()) for _, y in batches)}  # this process's
    if run.ddp.size > 1:  # time in the gradient Allreduce, waiting for slower ranks included
        record["allreduce_s"] = round(run.ddp.reduce_seconds - reduced, 6)
    return record


def _eval_and_save(run, it, progress):
    t0 = time.perf_counter()
    batches = {split: [run.ddp.shard(b) for b in run.sampler.eval_batches(split, run.cfg.run.eval_iters)]
               for split in ("train", "val")}
    ev = evaluate(run.model, batches, run.ddp)
    run.best_val_loss = min(run.best_val_loss, ev["val_loss"])
    run.ddp.check_same({"weights": run.flat.data})  # identical updates keep them so; a drift stops here
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


class _Silent:
    """The output stream of ranks other than 0."""

    def write(self, text):
        pass

    def flush(self):
        pass


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
    o = run.cfg.optim
    if run.ddp.size > 1 or o.grad_accum_steps > 1:
        log(f"batch: {run.ddp.size} processes x {o.grad_accum_steps} micro-batches x {o.batch_size} sequences "
            f"= {run.ddp.size * o.grad_accum_steps * o.batch_size} sequences per step")


def _finish(run, progress):
    if not run.ddp.is_main:
        return {"iter": run.cfg.optim.max_iters, "out": str(run.out), "ckpt": str(run.ckpt), "rank": run.ddp.rank}
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
    ids = prompt_ids(tokenizer, prompt)
    rows = generate(model, ids, max_new_tokens, temperature=temperature, top_k=top_k, seed=seed)
    return tokenizer.decode(rows[0][len(ids):])
