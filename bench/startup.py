"""Start-up: wall time from launching `gpt train` to its first finished training step, with an
empty Numba cache (everything compiles) and with a warm one.

    python bench/startup.py                  # default preset, 3 rounds
    python bench/startup.py --quick          # 1 round
    python bench/startup.py --preset shakespeare-char --data ../shared/data/tinyshakespeare.txt

What is measured: t0 just before the `gpt train` subprocess is spawned (interpreter start,
imports, tokenizer, data, model, the first step's JIT compiles all count); t1 when the
first line of <out>/metrics.jsonl -- written right after step 1 -- is seen (polled every
5 ms). The run is given many iterations and no evaluation before the end, so nothing but
step 1 lies between; it is then stopped (SIGTERM to the child we started). The trainer's own
"elapsed_s" of step 1 is printed too: the share of the first step itself (its clock starts
at the loop). A fresh --out per run, so no tokenizer or data cache carries over; the
Numba cache is a temporary NUMBA_CACHE_DIR: empty for "cold", the one the cold run just
filled for "warm".
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

ROOT = Path(__file__).resolve().parents[1]


def gpt_command():
    exe = Path(sys.executable).with_name("gpt")
    return [str(exe)] if exe.exists() else [sys.executable, "-m", "gpt.cli"]


def first_step(cache_dir, args, timeout=300):
    """Seconds from spawn to the first metrics line, and that line's elapsed_s."""
    out = Path(tempfile.mkdtemp(prefix="startup-run-"))
    cmd = gpt_command() + ["train", "--preset", args.preset, "--out", str(out / "run"), "--max-iters", "100000",
                           "--eval-interval", "100000", "--threads", str(args.threads)]
    if args.data:
        cmd += ["--data", args.data]
    env = dict(os.environ, NUMBA_CACHE_DIR=cache_dir)
    metrics = out / "run" / "metrics.jsonl"
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, env=env, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        while True:
            if metrics.exists():
                lines = metrics.read_text().splitlines()
                if lines and lines[0].endswith("}"):
                    t1 = time.perf_counter()
                    return t1 - t0, json.loads(lines[0]).get("elapsed_s")
            if proc.poll() is not None:
                sys.exit(f"gpt train exited with {proc.returncode} before its first step:\n{proc.stderr.read()}")
            if time.perf_counter() - t0 > timeout:
                sys.exit(f"no first step within {timeout} s")
            time.sleep(0.005)
    finally:
        if proc.poll() is None:
            proc.terminate()
            proc.wait()
        shutil.rmtree(out, ignore_errors=True)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--preset", default="default")
    parser.add_argument("--data", default=None, help="corpus (default: the preset's)")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--quick", action="store_true", help="one round")
    args = parser.parse_args(argv)
    rounds = 1 if args.quick else args.rounds
    cold, warm = [], []
    for _ in range(rounds):
        with tempfile.TemporaryDirectory(prefix="numba-cache-") as cache:
            cold.append(first_step(cache, args))
            warm.append(first_step(cache, args))
    print(f"gpt train --preset {args.preset} --threads {args.threads}: spawn -> first metrics line "
          f"(median of {rounds}); step 1 = the trainer's elapsed_s at step 1\n")
    print(f"{'cache':<6} {'to first step s':>16} {'of which step 1 s':>18} {'target s':>9}  runs")
    for name, runs, target in (("cold", cold, 30.0), ("warm", warm, 3.0)):
        total = statistics.median(r[0] for r in runs)
        step = statistics.median(r[1] for r in runs if r[1] is not None)
        print(f"{name:<6} {total:>16.2f} {step:>18.2f} {target:>9.0f}  "
              f"{', '.join(f'{r[0]:.2f}' for r in runs)}  {'met' if total <= target else 'NOT met'}")


if __name__ == "__main__":
    main()
