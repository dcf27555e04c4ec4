"""nanoGPT's shakespeare-char CPU recipe end to end: final val loss and wall time.

    python bench/train_shakespeare.py                 # ours only
    python bench/train_shakespeare.py --torch         # ours, then PyTorch on the same recipe
    python bench/train_shakespeare.py --max-iters 200 --torch   # a quick look

The corpus is read from ../shared/data/tinyshakespeare.txt beside the repository (never
copied into it). Both runs use the same data, batches (same seeded sampler), initial
weights, LR schedule and in-training evaluations, so the wall times compare like for like.
The PyTorch run is a fresh subprocess that imports torch first: in one process the two
thread pools interfere (minigrad sets OMP_WAIT_POLICY=PASSIVE, which torch's OpenMP would
then read too). The final val loss is the mean over 200 random val batches (the same 200
for both).
Target: val loss <= 1.90 within 2x PyTorch's wall time.
"""
import argparse
import json
import math
import subprocess
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
    wall = trainer.run()["elapsed_s"]  # the loop and its evaluations, as timed for torch
    trainer.model.eval()
    with minigrad.no_grad():
        val = final_val_loss(lambda x, y: float(trainer.model(x, y)[1].item()), trainer.sampler, eval_batches)
    return dict(name="minigrad", val_loss=val, wall_s=wall, setup_s=setup_s), trainer


def run_torch(cfg, eval_batches):
    """The same recipe in PyTorch, from the weights our run started from (same seed)."""
    import torch  # first, before minigrad sets its OpenMP wait policy
    torch.set_num_threads(cfg.run.threads)
    from gpt.train import Trainer
    from step_vs_torch import torch_gpt, torch_optimizer
    m, o, r = cfg.model, cfg.optim, cfg.run
    cfg.run.out = tempfile.mkdtemp(prefix="shakespeare-torch-")
    # Our thread settings stay untouched here: resizing OpenBLAS's pool (threadpoolctl) in this
    # process slowed torch's steps ~10x on this machine, though torch does not call that BLAS.
    cfg.run.threads = None
    ref = Trainer(cfg, stream=sys.stderr).setup()  # our data, sampler and initial weights
    fwd, params = torch_gpt(ref.model.state_dict(), ref.model.config)
    opt = torch_optimizer(params, o.lr, (o.beta1, o.beta2), o.weight_decay)
    sampler = ref.sampler

    def loss_of(x, y):
        return fwd(torch.from_numpy(x), torch.from_numpy(y))
    t0 = time.perf_counter()
    for it in range(o.max_iters):
        for g in opt.param_groups:
            g["lr"] = ref.lr_at(it)
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
                  f"[{time.perf_counter() - t0:.0f}s]", file=sys.stderr, flush=True)
    wall = time.perf_counter() - t0
    with torch.no_grad():
        val = final_val_loss(lambda x, y: loss_of(x, y).item(), sampler, eval_batches)
    return dict(name="pytorch", val_loss=val, wall_s=wall, setup_s=0.0)


def torch_subprocess(args):
    cmd = [sys.executable, __file__, "--worker-torch", "--data", args.data, "--threads", str(args.threads),
           "--eval-batches", str(args.eval_batches)] + (["--max-iters", str(args.max_iters)] if args.max_iters else [])
    proc = subprocess.run(cmd, stdout=subprocess.PIPE, text=True)  # its progress goes to stderr
    if proc.returncode:
        sys.exit("error: the PyTorch run failed")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def config(args, out):
    from gpt.config import build_config
    flags = dict(preset="shakespeare-char", data=args.data, out=out, sample_tokens=0, threads=args.threads,
                 log_interval=100)
    if args.max_iters:
        flags["max_iters"] = args.max_iters
    return build_config(flags)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", default=str(DEFAULT_DATA), help="tinyshakespeare.txt")
    parser.add_argument("--torch", action="store_true", help="also run the recipe in PyTorch")
    parser.add_argument("--max-iters", type=int, default=None, help="override the preset's 2000")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--eval-batches", type=int, default=200, help="batches in the final val loss")
    parser.add_argument("--out", default=None, help="run folder (default: a temporary one)")
    parser.add_argument("--worker-torch", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if not Path(args.data).exists():
        sys.exit(f"error: corpus not found: {args.data}")
    if args.worker_torch:
        print(json.dumps(run_torch(config(args, None), args.eval_batches)))
        return
    cfg = config(args, args.out or tempfile.mkdtemp(prefix="shakespeare-"))
    results = [run_ours(cfg, args.eval_batches)[0]]
    if args.torch:
        results.append(torch_subprocess(args))
    print(f"\nshakespeare-char, {cfg.optim.max_iters} iters, {args.threads} threads; final val loss "
          f"= mean of {args.eval_batches} val batches; wall = training loop incl. its evals\n")
    print(f"{'impl':<10} {'val loss':>9} {'wall s':>8} {'vs torch':>9}")
    base = results[-1]["wall_s"] if args.torch else math.nan
    for r in results:
        print(f"{r['name']:<10} {r['val_loss']:>9.4f} {r['wall_s']:>8.1f} {r['wall_s'] / base:>8.2f}x")
    ours = results[0]
    print(f"target: val loss <= 1.90 -> {'met' if ours['val_loss'] <= 1.90 else 'NOT met'}"
          + (f"; wall <= 2x torch -> {'met' if ours['wall_s'] <= 2 * base else 'NOT met'}" if args.torch else ""))


if __name__ == "__main__":
    main()
