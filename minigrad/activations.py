"""torch.nn.functional's layers without weights of their own: activations, softmax,
dropout, layer norm, embedding lookup, one-hot.

GELU, softmax, log-softmax and layer norm are one fused node each (fused.py);
the rest compose primitives. `gelu` is exact (erf) by default, as PyTorch;
`approximate='tanh'` is GPT-2's, which gpt/model.py asks for by name.
"""
import numpy as np

from minigrad import dtypes, fused, random
from minigrad.args import check_dim, check_ids, int_array, is_tensor, no_grad_result
from minigrad.pointwise import cast, relu  # noqa: F401  (relu is part of this module's set)
from minigrad.shape import reshape

GELU_KINDS = {"none": fused.GeluErf, "tanh": fused.Gelu}


def gelu(input, approximate="none"):  # noqa: A002  (torch's names)
    """x Phi(x) with the normal CDF Phi (exact, PyTorch's default), or GPT-2's tanh
    approximation with approximate='tanh'."""
    if approximate not in GELU_KINDS:
        raise ValueError(f"gelu: approximate must be 'none' or 'tanh', got {approximate!r}")
    return GELU_KINDS[approximate].apply(cast(input, dtypes.float_result(input.dtype)))


def _over_dim(cls, op, input, dim, dtype, axis):
    dim = dim if axis is None else axis
    dim = -1 if dim is None else dim
    x = cast(input, dtype) if dtype is not None else input
    if not dtypes.is_float(x.dtype):
        raise TypeError(f"{op}: needs a floating-point tensor, got {x.dtype} (pass dtype= or cast first)")
    dim = check_dim(dim, x.ndim, op)
    if x.ndim == 0:  # a 0-d tensor is one row of one element
        return reshape(cls.apply(reshape(x, 1), axis=0), ())
    return cls.apply(x, axis=dim)


def softmax(input, dim=None, dtype=None, *, axis=None):  # noqa: A002
    """exp(x) / sum(exp(x)) along dim (default -1)."""
    return _over_dim(fused.Softmax, "softmax", input, dim, dtype, axis)


def log_softmax(input, dim=None, dtype=None, *, axis=None):  # noqa: A002
    return _over_dim(fused.LogSoftmax, "log_softmax", input, dim, dtype, axis)


def dropout(input, p=0.5, training=True, inplace=False):  # noqa: A002
    """Zero each element with probability p and scale the rest by 1/(1-p) (inverted dropout),
    drawing from minigrad's generator."""
    if not 0 <= p <= 1:
        raise ValueError(f"dropout: p must be in [0, 1], got {p}")
    if inplace:
        raise ValueError("dropout: inplace=True is not supported; use the returned tensor")
    if not training or p == 0:
        return input
    if p == 1:
        return input * 0
    keep = random.rng().random(input.shape) >= p
    return input * (keep.astype(input.dtype) / np.asarray(1 - p, dtype=input.dtype))


def layer_norm(input, normalized_shape, weight=None, bias=None, eps=1e-5):  # noqa: A002
    """Layer norm over the last dimension (the only case a GPT needs)."""
    shape = tuple(normalized_shape) if isinstance(normalized_shape, (tuple, list)) else (normalized_shape,)
    if shape != input.shape[-1:]:
        raise ValueError(f"layer_norm: normalized_shape {shape} must be the last dim of input {input.shape}")
    C = input.shape[-1]
    weight = weight if weight is not None else input._make(np.ones(C, dtype=input.dtype), None)
    bias = bias if bias is not None else input._make(np.zeros(C, dtype=input.dtype), None)
    return fused.LayerNorm.apply(input, weight, bias, eps=eps)


def embedding(input, weight):  # noqa: A002
    """Rows of weight (V, C) picked by integer ids of any shape -> ids.shape + (C,)."""
    ids = int_array("embedding", "ids", input)
    check_ids("embedding", "id", ids, weight.shape[0])
    return fused.Embedding.apply(weight, ids=ids)


def one_hot(tensor, num_classes=-1):
    """int64 (..., num_classes) with a 1 at each id (num_classes=-1: max id + 1)."""
    if not is_tensor(tensor):
        raise TypeError(f"one_hot: expects an integer tensor, got {type(tensor).__name__}")
    ids = int_array("one_hot", "tensor", tensor)
    n = int(ids.max()) + 1 if num_classes == -1 and ids.size else max(num_classes, 0)
    check_ids("one_hot", "class", ids, n)
    return no_grad_result(tensor, (ids[..., None] == np.arange(n)).astype(np.int64), "one_hot")
