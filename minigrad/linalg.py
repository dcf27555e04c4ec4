"""Matrix products: matmul (with NumPy's broadcasting of batch dims) and linear.

The only primitive is ops.MatMul; 1-d operands are unsqueezed around it. It takes
a (B, T, C) @ (C, N) product itself, as one (B*T, C) GEMM forward and one per
gradient (no reshape nodes around it), and linear's x @ W^T as one node whose
weight gradient is written in W's own (out, in) layout. Errors name the shapes
the user passed.
"""
import numpy as np

from minigrad import dtypes, ops
from minigrad.pointwise import add, cast
from minigrad.shape import squeeze, unsqueeze, transpose


def matmul(input, other):  # noqa: A002  (torch's names)
    """N-d matmul with NumPy broadcasting of the batch dims; 1-d operands as in np.matmul."""
    a, b = input, other
    if a.ndim == 0 or b.ndim == 0:
        raise ValueError(f"matmul: operands must be at least 1-d, got shapes {a.shape} and {b.shape}")
    k_a, k_b = a.shape[-1], b.shape[-2] if b.ndim > 1 else b.shape[0]
    if k_a != k_b:
        raise ValueError(f"matmul: shapes {a.shape} and {b.shape} cannot be multiplied ({k_a} != {k_b})")
    try:
        np.broadcast_shapes(a.shape[:-2], b.shape[:-2])
    except ValueError:
        raise ValueError(f"matmul: batch dims of {a.shape} and {b.shape} do not broadcast") from None
    if a.dtype != b.dtype:
        dtype = dtypes.result_type(a, b)
        a, b = cast(a, dtype), cast(b, dtype)
    if a.ndim == 1:  # (n,) @ (..., n, m) -> (..., m);  (n,) @ (n,) -> ()
        out = matmul(unsqueeze(a, 0), b)
        return squeeze(out, -2) if b.ndim > 1 else squeeze(out, -1)
    if b.ndim == 1:
        return squeeze(matmul(a, unsqueeze(b, -1)), -1)
    return ops.MatMul.apply(a, b)


def linear(input, weight, bias=None):  # noqa: A002
    """input @ weight^T + bias, with weight (out_features, in_features) as torch."""
    if weight.ndim == 2 and input.ndim and input.shape[-1] != weight.shape[1]:
        raise ValueError(f"linear: input {input.shape} does not fit weight {weight.shape} (out, in): "
                         f"{input.shape[-1]} != {weight.shape[1]}")
    if weight.ndim != 2 or input.ndim < 2:  # a 1-d weight or input: matmul's rules
        y = matmul(input, transpose(weight, -1, -2) if weight.ndim > 1 else weight)
        return y if bias is None else add(y, bias)
    x = input
    if x.dtype != weight.dtype:
        dtype = dtypes.result_type(x, weight)
        x, weight = cast(x, dtype), cast(weight, dtype)
    y = ops.MatMul.apply(x, weight, transpose_b=True)  # one node; dW lands in W's layout (its slot)
    return y if bias is None else add(y, bias)
