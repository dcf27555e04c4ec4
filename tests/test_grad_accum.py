"""Gradient accumulation (--grad-accum-steps) and the one-process side of gpt/train/ddp.py:
K micro-batches of B make the step of one batch of K*B, masked targets included; a plain
run never imports mpi4py. The multi-process tests are in test_ddp.py."""
import io
import os
import subprocess
import sys

import numpy as np
import pytest

from gpt.config import build_config
from gpt.errors import ConfigError
from gpt.model import GPT, GPTConfig
from gpt.train import build_run, train_loop, train_step
from gpt.train.ddp import SINGLE, Ranks, connect, launched_world_size
from gpt.train.progress import read_metrics
from gpt.train.run import _keep_global_batch

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def corpus_text(n_words=4000, seed=0):
    """A seeded random text: varied enough that batches differ, small enough to be quick."""
    words = "the quick brown fox jumps over a lazy dog while seven wizards box and hex".split()
    rng = np.random.default_rng(seed)
    return " ".join(rng.choice(words, n_words)) + "\n"


def trained(tmp_path, name, **over):
    """20 steps of a small model, dropout 0; returns (metrics rows, the parameters as one vector)."""
    corpus = tmp_path / "corpus.txt"
    corpus.write_text(corpus_text())
    flags = dict(preset="tiny", data=str(corpus), out=str(tmp_path / name), n_layer=2, n_embd=32,
                 block_size=32, max_iters=20, eval_interval=20, eval_iters=2, sample_tokens=0, dropout=0.0)
    run = build_run(build_config(dict(flags, **over)), log=lambda m: None)
    train_loop(run, stream=io.StringIO())
    return read_metrics(tmp_path / name / "metrics.jsonl"), np.concatenate([p.data.ravel() for p in run.model.parameters()])


# Tolerances: the two runs add the same float32 terms in another order. A loss agrees to a
# few float32 ulps (eps = 1.2e-7); a gradient norm to ~1e-6 relative; a parameter (of size
# ~1, moved by ~lr = 2e-3 per AdamW step) to 1e-5, under 1% of one step. A wrong batch, a
# missing 1/K (the clipped norm is then K times larger) or a micro-batch left out is off by
# orders of magnitude more.
LOSS_RTOL, NORM_RTOL, PARAM_ATOL = 1e-6, 1e-5, 1e-5


def test_grad_accum_4_equals_a_4_times_larger_batch(tmp_path):
    big, p_big = trained(tmp_path, "big", batch_size=8)
    acc, p_acc = trained(tmp_path, "acc", batch_size=2, grad_accum_steps=4)
    assert [r["loss"] for r in acc] == pytest.approx([r["loss"] for r in big], rel=LOSS_RTOL)
    assert [r["grad_norm"] for r in acc] == pytest.approx([r["grad_norm"] for r in big], rel=NORM_RTOL)
    np.testing.assert_allclose(p_acc, p_big, rtol=0, atol=PARAM_ATOL)
    small, p_small = trained(tmp_path, "small", batch_size=2)  # the first quarter of each batch only
    assert np.abs(p_small - p_big).max() > 100 * PARAM_ATOL


def _model_and_optimizer(seed=0):
    import minigrad
    from minigrad.nn.flat import FlatParameters
    minigrad.manual_seed(seed)
    model = GPT(GPTConfig(vocab_size=11, block_size=8, n_layer=1, n_head=2, n_embd=16, dropout=0.0))
    optimizer = model.configure_optimizers(0.1, 1e-2, (0.9, 0.99))
    FlatParameters([p for g in optimizer.param_groups for p in g["params"]])
    return model, optimizer


def test_masked_micro_batches_weigh_by_counted_tokens():
    """Micro-batches with 14 and 3 counted targets: the step is the mean over all 17, as one
    batch of both, not the mean of the two means."""
    rng = np.random.default_rng(1)
    x = rng.integers(0, 11, (4, 8))
    y = rng.integers(0, 11, (4, 8))
    y[:2, :1] = -100          # 14 counted targets in the first micro-batch
    y[2:, :] = -100
    y[2, 5:] = [1, 2, 3]      # 3 in the second
    one, opt_one = _model_and_optimizer()
    two, opt_two = _model_and_optimizer()
    loss_one, norm_one = train_step(one, opt_one, [(x, y)], 1e-2, 0.0)
    loss_two, norm_two = train_step(two, opt_two, [(x[:2], y[:2]), (x[2:], y[2:])], 1e-2, 0.0)
    assert loss_two == pytest.approx(loss_one, rel=LOSS_RTOL)
    assert norm_two == pytest.approx(norm_one, rel=NORM_RTOL)
    for a, b in zip(one.parameters(), two.parameters()):
        np.testing.assert_allclose(b.data, a.data, rtol=0, atol=PARAM_ATOL)
    means = [float(_model_and_optimizer()[0](xs, ys)[1].item()) for xs, ys in ((x[:2], y[:2]), (x[2:], y[2:]))]
    assert abs(np.mean(means) - loss_one) > 1e-3  # what a mean of means would have logged


def test_evaluation_is_the_mean_over_counted_targets_of_all_batches():
    from gpt.train import evaluate
    rng = np.random.default_rng(3)
    x, y = rng.integers(0, 11, (4, 8)), rng.integers(0, 11, (4, 8))
    y[2:, :6] = -100  # 32 + 4 counted targets
    model = _model_and_optimizer()[0]
    split = evaluate(model, {"val": [(x[:2], y[:2]), (x[2:], y[2:])]})["val_loss"]
    whole = evaluate(model, {"val": [(x, y)]})["val_loss"]
    assert split == pytest.approx(whole, rel=LOSS_RTOL)


def test_a_micro_batch_without_counted_targets_adds_nothing():
    x = np.random.default_rng(2).integers(0, 11, (2, 8))
    y = x.copy()
    one, opt_one = _model_and_optimizer()
    two, opt_two = _model_and_optimizer()
    loss_one, _ = train_step(one, opt_one, [(x, y)], 1e-2, 1.0)
    loss_two, _ = train_step(two, opt_two, [(x, y), (x, np.full_like(y, -100))], 1e-2, 1.0)
    assert loss_two == pytest.approx(loss_one, rel=LOSS_RTOL)
    for a, b in zip(one.parameters(), two.parameters()):
        np.testing.assert_allclose(b.data, a.data, rtol=0, atol=PARAM_ATOL)


@pytest.mark.parametrize("env, size", [
    ({}, 1), ({"PMI_SIZE": "4", "PMI_RANK": "2"}, 4), ({"OMPI_COMM_WORLD_SIZE": "3", "OMPI_COMM_WORLD_RANK": "0"}, 3),
    ({"SLURM_NTASKS": "2", "SLURM_PROCID": "1"}, 2), ({"PMI_SIZE": "2"}, 1),  # a size without a rank: no launcher
])
def test_launcher_detection(env, size):
    assert launched_world_size(env) == size


def test_launched_without_mpi4py_names_the_install(monkeypatch):
    monkeypatch.setenv("PMI_SIZE", "2")
    monkeypatch.setenv("PMI_RANK", "0")
    monkeypatch.setitem(sys.modules, "mpi4py", None)  # import mpi4py now fails
    with pytest.raises(ConfigError, match=r"mpi4py is not installed: pip install 'minigrad-gpt\[mpi\]'"):
        connect()


def test_a_plain_run_never_imports_mpi4py(tmp_path):
    corpus = tmp_path / "c.txt"
    corpus.write_text(corpus_text(500))
    script = (f"import sys\nfrom gpt.config import build_config\nfrom gpt.train import train\n"
              f"train(build_config(dict(preset='tiny', data={str(corpus)!r}, out={str(tmp_path / 'r')!r}, "
              f"max_iters=2, sample_tokens=0)))\nassert 'mpi4py' not in sys.modules, 'mpi4py was imported'\n")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PMI_", "OMPI_", "MV2_", "SLURM_"))}
    out = subprocess.run([sys.executable, "-c", script], cwd=ROOT, env=dict(env, PYTHONPATH=ROOT),
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr


def test_shard_splits_a_global_batch_in_rank_order():
    class Rank(Ranks):
        def __init__(self, rank, size):
            self.rank, self.size = rank, size
    x = np.arange(12).reshape(6, 2)
    parts = [Rank(r, 3).shard((x, -x))[0] for r in range(3)]
    np.testing.assert_array_equal(np.concatenate(parts), x)
    assert SINGLE.shard((x, x))[0] is x
    with pytest.raises(Exception, match="does not split over 4 ranks"):
        Rank(0, 4).shard((x, x))


@pytest.mark.parametrize("saved, world, typed, batch", [
    ((2, 4, 1), 1, {}, 8),                # 2 x 4 -> 1 x 8
    ((2, 4, 1), 4, {}, 2),                # -> 4 x 2
    ((1, 8, 2), 2, {}, 4),                # 1 x 8 x 2 micro-batches -> 2 x 4 x 2
    ((2, 4, 1), 1, {"batch_size": 8}, 8),
    ((2, 4, 1), 1, {"batch_size": 4}, "error"),   # typed: a global batch of 4, not 8
    ((2, 4, 1), 3, {}, "error"),                  # 8 sequences do not split over 3
])
def test_resume_on_another_number_of_processes_keeps_the_global_batch(saved, world, typed, batch):
    cfg = build_config({"batch_size": saved[1], "grad_accum_steps": saved[2]})
    now = build_config(dict({"batch_size": saved[1], "grad_accum_steps": saved[2]}, **typed))
    printed = []
    if batch == "error":
        with pytest.raises(ConfigError, match=f"= {saved[0] * saved[1] * saved[2]} sequences per step"):
            _keep_global_batch(now.optim, cfg.optim, saved[0], world, typed, printed.append)
    else:
        _keep_global_batch(now.optim, cfg.optim, saved[0], world, typed, printed.append)
        assert now.optim.batch_size == batch
        assert f"--batch-size {batch} per process" in printed[0]
