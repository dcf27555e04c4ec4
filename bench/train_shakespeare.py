"""nanoGPT's shakespeare-char CPU recipe end to end: final val loss and wall time.

    python bench/train_shakespeare.py                 # ours only
    python bench/train_shakespeare.py --torch         # ours, then PyTorch on the same recipe
    python bench/train_shakespeare.py --max-iters 200 --torch   # a quick look

The corpus is read from ../shared/data/tinyshakespeare.txt beside the repository (never
copied into it). Both runs use the same data, batches (same seeded sampler), initial
weights, LR schedule and in-training evaluations, so the wall times compare like for like.
The final val loss is the mean over 200 random val batches (the same 200 for both).
Target: val loss <= 1.90 within 2x PyTorch's wall time.
"""
import argparse
import io
import math
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

DEFAULT_DATA = Path(__file__).resolve().parents[1].parent / "shared/data/tinyshakespeare.txt"


def final_val_loss(loss_fn, sampler, n):
    """Mean loss over n val batches drawn from a fixed generator (the same for every model)."""
    rng = np.random.default_rng(12345)
    return float(np.mean([loss_fn(*sampler.batch("val", rng)) for _ in range(n)]))


def run_ours(cfg, eval_batches):
    import minigrad
    from gpt.train import Trainer
    t0 = time.perf_counter()
    trainer = Trainer(cfg, stream=sys.stdout).setup()
    setup_s = time.perf_counter() - t0
    trainer.run()
    wall = time.perf_counter() - t0 - setup_s
    trainer.model.eval()
    with minigrad.no_grad():
        val = final_val_loss(lambda x, y: float(trainer.model(x, y)[1].item()), trainer.sampler, eval_batches)
    return dict(name="minigrad", val_loss=val, wall_s=wall, setup_s=setup_s), trainer


def run_torch(cfg, trainer, eval_batches):
    """The same recipe in PyTorch, from our initial weights (re-drawn with the same seed)."""
    import minigrad
    import torch
    from gpt.data import BatchSampler
    from gpt.model import GPT
    from step_vs_torch import torch_gpt, torch_optimizer
    m, o, r = cfg.model, cfg.optim, cfg.run
    minigrad.manual_seed(r.seed)
    init = GPT(trainer.model.config)  # the weights our run started from
    fwd, params = torch_gpt(init.state_dict(), trainer.model.config)
    opt = torch_optimizer(params, o.lr, (o.beta1, o.beta2), o.weight_decay)
    sampler = BatchSampler(trainer.ids, m.block_size, o.batch_size, r.seed)

    def loss_of(x, y):
        return fwd(torch.from_numpy(x), torch.from_numpy(y))
    t0 = time.perf_counter()
    for it in range(o.max_iters):
        for g in opt.param_groups:
            g["lr"] = trainer.lr_at(it)
        loss = loss_of(*sampler.batch("train"))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, o.grad_clip)
        opt.step()
        if (it + 1) % r.eval_interval == 0 or it + 1 == o.max_iters:
            with torch.no_grad():
                ev = {s: np.mean([loss_of(x, y).item() for x, y in sampler.eval_batches(s, r.eval_iters)])
                      for s in ("train", "val")}
            print(f"torch eval @ {it + 1}: train loss {ev['train']:.4f}, val loss {ev['val']:.4f} "
                  f"[{time.perf_counter() - t0:.0f}s]", flush=True)
    wall = time.perf_counter() - t0
    with torch.no_grad():
        val = final_val_loss(lambda x, y: loss_of(x, y).item(), sampler, eval_batches)
    return dict(name="pytorch", val_loss=val, wall_s=wall, setup_s=0.0)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", default=str(DEFAULT_DATA), help="tinyshakespeare.txt")
    parser.add_argument("--torch", action="store_true", help="also run the recipe in PyTorch")
    parser.add_argument("--max-iters", type=int, default=None, help="override the preset's 2000")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--eval-batches", type=int, default=200, help="batches in the final val loss")
    parser.add_argument("--out", default=None, help="run folder (default: a temporary one)")
    args = parser.parse_args(argv)
    if not Path(args.data).exists():
        sys.exit(f"error: corpus not found: {args.data}")
    from gpt.config import build_config
    out = args.out or tempfile.mkdtemp(prefix="shakespeare-")
    flags = dict(preset="shakespeare-char", data=args.data, out=out, sample_tokens=0, threads=args.threads,
                 log_interval=100)
    if args.max_iters:
        flags["max_iters"] = args.max_iters
    cfg = build_config(flags)
    results = []
    ours, trainer = run_ours(cfg, args.eval_batches)
    results.append(ours)
    if args.torch:
        import torch
        torch.set_num_threads(args.threads)
        results.append(run_torch(cfg, trainer, args.eval_batches))
    print(f"\nshakespeare-char, {cfg.optim.max_iters} iters, {args.threads} threads; final val loss "
          f"= mean of {args.eval_batches} val batches; wall = training loop incl. its evals\n")
    print(f"{'impl':<10} {'val loss':>9} {'wall s':>8} {'vs torch':>9}")
    base = results[-1]["wall_s"] if args.torch else math.nan
    for r in results:
        print(f"{r['name']:<10} {r['val_loss']:>9.4f} {r['wall_s']:>8.1f} {r['wall_s'] / base:>8.2f}x")
    print(f"target: val loss <= 1.90 -> {'met' if ours['val_loss'] <= 1.90 else 'NOT met'}"
          + (f"; wall <= 2x torch -> {'met' if ours['wall_s'] <= 2 * base else 'NOT met'}" if args.torch else ""))


if __name__ == "__main__":
    main()
