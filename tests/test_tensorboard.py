"""`gpt train --tensorboard`: the event files, read back with TensorBoard's own reader, hold
every scalar of metrics.jsonl at its iteration, once, also across a crash or a kill past the
checkpoint and the resume that follows; a sample and histograms at each evaluation."""
import io
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

from conftest import require
from gpt import checkpoint, cli
from gpt.config import build_config
from gpt.train import build_run, train_loop
from gpt.train.progress import read_metrics
from gpt.train.tensorboard import SCALARS

TEXT = "".join(f"line {i}: the quick brown fox jumps over the lazy dog.\n" for i in range(60))
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# metrics.jsonl field -> tag, as the README documents them
TAGS = {"loss": "train/loss", "lr": "lr", "grad_norm": "grad_norm", "tokens_per_s": "tokens_per_s",
        "val_loss": "val/loss", "train_loss": "train/eval_loss"}


@pytest.fixture(autouse=True)
def tensorboard_extra(request):
    """The tensorboard extra (tensorboardX writes, tensorboard reads back), or skip; the
    missing-extra test simulates its absence itself."""
    if request.node.name != "test_missing_extra_is_one_line_naming_the_install":
        require("tensorboardX", "tensorboard")
        require("tensorboard", "tensorboard")


def flags(tmp_path, **over):
    corpus = tmp_path / "c.txt"
    corpus.write_text(TEXT)
    f = dict(preset="tiny", data=str(corpus), out=str(tmp_path / "run"), n_embd=16, block_size=16,
             batch_size=2, max_iters=20, eval_interval=5, eval_iters=2, sample_tokens=12, tensorboard=True)
    f.update(over)
    return f


def train(f, hooks=(), **kw):
    """Build (fresh, or resumed with f["resume"]) and train; returns the Run."""
    log = io.StringIO()
    run = build_run(build_config(dict(f)), dict(f), log=lambda m: print(m, file=log))
    train_loop(run, hooks, log, **kw)
    return run


def crash_at(k):
    def hook(run, it, loss):
        if it == k:
            raise RuntimeError("the machine went down")
    return hook


def board(folder):
    ea = require("tensorboard.backend.event_processing.event_accumulator")
    acc = ea.EventAccumulator(str(folder), size_guidance={ea.SCALARS: 0, ea.HISTOGRAMS: 0, ea.TENSORS: 0})
    return acc.Reload()


def assert_scalars_match_metrics(out):
    """Every scalar tag holds exactly metrics.jsonl's steps of its field, in order, each once,
    with the value as float32 stores it."""
    acc, rows = board(out / "tb"), read_metrics(out / "metrics.jsonl")
    assert set(acc.Tags()["scalars"]) == set(TAGS.values())
    for field, tag in TAGS.items():
        want = [(r["iter"], np.float32(r[field])) for r in rows if field in r]
        got = [(e.step, np.float32(e.value)) for e in acc.Scalars(tag)]
        assert got == want, tag
    return acc


def test_scalars_sample_histograms_and_config(tmp_path):
    assert SCALARS == TAGS
    run = train(flags(tmp_path))
    acc = assert_scalars_match_metrics(run.out)
    assert [r["iter"] for r in read_metrics(run.out / "metrics.jsonl")] == list(range(1, 21))
    evals = [5, 10, 15, 20]
    samples = acc.Tensors("sample/text_summary")
    assert [e.step for e in samples] == evals
    assert all(e.tensor_proto.string_val[0].decode().startswith("    ") for e in samples)  # verbatim block
    config = acc.Tensors("config/text_summary")
    assert [e.step for e in config] == [0] and b'"tensorboard": true' in config[0].tensor_proto.string_val[0]
    names = [n for n, _ in run.model.named_parameters()]
    assert sorted(acc.Tags()["histograms"]) == sorted(f"{kind}/{n}" for kind in ("weights", "grads") for n in names)
    for kind in ("weights", "grads"):
        assert [e.step for e in acc.Histograms(f"{kind}/transformer.wte.weight")] == evals
    last = acc.Histograms("weights/transformer.ln_f.weight")[-1].histogram_value
    w = run.model.transformer.ln_f.weight.data
    assert last.num == w.size and np.isclose(last.sum, w.sum(), rtol=1e-5)


def test_a_corpus_without_newlines_still_gets_samples(tmp_path):
    """A character vocabulary without a newline: the sample starts from token 0 instead of
    stopping the run (stopped at step 6 here, before the end-of-run sample, which fails)."""
    (tmp_path / "flat.txt").write_text(TEXT.replace("\n", " "))
    with pytest.raises(RuntimeError):
        train(flags(tmp_path, data=str(tmp_path / "flat.txt"), max_iters=10), hooks=[crash_at(6)])
    assert [e.step for e in board(tmp_path / "run" / "tb").Tensors("sample/text_summary")] == [5]


def test_gradient_histograms_are_the_steps_gradients(tmp_path):
    """The grads/ histogram at an evaluation step is that step's (clipped) gradient."""
    grads = {}

    def keep(run, it, loss):
        if it == 10:
            grads.update({n: p.grad.copy() for n, p in run.model.named_parameters()})
    run = train(flags(tmp_path, max_iters=10), hooks=[keep])
    hist = {e.step: e.histogram_value for e in board(run.out / "tb").Histograms("grads/transformer.h.0.mlp.c_fc.weight")}
    g = grads["transformer.h.0.mlp.c_fc.weight"]
    assert hist[10].num == g.size and np.isclose(hist[10].sum_squares, (g.astype(np.float64) ** 2).sum(), rtol=1e-4)


def test_no_tb_histograms_and_off_switch(tmp_path):
    run = train(flags(tmp_path, tb_histograms=False, max_iters=10))
    acc = assert_scalars_match_metrics(run.out)
    assert acc.Tags()["histograms"] == []
    quiet = train(flags(tmp_path, out=str(tmp_path / "quiet"), max_iters=5), tensorboard=False)
    assert not (quiet.out / "tb").exists()  # a process that does not write metrics (MPI rank > 0)
    plain = train(flags(tmp_path, out=str(tmp_path / "plain"), max_iters=5, tensorboard=False))
    assert not (plain.out / "tb").exists()


def test_crash_past_the_checkpoint_then_resume_continues_the_curves(tmp_path):
    """Steps 11-13 ran, were flushed to the event file and then lost with the process: the
    resume from step 10 (at another learning rate, so a stale value would show) writes them
    again, and TensorBoard reads each step once, with the resumed run's values."""
    f = flags(tmp_path, eval_interval=10)
    with pytest.raises(RuntimeError):
        train(f, hooks=[crash_at(13)])
    assert checkpoint.read_trainer_state(tmp_path / "run")["iter"] == 10
    assert max(e.step for e in board(tmp_path / "run" / "tb").Scalars("train/loss")) == 13
    train(dict(f, resume=True, lr=1e-3))
    acc = assert_scalars_match_metrics(tmp_path / "run")
    assert [e.step for e in acc.Tensors("config/text_summary")] == [0, 10]
    assert [e.step for e in acc.Tensors("sample/text_summary")] == [10, 20]
    assert [e.step for e in acc.Histograms("grads/transformer.wte.weight")] == [10, 20]


def test_a_torn_event_file_is_repaired_from_metrics(tmp_path):
    """A kill leaves the event file cut mid-record, short of steps the checkpoint holds
    (the writer had not flushed them); the resume drops the torn record and writes the
    missing scalars from metrics.jsonl; resuming twice from one checkpoint adds nothing twice."""
    f = flags(tmp_path, eval_interval=10)
    with pytest.raises(RuntimeError):
        train(f, hooks=[crash_at(13)])
    (path,) = (tmp_path / "run" / "tb").glob("*tfevents*")
    path.write_bytes(path.read_bytes()[:_offset_of_step(path, 7) + 9])  # cut inside a step-7 record
    with pytest.raises(RuntimeError):
        train(dict(f, resume=True), hooks=[crash_at(12)])
    train(dict(f, resume=True))
    acc = assert_scalars_match_metrics(tmp_path / "run")
    assert [e.step for e in acc.Tensors("config/text_summary")] == [0, 10]


def _offset_of_step(path, step):
    """Byte offset of the first record of the given step (a record is its length + 16 bytes)."""
    from tensorboard.backend.event_processing.event_file_loader import RawEventFileLoader
    from tensorboard.compat.proto.event_pb2 import Event
    offset = 0
    for raw in RawEventFileLoader(str(path)).Load():
        if Event.FromString(raw).step == step:
            return offset
        offset += len(raw) + 16
    raise AssertionError(f"no step {step} in {path}")


def test_real_kill_then_resume(tmp_path):
    """SIGKILL on a real `gpt train --tensorboard` past its checkpoint, then --resume."""
    require("tensorboardX")
    f = flags(tmp_path, max_iters=400, eval_interval=10)
    argv = [sys.executable, "-m", "gpt.cli", "train"] + [
        a for k, v in f.items() for a in ([f"--{k.replace('_', '-')}"] + ([] if v is True else [str(v)]))]
    proc = subprocess.Popen(argv, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    metrics = tmp_path / "run" / "metrics.jsonl"
    deadline = time.time() + 60
    while time.time() < deadline and (not metrics.exists() or len(metrics.read_text().splitlines()) < 25):
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    proc.communicate(timeout=60)
    saved = checkpoint.read_trainer_state(tmp_path / "run")["iter"]
    assert saved >= 20
    train(dict(f, resume=True, max_iters=saved + 15))
    assert_scalars_match_metrics(tmp_path / "run")


def test_missing_extra_is_one_line_naming_the_install(tmp_path, monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "tensorboardX", None)  # as if not installed
    argv = ["train"] + [a for k, v in flags(tmp_path).items()
                        for a in ([f"--{k.replace('_', '-')}"] + ([] if v is True else [str(v)]))]
    assert cli.main(argv) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "pip install 'minigrad-gpt[tensorboard]'" in err
    assert "tensorboardX is not installed" in err or "tensorboard is not installed" in err
    assert not (tmp_path / "run").exists()  # stopped before any work
