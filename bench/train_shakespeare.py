"""nanoGPT's shakespeare-char CPU recipe end to end: final val loss and wall time.

    python bench/train_shakespeare.py                 # ours only
    python bench/train_shakespeare.py --torch         # ours, then PyTorch on the same recipe
    python bench/train_shakespeare.py --max-iters 200 --torch   # a quick look
    python bench/train_shakespeare.py --torch --seeds 1337,1,2,3,4   # the spread over seeds
    python bench/train_shakespeare.py --torch --independent --seeds 1337,1,2   # PyTorch's own draws

The corpus is read from ../shared/data/tinyshakespeare.txt beside the repository (never
copied into it). Both runs use the same data, batches (same seeded sampler), initial
weights, LR schedule and in-training evaluations, so the wall times compare like for like.
The PyTorch run is a fresh subprocess that imports torch first: in one process the two
frameworks' thread settings interfere. The final val loss is the mean over 200 random val
batches (the same 200 for both).

With --independent the PyTorch run is not a replay of ours: it draws its initial weights
(same distributions) and its training batches from torch's own generator, seeded with the
same number, the way nanoGPT does. The two runs are then two independent samples of the
recipe, which checks the recipe itself (init, sampling, schedule), not only the engine.

One seed is one draw: the seed picks the initial weights and every batch, and moves the
final val loss by a few hundredths, more than any difference between the engines (which
agree to 4 decimals on the same seed). --seeds runs several and reports mean and spread.
Targets: val loss <= 1.90 (issue 5); wall time <= 2x PyTorch's (issue 5), <= 1x (issue 6).
"""
import statistics
import argparse
import json
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
    from gpt.train import build_run, train_loop
    from gpt.train.loop import set_threads
    minigrad.runtime.tune()  # as `gpt train`
    set_threads(cfg.run.threads)
    t0 = time.perf_counter()
    run = build_run(cfg)
    setup_s = time.perf_counter() - t0
    wall = train_loop(run, stream=sys.stdout)["elapsed_s"]  # the loop and its evaluations, as timed for torch
    run.model.eval()
    with minigrad.no_grad():
        val = final_val_loss(lambda x, y: float(run.model(x, y)[1].item()), run.sampler, eval_batches)
    return dict(name="minigrad", val_loss=val, wall_s=wall, setup_s=setup_s), run


def redraw_init(state_dict, params, n_layer):
    """Fresh initial weights from torch's generator with our init's distributions: N(0, 0.02),
    0.02/sqrt(2 * n_layer) on the residual projections; layer-norm gains and biases stay 1/0."""
    import torch
    names = [k for k in state_dict if k != "lm_head.weight"]  # torch_gpt's parameter order
    with torch.no_grad():
        for name, p in zip(names, params):
            if name.endswith("c_proj.weight"):
                p.normal_(0.0, 0.02 / np.sqrt(2 * n_layer))
            elif name.endswith(".weight") and ".ln_" not in name:
                p.normal_(0.0, 0.02)


def torch_batches(ids, block_size, batch_size):
    """Random contiguous training windows drawn with torch.randint, as nanoGPT draws them."""
    import torch
    ids = torch.from_numpy(np.asarray(ids, dtype=np.int64))
    while True:
        ix = torch.randint(len(ids) - block_size, (batch_size,)).tolist()
        yield (torch.stack([ids[i:i + block_size] for i in ix]).numpy(),
               torch.stack([ids[i + 1:i + 1 + block_size] for i in ix]).numpy())


def run_torch(cfg, eval_batches, independent=False):
    """The same recipe in PyTorch, from the weights our run started from (same seed), or
    with independent=True from torch's own draws of the weights and training batches."""
    import torch
    torch.set_num_threads(cfg.run.threads)
    from gpt.train import build_run
    from step_vs_torch import torch_gpt, torch_optimizer
    m, o, r = cfg.model, cfg.optim, cfg.run
    cfg.run.out = tempfile.mkdtemp(prefix="shakespeare-torch-")
    # Our thread settings stay untouched here: resizing OpenBLAS's pool (threadpoolctl) in this
    # process slowed torch's steps ~10x on this machine, though torch does not call that BLAS.
    cfg.run.threads = None
    ref = build_run(cfg, log=lambda m: print(m, file=sys.stderr))  # our data, sampler and initial weights
    fwd, params = torch_gpt(ref.model.state_dict(), ref.model.config)
    opt = torch_optimizer(params, o.lr, (o.beta1, o.beta2), o.weight_decay)
    sampler = ref.sampler
    next_train = lambda: sampler.batch("train")  # noqa: E731
    if independent:
        torch.manual_seed(r.seed)
        redraw_init(ref.model.state_dict(), params, m.n_layer)
        next_train = torch_batches(sampler.splits["train"], sampler.block_size, sampler.batch_size).__next__

    def loss_of(x, y):
        return fwd(torch.from_numpy(x), torch.from_numpy(y))
    t0 = time.perf_counter()
    for it in range(o.max_iters):
        for g in opt.param_groups:
            g["lr"] = ref.lr_at(it)
        loss = loss_of(*next_train())
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


def torch_subprocess(args, seed):
    cmd = [sys.executable, __file__, "--worker-torch", "--data", args.data, "--threads", str(args.threads),
           "--eval-batches", str(args.eval_batches), "--seeds", str(seed)]
    cmd += ["--max-iters", str(args.max_iters)] if args.max_iters else []
    cmd += ["--independent"] if args.independent else []
    proc = subprocess.run(cmd, stdout=subprocess.PIPE, text=True)  # its progress goes to stderr
    if proc.returncode:
        sys.exit("error: the PyTorch run failed")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def config(args, out, seed):
    from gpt.config import build_config
    flags = dict(preset="shakespeare-char", data=args.data, out=out, sample_tokens=0, threads=args.threads,
                 log_interval=100, seed=seed)
    if args.max_iters:
        flags["max_iters"] = args.max_iters
    return build_config(flags)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", default=str(DEFAULT_DATA), help="tinyshakespeare.txt")
    parser.add_argument("--torch", action="store_true", help="also run the recipe in PyTorch")
    parser.add_argument("--independent", action="store_true",
                        help="with --torch: PyTorch draws its own initial weights and batches")
    parser.add_argument("--max-iters", type=int, default=None, help="override the preset's 2000")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--eval-batches", type=int, default=200, help="batches in the final val loss")
    parser.add_argument("--seeds", default="1337", help="comma-separated seeds, one run each (1337: nanoGPT's)")
    parser.add_argument("--out", default=None, help="run folder (default: a temporary one per run)")
    parser.add_argument("--worker-torch", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    seeds = [int(s) for s in args.seeds.split(",")]
    args.torch = args.torch or args.independent
    if not Path(args.data).exists():
        sys.exit(f"error: corpus not found: {args.data}")
    if args.worker_torch:
        print(json.dumps(run_torch(config(args, None, seeds[0]), args.eval_batches, args.independent)))
        return
    rows = []
    for seed in seeds:
        cfg = config(args, args.out if args.out and len(seeds) == 1 else tempfile.mkdtemp(prefix="shakespeare-"),
                     seed)
        rows.append(dict(seed=seed, ours=run_ours(cfg, args.eval_batches)[0],
                         torch=torch_subprocess(args, seed) if args.torch else None))
    report(rows, cfg, args)


def report(rows, cfg, args):
    torch_run = ("" if not args.torch else ", PyTorch on its own init and batches" if args.independent
                 else ", PyTorch replaying our init and batches")
    print(f"\nshakespeare-char, {cfg.optim.max_iters} iters, {args.threads} threads{torch_run}; final val loss "
          f"= mean of {args.eval_batches} val batches; wall = training loop incl. its evals\n")
    print(f"{'seed':>6} {'ours val':>9} {'torch val':>10} {'ours s':>8} {'torch s':>8} {'time ratio':>11}")
    for r in rows:
        o, t = r["ours"], r["torch"]
        theirs = (f"{t['val_loss']:>10.4f} {o['wall_s']:>8.1f} {t['wall_s']:>8.1f} "
                  f"{o['wall_s'] / t['wall_s']:>10.2f}x") if t else f"{'-':>10} {o['wall_s']:>8.1f} {'-':>8} {'-':>11}"
        print(f"{r['seed']:>6} {o['val_loss']:>9.4f} {theirs}")
    ours = [r["ours"]["val_loss"] for r in rows]
    if len(rows) > 1:
        theirs = [r["torch"]["val_loss"] for r in rows] if args.torch else None
        summaries = [("mean", lambda v: f"{statistics.mean(v):.4f}"), ("sd", lambda v: f"{statistics.stdev(v):.4f}")]
        summaries += [(f"<={b:.2f}", lambda v, b=b: f"{sum(x <= b for x in v)} of {len(v)}") for b in (1.90, 1.91)]
        for label, summary in summaries:
            print(f"{label:>6} {summary(ours):>9} {summary(theirs) if theirs else '-':>10}")
    ratios = [r["ours"]["wall_s"] / r["torch"]["wall_s"] for r in rows if r["torch"]]
    mean_val = statistics.mean(ours)
    print(f"target val loss <= 1.90 ({'mean over seeds' if len(rows) > 1 else 'seed ' + str(rows[0]['seed'])}):"
          f" {mean_val:.4f} -> {'met' if mean_val <= 1.90 else 'NOT met'}")
    if ratios:
        ratio = statistics.median(ratios)
        print(f"wall time vs torch (median ratio): {ratio:.2f}x -> <= 2x {'met' if ratio <= 2 else 'NOT met'}, "
              f"<= 1x {'met' if ratio <= 1 else 'NOT met'}")


if __name__ == "__main__":
    main()
