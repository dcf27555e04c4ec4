"""minigrad.optim (AdamW, Adam, get_lr) and nn.utils.clip_grad_norm_ against PyTorch, exact
resume through safetensors + JSON, errors."""
import json
import math

import numpy as np
import pytest

import minigrad as mg
from conftest import require
from minigrad.nn.state import join_tree, safe_load, safe_save, split_tree
from minigrad.nn.utils import clip_grad_norm_
from minigrad.optim import Adam, AdamW, get_lr

SHAPES = [(4, 3), (3,), (2, 2, 2)]


def make_params(dtype=np.float64, seed=0):
    gen = np.random.default_rng(seed)
    return [mg.nn.Parameter(gen.standard_normal(s).astype(dtype)) for s in SHAPES]


def set_grads(params, step, seed=1):
    gen = np.random.default_rng(seed + step)
    for p in params:
        p.grad = gen.standard_normal(p.shape).astype(p.dtype)


def run_torch(cls_name, params, steps, **kw):
    torch = require("torch")
    tparams = [torch.tensor(p.data.copy(), requires_grad=True) for p in params]
    opt = getattr(torch.optim, cls_name)(tparams, foreach=False, **kw)
    for step in range(steps):
        gen = np.random.default_rng(1 + step)
        for t in tparams:
            t.grad = torch.from_numpy(gen.standard_normal(tuple(t.shape)).astype(params[0].dtype))
        opt.step()
    return [t.detach().numpy() for t in tparams]


@pytest.mark.parametrize("kw", [dict(lr=1e-2), dict(lr=0.1, betas=(0.8, 0.95), eps=1e-6, weight_decay=0.3),
                                dict(lr=1e-3, weight_decay=0.0)])
def test_adamw_matches_torch(kw):
    params = make_params()
    expected = run_torch("AdamW", params, 7, **kw)
    opt = AdamW(params, **kw)
    for step in range(7):
        set_grads(params, step)
        opt.step()
    for p, e in zip(params, expected):
        assert np.abs(p.data - e).max() < 1e-12


@pytest.mark.parametrize("wd", [0.0, 0.1])
def test_adam_matches_torch_adam_including_its_l2_weight_decay(wd):
    params = make_params()
    expected = run_torch("Adam", params, 5, lr=0.05, weight_decay=wd)
    opt = Adam(params, lr=0.05, weight_decay=wd)
    for step in range(5):
        set_grads(params, step)
        opt.step()
    for p, e in zip(params, expected):
        assert np.abs(p.data - e).max() < 1e-12


def test_configure_optimizers_nanogpt_split_and_group_overrides():
    from gpt.model import GPT, GPTConfig
    model = GPT(GPTConfig(vocab_size=10, block_size=4, n_layer=1, n_head=1, n_embd=4))
    opt = model.configure_optimizers(0.1, 1e-3, (0.9, 0.95))
    decay, no_decay = opt.param_groups
    assert decay["weight_decay"] == 0.1 and no_decay["weight_decay"] == 0.0
    assert all(p.ndim >= 2 for p in decay["params"]) and all(p.ndim == 1 for p in no_decay["params"])
    assert len(decay["params"]) + len(no_decay["params"]) == len(model.parameters())
    assert opt.param_groups[1]["lr"] == 1e-3 and opt.param_groups[1]["betas"] == (0.9, 0.95)
    model.transformer.wpe.weight.requires_grad = False  # frozen parameters stay out
    assert sum(len(g["params"]) for g in model.configure_optimizers(0.1, 1e-3, (0.9, 0.95)).param_groups) \
        == len(model.parameters()) - 1


def test_no_decay_group_and_skipped_params():
    params = make_params()
    opt = AdamW([{"params": params[:1], "weight_decay": 0.5}, {"params": params[1:], "weight_decay": 0.0,
                                                               "lr": 0.0}], lr=0.1)
    before = [p.data.copy() for p in params]
    params[0].grad = np.zeros(params[0].shape)
    params[1].grad = np.ones(params[1].shape)
    opt.step()
    assert np.allclose(params[0].data, before[0] * (1 - 0.1 * 0.5))  # pure decay
    assert np.array_equal(params[1].data, before[1])  # lr 0
    assert np.array_equal(params[2].data, before[2])  # no grad: untouched, as torch
    assert id(params[2]) not in opt.state


def test_lr_changed_between_steps_is_used():
    a, b = make_params(), make_params()
    opt_a, opt_b = AdamW(a, lr=0.1), AdamW(b, lr=0.1)
    for step in range(3):
        set_grads(a, step)
        set_grads(b, step)
        opt_a.param_groups[0]["lr"] = 0.1 / (step + 1)
        opt_a.step()
        opt_b.step()
    assert not np.allclose(a[0].data, b[0].data)


def test_state_dict_resume_is_exact_through_safetensors_and_json(tmp_path):
    straight = make_params()
    opt = AdamW(straight, lr=0.01, weight_decay=0.1)
    for step in range(10):
        set_grads(straight, step)
        opt.step()

    resumed = make_params()
    first = AdamW(resumed, lr=0.01, weight_decay=0.1)
    for step in range(5):
        set_grads(resumed, step)
        first.step()
    tree, arrays = split_tree(first.state_dict())
    safe_save(arrays, tmp_path / "optim.safetensors")
    (tmp_path / "optim.json").write_text(json.dumps(tree))
    snapshot = [p.data.copy() for p in resumed]

    params = [mg.nn.Parameter(s) for s in snapshot]
    second = AdamW(params, lr=0.5)  # hyperparameters come back from the state dict too
    second.load_state_dict(join_tree(json.loads((tmp_path / "optim.json").read_text()),
                                     safe_load(tmp_path / "optim.safetensors")))
    assert second.param_groups[0]["lr"] == 0.01
    for step in range(5, 10):
        set_grads(params, step)
        second.step()
    for p, q in zip(params, straight):
        assert np.array_equal(p.data, q.data)


def test_load_state_dict_rejects_mismatches():
    opt = AdamW(make_params(), lr=0.1)
    set_grads(opt.param_groups[0]["params"], 0)
    opt.step()
    sd = opt.state_dict()
    with pytest.raises(ValueError, match="param group sizes"):
        AdamW(make_params()[:2]).load_state_dict(sd)
    other = [mg.nn.Parameter(np.zeros(s)) for s in [(3, 4), (3,), (2, 2, 2)]]
    with pytest.raises(ValueError, match="state 0 exp_avg has shape"):
        AdamW(other).load_state_dict(sd)


@pytest.mark.parametrize("max_norm", [0.5, 1.0, 100.0])
def test_clip_grad_norm_matches_torch(max_norm):
    torch = require("torch")
    params = make_params()
    set_grads(params, 0)
    tparams = [torch.zeros(p.shape, dtype=torch.float64, requires_grad=True) for p in params]
    for t, p in zip(tparams, params):
        t.grad = torch.from_numpy(p.grad.copy())
    expected = torch.nn.utils.clip_grad_norm_(tparams, max_norm).item()
    norm = clip_grad_norm_(params, max_norm)
    assert isinstance(norm, float) and abs(norm - expected) < 1e-12
    for t, p in zip(tparams, params):
        assert np.abs(t.grad.numpy() - p.grad).max() < 1e-12
    assert clip_grad_norm_([mg.nn.Parameter(np.zeros(2))], 1.0) == 0.0  # no grads at all


def test_get_lr_schedule():
    lr, min_lr, warmup, total = 6e-4, 6e-5, 10, 100
    assert get_lr(0, lr, min_lr, warmup, total) == pytest.approx(lr * 1 / 11)
    assert get_lr(9, lr, min_lr, warmup, total) == pytest.approx(lr * 10 / 11)
    assert get_lr(warmup, lr, min_lr, warmup, total) == pytest.approx(lr)
    assert get_lr(55, lr, min_lr, warmup, total) == pytest.approx(min_lr + 0.5 * (lr - min_lr))
    assert get_lr(total, lr, min_lr, warmup, total) == pytest.approx(min_lr)
    assert get_lr(total + 50, lr, min_lr, warmup, total) == min_lr
    values = [get_lr(i, lr, min_lr, warmup, total) for i in range(warmup, total + 1)]
    assert all(a >= b for a, b in zip(values, values[1:]))  # monotone decay
    assert get_lr(5, lr, min_lr, 0, 0) == min_lr
    assert math.isclose(get_lr(0, lr, min_lr, 0, 10), lr)


@pytest.mark.parametrize("kw, message", [
    (dict(lr=-1.0), "invalid learning rate"),
    (dict(betas=(0.9, 1.0)), "invalid betas"),
    (dict(eps=-1e-8), "invalid eps"),
    (dict(weight_decay=-0.1), "invalid weight_decay"),
])
def test_bad_hyperparameters(kw, message):
    with pytest.raises(ValueError, match=message):
        AdamW(make_params(), **kw)


def test_bad_param_lists():
    p = make_params()
    with pytest.raises(ValueError, match="empty parameter list"):
        AdamW([])
    with pytest.raises(ValueError, match="more than one group"):
        AdamW([{"params": p}, {"params": p[:1]}])
    with pytest.raises(ValueError, match="unknown param group option"):
        AdamW([{"params": p, "momentum": 0.9}])
    with pytest.raises(ValueError, match="warmup_iters"):
        get_lr(0, 1.0, 0.1, 10, 5)


@pytest.mark.parametrize("flat", [False, True])
@pytest.mark.parametrize("cls", [AdamW, Adam])
def test_step_with_grad_scale_equals_clipping_first(cls, flat):
    """train_step's fused clip: step(grad_scale=clip_coef(norm, c)) leaves the same parameters,
    bit for bit, as clip_grad_norm_(params, c) and then step()."""
    from minigrad.nn.flat import FlatParameters
    from minigrad.nn.utils import clip_coef, get_total_norm
    runs = []
    for fused in (False, True):
        params = make_params(np.float32)
        if flat:
            FlatParameters(params)
        opt = cls(params, lr=1e-2, weight_decay=0.1)
        for step in range(3):
            set_grads(params, step)
            if flat:  # gradients in the buffer, where backward puts them
                for p in params:
                    g, p.grad = p.grad, None
                    p._accumulate(g)
            if fused:
                opt.step(grad_scale=clip_coef(get_total_norm([p.grad for p in params]), 0.5))
            else:
                clip_grad_norm_(params, 0.5)
                opt.step()
        runs.append([p.data.copy() for p in params])
    for a, b in zip(*runs):
        np.testing.assert_array_equal(a, b)
