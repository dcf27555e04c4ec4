"""More rows of the PyTorch reference table (tests/test_torch_reference.py has the helper):
the op surface a PyTorch user expects. Each row runs in float64 and float32, compares the
forward and every input's gradient under a random upstream gradient; index outputs must
match exactly. Edge cases give their inputs in `vals`."""
import numpy as np
import pytest

import minigrad as mg
from minigrad import functional as F
from test_torch_reference import TF, R, helper_test_op, torch, tt

GIDX = np.array([[0, 0, 3], [1, 2, 2], [3, 0, 1]])        # gather: repeats along dim 1
GIDX_SMALL = np.array([[2, 0], [1, 1]])                    # smaller than the input outside dim 0
SIDX = np.array([[2, 0, 1, 0], [0, 1, 2, 2]])              # scatter: distinct rows per column
SIDX_DUP = np.array([[1, 1, 0, 2], [1, 0, 0, 2]])          # scatter_add: repeats add up
IDX3 = np.array([0, 2, 1, 2])
MASK = np.array([[True, False, True, False], [False, False, True, True], [True, True, False, True]])
TARGETS = np.array([2, -100, 0, 3, 2])
TARGETS_ND = np.array([[1, 0, 3], [2, -100, 1]])            # (N, d1) for logits (N, C, d1)
W4 = np.array([0.5, 1.0, 2.0, 0.25])
KEEP = np.array([[True, True, False, True, False], [False, True, True, True, True], [True, False, False, False, True]])
DEAD_ROW = np.array([[True, False, True, False, False], [False] * 5, [True, True, True, True, True]])
PROBS = np.array([[0.1, 0.2, 0.3, 0.4], [1.0, 0.0, 0.0, 0.0], [0.25, 0.25, 0.25, 0.25]])
BIAS = np.array([[0.0, -1.0, 0.5, -np.inf, 0.2], [0.3, 0.0, -0.7, 0.1, -np.inf], [-np.inf, 0.0, 0.0, 1.0, 0.5]])


def cast_like(a, x):
    return tt(a).to(x.dtype)


def written(a, b, index):
    """y = a * 1 (a non-leaf), then y[index] = b: a differentiable write."""
    y = a * 1
    y[index] = b
    return y


def view_written(a, b):
    h = a * 2
    v = h[1:]                     # a view of h
    v[0] = b                      # writes h[1] through the view: h must see it
    return h * 1, v * 1


def inplace_chain(a, b):
    y = a * 1
    y.mul_(b)
    y.add_(b, alpha=2)
    y += a
    y *= 0.5
    y.sub_(1.0)
    return y.exp_()


def masked_fill_inplace(a):
    y = a + 0
    y.masked_fill_(cast_mask(y), -0.5)
    return y.clamp_(-1, 1)


def cast_mask(y):
    return tt(MASK) if isinstance(y, torch.Tensor) else MASK


ROWS = [
    # ---- elementwise -----------------------------------------------------------------------------
    R("maximum", [(3, 4), (4,)], lambda a, b: torch.maximum(a, b), lambda a, b: mg.maximum(a, b)),
    R("minimum", [(3, 1), (1, 4)], lambda a, b: torch.minimum(a, b), lambda a, b: mg.minimum(a, b)),
    R("maximum_ties", None, lambda a, b: torch.maximum(a, b), lambda a, b: mg.maximum(a, b),
      vals=[[1.0, 2.0, 3.0], [1.0, 1.0, 3.0]]),
    R("minimum_ties", None, lambda a, b: torch.minimum(a, b), lambda a, b: mg.minimum(a, b),
      vals=[[1.0, 2.0, 3.0], [1.0, 1.0, 3.0]]),
    R("max_of_two", [(3, 4), (3, 4)], lambda a, b: a.max(b)),
    R("erf", [(3, 4)], lambda a: a.erf(), low=-3, high=3),
    R("gelu_exact", [(3, 4)], lambda a: TF.gelu(a), lambda a: F.gelu(a), low=-4, high=4),
    R("gelu_exact_module", [(2, 5)], lambda a: torch.nn.GELU()(a), lambda a: mg.nn.GELU()(a), low=-4, high=4),
    R("rsqrt", [(3, 4)], lambda a: a.rsqrt(), low=0.3),
    R("square", [(3, 4)], lambda a: a.square()),
    R("add_alpha", [(3, 4), (4,)], lambda a, b: torch.add(a, b, alpha=2.5), lambda a, b: mg.add(a, b, alpha=2.5)),
    R("sub_alpha_method", [(3, 4), (3, 4)], lambda a, b: a.sub(b, alpha=-1.5)),
    R("mul_div_methods", [(3, 4), (3, 4)], lambda a, b: a.mul(b).div(b.abs() + 1).neg().pow(2)),
    R("clamp_tensor_bounds", [(3, 4), (4,), (3, 1)], lambda a, lo, hi: torch.clamp(a, lo - 1, hi + 1),
      lambda a, lo, hi: mg.clamp(a, lo - 1, hi + 1)),
    R("clamp_min_tensor", [(3, 4), (3, 4)], lambda a, b: a.clamp(min=b)),
    # pow at the edges: 0 ** x, x ** 0 and 0 ** 0 have zero gradients, as PyTorch's limits
    R("pow_zero_base", None, lambda a, b: a ** b, vals=[[0.0, 0.0, 0.0, 0.5, 0.0], [2.0, 0.0, 0.5, 0.0, -1.0]]),
    R("pow_exponent_zero", None, lambda a: a ** 0, vals=[[0.0, 1.5, -2.0]]),
    R("pow_zero_to_x", None, lambda a: 0.0 ** a, vals=[[0.0, 1.0, 2.5]]),
    R("pow_sqrt_at_zero", None, lambda a: a ** 0.5, vals=[[0.0, 1.0, 4.0]]),
    R("pow_negative_base", None, lambda a, b: a ** b, vals=[[-1.5, -2.0], [2.0, 3.0]]),
    # ---- reductions and scans --------------------------------------------------------------------
    R("std", [(3, 4)], lambda a: a.std()),
    R("std_dim", [(3, 4)], lambda a: a.std(1)),
    R("std_biased_keepdim", [(2, 3, 4)], lambda a: a.std((0, 2), unbiased=False, keepdim=True),
      lambda a: a.std((0, 2), unbiased=False, keepdim=True)),
    R("var_correction_kw", [(3, 4)], lambda a: a.var(dim=0, correction=0)),
    R("sum_dim_keepdim_kw", [(2, 3, 4)], lambda a: a.sum(dim=(0, 2), keepdim=True)),
    R("mean_dim_kw", [(2, 3, 4)], lambda a: a.mean(dim=-1)),
    R("cumsum", [(3, 4)], lambda a: a.cumsum(1)),
    R("cumsum_neg_dim", [(3, 4, 2)], lambda a: torch.cumsum(a, dim=-3), lambda a: mg.cumsum(a, dim=-3)),
    R("logsumexp", [(3, 4)], lambda a: a.logsumexp(1), low=-5, high=5),
    R("logsumexp_dims_keepdim", [(2, 3, 4)], lambda a: a.logsumexp((0, 2), keepdim=True), low=-5, high=5),
    R("max_dim", [(3, 4)], lambda a: a.max(1)),
    R("max_dim_keepdim", [(3, 4)], lambda a: a.max(dim=0, keepdim=True)),
    R("min_dim", [(3, 4)], lambda a: a.min(-1)),
    R("max_dim_ties", None, lambda a: a.max(1), vals=[[[1.0, 3.0, 3.0], [2.0, 2.0, 0.0]]]),
    R("min_dim_ties", None, lambda a: a.min(0), vals=[[[1.0, 3.0, 0.0], [1.0, 2.0, 0.0]]]),
    R("amax_ties", None, lambda a: a.amax(1), vals=[[[1.0, 3.0, 3.0], [2.0, 2.0, 0.0]]]),
    R("max_all_ties", None, lambda a: a.max(), vals=[[[1.0, 3.0, 3.0], [2.0, 2.0, 0.0]]]),
    R("amin_dims", [(2, 3, 4)], lambda a: a.amin((0, 1))),
    R("argmax_argmin", [(3, 5)], lambda a: (a.argmax(1), a.argmin(0, keepdim=True), a.argmax())),
    R("sort", [(3, 5)], lambda a: a.sort(1)),
    R("sort_descending", [(4, 3)], lambda a: a.sort(0, descending=True)),
    R("sort_ties", None, lambda a: a.sort(descending=True), vals=[[3.0, 1.0, 3.0, 2.0, 1.0]]),
    R("argsort", [(3, 5)], lambda a: a.argsort(1, descending=True)),
    R("topk", [(3, 6)], lambda a: a.topk(2, 1)),
    R("topk_smallest_dim0", [(4, 5)], lambda a: torch.topk(a, 3, dim=0, largest=False),
      lambda a: mg.topk(a, 3, dim=0, largest=False)),
    # ---- 0-d tensors take dim 0 and -1 ------------------------------------------------------------
    R("sum_0d", [()], lambda a: a.sum(0)),
    R("mean_0d_neg", [()], lambda a: a.mean(-1, keepdim=True)),
    R("softmax_0d", [()], lambda a: a.softmax(0)),
    R("log_softmax_0d", [()], lambda a: a.log_softmax(-1)),
    R("max_dim_0d", [()], lambda a: a.max(0)),
    R("amax_0d", [()], lambda a: a.amax(0)),
    R("squeeze_0d", [()], lambda a: a.squeeze(0) * 1),
    R("logsumexp_0d", [()], lambda a: a.logsumexp(0)),
    R("cumsum_0d", [()], lambda a: a.cumsum(0)),
    R("sort_0d", [()], lambda a: a.sort()),
    R("flatten_0d", [()], lambda a: a.flatten()),
    # ---- shape ---------------------------------------------------------------------------------------
    R("flatten_range", [(2, 3, 4, 5)], lambda a: a.flatten(1, 2)),
    R("flatten_end", [(2, 3, 4)], lambda a: torch.flatten(a, end_dim=-2), lambda a: mg.flatten(a, end_dim=-2)),
    R("unflatten", [(2, 12)], lambda a: a.unflatten(1, (3, -1))),
    R("repeat", [(2, 3)], lambda a: a.repeat(2, 1, 3)),
    R("chunk", [(7, 3)], lambda a: a.chunk(3)),
    R("chunk_dim", [(2, 5)], lambda a: torch.chunk(a, 2, dim=1), lambda a: mg.chunk(a, 2, dim=1)),
    R("split_dim_kw", [(2, 6)], lambda a: a.split([1, 3, 2], dim=1)),
    R("unbind", [(3, 2)], lambda a: a.unbind(1)),
    R("narrow_select", [(3, 4)], lambda a: (a.narrow(1, 1, 2), a.select(0, -1))),
    R("tril", [(4, 5)], lambda a: a.tril()),
    R("tril_k", [(4, 5)], lambda a: torch.tril(a, -1), lambda a: mg.tril(a, -1)),
    R("triu_batched", [(2, 4, 4)], lambda a: a.triu(1)),
    R("gather", [(3, 4)], lambda a: torch.gather(a, 1, tt(GIDX)), lambda a: mg.gather(a, 1, GIDX)),
    R("gather_smaller_index", [(3, 4)], lambda a: a.gather(0, tt(GIDX_SMALL)), lambda a: a.gather(0, GIDX_SMALL)),
    R("scatter", [(3, 4), (2, 4)], lambda a, b: a.scatter(0, tt(SIDX), b), lambda a, b: a.scatter(0, SIDX, b)),
    R("scatter_add", [(3, 4), (2, 4)], lambda a, b: a.scatter_add(0, tt(SIDX_DUP), b),
      lambda a, b: a.scatter_add(0, SIDX_DUP, b)),
    R("clone", [(3, 4)], lambda a: a.clone() * a),
    R("expand_as_view_as", [(3, 1), (3, 4)], lambda a, b: a.expand_as(b) * b.view_as(b)),
    # ---- indexing: an int applies first (a select), so the tensor index keeps its place ------------
    R("index_int_slice_tensor", [(2, 3, 6, 4, 5)], lambda a: a[1, :, 1:5:2, tt(IDX3[:3]), 0:2],
      lambda a: a[1, :, 1:5:2, IDX3[:3], 0:2]),
    R("index_ellipsis_tensor_int", [(3, 3, 4, 2)], lambda a: a[..., tt(IDX3[:3]), :, 0], lambda a: a[..., IDX3[:3], :, 0]),
    R("index_none_int_tensor", [(3, 3, 4)], lambda a: a[None, 1, :, tt(IDX3[:3])], lambda a: a[None, 1, :, IDX3[:3]]),
    R("index_tensor_int_tensor", [(3, 4, 5)], lambda a: a[tt(IDX3[:3]), 1, tt(IDX3[1:])], lambda a: a[IDX3[:3], 1, IDX3[1:]]),
    R("index_0d_tensor", [(3, 4)], lambda a: a[torch.tensor(1), tt(IDX3)], lambda a: a[mg.tensor(1), IDX3]),
    R("index_list_column", [(3, 4)], lambda a: a[:, [-1]]),
    # ---- in-place writes into non-leaves: differentiable ----------------------------------------------
    R("setitem_slice", [(3, 4), (2,)], lambda a, b: written(a, b, (1, slice(0, 2)))),
    R("setitem_tensor_index", [(4, 3), (3,)], lambda a, b: written(a, b, tt(IDX3[:2])),
      lambda a, b: written(a, b, IDX3[:2])),
    R("setitem_mask_scalar", [(3, 4)], lambda a: written(a, -1.5, tt(MASK)), lambda a: written(a, -1.5, MASK)),
    R("setitem_into_view", [(3, 4), (4,)], view_written),
    R("inplace_chain", [(3, 4), (4,)], inplace_chain, low=0.5),
    R("masked_fill_clamp_inplace", [(3, 4)], masked_fill_inplace),
    R("copy_into_view", [(3, 4), (4,)], lambda a, b: (lambda y: (y[0].copy_(b), y)[1])(a * 1)),
    # ---- losses ----------------------------------------------------------------------------------------
    R("nll_loss", [(5, 4)], lambda z: TF.nll_loss(z.log_softmax(1), tt(TARGETS)),
      lambda z: F.nll_loss(z.log_softmax(1), TARGETS)),
    R("nll_loss_weight_sum", [(5, 4)], lambda z: TF.nll_loss(z, tt(TARGETS), weight=cast_like(W4, z), reduction="sum"),
      lambda z: F.nll_loss(z, TARGETS, weight=W4, reduction="sum")),
    R("nll_loss_weight_mean", [(5, 4)], lambda z: TF.nll_loss(z, tt(TARGETS), weight=cast_like(W4, z)),
      lambda z: F.nll_loss(z, TARGETS, weight=W4)),
    R("cross_entropy_sum", [(5, 4)], lambda z: TF.cross_entropy(z, tt(TARGETS), reduction="sum"),
      lambda z: F.cross_entropy(z, TARGETS, reduction="sum"), low=-4, high=4),
    R("cross_entropy_none", [(5, 4)], lambda z: TF.cross_entropy(z, tt(TARGETS), reduction="none"),
      lambda z: F.cross_entropy(z, TARGETS, reduction="none"), low=-4, high=4),
    R("cross_entropy_weight", [(5, 4)], lambda z: TF.cross_entropy(z, tt(TARGETS), weight=cast_like(W4, z)),
      lambda z: F.cross_entropy(z, TARGETS, weight=W4), low=-4, high=4),
    R("cross_entropy_smoothing", [(5, 4)], lambda z: TF.cross_entropy(z, tt(TARGETS), label_smoothing=0.1),
      lambda z: F.cross_entropy(z, TARGETS, label_smoothing=0.1), low=-4, high=4),
    R("cross_entropy_smoothing_weight", [(5, 4)],
      lambda z: TF.cross_entropy(z, tt(TARGETS), weight=cast_like(W4, z), label_smoothing=0.2),
      lambda z: F.cross_entropy(z, TARGETS, weight=W4, label_smoothing=0.2), low=-4, high=4),
    R("cross_entropy_smoothing_sum", [(5, 4)], lambda z: TF.cross_entropy(z, tt(TARGETS), label_smoothing=0.3, reduction="sum"),
      lambda z: F.cross_entropy(z, TARGETS, label_smoothing=0.3, reduction="sum"), low=-4, high=4),
    R("cross_entropy_nd", [(2, 4, 3)], lambda z: TF.cross_entropy(z, tt(TARGETS_ND)),
      lambda z: F.cross_entropy(z, TARGETS_ND), low=-4, high=4),
    R("cross_entropy_nd_none", [(2, 4, 3)], lambda z: TF.cross_entropy(z, tt(TARGETS_ND), reduction="none"),
      lambda z: F.cross_entropy(z, TARGETS_ND, reduction="none"), low=-4, high=4),
    R("cross_entropy_unbatched", [(4,)], lambda z: TF.cross_entropy(z, torch.tensor(2)),
      lambda z: F.cross_entropy(z, np.array(2)), low=-4, high=4),
    R("cross_entropy_probabilities", [(3, 4)], lambda z: TF.cross_entropy(z, cast_like(PROBS, z)),
      lambda z: F.cross_entropy(z, PROBS), low=-4, high=4),
    R("cross_entropy_probabilities_smoothing", [(3, 4)],
      lambda z: TF.cross_entropy(z, cast_like(PROBS, z), label_smoothing=0.2, reduction="sum"),
      lambda z: F.cross_entropy(z, PROBS, label_smoothing=0.2, reduction="sum"), low=-4, high=4),
    R("mse_loss", [(3, 4), (3, 4)], lambda a, b: TF.mse_loss(a, b), lambda a, b: F.mse_loss(a, b)),
    R("mse_loss_sum", [(3, 4), (3, 4)], lambda a, b: TF.mse_loss(a, b, reduction="sum"),
      lambda a, b: F.mse_loss(a, b, reduction="sum")),
    R("linear", [(2, 3, 4), (5, 4), (5,)], lambda x, w, b: TF.linear(x, w, b), lambda x, w, b: F.linear(x, w, b)),
    # ---- scaled_dot_product_attention, as PyTorch's: masks, top-left causal, empty rows --------------
    R("sdpa_bool_mask", [(1, 2, 3, 4), (1, 2, 5, 4), (1, 2, 5, 4)],
      lambda q, k, v: TF.scaled_dot_product_attention(q, k, v, attn_mask=tt(KEEP)),
      lambda q, k, v: F.scaled_dot_product_attention(q, k, v, attn_mask=KEEP)),
    R("sdpa_float_mask", [(1, 2, 3, 4), (1, 2, 5, 4), (1, 2, 5, 4)],
      lambda q, k, v: TF.scaled_dot_product_attention(q, k, v, attn_mask=cast_like(BIAS, q)),
      lambda q, k, v: F.scaled_dot_product_attention(q, k, v, attn_mask=BIAS)),
    R("sdpa_float_mask_tensor_grad", [(1, 1, 3, 4), (1, 1, 5, 4), (1, 1, 5, 4), (3, 5)],
      lambda q, k, v, m: TF.scaled_dot_product_attention(q, k, v, attn_mask=m),
      lambda q, k, v, m: F.scaled_dot_product_attention(q, k, v, attn_mask=m)),
    R("sdpa_causal_top_left_short_q", [(1, 2, 2, 3), (1, 2, 5, 3), (1, 2, 5, 3)],
      lambda q, k, v: TF.scaled_dot_product_attention(q, k, v, is_causal=True),
      lambda q, k, v: F.scaled_dot_product_attention(q, k, v, is_causal=True)),
    R("sdpa_causal_top_left_long_q", [(2, 1, 5, 3), (2, 1, 3, 3), (2, 1, 3, 2)],
      lambda q, k, v: TF.scaled_dot_product_attention(q, k, v, is_causal=True, scale=0.7),
      lambda q, k, v: F.scaled_dot_product_attention(q, k, v, is_causal=True, scale=0.7)),
    R("sdpa_causal_and_mask", [(1, 2, 3, 4), (1, 2, 5, 4), (1, 2, 5, 4)],
      lambda q, k, v: TF.scaled_dot_product_attention(q, k, v, attn_mask=tt(KEEP), is_causal=True),
      lambda q, k, v: F.scaled_dot_product_attention(q, k, v, attn_mask=KEEP, is_causal=True)),
    R("sdpa_row_sees_nothing", [(1, 1, 3, 4), (1, 1, 5, 4), (1, 1, 5, 4)],
      lambda q, k, v: TF.scaled_dot_product_attention(q, k, v, attn_mask=tt(DEAD_ROW)),
      lambda q, k, v: F.scaled_dot_product_attention(q, k, v, attn_mask=DEAD_ROW)),
    R("sdpa_3d", [(2, 4, 3), (2, 5, 3), (2, 5, 2)], lambda q, k, v: TF.scaled_dot_product_attention(q, k, v),
      lambda q, k, v: F.scaled_dot_product_attention(q, k, v)),
    R("sdpa_default_not_causal", [(1, 2, 4, 3)] * 3, lambda q, k, v: TF.scaled_dot_product_attention(q, k, v),
      lambda q, k, v: F.scaled_dot_product_attention(q, k, v)),
]


@pytest.mark.parametrize("dtype", [np.float64, np.float32], ids=["f64", "f32"])
@pytest.mark.parametrize("row", ROWS, ids=str)
def test_op_matches_torch(row, dtype):
    helper_test_op(row, dtype)
