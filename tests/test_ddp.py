"""Data-parallel training under `mpiexec -n 2` (gpt/train/ddp.py), on 2 cores, dropout 0:
the same run as one process with the global batch, exact and cross-N resume, a killed, a
hung, an interrupted and a failing rank, ranks that disagree, rank-0-only writes, and
Numba's cache filled by rank 0 alone. Every subprocess has a bounded timeout."""
import json
import os
import shutil
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
from conftest import require
from test_grad_accum import LOSS_RTOL, NORM_RTOL, PARAM_ATOL, corpus_text

from gpt import checkpoint
from gpt.train.progress import read_metrics

pytestmark = pytest.mark.slow
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FLAGS = dict(preset="tiny", n_layer=2, n_embd=32, block_size=32, max_iters=20, lr_decay_iters=20,
             eval_interval=10, eval_iters=2, sample_tokens=0, dropout=0.0)


def mpiexec():
    require("mpi4py", extra="mpi")
    found = shutil.which("mpiexec", path=os.path.dirname(sys.executable) + os.pathsep + os.environ["PATH"])
    if found is None:
        pytest.fail("mpi4py is installed but mpiexec is not on PATH (pip install mpich)")
    return found


def env(**extra):
    base = {k: v for k, v in os.environ.items() if not k.startswith(("PMI_", "OMPI_", "MV2_", "SLURM_"))}
    return dict(base, PYTHONPATH=ROOT, **extra)


def argv(**flags):
    out = []
    for k, v in flags.items():
        flag = "--" + k.replace("_", "-")
        out += [flag] if v is True else [flag, str(v)]
    return out


def gpt_train(n, tmp_path, name, timeout=180, **over):
    """`gpt train` in n processes (n=1: a plain process); returns the CompletedProcess."""
    flags = dict(FLAGS, data=str(corpus(tmp_path)), out=str(tmp_path / name), **over)
    launcher = [mpiexec(), "-n", str(n)] if n > 1 else []
    return subprocess.run(launcher + [sys.executable, "-m", "gpt.cli", "train"] + argv(**flags), cwd=ROOT,
                          env=env(), capture_output=True, text=True, timeout=timeout)


def corpus(tmp_path):
    path = tmp_path / "corpus.txt"
    if not path.exists():
        path.write_text(corpus_text())
    return path


def params(folder):
    model, _, _ = checkpoint.load(folder)
    return np.concatenate([p.data.ravel() for p in model.parameters()])


def column(folder, key):
    return [r[key] for r in read_metrics(folder / "metrics.jsonl") if key in r]


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """One process with batch 8, and 2 ranks with batch 4 each: the same global batches."""
    tmp = tmp_path_factory.mktemp("ddp")
    one = gpt_train(1, tmp, "one", batch_size=8)
    two = gpt_train(2, tmp, "two", batch_size=4)
    assert one.returncode == 0 and two.returncode == 0, one.stderr + two.stderr
    return tmp, one, two


def test_two_ranks_equal_one_process_with_twice_the_batch(runs):
    tmp, _, _ = runs
    for key, rtol in (("loss", LOSS_RTOL), ("grad_norm", NORM_RTOL), ("val_loss", LOSS_RTOL), ("train_loss", LOSS_RTOL)):
        assert column(tmp / "two", key) == pytest.approx(column(tmp / "one", key), rel=rtol), key
    assert len(column(tmp / "two", "loss")) == 20
    np.testing.assert_allclose(params(tmp / "two"), params(tmp / "one"), rtol=0, atol=PARAM_ATOL)


def test_two_ranks_with_grad_accum_equal_one_process(runs):
    tmp, _, _ = runs
    out = gpt_train(2, tmp, "two_acc", batch_size=2, grad_accum_steps=2)
    assert out.returncode == 0, out.stderr
    assert "2 processes x 2 micro-batches x 2 sequences = 8 sequences per step" in out.stdout
    assert column(tmp / "two_acc", "loss") == pytest.approx(column(tmp / "one", "loss"), rel=LOSS_RTOL)
    np.testing.assert_allclose(params(tmp / "two_acc"), params(tmp / "one"), rtol=0, atol=PARAM_ATOL)


def test_only_rank_0_prints_and_writes(runs):
    tmp, _, two = runs
    assert two.stdout.count("iter 20/20") == 1 and two.stdout.count("eval @ 20") == 1
    assert two.stdout.count("corpus:") == 1
    assert [r["iter"] for r in read_metrics(tmp / "two" / "metrics.jsonl")] == list(range(1, 21))
    assert all(r["allreduce_s"] >= 0 for r in read_metrics(tmp / "two" / "metrics.jsonl"))
    assert sorted(os.listdir(tmp / "two")) == sorted(os.listdir(tmp / "one"))  # no second writer's leftovers
    assert checkpoint.read_trainer_state(tmp / "two")["world_size"] == 2
    assert "Traceback" not in two.stderr


def test_resume_with_the_same_ranks_is_exact_and_with_others_keeps_the_global_batch(runs):
    tmp, _, _ = runs
    half = gpt_train(2, tmp, "half", batch_size=4, max_iters=10)
    assert half.returncode == 0, half.stderr
    for name in ("same", "one_rank", "typed"):
        shutil.copytree(tmp / "half", tmp / name)
    same = gpt_train(2, tmp, "same", resume=True, max_iters=20)
    assert same.returncode == 0, same.stderr
    assert column(tmp / "same", "loss") == column(tmp / "two", "loss")  # bit for bit
    one = gpt_train(1, tmp, "one_rank", resume=True, max_iters=20)
    assert one.returncode == 0, one.stderr
    assert "resuming on 1 processes (saved by 2): --batch-size 8 per process" in one.stdout
    assert column(tmp / "one_rank", "loss") == pytest.approx(column(tmp / "two", "loss"), rel=LOSS_RTOL)
    typed = gpt_train(1, tmp, "typed", resume=True, max_iters=20, batch_size=4)
    assert typed.returncode == 2 and "= 8 sequences per step; on 1 processes pick" in typed.stderr


def rank_pid(marker, rank, deadline):
    """The pid of MPI rank `rank` of the job whose command line holds marker."""
    while time.time() < deadline:
        for pid in filter(str.isdigit, os.listdir("/proc")):
            try:
                with open(f"/proc/{pid}/cmdline", "rb") as f:
                    cmd = f.read()
                with open(f"/proc/{pid}/environ", "rb") as f:
                    environ = f.read().split(b"\0")
            except OSError:
                continue
            if marker.encode() in cmd and f"PMI_RANK={rank}".encode() in environ:
                return int(pid)
        time.sleep(0.1)
    raise AssertionError(f"rank {rank} of {marker} not found")


def start_long_run(tmp_path, name, **over):
    """A 2-rank run of many steps, checkpointing every 5; returns (process, metrics path, rank 1's pid)
    once 12 steps are done."""
    out = tmp_path / name
    flags = dict(FLAGS, data=str(corpus(tmp_path)), out=str(out), batch_size=4, max_iters=100000,
                 lr_decay_iters=100000, eval_interval=5, **over)
    proc = subprocess.Popen([mpiexec(), "-n", "2", sys.executable, "-m", "gpt.cli", "train"] + argv(**flags),
                            cwd=ROOT, env=env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 120
    metrics = out / "metrics.jsonl"
    while time.time() < deadline and (not metrics.exists() or len(metrics.read_text().splitlines()) < 12):
        time.sleep(0.1)
    return proc, metrics, rank_pid(str(out), 1, deadline)


def finish(proc, timeout):
    """(returncode, stdout, stderr, seconds taken); kills the job if it outlives timeout."""
    t0 = time.time()
    try:
        stdout, stderr = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        stdout, stderr = proc.communicate()
        pytest.fail(f"the job did not stop within {timeout} s:\n{stderr[-2000:]}")
    return proc.returncode, stdout, stderr, time.time() - t0


def test_a_killed_rank_stops_every_rank_and_the_checkpoint_resumes(tmp_path):
    proc, metrics, pid = start_long_run(tmp_path, "killed")
    os.kill(pid, signal.SIGKILL)
    code, _, _, _ = finish(proc, timeout=60)
    assert code != 0
    state = checkpoint.read_trainer_state(tmp_path / "killed")
    assert state["iter"] >= 10 and state["iter"] % 5 == 0
    more = gpt_train(2, tmp_path, "killed", resume=True, batch_size=4, max_iters=state["iter"] + 2,
                     lr_decay_iters=100000, eval_interval=5)
    assert more.returncode == 0, more.stderr
    assert f"resuming {tmp_path / 'killed'} at iteration {state['iter']}" in more.stdout


def test_a_hung_rank_is_stopped_by_the_watchdog(tmp_path):
    proc, _, pid = start_long_run(tmp_path, "hung", ddp_timeout=5)
    os.kill(pid, signal.SIGSTOP)  # alive but silent: the launcher cannot tell
    code, _, stderr, took = finish(proc, timeout=60)
    assert code != 0 and took < 30
    assert "rank 0: no answer from the other ranks for 5 s while" in stderr
    assert checkpoint.read_trainer_state(tmp_path / "hung")["iter"] >= 10


def test_ctrl_c_on_one_rank_stops_every_rank_after_the_same_step(tmp_path):
    proc, metrics, pid = start_long_run(tmp_path, "ctrl_c")
    os.kill(pid, signal.SIGINT)
    code, stdout, stderr, _ = finish(proc, timeout=60)
    assert code == 130, stderr
    assert "rank 1 was interrupted: stopping after this step" in stdout
    steps = len(read_metrics(metrics))
    assert f"interrupted: saved iteration {steps}" in stdout
    assert checkpoint.read_trainer_state(tmp_path / "ctrl_c")["iter"] == steps


FAIL_ON_RANK_1 = """
import sys
from gpt.config import build_config
from gpt.train import train

def fail(run, it, loss):
    if run.ddp.rank == 1 and it == 3:
        raise RuntimeError("a fault on rank 1")
train(build_config(dict(preset="tiny", data=sys.argv[1], out=sys.argv[2], max_iters=100000,
                        eval_interval=100000)), hooks=[fail])
"""


def test_an_error_on_one_rank_stops_every_rank_at_once(tmp_path):
    t0 = time.time()
    out = subprocess.run([mpiexec(), "-n", "2", sys.executable, "-c", FAIL_ON_RANK_1, str(corpus(tmp_path)),
                          str(tmp_path / "r")], cwd=ROOT, env=env(), capture_output=True, text=True, timeout=120)
    assert out.returncode != 0 and time.time() - t0 < 60  # far below the 300 s watchdog
    assert "rank 1: RuntimeError: a fault on rank 1; stopping all 2 ranks" in out.stderr


@pytest.mark.parametrize("differ, named", [({"seed": 2}, "batches on ranks 1; config on ranks 1; weights on ranks 1"),
                                           ({"n_embd": 16}, "config on ranks 1; weights on ranks 1")])
def test_ranks_that_disagree_stop_with_a_clear_error(tmp_path, differ, named):
    flags = dict(FLAGS, data=str(corpus(tmp_path)), out=str(tmp_path / "r"), batch_size=4)
    rank = [sys.executable, "-m", "gpt.cli", "train"]
    out = subprocess.run([mpiexec(), "-n", "1"] + rank + argv(**flags) + [":", "-n", "1"] + rank +
                         argv(**dict(flags, **differ)), cwd=ROOT, env=env(), capture_output=True, text=True,
                         timeout=120)
    assert out.returncode == 1, out.stderr
    assert f"error: the ranks disagree with rank 0 ({named})" in out.stderr
    assert "Traceback" not in out.stderr and not (tmp_path / "r" / "ckpt").exists()


COMPILE_STATS = """
import importlib, json, pkgutil, sys
import minigrad.kernels
from gpt.config import build_config
from gpt.train import train
from gpt.train.ddp import connect
train(build_config(dict(preset="tiny", data=sys.argv[1], out=sys.argv[2], max_iters=3, eval_interval=2,
                        sample_tokens=0)))
compiled = loaded = 0
for info in pkgutil.iter_modules(minigrad.kernels.__path__):
    for obj in vars(importlib.import_module("minigrad.kernels." + info.name)).values():
        stats = getattr(obj, "stats", None)
        if stats is not None and hasattr(stats, "cache_misses"):
            compiled += sum(stats.cache_misses.values())
            loaded += sum(stats.cache_hits.values())
print("STATS", json.dumps({"rank": connect().rank, "compiled": compiled, "loaded": loaded}), flush=True)
"""


def test_rank_0_fills_numbas_cache_and_the_others_only_read_it(tmp_path):
    out = subprocess.run([mpiexec(), "-n", "2", sys.executable, "-c", COMPILE_STATS, str(corpus(tmp_path)),
                          str(tmp_path / "r")], cwd=ROOT, env=env(NUMBA_CACHE_DIR=str(tmp_path / "numba")),
                         capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    stats = {s["rank"]: s for s in (json.loads(line[6:]) for line in out.stdout.splitlines() if line.startswith("STATS "))}
    assert stats[0]["compiled"] > 0  # an empty cache: rank 0 compiled ...
    assert stats[1]["compiled"] == 0 and stats[1]["loaded"] > 0  # ... and rank 1 only loaded
