"""kernels/threads.py: kernels split over threads give bit-identical results whatever the
thread count, exceptions in a piece reach the caller, nested splits run serially."""
import multiprocessing
import threading

import numpy as np
import pytest

from minigrad import kernels
from minigrad.kernels import numba_impl as nb, threads


@pytest.fixture
def thread_count():
    before = kernels.get_num_threads()
    yield kernels.set_num_threads
    kernels.set_num_threads(before)


def _inputs(dtype):
    rng = np.random.default_rng(0)
    x = rng.standard_normal((96, 64, 128)).astype(dtype)       # 786k elements: several pieces
    q, k, v, dout = (rng.standard_normal((8, 4, 160, 32)).astype(dtype) for _ in range(4))  # 2 query blocks
    w, b = rng.standard_normal(128).astype(dtype), rng.standard_normal(128).astype(dtype)
    return x, q, k, v, dout, w, b


def _run_all(x, q, k, v, dout, w, b):
    y, t = nb.gelu_forward_keep_tanh(x)
    out, lse = nb.attention_forward(q, k, v, 0.2)
    p, m, v2 = x.copy(), 0.1 * y, np.abs(t)
    nb.adamw_update(p, y, m, v2, 1e-3, 0.9, 0.95, 1e-8, 0.1, 7)
    scaled = x.copy()
    nb.scale(scaled, 0.3)
    logits, targets = x.reshape(-1, 128), (np.arange(96 * 64) * 7) % 128
    loss, ce_lse = nb.cross_entropy_forward(logits, targets, -100)
    dlogits = nb.cross_entropy_backward(logits, targets, ce_lse, -100, 1.0)
    rows, big = x.reshape(-1, 384)[:4], x.reshape(-1, 384)[4:3004]  # decoding: 4 rows, weights of 3 tiles
    decode = [nb.matmul(rows, big.T), nb.matmul(rows[:, :300], np.ascontiguousarray(big.T[:300]))]
    decode += [nb.linear_rowwise(x.reshape(-1, 384)[:8], big.T),  # a serving step's 8 rows, both layouts
               nb.linear_rowwise(x.reshape(-1, 384)[:8, :300], np.ascontiguousarray(big.T[:300]))]
    return decode + [y, t, nb.gelu_forward(x), nb.gelu_backward(x, y), nb.gelu_backward_with_tanh(x, t, y),
            out, lse, *nb.attention_backward(dout, q, k, v, out, lse, 0.2),
            *nb.layer_norm_forward(x, w, b, 1e-5), *_ln_backward(x, w, b), p, m, v2, scaled, np.float64(nb.sum_squares(x)), loss, ce_lse, dlogits]


def _ln_backward(x, w, b):
    _, mean, rstd = nb.layer_norm_forward(x, w, b, 1e-5)
    return nb.layer_norm_backward(np.cos(x), x, w, mean, rstd)  # dweight, dbias: sums over 96 blocks


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_results_do_not_depend_on_the_thread_count(thread_count, dtype):
    inputs = _inputs(dtype)
    thread_count(1)
    serial = _run_all(*inputs)
    for n in (2, 3):  # 3: shares of unequal size on a 2-core machine
        thread_count(n)
        for a, b in zip(serial, _run_all(*inputs)):
            np.testing.assert_array_equal(a, b)


def test_split_covers_every_row_once_with_the_pieces_running_at_once(thread_count):
    thread_count(3)
    seen, names = np.zeros(100, int), set()
    all_started = threading.Barrier(3, timeout=10)

    def piece(lo, hi):
        all_started.wait()  # passes only if the three pieces run concurrently
        seen[lo:hi] += 1
        names.add(threading.current_thread().name)

    threads.split(piece, 100, 1)
    assert (seen == 1).all()
    assert len(names) == 3


def test_split_keeps_small_work_on_the_calling_thread(thread_count):
    thread_count(3)
    calls = []
    threads.split(lambda lo, hi: calls.append((lo, hi, threading.current_thread().name)), 100, 40)
    assert sorted(c[:2] for c in calls) == [(0, 50), (50, 100)]  # 100 // 40 = 2 pieces, not 3
    calls.clear()
    threads.split(lambda lo, hi: calls.append((lo, hi, threading.current_thread().name)), 100, 101)
    assert calls == [(0, 100, threading.current_thread().name)]


def test_an_exception_in_a_helper_reaches_the_caller_after_all_pieces(thread_count):
    thread_count(2)
    done = []

    def piece(lo, hi):
        if lo > 0:
            raise ValueError("second piece failed")
        done.append(lo)

    with pytest.raises(ValueError, match="second piece failed"):
        threads.split(piece, 10, 1)
    assert done == [0]


def test_a_split_inside_a_piece_runs_serially(thread_count):
    thread_count(3)  # a free helper: a nested split that did go parallel would use it
    pairs = []

    def piece(lo, hi):
        outer = threading.current_thread().name
        threads.split(lambda a, b: pairs.append((outer, threading.current_thread().name)), 4, 1)

    threads.split(piece, 2, 1)
    assert len(pairs) == 2 and all(outer == inner for outer, inner in pairs)


def test_set_num_threads_checks_its_argument(thread_count):
    for bad in (0, -1, 1.5, True, "2"):
        with pytest.raises(ValueError, match="expected an integer >= 1"):
            thread_count(bad)


def _gelu_sum(_):
    return float(nb.gelu_forward(np.ones(1 << 18, np.float32)).sum())


def test_a_forked_child_gets_a_fresh_pool(thread_count):
    thread_count(2)
    expected = _gelu_sum(None)  # the parent's pool exists before the fork
    with multiprocessing.get_context("fork").Pool(1) as pool:
        # a child left with the parent's dead pool would wait forever: fail after a minute instead
        assert pool.map_async(_gelu_sum, [0], chunksize=1).get(timeout=60) == [expected]


CHILD = """
import numpy as np                      # NumPy (and OpenBLAS) first, without the variable
from threadpoolctl import ThreadpoolController
lib = ThreadpoolController().select(internal_api="openblas").lib_controllers[0].dynlib
before = lib.openblas_thread_timeout()
import minigrad
after_import = lib.openblas_thread_timeout()   # importing minigrad changes nothing
minigrad.runtime.tune()
minigrad.kernels.set_num_threads(2)
minigrad.kernels.gelu_forward(np.ones(1 << 18, np.float32))   # a split kernel, then a GEMM
a = np.random.default_rng(0).standard_normal((512, 512)).astype(np.float32)
err = float(np.abs(a @ a - (a.astype(np.float64) @ a)).max())  # BLAS restarted and right
print(before, after_import, lib.openblas_thread_timeout(), err < 1e-3)
"""


def test_runtime_tune_shortens_the_openblas_spin_and_import_does_not():
    import os
    import subprocess
    import sys
    env = {k: v for k, v in os.environ.items() if k != "OPENBLAS_THREAD_TIMEOUT"}
    out = subprocess.run([sys.executable, "-c", CHILD], env=env, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["0", "0", "4", "True"]
