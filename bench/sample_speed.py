"""Sampling speed: 256 new tokens, greedy, from the shakespeare-char model shape (4 layers,
4 heads, n_embd 128, vocab 65): our generate() with the key-value cache, ours recomputing the
whole context for every token (use_cache=False), and a plain PyTorch loop over the same
model and weights recomputing the context (no cache).

generate() runs on gpt/inference.py's forward pass on bare arrays, with or without the
cache, so "cache speed-up" compares the two algorithms on the same code. The last column is
the loop a user would write over the Tensor forward pass (model(ids) under no_grad,
recomputing), which skips the bare-array path altogether.

    python bench/sample_speed.py              # block 64 (the training shape) and block 320
    python bench/sample_speed.py --quick

Why two block sizes: GPT-2's positions are learned and absolute, so once prompt + new
tokens exceed block_size the window slides, every position shifts and the cache is stale;
from then on every token is a full forward of block_size positions, with or without cache
(gpt/sample.py). With block 64, 193 of the 256 tokens are past that point. Block 320 is
the same model with room for all 256 tokens, where the cache can do its job.
Each implementation runs in its own subprocess, rounds alternating; times are medians.
"""
import argparse
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

IMPLS = ("ours-cache", "ours-nocache", "torch-nocache", "ours-tensor-nocache")


def build(block):
    import minigrad
    from gpt.model import GPT, GPTConfig
    minigrad.manual_seed(0)
    return GPT(GPTConfig(vocab_size=65, block_size=block, n_layer=4, n_head=4, n_embd=128, bias=False))


def worker(impl, block, new_tokens, reps, threads):
    if impl.startswith("torch"):
        import torch
        torch.set_num_threads(threads)
    import minigrad
    from threadpoolctl import threadpool_limits
    from gpt.sample import generate
    minigrad.runtime.tune()  # what `gpt sample` does; process-wide, so torch's worker gets it too
    minigrad.kernels.set_num_threads(threads)
    model = build(block)
    model.eval()  # as a sampling script would (generate restores the mode it finds after each token)
    prompt = [1]
    if impl == "ours-tensor-nocache":
        threadpool_limits(threads)

        def run():
            ids = list(prompt)
            with minigrad.no_grad():
                for _ in range(new_tokens):
                    logits, _ = model(np.array([ids[-block:]]))
                    ids.append(int(logits.data[0, -1].argmax()))
            return ids
    elif impl.startswith("ours"):
        threadpool_limits(threads)
        run = lambda: generate(model, prompt, new_tokens, do_sample=False, use_cache=impl == "ours-cache")[0]  # noqa: E731
    else:
        from step_vs_torch import torch_gpt
        fwd, _ = torch_gpt(model.state_dict(), model.config)

        def run():
            ids = list(prompt)
            with torch.no_grad():
                for _ in range(new_tokens):
                    ctx = torch.tensor([ids[-block:]])
                    ids.append(int(fwd(ctx, None)[0, -1].argmax()))
            return ids
    tokens = run()  # warm-up (JIT)
    times = []
    for _ in range(reps):
        t0 = time.perf_counter()
        run()
        times.append(time.perf_counter() - t0)
    print(json.dumps(dict(times=times, tokens=tokens)))


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tokens", type=int, default=256)
    parser.add_argument("--blocks", default="64,320")
    parser.add_argument("--reps", type=int, default=3, help="timed runs per worker")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--quick", action="store_true", help="1 round of 2 runs")
    parser.add_argument("--worker", choices=IMPLS, help=argparse.SUPPRESS)
    parser.add_argument("--block", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        return worker(args.worker, args.block, args.tokens, args.reps, args.threads)
    rounds, reps = (1, 2) if args.quick else (args.rounds, args.reps)
    print(f"{args.tokens} new tokens, greedy, prompt of 1 token, model 4x4x128 vocab 65; {args.threads} threads; "
          f"each implementation in its own subprocess, {rounds} round(s) x {reps} runs, medians\n")
    print(f"{'block':>5} {'ours cache s':>13} {'ours no cache s':>16} {'torch no cache s':>17} "
          f"{'cache speed-up':>15} {'cache vs torch':>15}  same tokens {'Tensor-path no cache s':>23}")
    for block in map(int, args.blocks.split(",")):
        res = {i: [] for i in IMPLS}
        toks = {}
        for r in range(rounds):
            for impl in (IMPLS if r % 2 == 0 else IMPLS[::-1]):
                cmd = [sys.executable, __file__, "--worker", impl, "--block", str(block), "--tokens",
                       str(args.tokens), "--reps", str(reps), "--threads", str(args.threads)]
                out = subprocess.run(cmd, capture_output=True, text=True)
                if out.returncode:
                    sys.exit(f"{impl} failed:\n{out.stderr}")
                d = json.loads(out.stdout.strip().splitlines()[-1])
                res[impl] += d["times"]
                toks[impl] = d["tokens"]
        med = {i: statistics.median(t) for i, t in res.items()}
        same = len({tuple(t) for t in toks.values()}) == 1
        print(f"{block:>5} {med['ours-cache']:>13.3f} {med['ours-nocache']:>16.3f} {med['torch-nocache']:>17.3f} "
              f"{med['ours-nocache'] / med['ours-cache']:>14.1f}x {med['torch-nocache'] / med['ours-cache']:>14.2f}x  "
              f"{str(same):>11} {med['ours-tensor-nocache']:>23.3f}", flush=True)


if __name__ == "__main__":
    main()
