"""Median training-step time (forward, backward, clip, AdamW) of our GPT next to a PyTorch
GPT of identical shape and identical initial weights, and each one's peak memory.

    python bench/step_vs_torch.py                     # the shakespeare-char shape
    python bench/step_vs_torch.py --config large      # 6 x 384, block 256, batch 8
    python bench/step_vs_torch.py --config all --quick

Each framework runs in its own fresh subprocess (never both in one process: torch's OpenMP
threads spin after each of its ops while ours run, and OpenBLAS's after each of ours). Rounds alternate the order
(ours, torch, torch, ours, ...) so that load from other processes hits both alike; the
step times of all rounds are pooled and the medians compared. Threads: torch.set_num_threads
(its intra-op pool) for torch; BLAS (threadpoolctl) and Numba limited to the same count for
ours. Peak memory is each worker's VmHWM (peak resident set, /proc/self/status) after its
steps, minus nothing; "after import" is VmRSS after importing the framework and building
the model, so the difference is what the steps themselves added.
Both start from the same weights and batches; first-step losses are printed as a check.
"""
import argparse
import json
import subprocess
import statistics
import sys
import time
from pathlib import Path

import numpy as np

from proc_status import status_kib

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

CLOCKS = {"wall": time.perf_counter, "cpu": time.process_time}
CONFIGS = {  # name: (n_layer, n_head, n_embd, block_size, batch_size, vocab_size)
    "shakespeare": (4, 4, 128, 64, 12, 65),
    "default": (4, 4, 128, 128, 16, 103),
    "large": (6, 6, 384, 256, 8, 65),
    "gpt2": (12, 12, 768, 64, 4, 50257),   # GPT-2 124M at llm.c's CPU batch (with biases, as GPT-2)
}
BIAS = {"gpt2": True}   # the small configs are nanoGPT's bias-free variant


def torch_gpt(state_dict, cfg):
    """A PyTorch GPT with our (HF) parameter names and (in, out) weight layout, loaded with
    our weights, so both models start identical."""
    import torch
    import torch.nn.functional as F

    params = {k: torch.nn.Parameter(torch.tensor(np.array(v))) for k, v in state_dict.items()
              if k != "lm_head.weight"}

    def linear(x, name):
        y = x @ params[name + ".weight"]
        b = params.get(name + ".bias")
        return y + b if b is not None else y

    def layer_norm(x, name):
        return F.layer_norm(x, (cfg.n_embd,), params[name + ".weight"], params.get(name + ".bias"), 1e-5)

    def forward(idx, targets):
        B, T = idx.shape
        C, H = cfg.n_embd, cfg.n_head
        x = params["transformer.wte.weight"][idx] + params["transformer.wpe.weight"][:T]
        for i in range(cfg.n_layer):
            p = f"transformer.h.{i}"
            q, k, v = linear(layer_norm(x, p + ".ln_1"), p + ".attn.c_attn").split(C, dim=2)
            q, k, v = (t.view(B, T, H, C // H).transpose(1, 2) for t in (q, k, v))
            y = F.scaled_dot_product_attention(q, k, v, is_causal=True).transpose(1, 2).reshape(B, T, C)
            x = x + linear(y, p + ".attn.c_proj")
            h = F.gelu(linear(layer_norm(x, p + ".ln_2"), p + ".mlp.c_fc"), approximate="tanh")
            x = x + linear(h, p + ".mlp.c_proj")
        logits = layer_norm(x, "transformer.ln_f") @ params["transformer.wte.weight"].T
        if targets is None:  # sampling (bench/sample_speed.py)
            return logits
        return F.cross_entropy(logits.view(B * T, -1), targets.view(B * T))

    return forward, list(params.values())


def torch_optimizer(params, lr, betas, weight_decay):
    import torch
    decay = [p for p in params if p.dim() >= 2]
    other = [p for p in params if p.dim() < 2]
    return torch.optim.AdamW([{"params": decay, "weight_decay": weight_decay},
                              {"params": other, "weight_decay": 0.0}], lr=lr, betas=betas, foreach=False)


def build_pair(name, seed=0, bias=None, with_torch=True):
    import minigrad
    from minigrad.nn.flat import FlatParameters
    from gpt.model import GPT, GPTConfig
    L, H, C, T, B, V = CONFIGS[name]
    bias = BIAS.get(name, False) if bias is None else bias
    minigrad.manual_seed(seed)
    cfg = GPTConfig(vocab_size=V, block_size=T, n_layer=L, n_head=H, n_embd=C, dropout=0.0, bias=bias)
    ours = GPT(cfg)
    opt = ours.configure_optimizers(0.1, 1e-3, (0.9, 0.99))
    FlatParameters([p for group in opt.param_groups for p in group["params"]])  # as `gpt train` does
    if not with_torch:
        return cfg, B, (ours, opt), (None, None, None)
    fwd, tparams = torch_gpt(ours.state_dict(), cfg)
    topt = torch_optimizer(tparams, 1e-3, (0.9, 0.99), 0.1)
    return cfg, B, (ours, opt), (fwd, tparams, topt)


def our_step(model, opt, x, y):
    from gpt.train.step import train_step  # the step `gpt train` runs: forward, backward, clip, AdamW
    return train_step(model, opt, [(x, y)], 1e-3, 1.0)[0]  # one micro-batch


def torch_step(fwd, params, opt, x, y):
    import torch
    loss = fwd(x, y)
    opt.zero_grad(set_to_none=True)
    loss.backward()
    torch.nn.utils.clip_grad_norm_(params, 1.0)
    opt.step()
    return float(loss.item())


def worker(framework, name, steps, warmup, threads, clock=time.perf_counter):
    """Run one framework's steps in this process; print one JSON line of results."""
    if framework == "torch":
        import torch
        torch.set_num_threads(threads)
    import minigrad
    from threadpoolctl import threadpool_limits
    minigrad.runtime.tune()  # what `gpt train` does; process-wide, so torch's worker gets it too
    cfg, B, (ours, opt), (fwd, tparams, topt) = build_pair(name, with_torch=framework == "torch")
    flops = ours.flops_per_token() * B * cfg.block_size  # one step's: 6N + attention, per token
    if framework == "ours":
        minigrad.kernels.set_num_threads(threads)
        threadpool_limits(threads)
        step = lambda x, y: our_step(ours, opt, x, y)  # noqa: E731
    else:
        del ours, opt
        step = lambda x, y: torch_step(fwd, tparams, topt, torch.from_numpy(x), torch.from_numpy(y))  # noqa: E731
    rss0 = status_kib("VmRSS")
    rng = np.random.default_rng(0)
    times, first = [], None
    for i in range(warmup + steps):
        x = rng.integers(0, cfg.vocab_size, (B, cfg.block_size))
        y = rng.integers(0, cfg.vocab_size, (B, cfg.block_size))
        t0 = clock()
        loss = step(x, y)
        if i >= warmup:
            times.append(clock() - t0)
        first = loss if first is None else first
    print(json.dumps(dict(times=times, loss0=first, peak_kb=status_kib("VmHWM"), rss0_kb=rss0,
                          tokens=B * cfg.block_size, flops=flops)))


def step_gemms(name):
    """(M, K, N) of every matrix product in one training step of config `name`: each weight's
    forward product and its two gradient products (dx = dy W^T, dW = x^T dy), the lm_head's
    too, and attention's QK^T and AV (full T x T, as the FLOP estimate counts them)."""
    L, H, C, T, B, V = CONFIGS[name]
    M, D = B * T, C // H
    weights = [(C, 3 * C), (C, C), (C, 4 * C), (4 * C, C)] * L + [(C, V)]
    shapes = []
    for K, N in weights:
        shapes += [(M, K, N), (M, N, K), (K, M, N)]
    for _ in range(L * B * H):  # per head: forward QK^T, AV; backward two products each
        shapes += [(T, D, T), (T, T, D)] * 3
    return shapes


def sgemm_worker(name, threads, reps=5):
    """GFLOP/s of float32 np.matmul on the step's own GEMM shapes (each timed alone, median of
    reps, summed): what BLAS alone delivers on this step's products at these threads."""
    from threadpoolctl import threadpool_limits
    threadpool_limits(threads)
    rng = np.random.default_rng(0)
    total_flops, total_s, cache = 0.0, 0.0, {}
    for shape in step_gemms(name):
        if shape not in cache:
            M, K, N = shape
            a, b = rng.standard_normal((M, K), np.float32), rng.standard_normal((K, N), np.float32)
            out = np.empty((M, N), np.float32)
            times = []
            for _ in range(reps + 1):
                t0 = time.perf_counter()
                np.matmul(a, b, out=out)
                times.append(time.perf_counter() - t0)
            cache[shape] = statistics.median(times[1:])
        total_flops += 2.0 * shape[0] * shape[1] * shape[2]
        total_s += cache[shape]
    print(json.dumps(dict(gflops=total_flops / total_s / 1e9, gemm_ms=1000 * total_s)))


def run_worker(framework, name, steps, warmup, threads, clock):
    cmd = [sys.executable, __file__, "--worker", framework, "--config", name, "--steps", str(steps),
           "--warmup", str(warmup), "--threads", str(threads), "--clock", clock]
    out = subprocess.run(cmd, capture_output=True, text=True)
    if out.returncode:
        sys.exit(f"{framework} worker failed:\n{out.stderr}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def bench(name, steps, warmup, rounds, threads, clock):
    res = {"ours": [], "torch": []}
    for r in range(rounds):
        order = ("ours", "torch") if r % 2 == 0 else ("torch", "ours")
        for fw in order:
            res[fw].append(run_worker(fw, name, steps, warmup, threads, clock))
    out = {}
    for fw, runs in res.items():
        out[fw] = dict(ms=1000 * statistics.median([t for r in runs for t in r["times"]]),
                       peak_mb=max(r["peak_kb"] for r in runs) / 1024,
                       base_mb=max(r["rss0_kb"] for r in runs) / 1024, loss0=runs[0]["loss0"],
                       tokens=runs[0]["tokens"], flops=runs[0]["flops"])
    return out


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--config", choices=list(CONFIGS) + ["all"], default="shakespeare")
    parser.add_argument("--steps", type=int, default=None, help="timed steps per round (default 20 small, 5 large)")
    parser.add_argument("--warmup", type=int, default=3, help="untimed steps first in each worker (JIT, caches)")
    parser.add_argument("--rounds", type=int, default=4, help="worker runs per framework, order alternating")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--quick", action="store_true", help="2 rounds, fewer steps")
    parser.add_argument("--clock", choices=list(CLOCKS), default="wall",
                        help="cpu: each worker's CPU time (all its threads), steadier than wall time on a "
                             "loaded machine but it counts spinning threads: use it with --threads 1")
    parser.add_argument("--worker", choices=("ours", "torch", "sgemm"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    names = list(CONFIGS) if args.config == "all" else [args.config]
    if args.worker == "sgemm":
        return sgemm_worker(names[0], args.threads)
    if args.worker:
        return worker(args.worker, names[0], args.steps, args.warmup, args.threads, CLOCKS[args.clock])
    import torch
    rounds = 2 if args.quick else args.rounds
    print(f"threads {args.threads} per framework (torch {torch.__version__} intra-op threads; ours: BLAS via "
          f"threadpoolctl and Numba); each framework in its own subprocess, {rounds} rounds alternating "
          f"order; median over all timed steps, {args.warmup} warm-up steps per worker\n")
    print(f"{'config':<12} {'shape (L,H,C,T,B,V)':<26} {'steps':>5} {'ours ms':>8} {'torch ms':>9} {'ratio':>6} "
          f"{'ours peak MB':>12} {'torch peak MB':>13} {'mem ratio':>9} {'first loss ours/torch':>22}")
    for name in names:
        steps = args.steps or ((3 if args.quick else 5) if name in ("large", "gpt2") else (10 if args.quick else 20))
        r = bench(name, steps, args.warmup, rounds, args.threads, args.clock)
        o, t = r["ours"], r["torch"]
        print(f"{name:<12} {str(CONFIGS[name]):<26} {steps * rounds:>5} {o['ms']:>8.1f} {t['ms']:>9.1f} "
              f"{o['ms'] / t['ms']:>5.2f}x {o['peak_mb']:>12.0f} {t['peak_mb']:>13.0f} "
              f"{o['peak_mb'] / t['peak_mb']:>8.2f}x {o['loss0']:>10.4f} / {t['loss0']:.4f}", flush=True)
        print(f"{'':<12} {'  RSS after import+model (MB)':<26} {'':>5} {'':>8} {'':>9} {'':>6} "
              f"{o['base_mb']:>12.0f} {t['base_mb']:>13.0f}   steps added: ours {o['peak_mb'] - o['base_mb']:.0f} MB, "
              f"torch {t['peak_mb'] - t['base_mb']:.0f} MB", flush=True)
        if args.clock == "wall":
            print(gflops_line(name, o["flops"], o["ms"], t["ms"], args.threads), flush=True)


def gflops_line(name, flops, ours_ms, torch_ms, threads):
    """The step's achieved GFLOP/s (flops: model.flops_per_token() x tokens, 6N + attention),
    ours and torch's, next to BLAS's on the step's own GEMMs."""
    cmd = [sys.executable, __file__, "--worker", "sgemm", "--config", name, "--threads", str(threads)]
    out = subprocess.run(cmd, capture_output=True, text=True, check=True)
    sg = json.loads(out.stdout.strip().splitlines()[-1])
    return (f"{'':<12} {'  GFLOP/s of the whole step':<26} {'':>5} {flops / ours_ms / 1e6:>8.1f} "
            f"{flops / torch_ms / 1e6:>9.1f}   ({flops / 1e9:.2f} GFLOP/step); sgemm on the step's own GEMM "
            f"shapes: {sg['gflops']:.1f} GFLOP/s ({sg['gemm_ms']:.0f} ms for them all); ours reaches "
            f"{flops / ours_ms / 1e6 / sg['gflops']:.0%} of it")


if __name__ == "__main__":
    main()
