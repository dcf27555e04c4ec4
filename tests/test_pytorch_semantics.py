"""PyTorch's semantics where they differ from NumPy's, held against torch itself: dtype
promotion, 0-d tensors, keywords and return types, index order, outputs outside the
graph, and the error messages of the ops a user calls."""
import numpy as np
import pytest
from hypothesis import given, strategies as st

import minigrad as mg
from minigrad import functional as F
from conftest import require

DTYPES = ["bool", "uint8", "int8", "int32", "int64", "float16", "float32", "float64"]


def operands(torch):
    """(name, torch operand, minigrad operand): tensors with dims and 0-d of every dtype, and
    Python numbers."""
    out = []
    for name in DTYPES:
        for shape in [(2,), ()]:
            a = np.ones(shape, dtype=name)
            out.append((f"{name}{list(shape)}", torch.from_numpy(a.copy()), mg.tensor(a)))
    return out + [("True", True, True), ("3", 3, 3), ("2.5", 2.5, 2.5)]


@pytest.mark.parametrize("op", ["add", "mul", "div", "maximum", "where"])
def test_result_dtype_follows_torch_for_every_pair(op):
    torch = require("torch")
    ops = operands(torch)
    for na, ta, ma in ops:
        for nb, tb, mb in ops:
            if not (torch.is_tensor(ta) or torch.is_tensor(tb)) or (op == "maximum" and not
                                                                  (torch.is_tensor(ta) and torch.is_tensor(tb))):
                continue
            if op == "where":
                cond_t, cond_m = torch.tensor([True, False]), mg.tensor([True, False])
                want, got = torch.where(cond_t, ta, tb), mg.where(cond_m, ma, mb)
            else:
                try:
                    want = getattr(torch, op)(ta, tb)
                except RuntimeError:   # e.g. bool - bool in torch: skip what torch refuses
                    continue
                got = getattr(mg, op)(ma, mb)
            assert str(got.dtype) == str(want.dtype).replace("torch.", ""), f"{op}({na}, {nb})"
            assert mg.result_type(ma, mb) == np.dtype(str(torch.result_type(ta, tb)).replace("torch.", "")) \
                or op in ("div", "where"), f"result_type({na}, {nb})"
            np.testing.assert_allclose(got.data.astype(np.float64), want.numpy().astype(np.float64), err_msg=f"{op}({na}, {nb})")


FLOAT_OPS = ["exp", "log", "sqrt", "rsqrt", "tanh", "sigmoid", "erf"]


@pytest.mark.parametrize("name", FLOAT_OPS)
@pytest.mark.parametrize("dtype", ["int64", "int32", "bool"])
def test_float_functions_of_integers_give_the_default_float(name, dtype):
    torch = require("torch")
    a = np.array([1, 0, 1]).astype(dtype)
    want = getattr(torch, name)(torch.from_numpy(a))
    got = getattr(mg.tensor(a), name)()
    assert got.dtype == np.float32 and str(want.dtype) == "torch.float32"
    np.testing.assert_allclose(got.data, want.numpy(), rtol=1e-6)


def test_dtypes_of_reductions_factories_and_division():
    torch = require("torch")
    i32 = np.array([3, 1, 2], np.int32)
    cases = [  # (minigrad result, torch result)
        (mg.tensor(i32).sum(), torch.from_numpy(i32).sum()),
        (mg.tensor([True, True]).sum(), torch.tensor([True, True]).sum()),
        (mg.tensor(i32).cumsum(0), torch.from_numpy(i32).cumsum(0)),
        (mg.tensor(i32).max(), torch.from_numpy(i32).max()),
        (mg.tensor(i32) / mg.tensor(i32), torch.from_numpy(i32) / torch.from_numpy(i32)),
        (mg.tensor(i32) // 2, torch.from_numpy(i32) // 2),
        (mg.tensor(i32) ** 2, torch.from_numpy(i32) ** 2),
        (2 ** mg.tensor(i32), 2 ** torch.from_numpy(i32)),
        (2.5 ** mg.tensor(i32), 2.5 ** torch.from_numpy(i32)),
        (mg.full((2,), 4), torch.full((2,), 4)),
        (mg.full((2,), 4.0), torch.full((2,), 4.0)),
        (mg.full((2,), True), torch.full((2,), True)),
        (mg.full_like(mg.tensor(i32), 2.7), torch.full_like(torch.from_numpy(i32), 2.7)),
        (mg.arange(3), torch.arange(3)),
        (mg.tensor([1.5, -2.5]).long(), torch.tensor([1.5, -2.5]).long()),
        (mg.tensor([1, 0]).bool(), torch.tensor([1, 0]).bool()),
        (mg.tensor([1, 2]).float(), torch.tensor([1, 2]).float()),
        (mg.tensor([1, 2]).double().half(), torch.tensor([1, 2]).double().half()),
        (mg.tensor(i32).int().short().byte(), torch.from_numpy(i32).int().short().byte()),
        (mg.tensor(i32).to(mg.float64), torch.from_numpy(i32).to(torch.float64)),
        (mg.tensor(i32).type_as(mg.ones(1)), torch.from_numpy(i32).type_as(torch.ones(1))),
    ]
    for got, want in cases:
        assert str(got.dtype) == str(want.dtype).replace("torch.", "")
        np.testing.assert_array_equal(got.data, want.numpy())


def test_min_and_max_of_integers_and_bools_are_exact():
    torch = require("torch")
    for a in [np.array([-2 ** 31, 5], np.int32), np.array([3, 1], np.uint8), np.array([True, False]),
              np.array([7, -3, 7], np.int64)]:
        t, m = torch.from_numpy(a), mg.tensor(a)
        for name in ["min", "max", "amin", "amax"]:
            assert getattr(m, name)().item() == getattr(t, name)().item(), (name, a)
        v, i = m.min(0)
        assert (v.item(), i.item()) == (t.min(0).values.item(), t.min(0).indices.item())


# ---- 0-d tensors take dim 0 and -1; a third dim is an error naming the op -------------------------
ZERO_D = [lambda x: x.sum(0), lambda x: x.mean(-1), lambda x: x.max(0).values, lambda x: x.amax(-1),
          lambda x: x.softmax(0), lambda x: x.log_softmax(-1), lambda x: x.squeeze(0), lambda x: x.argmax(0),
          lambda x: x.cumsum(0), lambda x: x.std(0), lambda x: x.logsumexp(-1), lambda x: x.sort(0).values,
          lambda x: x.topk(1, 0).values, lambda x: x.unsqueeze(-1), lambda x: x.flatten(), lambda x: x.min(-1)[1]]


@pytest.mark.parametrize("fn", ZERO_D)
def test_zero_d_tensors_take_dim_0(fn):
    torch = require("torch")
    want = fn(torch.tensor(2.5))
    got = fn(mg.tensor(2.5))
    assert got.shape == tuple(want.shape)
    np.testing.assert_allclose(got.data, want.numpy(), equal_nan=True)


def test_zero_d_out_of_range_dim_names_op():
    with pytest.raises(IndexError, match=r"sum: dim 1 is out of range .* 0 dims"):
        mg.tensor(2.0).sum(1)


# ---- keywords and return types ----------------------------------------------------------------------
def test_dim_keepdim_with_axis_keepdims_aliases():
    x = mg.tensor(np.arange(24.0).reshape(2, 3, 4))
    for a, b in [(x.sum(dim=1, keepdim=True), x.sum(axis=1, keepdims=True)),
                 (x.mean(dim=(0, 2)), x.mean(axis=(0, 2))),
                 (x.amax(dim=-1), x.amax(axis=-1)),
                 (x.softmax(dim=1), x.softmax(axis=1)),
                 (mg.cat([x, x], dim=2), mg.cat([x, x], axis=2)),
                 (x.max(dim=1).values, x.max(axis=1)[0])]:
        np.testing.assert_array_equal(a.data, b.data)
    with pytest.raises(TypeError, match="sum: got both dim= and its alias axis="):
        x.sum(dim=0, axis=1)


def test_max_min_sort_topk_return_values_and_indices():
    x = mg.tensor([[1.0, 5.0, 3.0], [4.0, 2.0, 6.0]])
    out = x.max(1)
    assert type(out).__name__ == "max" and out.values.tolist() == [5.0, 6.0] and out.indices.tolist() == [1, 2]
    values, indices = x.min(dim=0, keepdim=True)
    assert values.tolist() == [[1.0, 2.0, 3.0]] and indices.tolist() == [[0, 1, 0]]
    assert x.sort(1, descending=True).indices.tolist() == [[1, 2, 0], [2, 0, 1]]
    assert mg.topk(x, 2).values.tolist() == [[5.0, 3.0], [6.0, 4.0]]
    assert x.max().item() == 6.0 and x.amax(1).tolist() == [5.0, 6.0]


def test_gelu_is_exact_by_default_and_tanh_on_request():
    torch = require("torch")
    a = np.linspace(-4, 4, 41)
    np.testing.assert_allclose(mg.tensor(a).gelu().data, torch.nn.functional.gelu(torch.tensor(a)).numpy(),
                               rtol=1e-10, atol=1e-15)
    np.testing.assert_allclose(F.gelu(mg.tensor(a), approximate="tanh").data,
                               torch.nn.functional.gelu(torch.tensor(a), approximate="tanh").numpy(), rtol=1e-10, atol=1e-15)
    with pytest.raises(ValueError, match="gelu: approximate must be 'none' or 'tanh', got 'fast'"):
        F.gelu(mg.tensor(a), approximate="fast")


# ---- outputs outside the graph: asking them for a gradient names the op --------------------------------
NO_GRAD_OUTPUTS = [
    ("argmax", lambda x: x.argmax()), ("argmin", lambda x: x.argmin(1)), ("sort", lambda x: x.sort().indices),
    ("topk", lambda x: x.topk(1).indices), ("lt", lambda x: x < 0), ("eq", lambda x: x == x),
    ("multinomial", lambda x: mg.multinomial(x.softmax(-1), 1)), ("logical_not", lambda x: (x > 0).logical_not()),
    ("cast to int64", lambda x: x.long()), ("nonzero", lambda x: x.nonzero()),
]


@pytest.mark.parametrize("op,fn", NO_GRAD_OUTPUTS, ids=[n for n, _ in NO_GRAD_OUTPUTS])
def test_non_differentiable_outputs_name_their_op(op, fn):
    x = mg.randn(2, 3, requires_grad=True)
    out = fn(x)
    assert not out.requires_grad
    with pytest.raises(RuntimeError, match=f"backward: this tensor is the output of {op}, which is not differentiable"):
        out.backward(np.ones(out.shape))


# ---- index order: an int index is a select applied first, as in PyTorch -------------------------------
@st.composite
def mixed_index(draw, shape):
    parts = []
    for n in shape:
        kind = draw(st.sampled_from(["int", "slice", "array", "full"]))
        if kind == "int":
            parts.append(draw(st.integers(-n, n - 1)))
        elif kind == "slice":
            parts.append(slice(draw(st.integers(0, n)), None, draw(st.integers(1, 2))))
        elif kind == "array":
            parts.append(np.array(draw(st.lists(st.integers(0, n - 1), min_size=2, max_size=2))))
        else:
            parts.append(slice(None))
    if draw(st.booleans()):
        parts.insert(draw(st.integers(0, len(parts))), None)
    return tuple(parts)


@given(data=st.data())
def test_mixed_indices_match_torch_forward_and_gradient(data):
    torch = require("torch")
    shape = tuple(data.draw(st.lists(st.integers(1, 4), min_size=2, max_size=4)))
    index = data.draw(mixed_index(shape))
    a = np.random.default_rng(0).standard_normal(shape)
    t, m = torch.tensor(a, requires_grad=True), mg.tensor(a, requires_grad=True)
    t_index = tuple(torch.from_numpy(i) if isinstance(i, np.ndarray) else i for i in index)
    want, got = t[t_index], m[index]
    assert got.shape == tuple(want.shape), index
    np.testing.assert_array_equal(got.data, want.detach().numpy())
    g = np.random.default_rng(1).standard_normal(got.shape)
    want.backward(torch.tensor(g))
    got.backward(g)
    np.testing.assert_allclose(m.grad, t.grad.numpy(), rtol=1e-12)


# ---- errors name the op, the argument and the shapes -----------------------------------------------------
ERRORS = [
    ("where_scalars_need_tensor_cond", lambda: mg.where(np.array([True]), 1, 3), TypeError, ["where", "condition"]),
    ("clamp_none", lambda: mg.ones(2).clamp(None, None), ValueError, ["clamp", "min", "max"]),
    ("matmul_1d", lambda: mg.ones(4) @ mg.ones(1, 2), ValueError, ["matmul", "(4,)", "(1, 2)"]),
    ("neg_bool", lambda: -mg.tensor([True]), TypeError, ["neg", "bool"]),
    ("mean_int", lambda: mg.tensor([1, 2]).mean(), TypeError, ["mean", "int64"]),
    ("gather_index_dims", lambda: mg.ones(2, 3).gather(1, np.array([0, 1])), ValueError, ["gather", "(2,)", "(2, 3)"]),
    ("gather_index_range", lambda: mg.ones(2, 3).gather(1, np.array([[0, 3]])), IndexError, ["gather", "index 3", "[0, 3)"]),
    ("topk_k", lambda: mg.ones(2, 3).topk(4), ValueError, ["topk", "k=4", "size 3"]),
    ("repeat_sizes", lambda: mg.ones(2, 3).repeat(2), ValueError, ["repeat", "(2, 3)", "(2,)"]),
    ("unflatten_sizes", lambda: mg.ones(2, 6).unflatten(1, (4, -1)), ValueError, ["unflatten", "(4, -1)", "6"]),
    ("flatten_order", lambda: mg.ones(2, 3, 4).flatten(2, 1), ValueError, ["flatten", "start_dim 2", "end_dim 1"]),
    ("tril_1d", lambda: mg.ones(3).tril(), ValueError, ["tril", "(3,)"]),
    ("chunk_zero", lambda: mg.ones(3).chunk(0), ValueError, ["chunk", "0"]),
    ("pow_negative_int", lambda: mg.tensor([2, 3]) ** -1, ValueError, ["pow", "negative"]),
    ("div_rounding", lambda: mg.ones(2).div(2, rounding_mode="round"), ValueError, ["div", "rounding_mode", "'round'"]),
    ("cross_entropy_reduction", lambda: F.cross_entropy(mg.ones(2, 3), np.array([0, 1]), reduction="avg"), ValueError,
     ["cross_entropy", "reduction", "'avg'"]),
    ("nll_weight", lambda: F.nll_loss(mg.ones(2, 3), np.array([0, 1]), weight=np.ones(2)), ValueError,
     ["nll_loss", "weight", "(3,)", "(2,)"]),
    ("sdpa_shapes", lambda: F.scaled_dot_product_attention(mg.ones(2, 3, 4), mg.ones(2, 5, 3), mg.ones(2, 5, 4)),
     ValueError, ["scaled_dot_product_attention", "(2, 3, 4)", "(2, 5, 3)"]),
    ("multinomial_zero_row", lambda: mg.multinomial(mg.tensor([[0.0, 0.0], [1.0, 1.0]]), 1), ValueError,
     ["multinomial", "row 0"]),
    ("multinomial_too_many", lambda: mg.multinomial(mg.tensor([0.5, 0.0, 0.5]), 3), ValueError,
     ["multinomial", "num_samples=3", "2 non-zero", "without replacement"]),
    ("index_float", lambda: mg.ones(3)[np.array([0.5])], IndexError, ["index", "(3,)"]),
    ("setitem_shape", lambda: mg.ones(3, 4).__setitem__(0, mg.ones(3)), ValueError,
     ["__setitem__", "(3,)", "(4,)", "(3, 4)"]),
    ("to_cuda", lambda: mg.ones(2).to("cuda"), ValueError, ["to", "CPU", "cuda"]),
    ("softmax_int", lambda: mg.tensor([1, 2]).softmax(0), TypeError, ["softmax", "int64"]),
    ("randint_bounds", lambda: mg.randint(5, 5, (2,)), ValueError, ["randint", "low (5)", "high (5)"]),
]


@pytest.mark.parametrize("call,exc,fragments", [c[1:] for c in ERRORS], ids=[c[0] for c in ERRORS])
def test_error_names_op_and_arguments(call, exc, fragments):
    with pytest.raises(exc) as info:
        call()
    for fragment in fragments:
        assert fragment in str(info.value), f"{fragment!r} missing from: {info.value}"


def test_where_with_two_scalars_and_bool_min_work():
    cond = mg.tensor([True, False])
    assert mg.where(cond, 1, 3).tolist() == [1, 3] and mg.where(cond, 1, 3).dtype == np.int64
    assert mg.where(cond, 1.0, 3).dtype == np.float32
    assert mg.tensor([True, False]).min().item() is False
