"""The live progress line and the metrics file of a training run, and plots of metrics files.

On a terminal the line is rewritten in place with `\\r` after every step; into a
file or pipe (CI logs, `| tee`) it is printed as a plain line every
`log_interval` steps, so logs stay readable.
"""
import json
import math
import sys
import time
from pathlib import Path

from minigrad.nn.state import atomic_write

from gpt.errors import ConfigError, MissingExtraError

PLOT_INSTALL = "pip install 'minigrad-gpt[plot]'"


def fmt_duration(seconds):
    if not math.isfinite(seconds):
        return "?"
    seconds = int(round(seconds))
    h, rem = divmod(seconds, 3600)
    m, s = divmod(rem, 60)
    return f"{h}:{m:02d}:{s:02d}" if h else f"{m:02d}:{s:02d}"


class Progress:
    def __init__(self, total, start=0, log_interval=25, stream=None):
        self.total, self.start, self.log_interval = total, start, log_interval
        self.stream = stream or sys.stdout
        self.tty = hasattr(self.stream, "isatty") and self.stream.isatty()
        self.t0 = time.perf_counter()
        self.eval_time = 0.0     # kept out of the ETA's per-step rate
        self.t_first = None      # end of the first step: it pays JIT compilation, so the ETA skips it
        self.tok_s = None        # smoothed tokens/s
        self._open_line = False  # a \r line is on screen and needs a newline before other output

    def elapsed(self):
        return time.perf_counter() - self.t0

    def eta(self, it):
        done = it - self.start - 1
        if done <= 0 or self.t_first is None:
            return float("nan")
        per_step = (time.perf_counter() - self.t_first - self.eval_time) / done
        return per_step * (self.total - it)

    def update(self, it, loss, lr, tokens_per_s):
        """`it` steps done; show the line (TTY) or print it every log_interval steps."""
        if self.t_first is None:
            self.t_first = time.perf_counter()
        self.tok_s = tokens_per_s if self.tok_s is None else 0.9 * self.tok_s + 0.1 * tokens_per_s
        line = (f"iter {it:>{len(str(self.total))}}/{self.total} | loss {loss:.4f} | lr {lr:.2e} | "
                f"{self.tok_s:,.0f} tok/s | elapsed {fmt_duration(self.elapsed())} | "
                f"ETA {fmt_duration(self.eta(it))}")
        if self.tty:
            self.stream.write("\r" + line + "\x1b[K")
            self._open_line = True
        elif it % self.log_interval == 0 or it == self.total or it == self.start + 1:
            self.stream.write(line + "\n")
        self.stream.flush()

    def print(self, message):
        """A full line of other output (evaluation results, notices) without garbling the \\r line."""
        if self._open_line:
            self.stream.write("\n")
            self._open_line = False
        self.stream.write(message + "\n")
        self.stream.flush()


class MetricsLog:
    """metrics.jsonl: one JSON object per line, appended and flushed as the run goes."""

    def __init__(self, path, keep_through=None):
        self.path = Path(path)
        if keep_through is not None:
            self._truncate(keep_through)
        self.file = open(self.path, "a", encoding="utf-8")

    def _truncate(self, last_iter):
        """On resume: drop lines past the checkpoint, which the resumed run will redo."""
        if not self.path.exists():
            return
        kept = []
        for line in self.path.read_text(encoding="utf-8").splitlines():
            try:
                if json.loads(line).get("iter", 0) <= last_iter:
                    kept.append(line)
            except json.JSONDecodeError:
                pass  # a line torn by a crash
        self.path.write_text("".join(k + "\n" for k in kept), encoding="utf-8")

    def write(self, record):
        self.file.write(json.dumps(record) + "\n")
        self.file.flush()

    def close(self):
        self.file.close()


def read_metrics(path):
    """The records of a metrics.jsonl, less a last line torn by a crash (or still being written)."""
    rows = []
    with open(path, encoding="utf-8") as f:
        for line in f:
            try:
                rows.append(json.loads(line))
            except json.JSONDecodeError:
                pass
    return rows


def _pyplot():
    """matplotlib.pyplot drawing to files only (Agg), or None when matplotlib is missing."""
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return None
    return plt


def plot_losses(metrics_path, png_path):
    """Loss curve PNG; returns None, or a one-line notice when matplotlib is missing."""
    plt = _pyplot()
    if plt is None:
        return f"matplotlib not installed: no loss plot ({PLOT_INSTALL})"
    rows = read_metrics(metrics_path)
    steps = [r for r in rows if "loss" in r]
    evals = [r for r in rows if "val_loss" in r]
    fig, ax = plt.subplots(figsize=(7, 4))
    ax.plot([r["iter"] for r in steps], [r["loss"] for r in steps], lw=0.6, alpha=0.5, label="step loss")
    if evals:
        ax.plot([r["iter"] for r in evals], [r["train_loss"] for r in evals], "o-", label="train (eval)")
        ax.plot([r["iter"] for r in evals], [r["val_loss"] for r in evals], "s-", label="val")
    ax.set_xlabel("iteration")
    ax.set_ylabel("cross-entropy (nats/token)")
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    atomic_write(png_path, lambda tmp: fig.savefig(tmp, dpi=100, format="png"))
    plt.close(fig)
    return None


# what `gpt plot` draws per run: (field, line name, style); one colour per run
LOSS_CURVES = [("loss", "train", dict(lw=0.7, alpha=0.45)), ("val_loss", "val", dict(marker="o", ms=3, lw=1.2))]


def plot_runs(runs, png_path, metric=None):
    """Curves of several runs on one figure, from their metrics.jsonl records: each run's step
    loss and val loss (default), or one field by name. runs: label -> list of records.
    Returns the curves drawn, {line label: (iterations, values)}."""
    plt = _pyplot()
    if plt is None:
        raise MissingExtraError(f"gpt plot needs matplotlib: {PLOT_INSTALL}")
    fig, ax = plt.subplots(figsize=(8, 4.5))
    curves = {}
    for i, (label, rows) in enumerate(runs.items()):
        for field, name, style in [(metric, None, dict(lw=1.0))] if metric else LOSS_CURVES:
            points = [(r["iter"], r[field]) for r in rows if isinstance(r.get(field), (int, float))]
            if points:
                line = label if name is None else f"{label} {name}"
                curves[line] = tuple(list(v) for v in zip(*points))
                ax.plot(*curves[line], color=f"C{i % 10}", label=line, **style)
    if not curves:
        plt.close(fig)
        known = sorted({k for rows in runs.values() for r in rows for k, v in r.items()
                        if isinstance(v, (int, float)) and k != "iter"})
        raise ConfigError(f"no run has values of {metric or 'loss'}; the runs' fields are: {', '.join(known)}")
    ax.set_xlabel("iteration")
    ax.set_ylabel(metric or "cross-entropy (nats/token)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize="small")
    fig.tight_layout()
    atomic_write(png_path, lambda tmp: fig.savefig(tmp, dpi=100, format="png"))
    plt.close(fig)
    return curves
