"""Every op as a function of tensors: `minigrad.functional as F`, like torch and
torch.nn.functional in one namespace, and what every Tensor method calls.

The ops live in one module per topic, all in this layer (each checks its
arguments where a message can name the op and the shapes, applies PyTorch's
dtype rules, then applies primitives of ops.py / movement.py or fused kernels
of fused.py, or composes other functions):

  dtypes.py      what data becomes; PyTorch's type promotion (below the rest)
  args.py        dim/shape/id argument checks, shared
  pointwise.py   arithmetic, float math, comparisons, where, clamp, casts
  shape.py       views, cat/split/chunk, repeat, tril/triu, indexing, gather/scatter
  reduction.py   sum ... var/std, max/min with indices, argmax, logsumexp, cumsum, sort, topk
  linalg.py      matmul, linear
  activations.py gelu, softmax, dropout, layer_norm, embedding, one_hot
  losses.py      cross_entropy, nll_loss, mse_loss
  attention.py   scaled_dot_product_attention, the GPT's packed causal attention
  sampling.py    multinomial, bernoulli
  inplace.py     x[i] = v and the in-place ops (add_, ...), with autograd's version checks

None of them imports the Tensor class (tensor.py imports this file): a tensor is
recognised by `is_tensor`, and constants become tensors through an operand's `_make`.
"""
from minigrad.activations import dropout, embedding, gelu, layer_norm, log_softmax, one_hot, softmax  # noqa: F401
from minigrad.args import is_tensor, raw  # noqa: F401
from minigrad.attention import causal_self_attention, scaled_dot_product_attention  # noqa: F401
from minigrad.dtypes import as_array, result_type  # noqa: F401
from minigrad.inplace import (abs_, add_, clamp_, copy_, div_, exp_, fill_, log_, masked_fill_, mul_,  # noqa: F401
                              neg_, normal_, pow_, relu_, scatter_, scatter_add_, setitem, sigmoid_, sqrt_,
                              sub_, tanh_, uniform_, version, zero_)
from minigrad.linalg import linear, matmul  # noqa: F401
from minigrad.losses import cross_entropy, mse_loss, nll_loss  # noqa: F401
from minigrad.pointwise import (abs, add, allclose, bitwise_and, bitwise_not, bitwise_or, bitwise_xor,  # noqa: F401
                                cast, clamp, div, eq, equal, erf, exp, floor_divide, ge, gt, isfinite, isinf, isnan, le, log, logical_and, logical_not, logical_or,
                                logical_xor, lt, masked_fill, maximum, minimum, mul, ne, neg, nonzero, pow, relu,
                                rsqrt, sigmoid, sqrt, square, sub, tanh, where)
from minigrad.reduction import (all, amax, amin, any, argmax, argmin, argsort, cumsum, logsumexp, max,  # noqa: F401
                                mean, min, sort, std, sum, topk, var)
from minigrad.sampling import bernoulli, multinomial  # noqa: F401
from minigrad.shape import (cat, chunk, clone, expand, flatten, gather, index, narrow, permute, repeat,  # noqa: F401
                            reshape, scatter, scatter_add, select, split, squeeze, stack, transpose, tril, triu,
                            unbind, unflatten, unsqueeze)

clip, clip_ = clamp, clamp_
concat = concatenate = cat
swapaxes = swapdims = transpose
multiply, divide, subtract, true_divide = mul, div, sub, div
negative, absolute = neg, abs
