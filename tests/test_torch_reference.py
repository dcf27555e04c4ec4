"""Every op against PyTorch: forward values and every input's gradient.

One table, one helper (tinygrad's helper_test_op style). A row is
    R(name, input shapes, torch fn, minigrad fn, value range, tolerance factor, vals)
and runs in float64 (to 1e-10) and float32 (to 1e-5), each times the factor:
same inputs (random in the range, or `vals` for edge cases), same random
upstream gradient for every floating output, and the output and every gradient
must keep the input dtype. Integer outputs (indices) must be equal, int64, and
take no gradient. More rows: tests/test_torch_reference_ops.py. When the minigrad fn is None the torch fn is reused
(the method names agree). torch is imported only through conftest.require, at
the first use inside a test, so MINIGRAD_REQUIRE_REFERENCE=1 turns a missing
torch into a failure rather than a skip.
"""
import importlib
from dataclasses import dataclass
from typing import Callable, Optional

import numpy as np
import pytest

import minigrad as mg
from minigrad import functional as F
from conftest import require

TOL = {np.float64: 1e-10, np.float32: 1e-5}   # rtol = atol = TOL[dtype] * row.tol


class _Lazy:
    """A module imported through require() when first touched, i.e. inside a test."""

    def __init__(self, name):
        self._name = name

    def __getattr__(self, attr):
        require(self._name.split(".")[0])
        return getattr(importlib.import_module(self._name), attr)


torch, TF = _Lazy("torch"), _Lazy("torch.nn.functional")


@dataclass
class R:
    name: str
    shapes: list
    torch_fn: Callable
    mg_fn: Optional[Callable] = None
    low: float = -2.0
    high: float = 2.0
    tol: float = 1.0
    vals: Optional[list] = None    # explicit input values (edge cases) instead of random ones

    def __str__(self):
        return self.name


# constant (non-differentiable) operands, shared by both sides
IDS = np.array([[1, 4, 1], [0, 1, 4]])              # embedding ids, repeated
TARGETS = np.array([2, -100, 0, 3, 2])             # class ids, one ignored row
TARGETS_IGN2 = np.array([2, 1, 0, 3, 2])           # ignore_index=2 drops two rows
IDX = np.array([0, 2, 0, 0])                        # repeated rows: gradients must add up
COND = np.array([[True, False, True, False], [False, False, True, True], [True, True, False, True]])
BOTTOM_RIGHT = np.tril(np.ones((2, 4), dtype=bool), k=2)   # causal mask for Tq=2 < Tk=4


def tt(a):
    return torch.tensor(a)


ROWS = [
    # ---- elementwise binary, NumPy broadcasting -----------------------------------------
    R("add", [(3, 4), (3, 4)], lambda a, b: a + b),
    R("add_broadcast", [(2, 1, 3), (4, 1)], lambda a, b: a + b),
    R("add_scalar_shape", [(), (2, 3)], lambda a, b: a + b),
    R("sub_broadcast", [(3, 1), (1, 4)], lambda a, b: a - b),
    R("mul_broadcast", [(2, 3, 4), (3, 1)], lambda a, b: a * b),
    R("div_broadcast", [(2, 3), (3,)], lambda a, b: a / b, low=0.5),
    R("pow", [(2, 3), (2, 3)], lambda a, b: a ** b, low=0.5),
    R("pow_broadcast", [(3, 1), (4,)], lambda a, b: a ** b, low=0.5),
    R("pow_const", [(2, 3)], lambda a: a ** 3),
    R("pow_half", [(2, 3)], lambda a: a ** 0.5, low=0.5),
    R("rpow", [(2, 3)], lambda a: 2.0 ** a),
    R("python_scalars", [(2, 3)], lambda a: (3 - a) * 2.5 / 4 + 1),
    R("rdiv", [(2, 3)], lambda a: 1 / a, low=0.5),
    R("neg", [(2, 3)], lambda a: -a),
    R("used_twice", [(3,)], lambda a: a * a + a),
    R("reused_deeper", [(3,)], lambda a: a + (a * 2).exp()),      # a is reached first from the root
    R("diamond", [(2, 3)], lambda a: a * a.tanh() + a.sigmoid() * (a.exp() + a)),
    # ---- elementwise unary -------------------------------------------------------------
    R("exp", [(3, 4)], lambda a: a.exp()),
    R("log", [(3, 4)], lambda a: a.log(), low=0.2),
    R("sqrt", [(3, 4)], lambda a: a.sqrt(), low=0.2),
    R("tanh", [(3, 4)], lambda a: a.tanh()),
    R("sigmoid", [(3, 4)], lambda a: a.sigmoid(), low=-8, high=8),
    R("relu", [(3, 4)], lambda a: a.relu()),
    R("abs", [(3, 4)], lambda a: a.abs()),
    R("clip", [(3, 4)], lambda a: a.clip(-0.5, 0.7), lambda a: a.clip(-0.5, 0.7)),
    R("clip_min_only", [(3, 4)], lambda a: a.clamp(min=0.3), lambda a: a.clip(min=0.3)),
    R("gelu_tanh", [(3, 4)], lambda a: TF.gelu(a, approximate="tanh"), lambda a: a.gelu(approximate="tanh"), low=-4, high=4),
    # ---- reductions ----------------------------------------------------------------------
    R("sum", [(3, 4)], lambda a: a.sum()),
    R("sum_axis", [(3, 4)], lambda a: a.sum(1), lambda a: a.sum(axis=1)),
    R("sum_axes_keepdims", [(2, 3, 4)], lambda a: a.sum((0, 2), keepdim=True),
      lambda a: a.sum(axis=(0, 2), keepdims=True)),
    R("sum_neg_axis", [(2, 3, 4)], lambda a: a.sum(-1), lambda a: a.sum(axis=-1)),
    R("mean", [(3, 4)], lambda a: a.mean()),
    R("mean_axis_keepdims", [(2, 3, 4)], lambda a: a.mean(1, keepdim=True), lambda a: a.mean(axis=1, keepdims=True)),
    R("max", [(3, 4)], lambda a: a.max()),
    R("amax_axis", [(3, 4)], lambda a: a.amax(1), lambda a: a.amax(axis=1)),
    R("amax_axes_keepdims", [(2, 3, 4)], lambda a: a.amax((0, 2), keepdim=True), lambda a: a.amax(axis=(0, 2), keepdims=True)),
    R("min", [(3, 4)], lambda a: a.min()),
    R("amin_axis", [(3, 4)], lambda a: a.amin(0), lambda a: a.amin(axis=0)),
    R("var_unbiased", [(3, 4)], lambda a: a.var()),
    R("var_axis", [(3, 4)], lambda a: a.var(1), lambda a: a.var(axis=1)),
    R("var_keepdims", [(2, 3, 4)], lambda a: a.var((0, 2), keepdim=True), lambda a: a.var(axis=(0, 2), keepdims=True)),
    R("var_biased", [(3, 4)], lambda a: a.var(0, correction=0), lambda a: a.var(axis=0, correction=0)),
    # ---- movement ----------------------------------------------------------------------------
    R("reshape", [(2, 3, 4)], lambda a: a.reshape(4, 6)),
    R("view_infer", [(2, 3, 4)], lambda a: a.view(-1, 4)),
    R("transpose", [(2, 3, 4)], lambda a: a.transpose(0, 2)),
    R("swapaxes_neg", [(2, 3, 4)], lambda a: a.swapaxes(-1, -2)),
    R("permute", [(2, 3, 4)], lambda a: a.permute(2, 0, 1)),
    R("T", [(3, 4)], lambda a: a.T),
    R("squeeze_all", [(1, 3, 1)], lambda a: a.squeeze()),
    R("squeeze_axis", [(1, 3, 1)], lambda a: a.squeeze(2), lambda a: a.squeeze(2)),
    R("unsqueeze", [(2, 3)], lambda a: a.unsqueeze(1)),
    R("expand", [(3, 1)], lambda a: a.expand(2, 3, 4)),
    R("expand_minus_one", [(3, 1)], lambda a: a.expand(-1, 4)),
    R("flatten", [(2, 3, 4)], lambda a: a.flatten(1)),
    R("cat", [(2, 3), (2, 1)], lambda a, b: torch.cat([a, b], dim=1), lambda a, b: mg.cat([a, b], axis=1)),
    R("cat_neg_axis", [(2, 3), (4, 3)], lambda a, b: torch.cat([a, b, a], dim=-2), lambda a, b: mg.cat([a, b, a], axis=-2)),
    R("stack", [(2, 3), (2, 3)], lambda a, b: torch.stack([a, b], dim=1), lambda a, b: mg.stack([a, b], axis=1)),
    R("split_size", [(5, 3)], lambda a: a.split(2, 0), lambda a: a.split(2, axis=0)),
    R("split_sections", [(2, 6)], lambda a: a.split([1, 3, 2], 1), lambda a: mg.split(a, [1, 3, 2], axis=1)),
    # ---- indexing ----------------------------------------------------------------------------
    R("index_int", [(3, 4)], lambda a: a[1]),
    R("index_slices", [(4, 5)], lambda a: a[1:3, ::2]),
    R("index_ellipsis_none", [(2, 3, 4)], lambda a: a[..., None, 1]),
    R("index_negative", [(3, 4)], lambda a: a[-1, -2:]),
    R("index_repeated", [(3, 4)], lambda a: a[tt(IDX)], lambda a: a[IDX]),
    R("index_repeated_list", [(3, 4)], lambda a: a[[0, 2, 0]], lambda a: a[[0, 2, 0]]),
    R("index_pairs", [(3, 4)], lambda a: a[tt(IDX), tt(IDX + 1)], lambda a: a[IDX, IDX + 1]),
    R("index_slice_and_array", [(3, 4)], lambda a: a[:, tt(IDX)], lambda a: a[:, IDX]),
    R("index_tensor", [(3, 4)], lambda a: a[tt(IDX)], lambda a: a[mg.tensor(IDX)]),
    R("index_bool_mask", [(3, 4)], lambda a: a[tt(COND)], lambda a: a[COND]),
    # ---- selection -----------------------------------------------------------------------------
    R("where", [(3, 4), (3, 4)], lambda a, b: torch.where(tt(COND), a, b), lambda a, b: mg.where(COND, a, b)),
    R("where_broadcast", [(3, 1), (4,)], lambda a, b: torch.where(tt(COND), a, b), lambda a, b: mg.where(COND, a, b)),
    R("where_scalar", [(3, 4)], lambda a: torch.where(tt(COND), a, 0.5), lambda a: mg.where(COND, a, 0.5)),
    R("masked_fill", [(3, 4)], lambda a: a.masked_fill(tt(COND), -1.5), lambda a: a.masked_fill(COND, -1.5)),
    # ---- matmul ----------------------------------------------------------------------------------
    R("matmul", [(3, 4), (4, 5)], lambda a, b: a @ b),
    R("matmul_batched", [(2, 3, 4), (2, 4, 5)], lambda a, b: a @ b),
    R("matmul_3d_by_2d", [(2, 3, 4), (4, 5)], lambda a, b: a @ b),
    R("matmul_broadcast", [(2, 1, 3, 4), (5, 4, 2)], lambda a, b: a @ b),
    R("matmul_2d_by_3d", [(3, 4), (2, 4, 5)], lambda a, b: a @ b),
    R("matmul_vec_mat", [(4,), (4, 5)], lambda a, b: a @ b),
    R("matmul_mat_vec", [(3, 4), (4,)], lambda a, b: a @ b),
    R("matmul_vec_vec", [(4,), (4,)], lambda a, b: a @ b),
    R("matmul_transposed", [(3, 4), (5, 4)], lambda a, b: a @ b.T),
    R("linear", [(2, 3, 4), (5, 4), (5,)], lambda x, w, b: TF.linear(x, w, b), lambda x, w, b: x @ w.T + b),
    R("F.linear", [(2, 3, 4), (5, 4), (5,)], lambda x, w, b: TF.linear(x, w, b), lambda x, w, b: F.linear(x, w, b)),
    R("F.linear_no_bias_1d", [(4,), (5, 4)], lambda x, w: TF.linear(x, w), lambda x, w: F.linear(x, w)),
    # ---- fused -----------------------------------------------------------------------------------
    R("softmax", [(3, 5)], lambda a: a.softmax(-1), lambda a: a.softmax(-1), low=-5, high=5),
    R("softmax_axis0", [(3, 5)], lambda a: a.softmax(0), lambda a: a.softmax(0), low=-5, high=5),
    R("softmax_middle", [(2, 3, 4)], lambda a: a.softmax(1), lambda a: F.softmax(a, axis=1), low=-5, high=5),
    R("log_softmax", [(3, 5)], lambda a: a.log_softmax(-1), lambda a: a.log_softmax(-1), low=-5, high=5),
    R("log_softmax_axis0", [(2, 3, 4)], lambda a: a.log_softmax(0), lambda a: F.log_softmax(a, axis=0), low=-5, high=5),
    R("cross_entropy_ignore", [(5, 4)], lambda z: TF.cross_entropy(z, tt(TARGETS), ignore_index=-100),
      lambda z: F.cross_entropy(z, TARGETS), low=-4, high=4),
    R("cross_entropy_ignore_2", [(5, 4)], lambda z: TF.cross_entropy(z, tt(TARGETS_IGN2), ignore_index=2),
      lambda z: F.cross_entropy(z, mg.tensor(TARGETS_IGN2), ignore_index=2), low=-4, high=4),
    R("layer_norm", [(2, 3, 5), (5,), (5,)], lambda x, w, b: TF.layer_norm(x, (5,), w, b, eps=1e-5),
      lambda x, w, b: F.layer_norm(x, 5, w, b, eps=1e-5), tol=10),
    R("layer_norm_no_affine", [(4, 6)], lambda x: TF.layer_norm(x, (6,)), lambda x: F.layer_norm(x, (6,)), tol=10),
    R("embedding_repeated", [(5, 3)], lambda w: TF.embedding(tt(IDS), w), lambda w: F.embedding(IDS, w)),
    R("embedding_tied", [(5, 3)], lambda w: TF.linear(TF.embedding(tt(IDS), w), w),        # rows + dense
      lambda w: F.linear(F.embedding(IDS, w), w)),
    R("embedding_of_inner", [(5, 3)], lambda w: TF.embedding(tt(IDS), w * 2),               # densified
      lambda w: F.embedding(IDS, w * 2)),
    R("sdpa_causal", [(2, 2, 4, 3)] * 3, lambda q, k, v: TF.scaled_dot_product_attention(q, k, v, is_causal=True),
      lambda q, k, v: F.scaled_dot_product_attention(q, k, v, is_causal=True)),
    R("sdpa_bottom_right_mask", [(1, 2, 2, 3), (1, 2, 4, 3), (1, 2, 4, 3)],
      lambda q, k, v: TF.scaled_dot_product_attention(q, k, v, attn_mask=tt(BOTTOM_RIGHT)),
      lambda q, k, v: F.scaled_dot_product_attention(q, k, v, attn_mask=BOTTOM_RIGHT)),
    R("sdpa_full", [(1, 2, 3, 4), (1, 2, 5, 4), (1, 2, 5, 4)],
      lambda q, k, v: TF.scaled_dot_product_attention(q, k, v, scale=0.3),
      lambda q, k, v: F.scaled_dot_product_attention(q, k, v, is_causal=False, scale=0.3)),
    R("dropout_eval", [(3, 4)], lambda a: TF.dropout(a, 0.5, training=False), lambda a: F.dropout(a, 0.5, training=False)),
    R("dropout_p0", [(3, 4)], lambda a: TF.dropout(a, 0.0), lambda a: F.dropout(a, 0.0)),
]


def helper_test_op(row, dtype, seed=0):
    require("torch")
    rng = np.random.default_rng(seed)
    if row.vals is not None:
        arrays = [np.asarray(v, dtype=dtype) for v in row.vals]
    else:
        arrays = [rng.uniform(row.low, row.high, s).astype(dtype) for s in row.shapes]
    t_in = [torch.tensor(a, requires_grad=True) for a in arrays]
    m_in = [mg.Tensor(a, requires_grad=True) for a in arrays]
    t_out, m_out = _as_list(row.torch_fn(*t_in)), _as_list((row.mg_fn or row.torch_fn)(*m_in))
    tol = TOL[dtype] * row.tol

    assert len(m_out) == len(t_out)
    floating = [t.dtype.is_floating_point for t in t_out]
    upstream = [rng.standard_normal(tuple(t.shape)).astype(dtype) for t in t_out]
    for m, t, f in zip(m_out, t_out, floating):
        assert m.shape == tuple(t.shape), f"{row}: shape {m.shape} != {tuple(t.shape)}"
        if not f:   # indices: exact, int64, outside the graph
            assert m.dtype == np.int64 and not m.requires_grad, f"{row}: indices {m.dtype}"
            np.testing.assert_array_equal(m.data, t.numpy(), err_msg=f"{row} indices")
            continue
        assert m.dtype == dtype, f"{row}: forward {dtype.__name__} -> {m.dtype}"
        np.testing.assert_allclose(m.data, t.detach().numpy(), rtol=tol, atol=tol, err_msg=f"{row} forward")

    pairs = [(m, t, u) for m, t, u, f in zip(m_out, t_out, upstream, floating) if f]
    if not pairs:   # indices only: nothing to differentiate
        return
    sum(((t * tt(u)).sum() for _, t, u in pairs)).backward()
    sum(((m * mg.Tensor(u)).sum() for m, _, u in pairs)).backward()
    for i, (m, t) in enumerate(zip(m_in, t_in)):
        want = np.zeros(m.shape, dtype) if t.grad is None else t.grad.numpy()
        assert m.grad is not None and m.grad.dtype == dtype, f"{row}: grad of input {i} is {m.grad}"
        np.testing.assert_allclose(m.grad, want, rtol=tol, atol=tol, err_msg=f"{row} grad of input {i}")


def _as_list(out):
    return list(out) if isinstance(out, (tuple, list)) else [out]


@pytest.mark.parametrize("dtype", [np.float64, np.float32], ids=["f64", "f32"])
@pytest.mark.parametrize("row", ROWS, ids=str)
def test_op_matches_torch(row, dtype):
    helper_test_op(row, dtype)


# ---- comparisons: boolean results, outside the graph ---------------------------------------------
CMP = [("lt", lambda a, b: a < b), ("le", lambda a, b: a <= b), ("gt", lambda a, b: a > b),
       ("ge", lambda a, b: a >= b), ("eq", lambda a, b: a == b), ("ne", lambda a, b: a != b)]


@pytest.mark.parametrize("name,fn", CMP, ids=[c[0] for c in CMP])
def test_comparison_matches_torch(name, fn):
    require("torch")
    a = np.array([[1.0, 2.0, 3.0], [3.0, 2.0, 1.0]], dtype=np.float32)
    b = np.array([2.0, 2.0, 2.0], dtype=np.float32)
    out = fn(mg.Tensor(a, requires_grad=True), mg.Tensor(b))
    assert out.dtype == np.bool_ and not out.requires_grad
    np.testing.assert_array_equal(out.data, fn(tt(a), tt(b)).numpy())


def test_cross_entropy_all_ignored_is_nan_with_zero_grad_like_torch():
    require("torch")
    z = np.random.default_rng(1).standard_normal((3, 4))
    t = np.full(3, -100)
    zt, zm = torch.tensor(z, requires_grad=True), mg.Tensor(z, requires_grad=True)
    want, loss = TF.cross_entropy(zt, tt(t)), F.cross_entropy(zm, t)
    want.backward()
    loss.backward()
    assert np.isnan(loss.item()) and np.isnan(want.item())
    np.testing.assert_array_equal(zm.grad, zt.grad.numpy())   # torch: zeros, not NaN
