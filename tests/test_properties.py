"""Hypothesis properties: every differentiable op passes gradcheck on generated inputs.

Shapes are small (sides 1-4, up to 3 dims, `()` included) so the full-Jacobian
gradcheck (float64, eps=1e-6, atol=1e-5, rtol=1e-3) stays cheap; bigger cases
use fast_mode. Each input may arrive contiguous, as a transposed view or as a
strided slice (`Leaf`). Values are drawn from each op's domain, away from
points where it is not differentiable (relu/abs at 0, clip bounds, max ties).
Every gradcheck runs on both kernel backends. Then a few algebraic properties.
Profiles (tests/conftest.py): HYPOTHESIS_PROFILE=ci (25 examples, default) or thorough.
"""
import numpy as np
import pytest
from hypothesis import assume, given, strategies as st
from hypothesis.extra import numpy as hnp

import minigrad as mg
from minigrad import functional as F
from minigrad.kernels import use_backend

BACKENDS = ["numpy", "numba"]
both_backends = pytest.mark.parametrize("backend", BACKENDS)

# ---- value domains -------------------------------------------------------------------------
ANY = st.floats(-3, 3)
POS = st.floats(0.2, 3)                                              # log, sqrt, pow base
AWAY0 = st.floats(0.05, 3) | st.floats(-3, -0.05)                    # relu, abs, divisors
AWAY_PM1 = st.floats(-3, -1.05) | st.floats(-0.95, 0.95) | st.floats(1.05, 3)   # clip(-1, 1)
SPREAD = st.integers(-100, 100).map(lambda i: i / 20)               # unique -> no max ties

shapes = hnp.array_shapes(min_dims=0, max_dims=3, min_side=1, max_side=4)
nonscalar = hnp.array_shapes(min_dims=1, max_dims=3, min_side=1, max_side=4)


class Leaf:
    """The data of a leaf tensor and how fn sees it: as is, as a transposed view
    (x.T of the transposed copy) or as a strided slice (x[::2] of a doubled array)."""

    def __init__(self, a, kind):
        self.kind, self.shape = kind, a.shape
        self.data = {"contiguous": a, "transposed": np.ascontiguousarray(a.T),
                     "strided": np.repeat(a, 2, axis=0) if a.ndim else a}[kind]

    def view(self, x):
        if self.kind == "transposed":
            return x.T
        if self.kind == "strided" and x.ndim:
            return x[::2]
        return x

    def __repr__(self):
        return f"Leaf({self.kind}, {self.shape}, {self.data.ravel()[:6].tolist()}...)"


@st.composite
def leaves(draw, shape, elements=ANY, unique=False):
    a = draw(hnp.arrays(np.float64, shape, elements=elements, unique=unique))
    return Leaf(a, draw(st.sampled_from(["contiguous", "transposed", "strided"])))


def check(fn, backend, *leafs, fast=False):
    """gradcheck fn on the leaves' views, under the given kernel backend."""
    xs = [mg.Tensor(leaf.data, requires_grad=True) for leaf in leafs]
    with use_backend(backend):
        assert mg.gradcheck(lambda *ts: fn(*(lf.view(t) for lf, t in zip(leafs, ts))), xs,
                            fast_mode=fast)


# ---- elementwise and whole-tensor ops: (name, fn, domain) --------------------------------------
UNARY = [
    ("neg", lambda x: -x, ANY),
    ("exp", lambda x: x.exp(), ANY),
    ("log", lambda x: x.log(), POS),
    ("sqrt", lambda x: x.sqrt(), POS),
    ("tanh", lambda x: x.tanh(), ANY),
    ("sigmoid", lambda x: x.sigmoid(), ANY),
    ("relu", lambda x: x.relu(), AWAY0),
    ("abs", lambda x: x.abs(), AWAY0),
    ("gelu", lambda x: x.gelu(), ANY),
    ("gelu_tanh", lambda x: x.gelu(approximate="tanh"), ANY),
    ("clip", lambda x: x.clip(-1, 1), AWAY_PM1),
    ("pow_const", lambda x: x ** 3, ANY),
    ("pow_half", lambda x: x ** 0.5, POS),
    ("rpow", lambda x: 2.0 ** x, ANY),
    ("rdiv", lambda x: 1.5 / x, AWAY0),
    ("scalar_arith", lambda x: (3 - x) * 2 / 4 + 1, ANY),
    ("used_twice", lambda x: x * x.tanh() + x, ANY),
    ("reused_deeper", lambda x: x + (x * 2).exp().sum() * x.sigmoid(), ANY),
    ("sum", lambda x: x.sum(), ANY),
    ("mean", lambda x: x.mean(), ANY),
    ("var_biased", lambda x: x.var(correction=0), ANY),
    ("max", lambda x: x.max(), SPREAD),
    ("min", lambda x: x.min(), SPREAD),
    ("T", lambda x: x.T * 1, ANY),
    ("reshape_flat", lambda x: x.reshape(-1), ANY),
    ("unsqueeze", lambda x: x.unsqueeze(0), ANY),
    ("squeeze", lambda x: x.squeeze(), ANY),
    ("dropout", lambda x: (mg.manual_seed(0), F.dropout(x, 0.4))[1], ANY),  # same mask every call
    ("masked_fill", lambda x: x.masked_fill(x.data > 0, 2.0), AWAY0),
]


@both_backends
@pytest.mark.parametrize("name,fn,domain", UNARY, ids=[u[0] for u in UNARY])
@given(data=st.data())
def test_unary_gradcheck(name, fn, domain, backend, data):
    shape = data.draw(shapes)
    check(fn, backend, data.draw(leaves(shape, domain, unique=domain is SPREAD)))


# ---- reductions and fused ops along an axis -----------------------------------------------------
AXIS_OPS = [
    ("sum", lambda x, ax, kd: x.sum(axis=ax, keepdims=kd), ANY),
    ("mean", lambda x, ax, kd: x.mean(axis=ax, keepdims=kd), ANY),
    ("var", lambda x, ax, kd: x.var(axis=ax, keepdims=kd, correction=int(x.shape[ax] > 1)), ANY),
    ("amax", lambda x, ax, kd: x.amax(axis=ax, keepdims=kd), SPREAD),
    ("amin", lambda x, ax, kd: x.amin(axis=ax, keepdims=kd), SPREAD),
    ("softmax", lambda x, ax, kd: x.softmax(ax), ANY),
    ("log_softmax", lambda x, ax, kd: x.log_softmax(ax), ANY),
]


@both_backends
@pytest.mark.parametrize("name,fn,domain", AXIS_OPS, ids=[a[0] for a in AXIS_OPS])
@given(data=st.data())
def test_axis_op_gradcheck(name, fn, domain, backend, data):
    shape = data.draw(nonscalar)
    ax = data.draw(st.integers(-len(shape), len(shape) - 1))
    kd = data.draw(st.booleans())
    check(lambda x: fn(x, ax, kd), backend, data.draw(leaves(shape, domain, unique=domain is SPREAD)))


@both_backends
@given(data=st.data())
def test_multi_axis_reductions_gradcheck(backend, data):
    shape = data.draw(hnp.array_shapes(min_dims=2, max_dims=3, max_side=3))
    axes = tuple(data.draw(st.sets(st.integers(0, len(shape) - 1), min_size=1)))
    kd = data.draw(st.booleans())
    leaf = data.draw(leaves(shape, SPREAD, unique=True))
    check(lambda x: x.sum(axis=axes, keepdims=kd) * x.amax(axis=axes, keepdims=kd)
          + x.var(axis=axes, keepdims=kd, correction=0), backend, leaf)


# ---- broadcasting binary ops ----------------------------------------------------------------------
BINARY = [
    ("add", lambda a, b: a + b, ANY, ANY),
    ("sub", lambda a, b: a - b, ANY, ANY),
    ("mul", lambda a, b: a * b, ANY, ANY),
    ("div", lambda a, b: a / b, ANY, AWAY0),
    ("pow", lambda a, b: a ** b, POS, ANY),
    ("where", lambda a, b: mg.where(a.data > 0, a, b), AWAY0, ANY),
]


@both_backends
@pytest.mark.parametrize("name,fn,da,db", BINARY, ids=[b[0] for b in BINARY])
@given(data=st.data())
def test_binary_broadcast_gradcheck(name, fn, da, db, backend, data):
    sa, sb = data.draw(hnp.mutually_broadcastable_shapes(num_shapes=2, max_dims=3, max_side=3)).input_shapes
    check(fn, backend, data.draw(leaves(sa, da)), data.draw(leaves(sb, db)))


@both_backends
@given(data=st.data())
def test_matmul_gradcheck(backend, data):
    # (n?,k),(k,m?): 1-d operands, 2-d, and broadcast batch dims
    sa, sb = data.draw(hnp.mutually_broadcastable_shapes(
        signature=np.matmul.signature, max_dims=2, max_side=3)).input_shapes
    check(lambda a, b: a @ b, backend, data.draw(leaves(sa)), data.draw(leaves(sb)))


# ---- movement ---------------------------------------------------------------------------------------
@both_backends
@given(data=st.data())
def test_permute_transpose_reshape_gradcheck(backend, data):
    shape = data.draw(nonscalar)
    perm = data.draw(st.permutations(range(len(shape))))
    a, b = data.draw(st.integers(0, len(shape) - 1)), data.draw(st.integers(-len(shape), -1))
    check(lambda x: x.permute(*perm).transpose(a, b).reshape(-1, shape[0]) * 2, backend,
          data.draw(leaves(shape)))


@both_backends
@given(data=st.data())
def test_expand_gradcheck(backend, data):
    shape = data.draw(hnp.array_shapes(min_dims=1, max_dims=3, min_side=1, max_side=3))
    target = data.draw(hnp.broadcastable_shapes(shape, min_dims=len(shape), max_dims=4, max_side=3))
    target = np.broadcast_shapes(shape, target)
    check(lambda x: x.expand(*target) * 1.5, backend, data.draw(leaves(shape)))


@both_backends
@given(data=st.data())
def test_cat_stack_split_gradcheck(backend, data):
    shape = data.draw(nonscalar)
    axis = data.draw(st.integers(0, len(shape) - 1))
    other = shape[:axis] + (data.draw(st.integers(1, 3)),) + shape[axis + 1:]
    size = data.draw(st.integers(1, 4))
    check(lambda a, b: mg.stack(mg.cat([a, b, a], axis=axis).split(size, axis=axis)[:1] * 2, axis=0),
          backend, data.draw(leaves(shape)), data.draw(leaves(other)))


@both_backends
@given(data=st.data())
def test_basic_indexing_gradcheck(backend, data):
    shape = data.draw(nonscalar)
    index = data.draw(hnp.basic_indices(shape, allow_newaxis=True))
    check(lambda x: x[index] * 2, backend, data.draw(leaves(shape)))


@both_backends
@given(data=st.data())
def test_integer_array_indexing_gradcheck(backend, data):
    shape = data.draw(nonscalar)
    index = data.draw(hnp.integer_array_indices(shape, result_shape=hnp.array_shapes(max_dims=2, max_side=5)))
    check(lambda x: x[index] * x[index], backend, data.draw(leaves(shape)))   # repeats accumulate


@both_backends
@given(data=st.data())
def test_boolean_mask_indexing_gradcheck(backend, data):
    shape = data.draw(nonscalar)
    mask = data.draw(hnp.arrays(np.bool_, shape))
    check(lambda x: x[mask].exp(), backend, data.draw(leaves(shape)))


# ---- fused GPT ops -------------------------------------------------------------------------------------
@both_backends
@given(data=st.data())
def test_cross_entropy_gradcheck(backend, data):
    n, c = data.draw(st.integers(1, 5)), data.draw(st.integers(1, 5))
    targets = data.draw(hnp.arrays(np.int64, n, elements=st.integers(0, c - 1) | st.just(-100)))
    assume((targets != -100).any())
    check(lambda z: F.cross_entropy(z, targets), backend, data.draw(leaves((n, c))))


@both_backends
@given(data=st.data())
def test_layer_norm_gradcheck(backend, data):
    shape = data.draw(hnp.array_shapes(min_dims=1, max_dims=3, min_side=2, max_side=4))
    c = shape[-1]
    check(lambda x, w, b: F.layer_norm(x, c, w, b), backend,
          data.draw(leaves(shape)), data.draw(leaves((c,))), data.draw(leaves((c,))))


@both_backends
@given(data=st.data())
def test_embedding_gradcheck(backend, data):
    v, c = data.draw(st.integers(1, 4)), data.draw(st.integers(1, 3))
    ids = data.draw(hnp.arrays(np.int64, hnp.array_shapes(min_dims=0, max_dims=2, max_side=4),
                               elements=st.integers(0, v - 1)))
    check(lambda w: F.embedding(ids, w) * 2, backend, data.draw(leaves((v, c))))


@both_backends
@pytest.mark.parametrize("causal", [True, False], ids=["causal", "full"])
@given(data=st.data())
def test_attention_gradcheck(causal, backend, data):
    b, h, d = (data.draw(st.integers(1, 2)) for _ in range(3))
    tk = data.draw(st.integers(1, 4))
    tq = data.draw(st.integers(1, tk))
    q, k, v = (data.draw(leaves(s)) for s in [(b, h, tq, d), (b, h, tk, d), (b, h, tk, d)])
    check(lambda q, k, v: F.scaled_dot_product_attention(q, k, v, is_causal=causal), backend, q, k, v)


@both_backends
@given(seed=st.integers(0, 2 ** 32 - 1))
def test_gpt_block_shapes_fast_mode(backend, seed):
    """A bigger composite (attention + layer norm + gelu MLP + loss) checked by projection."""
    rng = np.random.default_rng(seed)
    x, w1, w2 = (Leaf(rng.standard_normal(s), "contiguous") for s in [(2, 6, 8), (8, 16), (16, 8)])
    targets = rng.integers(0, 8, 12)

    def block(x, w1, w2):
        q = x.reshape(2, 6, 2, 4).transpose(1, 2)
        a = F.scaled_dot_product_attention(q, q, q).transpose(1, 2).reshape(2, 6, 8)
        h = F.layer_norm(x + a, 8)
        return F.cross_entropy(((h @ w1).gelu() @ w2).reshape(12, 8), targets)
    check(block, backend, x, w1, w2, fast=True)


# ---- algebraic properties -----------------------------------------------------------------------------
@both_backends
@given(data=st.data())
def test_softmax_sums_to_one_and_log_softmax_is_its_log(backend, data):
    shape = data.draw(nonscalar)
    ax = data.draw(st.integers(-len(shape), len(shape) - 1))
    x = mg.Tensor(data.draw(hnp.arrays(np.float64, shape, elements=st.floats(-50, 50))))
    with use_backend(backend):
        s, ls = x.softmax(ax), x.log_softmax(ax)
    np.testing.assert_allclose(s.data.sum(axis=ax), 1.0, rtol=1e-12)
    np.testing.assert_allclose(np.exp(ls.data), s.data, rtol=1e-10, atol=1e-300)


@given(shape=shapes)
def test_gradient_of_sum_is_ones(shape):
    x = mg.randn(*shape, dtype=np.float64, requires_grad=True)
    x.sum().backward()
    np.testing.assert_array_equal(x.grad, np.ones(shape))


@both_backends
@given(data=st.data())
def test_matmul_gradient_is_the_transpose_identity(backend, data):
    m, k, n = (data.draw(st.integers(1, 5)) for _ in range(3))
    batch = data.draw(hnp.array_shapes(min_dims=0, max_dims=2, max_side=3))
    a, b, g = (data.draw(hnp.arrays(np.float64, s, elements=ANY))
               for s in [batch + (m, k), batch + (k, n), batch + (m, n)])
    A, B = mg.Tensor(a, requires_grad=True), mg.Tensor(b, requires_grad=True)
    with use_backend(backend):
        (A @ B).backward(g)
    np.testing.assert_allclose(A.grad, g @ np.swapaxes(b, -1, -2), rtol=1e-12, atol=1e-12)  # dA = G B^T
    np.testing.assert_allclose(B.grad, np.swapaxes(a, -1, -2) @ g, rtol=1e-12, atol=1e-12)  # dB = A^T G


@given(shape=shapes, dtype=st.sampled_from([np.float32, np.float64]))
def test_ops_keep_dtype_under_any_shape(shape, dtype):
    x = mg.Tensor(np.abs(np.random.default_rng(0).standard_normal(shape)) + 0.5, dtype=dtype, requires_grad=True)
    y = ((x * 2 + 1) / 3 - x.sqrt() + x.log().exp() ** 2).tanh().sigmoid().gelu().relu()
    y.sum().backward()
    assert y.dtype == dtype and x.grad.dtype == dtype
