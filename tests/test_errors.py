"""Errors name the op and the shapes or values at fault. One line per case:
(id, call, exception type, fragments that must all appear in the message)."""
import numpy as np
import pytest

import minigrad as mg
from minigrad import functional as F, nn

CASES = [
    # shape mismatches
    ("matmul_inner", lambda: mg.ones(2, 3) @ mg.ones(4, 5), ValueError, ["matmul", "(2, 3)", "(4, 5)", "3 != 4"]),
    ("matmul_batch", lambda: mg.ones(2, 2, 3) @ mg.ones(3, 3, 4), ValueError, ["matmul", "(2, 2, 3)", "(3, 3, 4)", "batch"]),
    ("matmul_0d", lambda: mg.ones(()) @ mg.ones(3), ValueError, ["matmul", "()", "(3,)"]),
    ("linear_in", lambda: nn.Linear(2, 3)(mg.ones(4, 5)), ValueError, ["linear", "(4, 5)", "(3, 2)", "5 != 2"]),
    ("add_broadcast", lambda: mg.ones(2, 3) + mg.ones(4), ValueError, ["add", "(2, 3)", "(4,)", "broadcast"]),
    ("mul_broadcast", lambda: mg.ones(2, 3) * mg.ones(3, 2), ValueError, ["mul", "(2, 3)", "(3, 2)"]),
    ("sub_ndarray", lambda: mg.ones(2, 3) - np.ones(4), ValueError, ["sub", "(2, 3)", "(4,)"]),
    ("div_broadcast", lambda: mg.ones(5) / mg.ones(2, 3), ValueError, ["div", "(5,)", "(2, 3)"]),
    ("where_broadcast", lambda: mg.where(np.ones((2, 3), bool), mg.ones(2, 3), mg.ones(4)), ValueError,
     ["where", "(2, 3)", "(4,)"]),
    ("reshape", lambda: mg.ones(2, 3).reshape(4, 2), ValueError, ["reshape", "6", "(4, 2)"]),
    ("reshape_two_minus_ones", lambda: mg.ones(2, 3).reshape(-1, -1), ValueError, ["reshape", "(-1, -1)"]),
    ("permute", lambda: mg.ones(2, 3).permute(0, 0), ValueError, ["permute", "(0, 0)", "2 dims"]),
    ("expand", lambda: mg.ones(2, 3).expand(2, 1), ValueError, ["expand", "(2, 3)", "(2, 1)"]),
    ("cat", lambda: mg.cat([mg.ones(2, 3), mg.ones(3, 2)], axis=0), ValueError, ["cat", "(2, 3)", "(3, 2)", "dim 0"]),
    ("cat_ndim", lambda: mg.cat([mg.ones(2, 3), mg.ones(3)]), ValueError, ["cat", "(2, 3)", "(3,)"]),
    ("stack", lambda: mg.stack([mg.ones(2), mg.ones(3)]), ValueError, ["stack", "(2,)", "(3,)"]),
    ("split", lambda: mg.ones(5).split([2, 2]), ValueError, ["split", "[2, 2]", "5"]),
    ("split_zero", lambda: mg.ones(5).split(0), ValueError, ["split", "0"]),
    ("layer_norm", lambda: F.layer_norm(mg.ones(2, 3), 4), ValueError, ["layer_norm", "(4,)", "(2, 3)"]),
    ("sdpa", lambda: F.scaled_dot_product_attention(mg.ones(1, 1, 2, 3), mg.ones(1, 1, 2, 4), mg.ones(1, 1, 2, 4)),
     ValueError, ["scaled_dot_product_attention", "(1, 1, 2, 3)", "(1, 1, 2, 4)"]),
    ("sdpa_mask", lambda: F.scaled_dot_product_attention(mg.ones(1, 1, 3, 2), mg.ones(1, 1, 4, 2), mg.ones(1, 1, 4, 2),
                                                         attn_mask=np.ones((3, 3), bool)),
     ValueError, ["scaled_dot_product_attention", "attn_mask", "(3, 3)", "(1, 1, 3, 4)"]),
    ("cross_entropy_shape", lambda: F.cross_entropy(mg.ones(3, 4), np.array([0, 1])), ValueError,
     ["cross_entropy", "(3, 4)", "(2,)"]),
    # axes
    ("squeeze_axis", lambda: mg.ones(2, 3).squeeze(5), IndexError, ["squeeze", "dim 5", "2 dims"]),
    ("unsqueeze_axis", lambda: mg.ones(2, 3).unsqueeze(4), IndexError, ["unsqueeze", "dim 4"]),
    ("transpose_axis", lambda: mg.ones(2, 3).transpose(0, 4), IndexError, ["transpose", "dim 4"]),
    ("sum_axis", lambda: mg.ones(2, 3).sum(axis=3), IndexError, ["sum", "dim 3", "2 dims"]),
    ("max_axis", lambda: mg.ones(2, 3).max(axis=-3), IndexError, ["max", "dim -3"]),
    ("mean_axis", lambda: mg.ones(2, 3).mean(axis=2), IndexError, ["mean", "dim 2"]),
    ("softmax_axis", lambda: mg.ones(2, 3).softmax(2), IndexError, ["softmax", "dim 2"]),
    ("cat_axis", lambda: mg.cat([mg.ones(2), mg.ones(2)], axis=1), IndexError, ["cat", "dim 1"]),
    # backward misuse
    ("backward_nonscalar", lambda: (mg.ones(2, 3, requires_grad=True) * 2).backward(), RuntimeError,
     ["backward", "scalar", "(2, 3)", "grad="]),
    ("backward_grad_shape", lambda: (mg.ones(2, 3, requires_grad=True) * 2).backward(np.ones(3)), ValueError,
     ["backward", "(3,)", "(2, 3)"]),
    ("backward_no_grad", lambda: mg.ones(2).sum().backward(), RuntimeError, ["backward", "does not require grad"]),
    # dtypes
    ("requires_grad_int", lambda: mg.tensor([1, 2], requires_grad=True), TypeError, ["floating", "int64"]),
    ("requires_grad_int_", lambda: mg.arange(3).requires_grad_(), TypeError, ["floating", "int64"]),
    ("requires_grad_bool", lambda: mg.Tensor([True], requires_grad=True), TypeError, ["floating", "bool"]),
    ("tensor_of_dict", lambda: mg.tensor({"a": 1}), TypeError, ["tensor", "dict"]),
    ("embedding_float_ids", lambda: F.embedding(np.array([1.0]), mg.ones(5, 2)), TypeError, ["embedding", "float64"]),
    ("cross_entropy_float", lambda: F.cross_entropy(mg.ones(3, 4), np.array([0., 1, 2])), TypeError,
     ["cross_entropy", "integer", "float64"]),
    # out-of-range values
    ("embedding_id", lambda: F.embedding(np.array([[0, 7]]), mg.ones(5, 2)), IndexError,
     ["embedding", "id 7", "(0, 1)", "[0, 5)"]),
    ("embedding_negative", lambda: F.embedding(np.array([-1]), mg.ones(5, 2)), IndexError, ["embedding", "id -1", "[0, 5)"]),
    ("embedding_module", lambda: nn.Embedding(3, 2)(mg.tensor([3])), IndexError, ["embedding", "id 3", "[0, 3)"]),
    ("cross_entropy_target", lambda: F.cross_entropy(mg.ones(3, 4), np.array([0, 4, 1])), IndexError,
     ["cross_entropy", "target 4", "(1,)", "[0, 4)"]),
    ("cross_entropy_negative", lambda: F.cross_entropy(mg.ones(2, 4), np.array([0, -1])), IndexError,
     ["cross_entropy", "target -1", "[0, 4)"]),
    ("index", lambda: mg.ones(2, 3)[5], IndexError, ["index", "(2, 3)", "5"]),
    ("index_array", lambda: mg.ones(2, 3)[np.array([0, 3])], IndexError, ["index", "(2, 3)", "3"]),
    ("max_empty", lambda: mg.ones(0).max(), ValueError, ["max", "empty", "(0,)"]),
    ("dropout_p", lambda: F.dropout(mg.ones(2), 1.5), ValueError, ["dropout", "1.5"]),
    ("dropout_module_p", lambda: nn.Dropout(-0.1), ValueError, ["Dropout", "-0.1"]),
    # modules
    ("load_shape", lambda: nn.Linear(2, 3).load_state_dict({"weight": np.ones((2, 2)), "bias": np.ones(3)}),
     ValueError, ["load_state_dict", "weight", "(2, 2)", "(3, 2)"]),
    ("load_strict", lambda: nn.Linear(2, 3).load_state_dict({"weight": np.ones((3, 2)), "extra": np.ones(3)}),
     KeyError, ["load_state_dict", "missing", "bias", "unexpected", "extra"]),
]


@pytest.mark.parametrize("call,exc,fragments", [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_error_names_op_and_shapes(call, exc, fragments):
    with pytest.raises(exc) as info:
        call()
    message = str(info.value)
    for fragment in fragments:
        assert fragment in message, f"{fragment!r} missing from: {message}"


def test_second_backward_without_retain_graph():
    y = (mg.ones(2, requires_grad=True) * 2).sum()
    y.backward()
    with pytest.raises(RuntimeError, match="second time.*retain_graph=True"):
        y.backward()
