"""Serving under load: 1, 2, 4 and 8 concurrent streaming clients against one `gpt serve`, on the
default model and on a 124M GPT-2: aggregate tokens/s, time to first token (TTFT) and
per-request latency percentiles, and the aggregate's ratio to one client's.

    python bench/serve_load.py                      # trains a default-preset model (short), builds a 124M folder
    python bench/serve_load.py --ckpt runs/x/ckpt   # serve this checkpoint as the default model
    python bench/serve_load.py --quick              # fewer requests, one round, no 124M

The server is the real command (`gpt serve --port 0 --max-batch 8`) in its own process;
the clients are one asyncio loop in this one, each client sending its requests one after
another: streamed completions of a fixed length (ignore_eos), temperature 0.8 with a
seed, token counts from the final usage chunk. Aggregate tokens/s is every token of a
level over the level's wall time. Goal on the default model: 8 clients >= 3x one
client's tokens/s, and no TTFT above 2 s.

The default model is the default preset's shape (4 layers x 128, block 128, BPE 512)
trained for --train-iters steps: quality does not change the speed. The 124M folder has
GPT-2's shape and random weights (as bench/hf_124m.py builds it) with the default model's
tokenizer: its 50257-row head is computed in full, padded rows masked.
Clients and server share the machine's cores; the load average is printed with the table,
and the server's own CPU time per token (robust to other processes) beside the wall clock,
with the share of a core it got and the clients' CPU time per token (the clients run here).
"""
import argparse
import asyncio
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))

PROMPTS = ["def main(argv=None):", "The for statement", "Exceptions are raised when", "import sys",
           "class Node:", "The with statement", "A module is", "Return the value"]


def train_default(folder, iters):
    cmd = [sys.executable, "-m", "gpt.cli", "train", "--out", str(folder), "--max-iters", str(iters),
           "--eval-interval", str(iters), "--sample-tokens", "0"]
    subprocess.run(cmd, check=True, cwd=ROOT, env=dict(os.environ, PYTHONPATH=str(ROOT)), stdout=subprocess.DEVNULL)
    return folder / "ckpt"


def build_124m(folder, tokenizer_file):
    from hf_124m import build_folder
    writer = build_folder(str(folder))
    shutil.copy(tokenizer_file, folder / "tokenizer.txt")
    return folder, writer


def start_server(ckpt, max_batch):
    cmd = [sys.executable, "-m", "gpt.cli", "serve", "--ckpt", str(ckpt), "--port", "0", "--max-batch",
           str(max_batch), "--model-name", "bench"]
    proc = subprocess.Popen(cmd, cwd=ROOT, env=dict(os.environ, PYTHONPATH=str(ROOT)), stdout=subprocess.PIPE,
                            text=True)
    m = re.search(r"http://[\d.]+:\d+", proc.stdout.readline())
    if m is None:
        sys.exit(f"gpt serve did not start (status {proc.wait()})")
    return proc, m.group(0)


async def wait_ready(client, url, timeout=600):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if (await client.get(url + "/health")).status_code == 200:
                return
        except Exception:  # not listening yet
            pass
        await asyncio.sleep(0.2)
    sys.exit("gpt serve never became ready")


async def one_request(client, url, prompt, max_tokens, seed):
    """(TTFT s, latency s, tokens) of one streamed completion."""
    body = {"prompt": prompt, "max_tokens": max_tokens, "temperature": 0.8, "seed": seed, "stream": True,
            "ignore_eos": True, "stream_options": {"include_usage": True}}
    t0 = time.perf_counter()
    first, tokens = None, 0
    async with client.stream("POST", url + "/v1/completions", json=body) as r:
        if r.status_code != 200:
            raise RuntimeError(f"HTTP {r.status_code}: {await r.aread()}")
        async for line in r.aiter_lines():
            if not line.startswith("data: {"):
                continue
            chunk = json.loads(line[6:])
            if first is None and any(c.get("text") for c in chunk["choices"]):
                first = time.perf_counter()
            if chunk.get("usage"):
                tokens = chunk["usage"]["completion_tokens"]
    return first - t0, time.perf_counter() - t0, tokens


async def level(client, url, n_clients, per_client, max_tokens):
    async def one_client(i):
        return [await one_request(client, url, PROMPTS[(i + k) % len(PROMPTS)], max_tokens, 100 * i + k)
                for k in range(per_client)]
    t0 = time.perf_counter()
    results = [r for rs in await asyncio.gather(*(one_client(i) for i in range(n_clients))) for r in rs]
    return results, time.perf_counter() - t0


def cpu_seconds(pid):
    """User + system CPU time of a process so far (Linux /proc), or nan elsewhere."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except OSError:
        return float("nan")


def pct(values, q):
    values = sorted(values)
    return values[min(len(values) - 1, int(round(q / 100 * (len(values) - 1))))]


async def measure(ckpt, label, levels, per_client, max_tokens, max_batch, rounds):
    """One row per concurrency level: the levels run `rounds` times, in alternating order
    (so that a busier minute of the machine hits every level alike); tok/s and CPU per
    token are medians over the rounds, the percentiles pool every request."""
    import httpx
    proc, url = start_server(ckpt, max_batch)
    runs = {n: [] for n in levels}
    try:
        async with httpx.AsyncClient(timeout=600, limits=httpx.Limits(max_connections=64)) as client:
            await wait_ready(client, url)
            await level(client, url, 2, 1, 4)  # warm-up
            for r in range(rounds):
                for n in (levels if r % 2 == 0 else levels[::-1]):
                    cpu, mine = cpu_seconds(proc.pid), time.process_time()
                    results, wall = await level(client, url, n, per_client, max_tokens)
                    cpu, mine = cpu_seconds(proc.pid) - cpu, time.process_time() - mine
                    runs[n].append((results, wall, cpu, mine))
                    print(f"  {label}: {n} client(s) done in {wall:.1f} s", flush=True)
    finally:
        proc.terminate()
        proc.wait(60)
    return [summary(label, n, runs[n]) for n in levels]


def summary(label, n, runs):
    results = [r for rs, _, _, _ in runs for r in rs]
    ttft, lat, _ = zip(*results)
    tokens = [sum(t for _, _, t in rs) for rs, _, _, _ in runs]
    return dict(model=label, clients=n, requests=len(results), tokens=sum(tokens),
                tps=statistics.median(t / wall for t, (_, wall, _, _) in zip(tokens, runs)),
                cpu_ms=statistics.median(1e3 * cpu / t for t, (_, _, cpu, _) in zip(tokens, runs)),
                busy=statistics.median(cpu / wall for _, wall, cpu, _ in runs),
                client_ms=statistics.median(1e3 * mine / t for t, (_, _, _, mine) in zip(tokens, runs)),
                ttft50=pct(ttft, 50), ttft90=pct(ttft, 90), ttft_max=max(ttft),
                lat50=pct(lat, 50), lat90=pct(lat, 90), lat_max=max(lat))


def table(rows):
    head = (f"{'model':<11}{'clients':>8}{'reqs':>5}{'tokens':>7}{'tok/s':>8}{'x 1 client':>11}"
            f"{'TTFT p50':>9}{'p90':>7}{'max':>7}{'latency p50':>12}{'p90':>7}{'max':>7}"
            f"{'server CPU ms/tok':>18}{'cores busy':>11}{'client CPU ms/tok':>18}")
    lines = [head]
    for r in rows:
        one = next((x["tps"] for x in rows if x["model"] == r["model"] and x["clients"] == 1), None)
        ratio = f"{r['tps'] / one:>10.2f}x" if one else f"{'-':>11}"  # no 1-client level: no ratio
        lines.append(f"{r['model']:<11}{r['clients']:>8}{r['requests']:>5}{r['tokens']:>7}{r['tps']:>8.1f}"
                     f"{ratio}{r['ttft50']:>8.2f}s{r['ttft90']:>6.2f}s{r['ttft_max']:>6.2f}s"
                     f"{r['lat50']:>11.2f}s{r['lat90']:>6.2f}s{r['lat_max']:>6.2f}s"
                     f"{r['cpu_ms']:>18.2f}{r['busy']:>11.2f}{r['client_ms']:>18.2f}")
    return "\n".join(lines)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--ckpt", default=None, help="the default model's checkpoint (default: train one)")
    parser.add_argument("--train-iters", type=int, default=200, help="steps when training the default model")
    parser.add_argument("--clients", default="1,2,4,8", help="concurrency levels")
    parser.add_argument("--requests", type=int, default=8, help="requests per client per level (default model)")
    parser.add_argument("--tokens", type=int, default=64, help="tokens per request (default model)")
    parser.add_argument("--requests-124m", type=int, default=2, help="requests per client per level (124M)")
    parser.add_argument("--tokens-124m", type=int, default=32, help="tokens per request (124M)")
    parser.add_argument("--max-batch", type=int, default=8)
    parser.add_argument("--rounds", type=int, default=3, help="times each level runs (medians; default 3)")
    parser.add_argument("--no-124m", action="store_true", help="only the default model")
    parser.add_argument("--quick", action="store_true", help="2 requests per client, one round, no 124M")
    args = parser.parse_args(argv)
    levels = [int(c) for c in args.clients.split(",")]
    tmp = Path(tempfile.mkdtemp(prefix="serve-load-"))
    try:
        print(f"{os.cpu_count()} cores, load average {os.getloadavg()[0]:.2f} at the start", flush=True)
        ckpt = Path(args.ckpt) if args.ckpt else train_default(tmp / "default", args.train_iters)
        per = 2 if args.quick else args.requests
        rounds = 1 if args.quick else args.rounds
        rows = asyncio.run(measure(ckpt, "default", levels, per, args.tokens, args.max_batch, rounds))
        if not (args.quick or args.no_124m):
            folder, writer = build_124m(tmp / "gpt2-124m", ckpt / "tokenizer.txt")
            print(f"  124M folder written by {writer}", flush=True)
            rows += asyncio.run(measure(folder, "gpt2-124M", levels, args.requests_124m, args.tokens_124m,
                                        args.max_batch, rounds))
        print(f"\nstreamed completions, temperature 0.8; default model: {per} x {args.tokens} tokens per client, "
              f"124M: {args.requests_124m} x {args.tokens_124m}; --max-batch {args.max_batch}; {rounds} round(s), "
              f"medians; load average {os.getloadavg()[0]:.2f} at the end\n")
        print(table(rows))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
