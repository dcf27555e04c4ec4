"""Where a training step's time goes: a per-op table (forward and backward by Function name),
the optimizer, clipping, and what is left (Python: graph building, autograd bookkeeping).

    python bench/profile_step.py                      # shakespeare-char shape, 20 steps
    python bench/profile_step.py --config large --steps 5
    python bench/profile_step.py --quick              # 5 steps

Every Function subclass's forward and backward is wrapped by a timer for the run (the
wrappers add ~1 us per call, a few percent of a step at most). "autograd + Python" is the
step's time minus everything measured inside ops, kernels, the gradient norm and AdamW
(which applies the clip factor as it reads the gradients). The CPU time
(process_time, summed over threads) is printed too: on a shared machine it moves less
than wall time at 1 thread. GFLOP/s uses
model.flops_per_token() (6N + attention) times tokens per step, against the sgemm peak
measured in this run on the step's own thread count.
"""
import argparse
import collections
import statistics
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from step_vs_torch import CONFIGS, build_pair, our_step  # noqa: E402

TIMES = collections.defaultdict(float)   # "Op.forward" -> seconds, summed over timed steps
CALLS = collections.Counter()
CLOCK = [time.perf_counter]              # --clock cpu: time.process_time (this process's CPU time)


def _timed(name, fn):
    def wrapper(*args, **kwargs):
        t0 = CLOCK[0]()
        try:
            return fn(*args, **kwargs)
        finally:
            TIMES[name] += CLOCK[0]() - t0
            CALLS[name] += 1
    return wrapper


def _subclasses(cls):
    for sub in cls.__subclasses__():
        yield sub
        yield from _subclasses(sub)


def instrument():
    """Wrap forward/backward of every Function subclass, the optimizer and the gradient norm."""
    from minigrad import functional  # noqa: F401  (import every op module first)
    from minigrad.autograd import Function
    from minigrad import optim
    from gpt.train import step
    for cls in set(_subclasses(Function)):
        for meth in ("forward", "backward"):
            if meth in cls.__dict__:
                setattr(cls, meth, _timed(f"{cls.__name__}.{meth}", cls.__dict__[meth]))
    optim.AdamW.step = _timed("AdamW.step (clip inside)", optim.AdamW.step)
    step.get_total_norm = _timed("grad norm", step.get_total_norm)


def sgemm_peak(reps=20):
    """GFLOP/s of a large float32 GEMM with the current BLAS threads (the machine's ceiling)."""
    rng = np.random.default_rng(0)
    a, b = (rng.standard_normal((1024, 1024)).astype(np.float32) for _ in range(2))
    a @ b
    ts = []
    for _ in range(reps):
        t0 = CLOCK[0]()
        a @ b
        ts.append(CLOCK[0]() - t0)
    return 2 * 1024 ** 3 / min(ts) / 1e9


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--config", choices=list(CONFIGS), default="shakespeare")
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--quick", action="store_true", help="5 timed steps")
    parser.add_argument("--clock", choices=("wall", "cpu"), default="wall",
                        help="cpu: every column in CPU time of this process (robust to other load at 1 thread)")
    args = parser.parse_args(argv)
    if args.clock == "cpu":
        CLOCK[0] = time.process_time
    steps = 5 if args.quick else args.steps
    import minigrad
    minigrad.runtime.tune()
    minigrad.kernels.set_num_threads(args.threads)
    from threadpoolctl import threadpool_limits
    threadpool_limits(args.threads)
    cfg, B, (model, opt), _ = build_pair(args.config, with_torch=False)  # as bench/step_vs_torch.py
    T, V = cfg.block_size, cfg.vocab_size
    instrument()
    rng = np.random.default_rng(0)
    walls, cpus = [], []
    for i in range(args.warmup + steps):
        if i == args.warmup:
            TIMES.clear()
            CALLS.clear()
        x, y = (rng.integers(0, V, (B, T)) for _ in range(2))
        t0, c0 = time.perf_counter(), time.process_time()
        our_step(model, opt, x, y)  # gpt train's step: forward, backward, clip, AdamW
        walls.append(time.perf_counter() - t0)
        cpus.append(time.process_time() - c0)
    walls, cpus = walls[args.warmup:], cpus[args.warmup:]
    if args.clock == "cpu":
        walls = cpus
    step_ms = 1e3 * sum(walls) / steps
    rows = sorted(TIMES.items(), key=lambda kv: -kv[1])
    measured = 1e3 * sum(TIMES.values()) / steps
    print(f"[{args.clock} clock] config {args.config} {CONFIGS[args.config]} (L,H,C,T,B,V), {args.threads} threads, "
          f"{steps} steps: mean step {step_ms:.1f} ms, median {1e3 * statistics.median(walls):.1f} ms "
          f"(CPU time, all threads: median {1e3 * statistics.median(cpus):.1f} ms)\n")
    print(f"{'op':<28} {'calls/step':>10} {'ms/step':>9} {'ms/call':>9} {'% step':>7}")
    for name, sec in rows:
        ms = 1e3 * sec / steps
        print(f"{name:<28} {CALLS[name] / steps:>10.0f} {ms:>9.2f} {ms / (CALLS[name] / steps):>9.3f} "
              f"{100 * ms / step_ms:>6.1f}%")
    rest = step_ms - measured
    print(f"{'autograd + Python (rest)':<28} {'':>10} {rest:>9.2f} {'':>9} {100 * rest / step_ms:>6.1f}%")
    print(f"{'total':<28} {'':>10} {step_ms:>9.2f}")
    tokens = B * T
    gflops = model.flops_per_token() * tokens / (statistics.median(walls)) / 1e9
    print(f"\nachieved {gflops:.1f} GFLOP/s ({model.flops_per_token() * tokens / 1e9:.2f} GFLOP/step, "
          f"median step) vs sgemm peak {sgemm_peak():.0f} GFLOP/s (1024^3 float32, same threads, same clock)")


if __name__ == "__main__":
    main()
