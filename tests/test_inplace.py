"""In-place writes against PyTorch: each scenario below is written once and run on both
libraries (`lib` is torch or minigrad); both must refuse it, or both must give the same
values and gradients. Then the version counter, the leaf rule, and the one behaviour we
chose not to copy (a stale view raises instead of being regenerated)."""
import numpy as np
import pytest

import minigrad as mg
from minigrad import functional as F
from conftest import require

X = np.array([[0.5, -1.0, 2.0], [1.5, 0.25, -0.75]])
W = np.array([[1.0, -2.0, 0.5], [0.3, 0.2, -1.0]])


def s_exp_then_mul_(lib, x, w):
    a = x.exp()
    a.mul_(2)                           # exp saved its output: backward must refuse
    return a


def s_saved_input_overwritten(lib, x, w):
    a = x * 1
    b = a * w
    a[0, 1] = 5.0                       # mul saved a
    return b


def s_add_saves_nothing(lib, x, w):
    a = x + 0
    y = a + 1
    a[0] = 0.0                          # add saved nothing: the old a still flows to y
    return y + a


def s_write_then_use(lib, x, w):
    y = x * w
    y[:, 0] = y[:, 1] * 2               # value read from y itself
    y[1] = 7.0
    return y.tanh()


def s_write_value_requires_grad(lib, x, w):
    z = lib.zeros(3, 3, dtype=lib.float64)  # a leaf that does not require grad
    z[:2] = x * w
    z[2, 1:] = x[0, :2]
    return z.sum(0)


def s_view_write_seen_by_base(lib, x, w):
    h = x * 2
    v = h[1]                            # a view of h
    v.mul_(w[0])
    v[0] = 3.0
    return h * h


def s_nested_view_write(lib, x, w):
    h = x * 2
    h[0][1:].add_(w[1, :2])             # a view of a view
    return h.exp()


def s_inplace_chain(lib, x, w):
    y = x * 1
    y.mul_(2).add_(x, alpha=2).sub_(0.5).div_(3)
    y += w
    y.clamp_(-1.0, 1.5)
    return y.sigmoid_()


def s_masked_fill_softmax_output(lib, x, w):
    p = x.softmax(-1)
    p.masked_fill_(p > 0.5, 0.0)        # softmax saved its output
    return p


def s_no_grad_write_into_saved(lib, x, w):
    w2 = w * 1
    y = x * w2
    with lib.no_grad():
        w2.mul_(2)                      # mul saved w2: refused even though written under no_grad
    return y


def s_no_grad_write_not_saved(lib, x, w):
    a = x * 1
    y = a + w
    with lib.no_grad():
        a.zero_()                       # add saved nothing: allowed, gradient unchanged
    return y * 2


def s_matmul_input(lib, x, w):
    a = x * 1
    y = a @ w.T
    a.clamp_(min=0.0)                   # matmul saved a
    return y


def s_copy_fill_zero(lib, x, w):
    y = x * 1
    y[0].copy_(w[1])
    y[1, :2].fill_(0.5)
    y[:, 2].zero_()
    return y * x


def s_clone_then_write(lib, x, w):
    a = x.exp()
    b = a.clone()
    b[0] = 0.0                          # the clone has its own memory: exp's output is untouched
    return a + b


SCENARIOS = [s_exp_then_mul_, s_saved_input_overwritten, s_add_saves_nothing, s_write_then_use,
             s_write_value_requires_grad, s_view_write_seen_by_base, s_nested_view_write, s_inplace_chain,
             s_masked_fill_softmax_output, s_no_grad_write_into_saved, s_no_grad_write_not_saved, s_matmul_input,
             s_copy_fill_zero, s_clone_then_write]


def run(lib, tensor, scenario):
    x, w = tensor(X.copy(), requires_grad=True), tensor(W.copy(), requires_grad=True)
    try:
        out = scenario(lib, x, w)
        g = np.random.default_rng(0).standard_normal(tuple(out.shape))
        out.backward(tensor(g) if lib is not mg else g)
    except RuntimeError as e:
        return "error", str(e)
    grads = [np.zeros_like(X) if t.grad is None else np.asarray(t.grad) for t in (x, w)]
    return "ok", (np.asarray(out.detach().numpy()), grads)


@pytest.mark.parametrize("scenario", SCENARIOS, ids=[s.__name__[2:] for s in SCENARIOS])
def test_inplace_scenario_matches_torch(scenario):
    torch = require("torch")
    want_kind, want = run(torch, lambda a, requires_grad=False: torch.tensor(a, requires_grad=requires_grad), scenario)
    got_kind, got = run(mg, lambda a, requires_grad=False: mg.tensor(a, requires_grad=requires_grad), scenario)
    assert got_kind == want_kind, f"torch: {want_kind} {want if want_kind == 'error' else ''}; minigrad: {got}"
    if got_kind == "error":
        assert "backward:" in got and "modified in place" in got and "needs its" in got
        return
    np.testing.assert_allclose(got[0], want[0], rtol=1e-12)
    for g, t in zip(got[1], want[1]):
        np.testing.assert_allclose(g, t, rtol=1e-12, atol=1e-14)


def self_referential(x, w, inplace):
    y = x * 1
    if inplace:
        y.mul_(w)      # mul_ needs y's old value for w's gradient
        y *= y         # and here for both operands
        return y
    y = y * w
    return y * y


def test_in_place_ops_that_need_the_overwritten_value_are_exact():
    """PyTorch refuses these at backward (it saves x itself, then overwrites it); minigrad
    computes the new value from a copy, so it gives the gradient of the out-of-place version."""
    torch = require("torch")
    xt, wt = torch.tensor(X, requires_grad=True), torch.tensor(W, requires_grad=True)
    self_referential(xt, wt, inplace=False).sum().backward()
    x, w = mg.tensor(X, requires_grad=True), mg.tensor(W, requires_grad=True)
    self_referential(x, w, inplace=True).sum().backward()
    np.testing.assert_allclose(x.grad, xt.grad.numpy(), rtol=1e-12)
    np.testing.assert_allclose(w.grad, wt.grad.numpy(), rtol=1e-12)
    with pytest.raises(RuntimeError, match="modified by an inplace operation"):
        xt.grad = None
        self_referential(xt, wt, inplace=True).sum().backward()


def test_backward_error_names_the_op_and_what_it_saved():
    x = mg.tensor(X, requires_grad=True)
    a = x.exp()
    a.mul_(2)
    with pytest.raises(RuntimeError, match=r"backward: Exp needs its output \(shape \(2, 3\), float64\) as it was"):
        a.sum().backward()
    y = x * 1
    z = F.layer_norm(y, 3)
    y.add_(1)
    with pytest.raises(RuntimeError, match=r"backward: LayerNorm needs its input 0"):
        z.sum().backward()


# ---- the version counter ----------------------------------------------------------------------------
def test_version_counter_is_shared_by_views_and_detach_as_in_torch():
    torch = require("torch")
    for lib, make in [(torch, torch.zeros), (mg, mg.zeros)]:
        a = make(3, 4)
        v, d, c = a[1], a.detach(), a.clone()
        t = a.reshape(4, 3).T
        a[0, 0] = 1.0
        v.add_(1)
        t.mul_(2)
        d += 1
        assert (a._version, v._version, t._version, d._version, c._version) == (4, 4, 4, 4, 0), lib.__name__


def test_writes_land_in_the_memory_of_every_view():
    a = mg.zeros(2, 3)
    row, col, flat = a[1], a[:, 2], a.view(6)
    row.fill_(1.0)
    col += 2
    flat[0] = 5.0
    np.testing.assert_array_equal(a.data, [[5, 0, 2], [1, 1, 3]])
    assert a[0, 2].item() == 2.0 and row.tolist() == [1, 1, 3]


# ---- the leaf rule ------------------------------------------------------------------------------------
def test_leaf_that_requires_grad_is_refused_outside_no_grad():
    p = mg.randn(2, 3, requires_grad=True)
    for write in [lambda: p.add_(1), lambda: p.__setitem__(0, 0.0), lambda: p[0].mul_(2),
                  lambda: p.__iadd__(1), lambda: p.zero_()]:
        with pytest.raises(RuntimeError, match="leaf tensor .*requires grad cannot be written in place"):
            write()
    before = p.data.copy()
    with mg.no_grad():   # as an optimizer step does
        p -= 0.5
        p[0, 0] = 9.0
    assert p.is_leaf and p.requires_grad and p._version == 2
    assert p.data[0, 0] == 9.0 and p.data[1, 1] == before[1, 1] - 0.5


def test_dtype_and_shape_rules_of_in_place_ops():
    i = mg.tensor([1, 2])
    with pytest.raises(TypeError, match="add_: the result's dtype float32 cannot be stored in place into a int64"):
        i.add_(1.5)
    i[0] = 7.9                       # setitem casts, as torch
    assert i.tolist() == [7, 2]
    with pytest.raises(ValueError, match="mul_: the result has shape \\(2, 2\\).*shape \\(2,\\)"):
        mg.ones(2).mul_(mg.ones(2, 2))
    with pytest.raises(RuntimeError, match="read-only"):
        mg.ones(3).expand(2, 3)[0, 0] = 2.0


# ---- a choice: a view taken before a write through another view is stale, and says so -------------------
def test_stale_view_raises_instead_of_silently_wrong_gradient():
    x = mg.tensor([1.0, 2.0, 3.0], requires_grad=True)
    h = x * 2
    w = h[:2]               # taken before the write
    h[1] = 7.0              # PyTorch would regenerate w from h's new history
    with pytest.raises(RuntimeError, match="used a view .* taken before its memory was written in place"):
        (w * 1).sum().backward()
    x.grad = None
    h2 = x * 2
    h2[1] = 7.0
    (h2[:2] * 1).sum().backward()   # the view taken after the write is fine
    np.testing.assert_array_equal(x.grad, [2.0, 0.0, 0.0])


def test_a_training_step_records_no_writes():
    """The version books cost nothing unless writes happen: a forward and backward leave them alone."""
    from minigrad import autograd
    before = autograd._state["writes"]
    x = mg.randn(4, 8, requires_grad=True)
    w = mg.randn(8, 8, requires_grad=True)
    F.cross_entropy(F.gelu(F.layer_norm(x @ w, 8)), np.arange(4)).backward()
    assert autograd._state["writes"] == before
