"""Median training-step time (forward, backward, clip, AdamW) of our GPT next to a PyTorch
GPT of identical shape and identical initial weights, in the same process.

    python bench/step_vs_torch.py                     # the shakespeare-char shape
    python bench/step_vs_torch.py --config large      # 6 x 384, block 256, batch 8
    python bench/step_vs_torch.py --config all --steps 30

Steps alternate between the two implementations (ours, torch, ours, ...) so that on a
shared machine both see the same load. Both start from the same weights and batches;
the first-step losses are printed as a check that they compute the same thing.
"""
import argparse
import os
import statistics
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

CONFIGS = {  # name: (n_layer, n_head, n_embd, block_size, batch_size, vocab_size)
    "shakespeare": (4, 4, 128, 64, 12, 65),
    "default": (4, 4, 128, 128, 16, 103),
    "large": (6, 6, 384, 256, 8, 65),
}


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
        return F.cross_entropy(logits.view(B * T, -1), targets.view(B * T))

    return forward, list(params.values())


def torch_optimizer(params, lr, betas, weight_decay):
    import torch
    decay = [p for p in params if p.dim() >= 2]
    other = [p for p in params if p.dim() < 2]
    return torch.optim.AdamW([{"params": decay, "weight_decay": weight_decay},
                              {"params": other, "weight_decay": 0.0}], lr=lr, betas=betas, foreach=False)


def build_pair(name, seed=0, bias=False):
    import minigrad
    from gpt.model import GPT, GPTConfig
    from gpt.optim import AdamW, param_groups
    L, H, C, T, B, V = CONFIGS[name]
    minigrad.manual_seed(seed)
    cfg = GPTConfig(vocab_size=V, block_size=T, n_layer=L, n_head=H, n_embd=C, dropout=0.0, bias=bias)
    ours = GPT(cfg)
    opt = AdamW(param_groups(ours, 0.1), lr=1e-3, betas=(0.9, 0.99), weight_decay=0.1)
    fwd, tparams = torch_gpt(ours.state_dict(), cfg)
    topt = torch_optimizer(tparams, 1e-3, (0.9, 0.99), 0.1)
    return cfg, B, (ours, opt), (fwd, tparams, topt)


def our_step(model, opt, x, y):
    from gpt.optim import clip_grad_norm_
    _, loss = model(x, y)
    opt.zero_grad()
    loss.backward()
    clip_grad_norm_(model.parameters(), 1.0)
    opt.step()
    return float(loss.item())


def torch_step(fwd, params, opt, x, y):
    import torch
    loss = fwd(x, y)
    opt.zero_grad(set_to_none=True)
    loss.backward()
    torch.nn.utils.clip_grad_norm_(params, 1.0)
    opt.step()
    return float(loss.item())


def bench(name, steps, warmup):
    import torch
    cfg, B, (ours, opt), (fwd, tparams, topt) = build_pair(name)
    rng = np.random.default_rng(0)
    ours_t, torch_t, first = [], [], None
    for i in range(warmup + steps):
        x = rng.integers(0, cfg.vocab_size, (B, cfg.block_size))
        y = rng.integers(0, cfg.vocab_size, (B, cfg.block_size))
        t0 = time.perf_counter()
        a = our_step(ours, opt, x, y)
        t1 = time.perf_counter()
        b = torch_step(fwd, tparams, topt, torch.from_numpy(x), torch.from_numpy(y))
        t2 = time.perf_counter()
        first = first or (a, b)
        if i >= warmup:
            ours_t.append(t1 - t0)
            torch_t.append(t2 - t1)
    ms_o, ms_t = 1000 * statistics.median(ours_t), 1000 * statistics.median(torch_t)
    return dict(config=name, ours_ms=ms_o, torch_ms=ms_t, ratio=ms_o / ms_t, loss0=first,
                tokens=B * cfg.block_size)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--config", choices=list(CONFIGS) + ["all"], default="shakespeare")
    parser.add_argument("--steps", type=int, default=20, help="timed steps (median reported)")
    parser.add_argument("--warmup", type=int, default=3, help="untimed steps first (JIT, caches)")
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args(argv)
    import torch
    import minigrad
    torch.set_num_threads(args.threads)
    minigrad.kernels.set_num_threads(args.threads)
    print(f"threads {args.threads} (torch {torch.__version__}, OPENBLAS_NUM_THREADS="
          f"{os.environ.get('OPENBLAS_NUM_THREADS', 'unset')}); median of {args.steps} steps "
          f"after {args.warmup} warm-up; steps interleaved\n")
    names = list(CONFIGS) if args.config == "all" else [args.config]
    print(f"{'config':<12} {'shape (L,H,C,T,B,V)':<26} {'ours ms':>9} {'torch ms':>9} {'ratio':>7} "
          f"{'ours tok/s':>11} {'first loss ours/torch':>22}")
    for name in names:
        r = bench(name, args.steps, args.warmup)
        print(f"{name:<12} {str(CONFIGS[name]):<26} {r['ours_ms']:>9.1f} {r['torch_ms']:>9.1f} "
              f"{r['ratio']:>6.2f}x {r['tokens'] / r['ours_ms'] * 1000:>11,.0f} "
              f"{r['loss0'][0]:>10.4f} / {r['loss0'][1]:.4f}", flush=True)


if __name__ == "__main__":
    main()
