"""The graph is freed after backward: intermediates die, and memory stays flat over many steps."""
import gc
import tracemalloc
import weakref

import numpy as np

import minigrad as mg
from minigrad import functional as F, nn


def test_intermediates_die_after_backward():
    x = mg.randn(4, 3, requires_grad=True)
    h = (x @ mg.randn(3, 5)).tanh()
    ref, ctx = weakref.ref(h), h.grad_fn
    loss = h.sum()
    del h
    assert ref() is not None                           # the graph holds it until backward
    loss.backward()
    assert ctx.inputs is None                          # backward freed the node's links and saved arrays
    del loss
    assert ref() is None                               # freed by refcount alone: no cycles to collect


def test_retain_graph_keeps_the_graph_until_the_last_backward():
    x = mg.randn(3, requires_grad=True)
    loss = (x * x).sum()
    loss.backward(retain_graph=True)
    assert loss.grad_fn.inputs is not None
    loss.backward()
    assert loss.grad_fn.inputs is None


def _step(model, opt_params, ids, targets):
    loss = F.cross_entropy(model(ids).reshape(-1, 7), targets)
    loss.backward()
    with mg.no_grad():
        for p in opt_params:
            p.data -= 0.01 * p.grad
            p.grad = None
    return loss.item()


def test_memory_flat_over_2000_steps():
    mg.manual_seed(0)
    model = nn.Sequential(nn.Embedding(7, 8), nn.LayerNorm(8), nn.Linear(8, 16), nn.GELU(), nn.Linear(16, 7))
    params = model.parameters()
    rng = np.random.default_rng(0)
    ids, targets = rng.integers(0, 7, (2, 5)), rng.integers(0, 7, 10)
    for _ in range(200):                               # warm up caches (numba dispatch, numpy pools)
        _step(model, params, ids, targets)
    gc.collect()
    tracemalloc.start()
    try:
        for _ in range(200):
            _step(model, params, ids, targets)
        base, _ = tracemalloc.get_traced_memory()
        for _ in range(1800):
            _step(model, params, ids, targets)
        gc.collect()
        end, _ = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert end - base < 64 * 1024, f"grew by {end - base} bytes over 1800 steps"
