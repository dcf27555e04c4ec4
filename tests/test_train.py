"""gpt/train/ and gpt/checkpoint.py: determinism, exact resume, interrupts, NaN handling,
atomic saves and fine-tuning, on a tiny model and corpus (a few seconds in all)."""
import io
import json
import os

import numpy as np
import pytest

from gpt import checkpoint
from gpt.config import build_config
from gpt.errors import ConfigError, NonFiniteLossError
from gpt.train import build_run, train_loop
from gpt.train.progress import read_metrics

TEXT = "".join(f"line {i}: the quick brown fox jumps over the lazy dog.\n" for i in range(60))


def tiny(tmp_path, name="run", text=TEXT, **over):
    corpus = tmp_path / f"{name}.txt"
    corpus.write_text(text)
    flags = dict(preset="tiny", data=str(corpus), out=str(tmp_path / name), n_embd=16, block_size=16,
                 batch_size=2, max_iters=10, eval_interval=5, eval_iters=2, sample_tokens=0, dropout=0.1)
    flags.update(over)
    return build_config(flags), flags


def build(cfg, explicit=None, out=None):
    out = out or io.StringIO()
    return build_run(cfg, explicit, log=lambda m: print(m, file=out)), out


def run(cfg, hooks=(), explicit=None):
    """Build and train; returns (summary, what it printed, the Run)."""
    r, out = build(cfg, explicit)
    return train_loop(r, hooks, out), out.getvalue(), r


def losses(out_dir):
    return [r["loss"] for r in read_metrics(os.path.join(out_dir, "metrics.jsonl"))]


def stop_at(k):
    def hook(trainer, it, loss):
        if it == k:
            raise KeyboardInterrupt
    return hook


def test_same_seed_same_losses_and_metrics_format(tmp_path):
    cfg, _ = tiny(tmp_path, "a")
    summary, printed, _ = run(cfg)
    run(tiny(tmp_path, "b")[0])
    assert losses(tmp_path / "a") == losses(tmp_path / "b")
    run(tiny(tmp_path, "c", seed=7)[0])
    assert losses(tmp_path / "a") != losses(tmp_path / "c")
    rows = read_metrics(tmp_path / "a" / "metrics.jsonl")
    assert [r["iter"] for r in rows] == list(range(1, 11))
    for r in rows:
        assert {"iter", "loss", "lr", "tokens_per_s"} <= set(r) and r["tokens_per_s"] > 0
    evals = [r for r in rows if "val_loss" in r]
    assert [r["iter"] for r in evals] == [5, 10]
    assert all({"train_loss", "val_loss", "val_ppl"} <= set(r) for r in evals)
    assert evals[-1]["val_ppl"] == pytest.approx(np.exp(evals[-1]["val_loss"]))
    assert summary["iter"] == 10 and "eval @ 10" in printed


def test_exact_resume(tmp_path):
    """10 straight steps == 5 steps, interrupted, then resumed to 10 (dropout on, so the
    minigrad RNG must be restored too, and the sampler's)."""
    run(tiny(tmp_path, "straight")[0])
    cfg, _ = tiny(tmp_path, "split")
    with pytest.raises(KeyboardInterrupt):
        run(cfg, hooks=[stop_at(5)])
    assert checkpoint.read_trainer_state(tmp_path / "split")["iter"] == 5
    cfg2, _ = tiny(tmp_path, "split")
    explicit = {"resume": True, "out": str(tmp_path / "split")}
    cfg2.run.resume = True
    _, printed, _ = run(cfg2, explicit=explicit)
    assert "resuming" in printed
    assert losses(tmp_path / "split") == losses(tmp_path / "straight")


def test_resume_extends_with_max_iters_and_lr_decay_iters(tmp_path):
    run(tiny(tmp_path, "long", max_iters=8)[0])
    run(tiny(tmp_path, "short", max_iters=4, lr_decay_iters=8)[0])
    cfg, _ = tiny(tmp_path, "short", resume=True, max_iters=8)
    run(cfg, explicit={"resume": True, "out": str(tmp_path / "short"), "max_iters": 8})
    assert losses(tmp_path / "short") == losses(tmp_path / "long")


def test_resume_refuses_a_new_model_shape(tmp_path):
    run(tiny(tmp_path, "r", max_iters=5)[0])
    cfg, _ = tiny(tmp_path, "r", resume=True)
    with pytest.raises(ConfigError, match="cannot change n_layer"):
        build(cfg, explicit={"resume": True, "out": str(tmp_path / "r"), "n_layer": 2})
    with pytest.raises(ConfigError, match="already holds a checkpoint"):
        build(tiny(tmp_path, "r")[0])


def test_ctrl_c_mid_step_rewinds_the_rngs(tmp_path, monkeypatch):
    """An interrupt inside the forward pass saves the last complete step, not a half one."""
    import gpt.train.loop
    run(tiny(tmp_path, "straight")[0])
    cfg, _ = tiny(tmp_path, "mid", eval_interval=100)
    r, out = build(cfg)
    real_step, calls = gpt.train.loop.train_step, []

    def step(model, optimizer, batches, lr, *rest):  # the step has drawn its batches ...
        if len(calls) == 6:
            raise KeyboardInterrupt  # ... when Ctrl-C arrives
        calls.append(lr)
        return real_step(model, optimizer, batches, lr, *rest)
    monkeypatch.setattr(gpt.train.loop, "train_step", step)
    with pytest.raises(KeyboardInterrupt):
        train_loop(r, stream=out)
    monkeypatch.undo()
    assert checkpoint.read_trainer_state(tmp_path / "mid")["iter"] == 6
    cfg2, _ = tiny(tmp_path, "mid", eval_interval=100, resume=True)
    run(cfg2, explicit={"resume": True, "out": str(tmp_path / "mid")})
    assert losses(tmp_path / "mid") == losses(tmp_path / "straight")


def test_non_finite_loss_stops_and_keeps_the_last_checkpoint(tmp_path):
    cfg, _ = tiny(tmp_path, "nan")

    def poison(trainer, it, loss):
        if it == 7:
            trainer.model.parameters()[0].data[...] = np.nan
    r, out = build(cfg)
    with pytest.raises(NonFiniteLossError, match="loss is nan at iteration 8.*iteration 5\\) is kept"):
        train_loop(r, [poison], out)
    assert r.last_saved == 5
    model, _, state = checkpoint.load(tmp_path / "nan")
    assert state["iter"] == 5 and all(np.isfinite(p.data).all() for p in model.parameters())


def _snapshot(folder):
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir())}


def test_crash_between_the_two_renames_is_recovered(tmp_path, monkeypatch):
    _, _, trainer = run(tiny(tmp_path, "swap", max_iters=5)[0])
    ckpt = tmp_path / "swap" / "ckpt"
    old = _snapshot(ckpt)
    real_rename, calls = os.rename, []

    def rename(src, dst):
        calls.append((src, dst))
        if len(calls) == 2:  # ckpt -> ckpt.old-X done; the new folder is not in place yet
            raise OSError("killed")
        return real_rename(src, dst)
    monkeypatch.setattr(os, "rename", rename)
    with pytest.raises(OSError, match="killed"):
        trainer.save(6)
    monkeypatch.undo()
    assert not ckpt.exists()
    model, tok, state = checkpoint.load(tmp_path / "swap")  # finds ckpt.old-X and puts it back
    assert state["iter"] == 5 and _snapshot(ckpt) == old
    trainer.save(6)  # and the next save works, cleaning the leftover temp folder
    assert sorted(p.name for p in ckpt.parent.iterdir() if p.name.startswith("ckpt")) == ["ckpt"]


def test_checkpoint_contents_and_no_pickle(tmp_path):
    run(tiny(tmp_path, "c", max_iters=5)[0])
    ckpt = tmp_path / "c" / "ckpt"
    assert {p.name for p in ckpt.iterdir()} == {
        "config.json", "model.safetensors", "tokenizer.txt", "optimizer.safetensors",
        "optimizer.json", "trainer_state.json"}
    config = json.loads((ckpt / "config.json").read_text())
    assert config["model_type"] == "gpt2" and config["n_embd"] == 16 and config["n_positions"] == 16
    state = json.loads((ckpt / "trainer_state.json").read_text())
    assert {"iter", "rng", "best_val_loss", "config"} <= set(state)
    assert set(state["rng"]) == {"minigrad", "sampler"}
    opt = checkpoint.load_optimizer_state(ckpt)
    assert opt["state"][0]["step"] == 5 and isinstance(opt["state"][0]["exp_avg"], np.ndarray)


def test_init_from_fine_tunes_on_a_new_corpus(tmp_path):
    run(tiny(tmp_path, "base", max_iters=5)[0])
    base_model, base_tok, _ = checkpoint.load(tmp_path / "base")
    cfg, flags = tiny(tmp_path, "ft", text=TEXT.upper().lower()[::-1], max_iters=3, n_layer=1,
                      init_from=str(tmp_path / "base"))
    summary, printed, trainer = run(cfg, explicit={"init_from": flags["init_from"]})
    assert "fine-tuning from" in printed
    assert trainer.optimizer.state_dict()["state"][0]["step"] == 3  # a fresh optimizer
    assert trainer.tokenizer.chars == base_tok.chars
    model, _, state = checkpoint.load(tmp_path / "ft")
    assert state["iter"] == 3 and model.config == base_model.config
    with pytest.raises(ConfigError, match="keeps the checkpoint's model"):
        build(tiny(tmp_path, "ft2", n_embd=32, init_from=flags["init_from"])[0],
              explicit={"n_embd": 32, "init_from": flags["init_from"]})


def test_real_sigint_saves_and_exits_130(tmp_path):
    """Ctrl-C on a real `gpt train` process: it finishes the step, saves, and exits 130."""
    import signal
    import subprocess
    import sys
    import time
    corpus = tmp_path / "c.txt"
    corpus.write_text(TEXT)
    out = tmp_path / "run"
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    proc = subprocess.Popen([sys.executable, "-m", "gpt.cli", "train", "--preset", "tiny", "--data",
                             str(corpus), "--out", str(out), "--n-embd", "16", "--block-size", "16",
                             "--max-iters", "100000", "--eval-interval", "100000"],
                            cwd=root, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    metrics = out / "metrics.jsonl"
    deadline = time.time() + 60
    while time.time() < deadline and (not metrics.exists() or len(metrics.read_text().splitlines()) < 3):
        time.sleep(0.1)
    proc.send_signal(signal.SIGINT)
    stdout, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 130, stderr
    assert "interrupted: saved iteration" in stdout
    steps = len(read_metrics(metrics))
    assert checkpoint.read_trainer_state(out)["iter"] == steps >= 3


def test_loss_plot_is_skipped_with_a_notice_without_matplotlib(tmp_path, monkeypatch):
    import builtins
    from gpt.train.progress import MetricsLog, plot_losses
    log = MetricsLog(tmp_path / "metrics.jsonl")
    log.write({"iter": 1, "loss": 2.0, "lr": 1e-3, "tokens_per_s": 10.0})
    log.write({"iter": 2, "loss": 1.5, "lr": 1e-3, "tokens_per_s": 10.0, "train_loss": 1.4,
               "val_loss": 1.6, "val_ppl": 4.95})
    log.close()
    real_import = builtins.__import__

    def no_matplotlib(name, *args, **kwargs):
        if name.startswith("matplotlib"):
            raise ImportError("No module named 'matplotlib'")
        return real_import(name, *args, **kwargs)
    monkeypatch.setattr(builtins, "__import__", no_matplotlib)
    notice = plot_losses(tmp_path / "metrics.jsonl", tmp_path / "loss.png")
    assert "matplotlib not installed" in notice and "\n" not in notice
    assert not (tmp_path / "loss.png").exists()
    monkeypatch.undo()
    pytest.importorskip("matplotlib")
    assert plot_losses(tmp_path / "metrics.jsonl", tmp_path / "loss.png") is None
    assert (tmp_path / "loss.png").read_bytes()[:4] == b"\x89PNG"


def test_metrics_past_the_checkpoint_are_dropped_on_resume(tmp_path):
    from gpt.train.progress import MetricsLog
    path = tmp_path / "metrics.jsonl"
    path.write_text("".join(json.dumps({"iter": i, "loss": 1.0}) + "\n" for i in range(1, 8)) + '{"iter": 8, "lo')
    MetricsLog(path, keep_through=5).close()  # a crash after the step-5 checkpoint, mid-line
    assert [r["iter"] for r in read_metrics(path)] == [1, 2, 3, 4, 5]


def test_each_step_uses_its_own_learning_rate(tmp_path):
    """Step it (from 0) updates with get_lr(it): warm-up then cosine, checked on the optimizer
    while the step runs and in metrics.jsonl."""
    from minigrad.optim import get_lr
    cfg, _ = tiny(tmp_path, "lr", max_iters=12, warmup_iters=4, lr=1e-2, min_lr=1e-3)
    used = []

    def record(trainer, it, loss):
        used.append(trainer.optimizer.param_groups[0]["lr"])
    run(cfg, hooks=[record])
    expected = [get_lr(it, 1e-2, 1e-3, 4, 12) for it in range(12)]
    assert used == pytest.approx(expected, rel=1e-12)
    assert [r["lr"] for r in read_metrics(tmp_path / "lr" / "metrics.jsonl")] == pytest.approx(expected, rel=1e-12)


def test_grad_clip_0_measures_without_clipping(tmp_path):
    """--grad-clip 0 leaves the gradients whole: the same losses as a bound never reached."""
    run(tiny(tmp_path, "off", grad_clip=0.0, lr=5e-2)[0])
    run(tiny(tmp_path, "huge", grad_clip=1e30, lr=5e-2)[0])
    run(tiny(tmp_path, "tight", grad_clip=1e-3, lr=5e-2)[0])
    assert losses(tmp_path / "off") == losses(tmp_path / "huge")
    assert losses(tmp_path / "off") != losses(tmp_path / "tight")  # clipping does bite when asked
    norms = [r["grad_norm"] for r in read_metrics(tmp_path / "off" / "metrics.jsonl")]
    assert all(n > 1e-3 for n in norms)


def test_weight_decay_typed_on_resume_is_used(tmp_path):
    cfg, _ = tiny(tmp_path, "wd", weight_decay=0.1)
    with pytest.raises(KeyboardInterrupt):
        run(cfg, hooks=[stop_at(5)])
    cfg2, _ = tiny(tmp_path, "wd", resume=True)
    seen = []
    _, _, trainer = run(cfg2, explicit={"resume": True, "out": str(tmp_path / "wd"), "weight_decay": 0.5},
                        hooks=[lambda t, it, loss: seen.append([g["weight_decay"] for g in
                                                                  t.optimizer.param_groups])])
    assert all(wd == [0.5, 0.0] for wd in seen)  # the 2-D group decays at the typed rate; biases never
    assert checkpoint.read_trainer_state(tmp_path / "wd")["config"]["optim"]["weight_decay"] == 0.5


def test_best_val_loss_survives_resume(tmp_path):
    cfg, _ = tiny(tmp_path, "best", max_iters=15, lr=3e-2)
    with pytest.raises(KeyboardInterrupt):
        run(cfg, hooks=[stop_at(10)])
    saved = checkpoint.read_trainer_state(tmp_path / "best")["best_val_loss"]
    assert saved == min(r["val_loss"] for r in read_metrics(tmp_path / "best" / "metrics.jsonl")
                        if "val_loss" in r)
    cfg2, _ = tiny(tmp_path, "best", resume=True, max_iters=15)
    r, out = build(cfg2, explicit={"resume": True, "out": str(tmp_path / "best")})
    assert r.best_val_loss == saved
    train_loop(r, stream=out)
    vals = [r["val_loss"] for r in read_metrics(tmp_path / "best" / "metrics.jsonl") if "val_loss" in r]
    assert checkpoint.read_trainer_state(tmp_path / "best")["best_val_loss"] == min(vals)


@pytest.mark.parametrize("victim", ["model.safetensors", "optimizer.safetensors", "optimizer.json",
                                    "tokenizer.txt", "trainer_state.json"])
def test_crash_while_writing_any_file_leaves_the_old_checkpoint(tmp_path, monkeypatch, victim):
    """A crash while any one file of the checkpoint is written (half of it on disk) leaves the
    previous checkpoint whole and loadable: the save is atomic as a folder, not file by file."""
    import builtins
    import safetensors.numpy
    _, _, trainer = run(tiny(tmp_path, "atomic", max_iters=5)[0])
    ckpt = tmp_path / "atomic" / "ckpt"
    old = _snapshot(ckpt)
    real_open, real_save = builtins.open, safetensors.numpy.save_file

    def hit(path):
        return victim in os.path.basename(str(path))

    def torn_open(file, mode="r", *args, **kwargs):
        f = real_open(file, mode, *args, **kwargs)
        if hit(file) and ("w" in mode or "a" in mode):
            f.write(b"\x00" * 10 if "b" in mode else "{torn")
            f.close()
            raise OSError(f"disk full writing {victim}")
        return f

    def torn_save(tensors, filename, metadata=None):
        if hit(filename):
            with real_open(filename, "wb") as f:
                f.write(b"\x00" * 100)
            raise OSError(f"disk full writing {victim}")
        return real_save(tensors, filename, metadata=metadata)
    monkeypatch.setattr(builtins, "open", torn_open)
    monkeypatch.setattr(safetensors.numpy, "save_file", torn_save)
    trainer.model.parameters()[0].data[...] += 1.0
    with pytest.raises(OSError, match="disk full"):
        trainer.save(6)
    monkeypatch.undo()
    assert _snapshot(ckpt) == old
    assert [p.name for p in ckpt.parent.iterdir() if p.name.startswith("ckpt")] == ["ckpt"]
    assert checkpoint.load(tmp_path / "atomic")[2]["iter"] == 5
