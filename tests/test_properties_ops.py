"""Hypothesis gradchecks of the ops added for PyTorch parity (test_properties.py holds the
helpers and the core ops): scans, sorts, gather/scatter, shape composites, losses in every
form, attention with masks, and differentiable in-place writes. Same settings: float64
central differences on both kernel backends, inputs contiguous, transposed or strided."""
import numpy as np
import pytest
from hypothesis import assume, given, strategies as st
from hypothesis.extra import numpy as hnp

import minigrad as mg
from minigrad import functional as F
from test_properties import ANY, AWAY0, POS, SPREAD, both_backends, check, leaves, nonscalar, shapes

UNARY = [
    ("erf", lambda x: x.erf(), ANY),
    ("rsqrt", lambda x: x.rsqrt(), POS),
    ("square", lambda x: x.square(), ANY),
    ("std", lambda x: x.std(), SPREAD),
    ("logsumexp_all", lambda x: x.logsumexp(tuple(range(x.ndim))), ANY),
    ("flatten", lambda x: x.flatten() * 1, ANY),
    ("repeat", lambda x: x.repeat(2, *([1] * x.ndim)), ANY),
    ("relu_inplace_chain", lambda x: (lambda y: y.mul_(2).add_(x).clamp_(-2, 2))(x * 1), AWAY0),
]


@both_backends
@pytest.mark.parametrize("name,fn,domain", UNARY, ids=[u[0] for u in UNARY])
@given(data=st.data())
def test_unary_gradcheck(name, fn, domain, backend, data):
    shape = data.draw(shapes if name not in ("std",) else hnp.array_shapes(min_dims=1, max_dims=3, min_side=2, max_side=4))
    check(fn, backend, data.draw(leaves(shape, domain, unique=domain is SPREAD)))


# (name, fn(x, dim, keepdim)): along one dim of a non-scalar tensor
AXIS_OPS = [
    ("cumsum", lambda x, d, kd: x.cumsum(d), ANY),
    ("logsumexp", lambda x, d, kd: x.logsumexp(d, keepdim=kd), ANY),
    ("max_dim", lambda x, d, kd: x.max(d, keepdim=kd).values, SPREAD),
    ("min_dim", lambda x, d, kd: x.min(dim=d, keepdim=kd)[0], SPREAD),
    ("std_dim", lambda x, d, kd: x.std(d, keepdim=kd, correction=0), SPREAD),
    ("sort", lambda x, d, kd: x.sort(d, descending=kd).values, SPREAD),
    ("topk", lambda x, d, kd: x.topk((x.shape[d] + 1) // 2, d, largest=kd).values, SPREAD),
    ("chunk", lambda x, d, kd: mg.cat([c * (i + 1) for i, c in enumerate(x.chunk(2, d))], d), ANY),
    ("unbind", lambda x, d, kd: mg.stack(x.unbind(d)[::-1], d), ANY),
    ("unflatten", lambda x, d, kd: x.unflatten(d, (1, x.shape[d], 1)) * 2, ANY),
    ("softmax_dim_kw", lambda x, d, kd: F.softmax(x, dim=d), ANY),
]


@both_backends
@pytest.mark.parametrize("name,fn,domain", AXIS_OPS, ids=[a[0] for a in AXIS_OPS])
@given(data=st.data())
def test_axis_op_gradcheck(name, fn, domain, backend, data):
    shape = data.draw(nonscalar if domain is not SPREAD else
                      hnp.array_shapes(min_dims=1, max_dims=3, min_side=2, max_side=4))
    d = data.draw(st.integers(-len(shape), len(shape) - 1))
    kd = data.draw(st.booleans())
    check(lambda x: fn(x, d, kd), backend, data.draw(leaves(shape, domain, unique=domain is SPREAD)))


@both_backends
@pytest.mark.parametrize("op", ["maximum", "minimum"])
@given(data=st.data())
def test_maximum_minimum_gradcheck(op, backend, data):
    sa, sb = data.draw(hnp.mutually_broadcastable_shapes(num_shapes=2, max_dims=3, max_side=3)).input_shapes
    a, b = data.draw(leaves(sa)), data.draw(leaves(sb))
    diff = np.subtract(*np.broadcast_arrays(a.view(a.data), b.view(b.data)))
    assume(np.abs(diff).min(initial=1.0) > 1e-3)   # away from ties, where the gradient is split
    check(getattr(mg, op), backend, a, b)


@both_backends
@given(data=st.data())
def test_clamp_tensor_bounds_mse_and_linear_gradcheck(backend, data):
    shape = data.draw(nonscalar)
    a, lo = data.draw(leaves(shape)), data.draw(leaves(shape[-1:], AWAY0))
    assume(np.abs(np.subtract(*np.broadcast_arrays(a.view(a.data), lo.view(lo.data)))).min() > 1e-3)   # no ties
    w, b = data.draw(leaves((2, shape[-1]))), data.draw(leaves((2,)))
    check(lambda a, lo, w, b: F.mse_loss(a.clamp(min=lo), a.tanh(), reduction="sum") * F.linear(a, w, b).sum()
          + mg.where(lo.data > 0, 0.5, a), backend, a, lo, w, b)


@both_backends
@given(data=st.data())
def test_gather_scatter_gradcheck(backend, data):
    shape = data.draw(hnp.array_shapes(min_dims=1, max_dims=3, min_side=1, max_side=4))
    dim = data.draw(st.integers(0, len(shape) - 1))
    small = tuple(data.draw(st.integers(1, n)) for n in shape)
    gidx = data.draw(hnp.arrays(np.int64, small, elements=st.integers(0, shape[dim] - 1)))
    # scatter: distinct targets along dim (a permutation's first entries), so no write is lost
    k = data.draw(st.integers(1, shape[dim]))
    sshape = shape[:dim] + (k,) + shape[dim + 1:]
    perm = np.argsort(data.draw(hnp.arrays(np.float64, sshape[:dim] + (shape[dim],) + sshape[dim + 1:],
                                           elements=st.floats(0, 1), unique=True)), axis=dim)
    sidx = np.take(perm, np.arange(k), axis=dim)
    x, src = data.draw(leaves(shape)), data.draw(leaves(sshape))
    check(lambda x, s: x.gather(dim, gidx).sum() * x.scatter(dim, sidx, s) + x.scatter_add(dim, gidx[..., :1] * 0, x),
          backend, x, src)


@both_backends
@given(data=st.data())
def test_tril_triu_gradcheck(backend, data):
    shape = data.draw(hnp.array_shapes(min_dims=2, max_dims=3, max_side=4))
    k = data.draw(st.integers(-2, 2))
    check(lambda x: x.tril(k) * 2 + x.triu(k + 1), backend, data.draw(leaves(shape)))


@both_backends
@given(data=st.data())
def test_setitem_gradcheck(backend, data):
    """y = x * 1; y[index] = v: x's gradient is zero where written, v's is summed over its broadcast."""
    shape = data.draw(nonscalar)
    index = data.draw(hnp.basic_indices(shape, allow_newaxis=False, allow_ellipsis=True)
                      | hnp.arrays(np.bool_, shape)
                      | hnp.integer_array_indices(shape, result_shape=hnp.array_shapes(max_dims=1, max_side=1)))
    region = np.shape(np.zeros(shape)[index])
    vshape = region[data.draw(st.integers(0, len(region))):]     # trailing dims of the region,
    vshape = tuple(n if data.draw(st.booleans()) else 1 for n in vshape)   # some of them broadcast

    def write(x, v):
        y = x * 1
        y[index] = v
        return y * y
    value = data.draw(leaves(vshape))
    assume(value.view(value.data).shape == vshape)   # (a 0-d "transposed" leaf comes out 1-d)
    check(write, backend, data.draw(leaves(shape)), value)


@both_backends
@given(data=st.data())
def test_write_through_view_gradcheck(backend, data):
    shape = data.draw(hnp.array_shapes(min_dims=2, max_dims=3, min_side=2, max_side=4))

    def write(x, v):
        h = x * 2
        row = h[1]              # a view of h
        row.mul_(v)             # writes h[1] in place
        return h.tanh()
    check(write, backend, data.draw(leaves(shape)), data.draw(leaves(shape[1:])))


# ---- losses and attention ------------------------------------------------------------------------
@both_backends
@given(data=st.data())
def test_losses_gradcheck(backend, data):
    n, c, d = (data.draw(st.integers(1, 4)) for _ in range(3))
    targets = data.draw(hnp.arrays(np.int64, (n, d), elements=st.integers(0, c - 1) | st.just(-100)))
    assume((targets != -100).any())
    weight = data.draw(hnp.arrays(np.float64, c, elements=st.floats(0.1, 2)))
    reduction = data.draw(st.sampled_from(["mean", "sum", "none"]))
    smoothing = data.draw(st.sampled_from([0.0, 0.25]))
    probs = data.draw(hnp.arrays(np.float64, (n, c), elements=st.floats(0, 1)))

    def losses(z, z2):
        ce = F.cross_entropy(z, targets, weight=weight, reduction=reduction, label_smoothing=smoothing)
        nll = F.nll_loss(z.log_softmax(1), targets, reduction=reduction)
        soft = F.cross_entropy(z2, probs, label_smoothing=smoothing)
        return ce.sum() + nll.sum() * 0.5 + soft
    check(losses, backend, data.draw(leaves((n, c, d))), data.draw(leaves((n, c))))


@both_backends
@given(data=st.data())
def test_attention_masks_gradcheck(backend, data):
    b, d = data.draw(st.integers(1, 2)), data.draw(st.integers(1, 3))
    tq, tk = data.draw(st.integers(1, 4)), data.draw(st.integers(1, 4))
    keep = data.draw(hnp.arrays(np.bool_, (tq, tk)))
    causal = data.draw(st.booleans())
    bias = data.draw(hnp.arrays(np.float64, (tq, tk), elements=st.floats(-2, 2)))
    q, k, v = (data.draw(leaves(s)) for s in [(b, 1, tq, d), (b, 1, tk, d), (b, 1, tk, d)])
    check(lambda q, k, v: F.scaled_dot_product_attention(q, k, v, attn_mask=keep, is_causal=causal)
          + F.scaled_dot_product_attention(q, k, v, attn_mask=bias, is_causal=causal, scale=0.5), backend, q, k, v)
