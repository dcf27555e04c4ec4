"""Data-parallel throughput on this machine, and what it predicts for a cluster.

    python bench/ddp_scaling.py                    # default and large configs, ~3 minutes
    python bench/ddp_scaling.py --gpt2             # also time a 124M GPT-2 step, for the model
    python bench/ddp_scaling.py --quick            # fewer steps

For each config it times training steps (gpt/train/step.py, the same train_step `gpt train`
runs) three ways, each in fresh processes, rounds alternating the order:
  1 process x 2 threads, batch B         the everyday run
  1 process x 2 threads, batch 2B        the global batch of the DDP row, in one process
  2 processes x 1 thread, batch B each   mpiexec -n 2: the same global batch, data-parallel
and prints median tokens/s, the time per step spent in the gradient Allreduce (waits for the
slower rank included), and the Allreduce alone (barrier, then the gradient buffer reduced,
median of 20) with its bus bandwidth 2(N-1)/N * bytes / time and the latency of an 8-byte
Allreduce. The 2-process speed-up over the 2B row is what data parallelism buys on 2 cores.

With --gpt2 it also times a step of GPT-2 124M (block 1024, batch 1, 2 threads) and applies
the ring Allreduce cost model t_ar(N) = 2(N-1)/N * bytes / bandwidth + 2(N-1) * latency to
project the speed-up on N machines like this one (README "Many processes and machines").
"""
import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

CONFIGS = {  # name: (n_layer, n_head, n_embd, block_size, batch_size, vocab_size)
    "default": (4, 4, 128, 128, 12, 512),      # `gpt train`'s default preset (BPE 512)
    "large": (6, 6, 384, 256, 8, 65),          # bench/step_vs_torch.py --config large
    "gpt2": (12, 12, 768, 1024, 1, 50257),     # GPT-2 124M, one sequence per step
}
NETWORKS = {"10 Gb/s, 50 us": (1.25e9, 50e-6), "1 Gb/s, 50 us": (0.125e9, 50e-6)}


# ---- the worker: one process (or one rank of mpiexec) -----------------------------------

def worker(name, threads, batch, steps):
    import numpy as np

    import minigrad
    from minigrad.nn.flat import FlatParameters

    from gpt.data import BatchSampler
    from gpt.model import GPT, GPTConfig
    from gpt.train.ddp import connect
    from gpt.train.loop import set_threads
    from gpt.train.step import compile_step, train_step

    minigrad.runtime.tune()
    set_threads(threads)
    n_layer, n_head, n_embd, T, _, V = CONFIGS[name]
    ddp = connect()
    minigrad.manual_seed(0)
    model = GPT(GPTConfig(vocab_size=V, block_size=T, n_layer=n_layer, n_head=n_head, n_embd=n_embd, dropout=0.0))
    optimizer = model.configure_optimizers(0.1, 1e-4, (0.9, 0.99))
    flat = FlatParameters([p for g in optimizer.param_groups for p in g["params"]])
    ddp.attach(flat)
    ids = np.random.default_rng(0).integers(0, V, 200_000)
    sampler = BatchSampler({"train": ids}, T, batch * ddp.size, seed=0)
    ddp.main_first(lambda: compile_step(model, optimizer, batch, T))
    times, cpu, reduced = [], [], []
    for i in range(steps + 2):  # the first two warm the allocator and caches
        t0, c0, r0 = time.perf_counter(), time.process_time(), getattr(ddp, "reduce_seconds", 0.0)
        train_step(model, optimizer, [ddp.shard(sampler.batch("train"))], 1e-4, 1.0, ddp)
        if i >= 2:
            times.append(time.perf_counter() - t0)
            cpu.append(time.process_time() - c0)
            reduced.append(getattr(ddp, "reduce_seconds", 0.0) - r0)
    result = {"step_s": statistics.median(times), "cpu_s": statistics.median(cpu), "tokens": batch * ddp.size * T,
              "allreduce_in_step_s": statistics.median(reduced), "bytes": flat.grad.nbytes, "params": len(flat)}
    if ddp.size > 1:
        result.update(allreduce_alone(ddp, flat))
    if ddp.is_main:
        print("RESULT " + json.dumps(result), flush=True)


def allreduce_alone(ddp, flat):
    """The gradient Allreduce with both ranks ready (barrier first), and an 8-byte one."""
    import numpy as np
    full, tiny = [], []
    for _ in range(20):
        ddp.comm.Barrier()
        t0 = ddp.reduce_seconds
        ddp.reduce_gradients()
        full.append(ddp.reduce_seconds - t0)
    one = np.zeros(1)
    for _ in range(200):
        ddp.comm.Barrier()
        t0 = time.perf_counter()
        ddp.comm.Allreduce(ddp.MPI.IN_PLACE, one)
        tiny.append(time.perf_counter() - t0)
    t = statistics.median(full)
    return {"allreduce_s": t, "busbw": 2 * (ddp.size - 1) / ddp.size * flat.grad.nbytes / t,
            "latency_s": statistics.median(tiny)}


# ---- the parent: spawn, pool, print ------------------------------------------------------

def spawn(name, procs, threads, batch, steps):
    cmd = [sys.executable, __file__, "--worker", name, "--threads", str(threads), "--batch", str(batch),
           "--steps", str(steps)]
    if procs > 1:
        mpiexec = Path(sys.executable).parent / "mpiexec"
        cmd = [str(mpiexec) if mpiexec.exists() else "mpiexec", "-n", str(procs)] + cmd
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=3600, env=env)
    lines = [line for line in out.stdout.splitlines() if line.startswith("RESULT ")]
    if out.returncode or not lines:
        raise SystemExit(f"worker failed: {' '.join(cmd)}\n{out.stderr[-3000:]}")
    return json.loads(lines[0][7:])


def measure(name, rounds, steps):
    B = CONFIGS[name][4]
    setups = [("1 process x 2 threads", 1, 2, B), ("1 process x 2 threads", 1, 2, 2 * B),
              ("2 processes x 1 thread", 2, 1, B)]
    pooled = {i: [] for i in range(len(setups))}
    for r in range(rounds):
        order = range(len(setups)) if r % 2 == 0 else reversed(range(len(setups)))
        for i in order:
            pooled[i].append(spawn(name, *setups[i][1:], steps))
    rows = []
    for i, (label, procs, threads, batch) in enumerate(setups):
        runs = pooled[i]
        row = {k: statistics.median(run[k] for run in runs) for k in runs[0] if k not in ("bytes", "params")}
        row.update(label=label, procs=procs, batch=batch, bytes=runs[0]["bytes"], params=runs[0]["params"])
        row["tok_s"] = row["tokens"] / row["step_s"]
        rows.append(row)
    return rows


def print_table(name, rows):
    n_layer, _, n_embd, T, _, _ = CONFIGS[name]
    print(f"\n{name}: {n_layer} layers x {n_embd}, block {T}, {rows[0]['params']:,} parameters "
          f"({rows[0]['bytes'] / 1e6:.1f} MB of gradients)")
    print("| setup | batch per process | tokens/s | step (ms) | Allreduce in step (ms) | vs 1 x 2 threads, same global batch |")
    print("|---|---|---|---|---|---|")
    for row in rows:
        ratio = row["tok_s"] / rows[1]["tok_s"]
        print(f"| {row['label']} | {row['batch']} | {row['tok_s']:,.0f} | {row['step_s'] * 1e3:.1f} | "
              f"{row['allreduce_in_step_s'] * 1e3:.2f} | {ratio:.2f}x |")
    ddp = rows[2]
    print(f"Allreduce alone (2 ranks, shared memory): {ddp['allreduce_s'] * 1e3:.2f} ms for {ddp['bytes'] / 1e6:.1f} MB"
          f" = bus bandwidth {ddp['busbw'] / 1e9:.2f} GB/s; 8-byte Allreduce latency {ddp['latency_s'] * 1e6:.1f} us")


def project(wall_s, cpu_s, grad_bytes, global_batch=512):
    """Speed-up on N machines from the ring model, for one sequence of 1024 tokens per machine
    per step (weak scaling) and for a fixed global batch (strong scaling: N machines split it).
    t_c is the step's CPU time over its 2 threads: its wall time on 2 free cores, whatever
    else loads this machine now."""
    step_s = cpu_s / 2
    print(f"\nGPT-2 124M, one sequence of 1024 tokens per step: {wall_s:.1f} s wall, {cpu_s:.1f} s CPU over "
          f"2 threads -> t_c = {step_s:.2f} s on 2 free cores; gradients {grad_bytes / 1e6:.0f} MB")
    print("t_ar(N) = 2(N-1)/N * bytes / bandwidth + 2(N-1) * latency;  weak: S = N * t_c / (t_c + t_ar);  "
          f"strong (global batch {global_batch} sequences): S = {global_batch} t_c / ({global_batch}/N * t_c + t_ar)")
    print("| network | N | t_ar (s) | weak-scaling speed-up | efficiency | strong-scaling speed-up |")
    print("|---|---|---|---|---|---|")
    for label, (bandwidth, latency) in NETWORKS.items():
        for n in (1, 4, 16, 64, 512):
            t_ar = 2 * (n - 1) / n * grad_bytes / bandwidth + 2 * (n - 1) * latency
            weak = n * step_s / (step_s + t_ar)
            strong = global_batch * step_s / (global_batch / n * step_s + t_ar)
            print(f"| {label} | {n} | {t_ar:.2f} | {weak:.1f}x | {weak / n:.0%} | {strong:.1f}x |")
    for label, (bandwidth, latency) in NETWORKS.items():
        floor = step_s / (step_s + 2 * grad_bytes / bandwidth)
        print(f"{label}: efficiency tends to {floor:.0%} as N grows (t_ar -> 2 bytes / bandwidth); the strong-"
              f"scaling curve ends at N = {global_batch}, one sequence per machine")


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--worker", choices=sorted(CONFIGS), help=argparse.SUPPRESS)
    ap.add_argument("--threads", type=int, default=2, help=argparse.SUPPRESS)
    ap.add_argument("--batch", type=int, default=None, help=argparse.SUPPRESS)
    ap.add_argument("--steps", type=int, default=None, help="timed steps per run (default: 20, large 8)")
    ap.add_argument("--rounds", type=int, default=2, help="runs of each setup, pooled (default: 2)")
    ap.add_argument("--configs", default="default,large", help="comma-separated: default, large")
    ap.add_argument("--gpt2", action="store_true", help="also time a GPT-2 124M step and project to N machines")
    ap.add_argument("--quick", action="store_true", help="few steps, one round")
    args = ap.parse_args(argv)
    if args.worker:
        return worker(args.worker, args.threads, args.batch, args.steps)
    print(f"{os.cpu_count()} cores; load average {os.getloadavg()[0]:.2f} at start (other processes share them)")
    for name in args.configs.split(","):
        steps = args.steps or (4 if args.quick else 20 if name == "default" else 8)
        print_table(name, measure(name, 1 if args.quick else args.rounds, steps))
    if args.gpt2:
        gpt2 = spawn("gpt2", 1, 2, 1, 1 if args.quick else 3)
        project(gpt2["step_s"], gpt2["cpu_s"], gpt2["bytes"])
    print(f"\nload average {os.getloadavg()[0]:.2f} at the end")


if __name__ == "__main__":
    main()
