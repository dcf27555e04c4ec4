"""Training memory is flat: nothing (graphs, grads, optimizer state) may pile up per step."""
import json
import subprocess
import sys
import textwrap

# Run in a fresh interpreter so the peak RSS belongs to this training loop alone.
SCRIPT = textwrap.dedent("""
    import json, resource
    import numpy as np
    import minigrad as mg
    from gpt.model import GPT, GPTConfig
    from minigrad.nn.utils import clip_grad_norm_
    from minigrad.optim import get_lr

    def status_kib(key):  # VmRSS (now) or VmHWM (peak) from /proc (Linux)
        with open("/proc/self/status") as f:
            return next(int(line.split()[1]) for line in f if line.startswith(key + ":"))

    def peak_kib():
        # VmHWM belongs to this process image; ru_maxrss survives exec and would report
        # the parent's (pytest with torch loaded) peak instead, so it is only a fallback.
        try:
            return status_kib("VmHWM")
        except (OSError, StopIteration):
            return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss

    mg.manual_seed(0)
    model = GPT(GPTConfig(vocab_size=65, block_size=16, n_layer=2, n_head=2, n_embd=32, dropout=0.1))
    opt = model.configure_optimizers(0.1, 1e-3, (0.9, 0.999))
    data = (np.arange(10_000) * 7) % 13  # a learnable sequence
    out = {}
    for step in range(1, 501):
        starts = np.random.default_rng(step).integers(0, len(data) - 17, 4)
        batch = np.stack([data[s:s + 17] for s in starts])  # (B, T + 1)
        for group in opt.param_groups:
            group["lr"] = get_lr(step, 1e-3, 1e-4, 20, 500)
        opt.zero_grad()
        _, loss = model(batch[:, :-1], batch[:, 1:])
        loss.backward()
        clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        if step in (50, 500):
            out[step] = {"peak_kib": peak_kib(), "rss_kib": status_kib("VmRSS"), "loss": loss.item()}
    print(json.dumps(out))
""")


def test_peak_rss_after_500_steps_is_within_5_percent_of_after_50():
    result = subprocess.run([sys.executable, "-c", SCRIPT], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    out = json.loads(result.stdout.strip().splitlines()[-1])
    at50, at500 = out["50"], out["500"]
    print(f"peak RSS: {at50['peak_kib'] / 1024:.1f} MiB at step 50, {at500['peak_kib'] / 1024:.1f} MiB at "
          f"step 500; current RSS {at50['rss_kib'] / 1024:.1f} -> {at500['rss_kib'] / 1024:.1f} MiB; "
          f"loss {at50['loss']:.3f} -> {at500['loss']:.3f}")
    assert at500["peak_kib"] <= 1.05 * at50["peak_kib"]
    assert at500["loss"] < at50["loss"]
