"""minigrad/nn/flat.py: parameters and gradients in flat buffers, and AdamW's one-call path over
them, hold the same numbers as tensor-by-tensor training, bit for bit."""
import numpy as np
import pytest

import minigrad as mg
from minigrad.nn.flat import FlatParameters
from minigrad.nn.utils import clip_grad_norm_
from gpt.model import GPT, GPTConfig

CONFIG = GPTConfig(vocab_size=17, block_size=8, n_layer=2, n_head=2, n_embd=16)


def setup(flat, seed=0):
    mg.manual_seed(seed)
    model = GPT(CONFIG)
    opt = model.configure_optimizers(0.1, 1e-2, (0.9, 0.95))
    buffer = FlatParameters([p for g in opt.param_groups for p in g["params"]]) if flat else None
    return model, opt, buffer


def train(model, opt, steps, start=0):
    losses = []
    for i in range(start, start + steps):
        rng = np.random.default_rng(i)
        x, y = (rng.integers(0, 17, (3, 8)) for _ in range(2))
        _, loss = model(x, y)
        opt.zero_grad()
        loss.backward()
        clip_grad_norm_(model.parameters(), 0.5)
        opt.step()
        losses.append(float(loss.item()))
    return losses


def test_flat_training_is_bit_identical_to_tensor_by_tensor(monkeypatch):
    from minigrad import kernels
    (m1, o1, _), (m2, o2, flat) = setup(False), setup(True)
    assert train(m1, o1, 6) == train(m2, o2, 6)
    for (n, a), b in zip(m1.state_dict().items(), m2.state_dict().values()):
        assert np.array_equal(a, b), n
    s1, s2 = o1.state_dict(), o2.state_dict()
    for i in s1["state"]:
        assert s1["state"][i]["step"] == s2["state"][i]["step"] == 6
        assert np.array_equal(s1["state"][i]["exp_avg_sq"], s2["state"][i]["exp_avg_sq"])
    # the parameters and gradients really live in the buffers
    p = m2.transformer.h[0].attn.c_attn.weight
    assert np.shares_memory(p.data, flat.data) and np.shares_memory(p.grad, flat.grad)
    assert flat.contiguous_span(o2.param_groups[0]["params"]) == (0, sum(q.data.size for q in o2.param_groups[0]["params"]))
    calls, real = [], kernels.adamw_update  # one update call per group
    monkeypatch.setattr(kernels, "adamw_update", lambda *a: calls.append(a[0].size) or real(*a))
    train(m2, o2, 1, start=6)
    assert calls == [hi - lo for lo, hi in (flat.contiguous_span(g["params"]) for g in o2.param_groups)]


def test_resume_into_flat_buffers_continues_identically():
    m1, o1, _ = setup(False)
    train(m1, o1, 3)
    saved_model, saved_opt = {k: v.copy() for k, v in m1.state_dict().items()}, o1.state_dict()
    after = train(m1, o1, 3, start=3)
    m2, o2, _ = setup(False, seed=1)
    m2.load_state_dict(saved_model)
    o2 = m2.configure_optimizers(0.1, 1e-2, (0.9, 0.95))
    FlatParameters([p for g in o2.param_groups for p in g["params"]])
    o2.load_state_dict(saved_opt)
    assert train(m2, o2, 3, start=3) == after
    assert np.array_equal(m2.transformer.wte.weight.data, m1.transformer.wte.weight.data)


def test_missing_gradients_stay_none_and_can_be_zero_filled():
    model, opt, flat = setup(True)
    flat.grad[:] = 7.0  # stale values from an earlier step
    w = model.transformer.h[0].mlp.c_fc.weight
    (w * 2.0).sum().backward()  # only this parameter gets a gradient
    assert np.all(w.grad == 2.0) and model.transformer.wte.weight.grad is None
    assert opt.param_groups[0]["params"][0].grad is None
    flat.fill_missing_grads()
    lo, hi = w._flat[1:]
    assert np.all(flat.grad[:lo] == 0) and np.all(flat.grad[hi:] == 0) and np.all(flat.grad[lo:hi] == 2.0)
    assert sum(b.size for b in flat.buckets(1000)) == len(flat) and all(b.size <= 1000 for b in flat.buckets(1000))


def test_rebinding_data_leaves_the_buffer_and_the_per_tensor_path_takes_over():
    model, opt, flat = setup(True)
    model.to(np.float64)  # new arrays: the parameters are no longer views of flat.data
    assert flat.contiguous_span(opt.param_groups[0]["params"]) is None
    train(model, opt, 1)  # still trains, tensor by tensor
    with pytest.raises(ValueError, match="share one dtype"):
        FlatParameters([mg.nn.Parameter(np.zeros(2, np.float32)), mg.nn.Parameter(np.zeros(2))])


def test_a_weights_gradient_is_written_straight_into_its_slot(monkeypatch):
    from minigrad import ops
    w = mg.nn.Parameter(np.arange(12.0).reshape(3, 4))
    flat = FlatParameters([w])
    offered, real = [], ops.MatMul.backward
    monkeypatch.setattr(ops.MatMul, "backward", lambda self, g: offered.append(self.grad_buffer(1)) or real(self, g))
    x = mg.tensor(np.ones((2, 5, 3)))
    (x @ w).sum().backward()
    assert offered[0] is not None and np.shares_memory(offered[0], flat.grad)
    assert np.array_equal(w.grad, np.full((3, 4), 10.0)) and np.shares_memory(w.grad, flat.grad)


def test_a_weight_used_twice_is_never_offered_its_slot_twice():
    def grads(flat):
        w = mg.nn.Parameter(np.arange(12.0).reshape(3, 4))
        if flat:
            FlatParameters([w])
        x, y = mg.tensor(np.ones((5, 3))), mg.tensor(np.full((2, 3), 2.0))
        ((x @ w).sum() + (y @ w).sum() * 3.0).backward()
        w2 = w.grad.copy()
        ((x @ w).sum()).backward()  # accumulates onto the first gradient
        return w2, w.grad
    for a, b in zip(grads(False), grads(True)):
        assert np.array_equal(a, b)
