"""TensorBoard event files of a run (`gpt train --tensorboard`), in <out>/tb.

    board = Board(run, enabled=is_writer)       # off (every call a no-op) without --tensorboard
    board.after_step(run, record, histograms)   # train/loss, lr, grad_norm, tokens_per_s
    board.after_eval(run, record)               # val/loss, train/eval_loss, a text sample
    board.close()

Every step is the iteration number of metrics.jsonl, so the curves and the metrics
file agree point for point (SCALARS maps one onto the other). Histograms of each
parameter's weights and gradients are taken right after the step that evaluation
follows, while that step's gradients exist. The config is a text entry at the step
the process started from.

Event files are append-only, and a run killed after its last checkpoint has written
steps that the resumed run will write again. So opening a run first rewrites the old
files without what lies past the checkpoint (`purge`), then writes, from metrics.jsonl,
any scalar the killed process had measured but its writer had not yet flushed
(`backfill`): TensorBoard then reads each curve once, with no step twice or missing.
Writing goes through tensorboardX's SummaryWriter; the purge reads and rewrites
records with TensorBoard's own reader and record writer. Both are the `tensorboard`
extra, imported here only when --tensorboard is on.
"""
import json
import os
import time

from minigrad.nn.state import atomic_write

from gpt.errors import MissingExtraError
from gpt.sample import generate, prompt_ids
from gpt.train.progress import read_metrics

# metrics.jsonl field -> TensorBoard tag: measured every step, then at each evaluation
STEP_SCALARS = {"loss": "train/loss", "lr": "lr", "grad_norm": "grad_norm", "tokens_per_s": "tokens_per_s"}
EVAL_SCALARS = {"val_loss": "val/loss", "train_loss": "train/eval_loss"}
SCALARS = {**STEP_SCALARS, **EVAL_SCALARS}
CONFIG_TAG, SAMPLE_TAG = "config", "sample"
FLUSH_SECS = 5  # the writer thread's flush period; evaluations flush at once
HISTOGRAM_BINS = 64  # uniform: one pass over the values, ~5x faster than TensorBoard's exponential bins
INSTALL = "pip install 'minigrad-gpt[tensorboard]'"


def summary_writer():
    """tensorboardX's SummaryWriter class, or a MissingExtraError naming the pip install."""
    try:
        import tensorboard  # noqa: F401  (the purge's reader)
        from tensorboardX import SummaryWriter
    except ImportError as e:
        raise MissingExtraError(f"--tensorboard needs the tensorboard extra ({e.name} is not "
                                f"installed): {INSTALL}") from None
    return SummaryWriter


class Board:
    """The run's TensorBoard writer. enabled=False (the processes that do not write
    metrics.jsonl) or a run without --tensorboard makes every method a no-op."""

    def __init__(self, run, enabled=True, log=print):
        self.writer = None
        if not (enabled and run.cfg.run.tensorboard):
            return
        SummaryWriter = summary_writer()
        folder = run.out / "tb"
        kept = purge(folder, run.start_iter)
        # the file is named by the second it was opened in; the suffix keeps a start within the
        # same second as the last (a quick resume) from overwriting its file, and sorts after it
        self.writer = SummaryWriter(str(folder), flush_secs=FLUSH_SECS, filename_suffix=f".{time.time_ns()}")
        backfill(self.writer, read_metrics(run.out / "metrics.jsonl"), kept)
        self.writer.add_text(CONFIG_TAG, _verbatim(json.dumps(run.cfg.to_dict(), indent=2)), run.start_iter)
        self.writer.flush()
        log(f"tensorboard: {folder} (watch with: tensorboard --logdir {run.out})")

    def after_step(self, run, record, histograms=False):
        """The step's scalars; with histograms, every parameter's weights and gradients
        (call it before anything clears the gradients)."""
        if self.writer is None:
            return
        _add_scalars(self.writer, record, STEP_SCALARS)
        if histograms and run.cfg.run.tb_histograms:
            for name, p in run.model.named_parameters():
                self.writer.add_histogram(f"weights/{name}", p.data, record["iter"], bins=HISTOGRAM_BINS)
                if p.grad is not None:
                    self.writer.add_histogram(f"grads/{name}", p.grad, record["iter"], bins=HISTOGRAM_BINS)

    def after_eval(self, run, record):
        """The evaluation's losses and a text sample; then everything so far goes to disk."""
        if self.writer is None:
            return
        _add_scalars(self.writer, record, EVAL_SCALARS)
        if run.cfg.run.sample_tokens:
            ids = prompt_ids(run.tokenizer, "\n")
            row = generate(run.model, ids, run.cfg.run.sample_tokens, temperature=0.8, seed=run.cfg.run.seed)[0]
            self.writer.add_text(SAMPLE_TAG, _verbatim(run.tokenizer.decode(row[len(ids):])), record["iter"])
        self.writer.flush()

    def close(self):
        if self.writer is not None:
            self.writer.close()  # drains the writer thread's queue
            self.writer = None


def _add_scalars(writer, record, fields):
    for field, tag in fields.items():
        if record.get(field) is not None:
            writer.add_scalar(tag, record[field], record["iter"])


def _verbatim(text):
    """Text as a Markdown code block (TensorBoard renders text as Markdown): indented four
    spaces, which no content can end early, unlike a ``` fence."""
    return "\n".join("    " + line for line in text.split("\n"))


def purge(folder, last_iter):
    """Rewrite the event files in folder without what was written past the checkpoint of
    iteration last_iter: every event of a later step, and the config entry of an earlier
    start from that same checkpoint (each start writes its own); a record torn by a kill
    goes too. Returns the {(tag, step)} of the scalars kept."""
    from tensorboard.backend.event_processing.event_file_loader import RawEventFileLoader
    from tensorboard.compat.proto.event_pb2 import Event

    kept_scalars = set()
    paths = sorted(p for p in folder.glob("*tfevents*") if not p.name.startswith(".")) if folder.is_dir() else []
    for path in paths:  # (a dot name is a temporary file)
        records = list(RawEventFileLoader(str(path)).Load())
        kept = []
        for raw in records:
            event = Event.FromString(raw)
            heads = {v.tag.split("/")[0] for v in event.summary.value}  # add_text writes config/text_summary
            if event.step > last_iter or (event.step == last_iter and CONFIG_TAG in heads):
                continue
            kept.append(raw)
            kept_scalars.update((v.tag, event.step) for v in event.summary.value if v.HasField("simple_value"))
        if len(kept) < len(records) or os.path.getsize(path) != sum(len(r) + 16 for r in records):
            _write_records(path, kept)
    return kept_scalars


def _write_records(path, records):
    """Replace an event file by these serialized events, atomically (TFRecord framing: length,
    CRCs; a record costs its length + 16 bytes)."""
    from tensorboard.summary.writer.record_writer import RecordWriter

    def write(tmp):
        with open(tmp, "wb") as f:
            writer = RecordWriter(f)
            for raw in records:
                writer.write(raw)
    atomic_write(path, write)


def backfill(writer, rows, present):
    """Write each scalar of metrics.jsonl's rows whose (tag, step) is not in present."""
    for row in rows:
        for field, tag in SCALARS.items():
            if row.get(field) is not None and (tag, row["iter"]) not in present:
                writer.add_scalar(tag, row[field], row["iter"])
