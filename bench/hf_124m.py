"""A 124M GPT-2 checkpoint folder, Hugging Face layout: how fast `GPT.from_pretrained` loads it,
how much memory that takes, and how fast it samples, with and without the key-value cache, in
float32 and with weight-only int8 (gpt/quantize.py); transformers' GPT2LMHeadModel on the same
folder as the reference when it is installed. Next to tokens/s: the bound memory bandwidth
sets (bench/bandwidth.py's read bandwidth on the same threads / the weight bytes a token reads).

    python bench/hf_124m.py            # 3 load rounds, 3 timed cached generations (minutes; more on a busy machine)
    python bench/hf_124m.py --quick    # 1 load round, 1 timed generation each way

The folder (random weights, GPT-2's 124M shape: 12 layers, 12 heads, n_embd 768, vocab
50257, 1024 positions) is written into a temp dir outside the repo by transformers when
installed (so it is a folder as the ecosystem writes it), else by our own save_pretrained.
Every measurement runs in a fresh subprocess: load time is from the call to the returned
model (imports excluded), memory is the process's peak RSS (VmHWM) after loading and after
sampling, next to its RSS once the libraries are imported. Sampling is greedy, 64 new
tokens from a 16-token prompt, after an untimed 4-token warm-up (Numba's JIT, BLAS pools).
"""
import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from proc_status import status_kib  # noqa: E402

PROMPT_LEN, NEW_TOKENS = 16, 64


def prompt_ids():
    import numpy as np
    return np.random.default_rng(0).integers(0, 50257, PROMPT_LEN).tolist()


def build_folder(folder):
    """Write a random 124M GPT-2 folder; returns who wrote it."""
    try:
        import torch
        import transformers
    except ImportError:
        import minigrad
        from gpt.model import GPT, GPTConfig
        minigrad.manual_seed(0)
        GPT(GPTConfig()).save_pretrained(folder)  # GPT-2 124M
        return "gpt save_pretrained"
    torch.manual_seed(0)
    model = transformers.GPT2LMHeadModel(transformers.GPT2Config())  # the defaults are GPT-2 124M
    model.save_pretrained(folder)
    return f"transformers {transformers.__version__}"


def limit_threads(threads, torch_too):
    if torch_too:
        import torch
        torch.set_num_threads(threads)
        return  # threadpoolctl resizing OpenBLAS next to torch slows torch (see bench/step_vs_torch.py)
    import minigrad
    minigrad.runtime.tune()  # what `gpt sample` does
    minigrad.kernels.set_num_threads(threads)
    try:
        from threadpoolctl import threadpool_limits
        threadpool_limits(threads)
    except ImportError:
        pass


def worker_load(impl, folder, threads):
    """One load in this fresh process: seconds, RSS before, peak RSS after."""
    limit_threads(threads, impl == "transformers")
    if impl == "ours":
        from gpt.model import GPT
        load = lambda: GPT.from_pretrained(folder)  # noqa: E731
    else:
        import transformers
        load = lambda: transformers.GPT2LMHeadModel.from_pretrained(folder).eval()  # noqa: E731
    base = status_kib("VmRSS")
    t0 = time.perf_counter()
    load()
    seconds = time.perf_counter() - t0
    return dict(load_s=seconds, base_kib=base, peak_kib=status_kib("VmHWM"))


def weight_bytes(model):
    """Bytes of matmul weights one decoding step reads: every block's four and the head."""
    from gpt.quantize import Int8Linear
    layers = [m for b in model.transformer.h for m in (b.attn.c_attn, b.attn.c_proj, b.mlp.c_fc, b.mlp.c_proj)]
    sizes = [m.weight_q.nbytes + m.scale.nbytes if isinstance(m, Int8Linear) else m.weight.data.nbytes
             for m in layers + [model.lm_head]]
    return sum(sizes)


def worker_sample(impl, folder, threads, reps, nocache_reps=1):
    """Load, then greedy generation with and without the cache: times and tokens."""
    limit_threads(threads, impl == "transformers")
    prompt = prompt_ids()
    out = {}
    if impl.startswith("ours"):
        from gpt.model import GPT
        from gpt.quantize import quantize_int8
        from gpt.sample import generate
        model = GPT.from_pretrained(folder)
        if impl == "ours-int8":
            quantize_int8(model)
        out["weight_bytes"] = weight_bytes(model)
        run = lambda cache, n=NEW_TOKENS: generate(model, prompt, n, do_sample=False, use_cache=cache)[0]  # noqa: E731
    else:
        import torch
        import transformers
        model = transformers.GPT2LMHeadModel.from_pretrained(folder).eval()

        def run(cache, n=NEW_TOKENS):
            with torch.no_grad():
                out = model.generate(torch.tensor([prompt]), max_new_tokens=n, do_sample=False,
                                     use_cache=cache, pad_token_id=50256, eos_token_id=None)
            return out[0].tolist()
    for cache in (True,) if impl == "ours-int8" else (True, False):  # int8: the cached path only
        run(cache, 4)  # warm-up: JIT compilation, thread pools, first-touch of buffers
        times = []
        for _ in range(reps if cache else nocache_reps):
            t0 = time.perf_counter()
            tokens = run(cache)
            times.append(time.perf_counter() - t0)
        out["cache" if cache else "nocache"] = dict(times=times, tokens=tokens)
    out["peak_kib"] = status_kib("VmHWM")
    return out


def spawn(*args):
    cmd = [sys.executable, __file__, "--worker", *map(str, args)]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode:
        sys.exit(f"worker {args} failed:\n{proc.stderr}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def have_transformers():
    import importlib.util
    return all(importlib.util.find_spec(m) is not None for m in ("torch", "transformers"))


def measure(folder, impls, rounds, reps, threads):
    loads = {i: [] for i in impls}
    for r in range(rounds):  # alternate the order: neither always runs on a warmer machine
        for impl in (impls if r % 2 == 0 else impls[::-1]):
            loads[impl].append(spawn("load", impl, folder, threads, 0))
            print(f"  load round {r + 1}: {impl} {loads[impl][-1]['load_s']:.2f} s", flush=True)
    samples = {}
    for impl in impls[:1] + ["ours-int8"] + impls[1:]:
        samples[impl] = spawn("sample", impl, folder, threads, reps)
        print(f"  sampled with {impl}", flush=True)
    return loads, samples


def table(loads, samples):
    impls = list(loads)
    mib = lambda kib: f"{kib / 1024:,.0f}"  # noqa: E731
    tps = lambda s, key: NEW_TOKENS / statistics.median(s[key]["times"])  # noqa: E731
    rows = [
        ("from_pretrained, s (median)", [f"{statistics.median(x['load_s'] for x in loads[i]):.2f}" for i in impls]),
        ("RSS after imports, MiB", [mib(statistics.median(x["base_kib"] for x in loads[i])) for i in impls]),
        ("peak RSS after load, MiB", [mib(max(x["peak_kib"] for x in loads[i])) for i in impls]),
        ("peak RSS after sampling, MiB", [mib(samples[i]["peak_kib"]) for i in impls]),
        ("tokens/s, KV cache", [f"{tps(samples[i], 'cache'):.1f}" for i in impls]),
        ("tokens/s, no cache", [f"{tps(samples[i], 'nocache'):.1f}" for i in impls]),
        ("cache speed-up", [f"{tps(samples[i], 'cache') / tps(samples[i], 'nocache'):.1f}x" for i in impls]),
    ]
    head = f"{'':<30}" + "".join(f"{i:>14}" for i in impls)
    if len(impls) == 2:
        head += f"{'ours/theirs':>14}"
    lines = [head]
    for label, cells in rows:
        line = f"{label:<30}" + "".join(f"{c:>14}" for c in cells)
        if len(impls) == 2:
            a, b = (float(c.rstrip("x").replace(",", "")) for c in cells)
            line += f"{a / b:>13.2f}x"
        lines.append(line)
    return "\n".join(lines)


def same_tokens(samples):
    runs = [s[k]["tokens"] for i, s in samples.items() if i != "ours-int8" for k in ("cache", "nocache")]
    return all(r == runs[0] for r in runs)


def bound_lines(samples, gbps, threads):
    """Tokens/s with the cache next to what the memory bandwidth allows, fp32 and int8."""
    tps = lambda i: NEW_TOKENS / statistics.median(samples[i]["cache"]["times"])  # noqa: E731
    lines = [f"memory read bandwidth ({threads} threads, bench/bandwidth.py): {gbps:.1f} GB/s"]
    for impl, label in (("ours", "float32"), ("ours-int8", "int8")):
        mb = samples[impl]["weight_bytes"] / 1e6
        bound = gbps * 1e3 / mb
        lines.append(f"{label:<8} tokens/s {tps(impl):6.1f} | weights read per token {mb:6.0f} MB -> bound "
                     f"{bound:6.1f} tokens/s | {tps(impl) / bound:4.0%} of it")
    if "transformers" in samples:
        ref = tps("transformers")
        lines.append(f"vs transformers' generate ({ref:.1f} tokens/s): float32 {tps('ours') / ref:.2f}x, "
                     f"int8 {tps('ours-int8') / ref:.2f}x")
    return "\n".join(lines)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=3, help="load measurements per implementation")
    parser.add_argument("--reps", type=int, default=3, help="timed generations with the cache (without it: "
                                                            "one, it is ~15x slower)")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--no-transformers", action="store_true", help="ours only")
    parser.add_argument("--quick", action="store_true", help="1 load round, 1 timed generation each way")
    parser.add_argument("--worker", nargs=5, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        kind, impl, folder, threads, reps = args.worker
        if kind == "build":
            result = {"writer": build_folder(folder)}
        elif kind == "load":
            result = worker_load(impl, folder, int(threads))
        elif kind == "bandwidth":
            from bandwidth import read_bandwidth
            result = {"gbps": read_bandwidth(int(threads))}
        else:
            result = worker_sample(impl, folder, int(threads), int(reps))
        print(json.dumps(result))
        return
    rounds, reps = (1, 1) if args.quick else (args.rounds, args.reps)
    impls = ["ours"] + ([] if args.no_transformers or not have_transformers() else ["transformers"])
    folder = tempfile.mkdtemp(prefix="gpt2-124m-")
    try:
        t0 = time.perf_counter()
        writer = spawn("build", "-", folder, 0, 0)["writer"]
        size = sum(p.stat().st_size for p in Path(folder).iterdir()) / 2 ** 20
        print(f"GPT-2 124M folder (random weights) written by {writer} in {time.perf_counter() - t0:.1f} s: "
              f"{folder} ({size:,.0f} MiB)", flush=True)
        loads, samples = measure(folder, impls, rounds, reps, args.threads)
        gbps = spawn("bandwidth", "-", "-", args.threads, 0)["gbps"]
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    load = " / ".join(f"{x:.1f}" for x in os.getloadavg())
    print(f"\nmachine load average {load} (1/5/15 min; above {args.threads} means other work shared the cores)")
    print(f"{args.threads} threads; greedy, {NEW_TOKENS} new tokens from a {PROMPT_LEN}-token prompt; "
          f"{rounds} load round(s), {reps} timed generation(s) with the cache and 1 without, fresh subprocesses\n")
    print(table(loads, samples))
    print(f"\nsame greedy tokens ({' and '.join(impls)}, cache and no cache): {same_tokens(samples)}")
    print(bound_lines(samples, gbps, args.threads))


if __name__ == "__main__":
    main()
