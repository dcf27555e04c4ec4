"""Compute kernels for minigrad: pure array functions, ndarray in, ndarray out.

Every kernel exists twice, side by side in its module: a plain-NumPy twin
(``<name>_numpy``) that is the readable specification, and a Numba version
(``<name>_numba``) that is the fast path. The dispatch functions below pick one
according to the backend: ``set_backend("numba" | "numpy")``, the context
manager ``use_backend(name)``, or the env var ``MINIGRAD_BACKEND`` (default
"numba"). Nothing here knows about autograd.

``numpy_impl`` and ``numba_impl`` expose both sets by kernel name, and
``KERNELS`` maps each name to its ``(numpy_fn, numba_fn)`` pair, so tests can
hold every Numba kernel equal to its twin.
"""
import contextlib
import os
from types import SimpleNamespace

# The kernels are compiled serial and split over Python threads (kernels/threads.py says why),
# so no OpenMP pool is started and OMP_WAIT_POLICY is left as the user set it.

from . import (activation, attention, embedding, int8, linear, loss, matmul as _matmul, norm, optim, softmax,
               threads)

BACKENDS = ("numba", "numpy")

_MODULES = {
    "matmul": _matmul,
    "linear_rowwise": linear,
    "softmax_forward": softmax, "softmax_backward": softmax,
    "log_softmax_forward": softmax, "log_softmax_backward": softmax,
    "layer_norm_forward": norm, "layer_norm_backward": norm,
    "gelu_forward": activation, "gelu_backward": activation,
    "gelu_forward_keep_tanh": activation, "gelu_backward_with_tanh": activation,
    "gelu_erf_forward": activation, "gelu_erf_backward": activation, "erf": activation,
    "cross_entropy_forward": loss, "cross_entropy_backward": loss,
    "attention_forward": attention, "attention_backward": attention, "attention_decode": attention,
    "embedding_backward": embedding,
    "adamw_update": optim, "sum_squares": optim, "scale": optim,
    "quantize_rows": int8, "linear_int8": int8,
}


def _pair(name, module):
    twin = getattr(module, name + "_numpy")
    # A kernel without a Numba version yet runs its twin on both backends.
    return twin, getattr(module, name + "_numba", twin)


KERNELS = {name: _pair(name, mod) for name, mod in _MODULES.items()}
numpy_impl = SimpleNamespace(**{name: fns[0] for name, fns in KERNELS.items()})
numba_impl = SimpleNamespace(**{name: fns[1] for name, fns in KERNELS.items()})


def _check(name):
    if name not in BACKENDS:
        raise ValueError(f"unknown backend {name!r}; allowed: {', '.join(BACKENDS)}")
    return name


_backend = _check(os.environ.get("MINIGRAD_BACKEND", "numba").strip().lower() or "numba")
_impl = numba_impl if _backend == "numba" else numpy_impl


def set_backend(name):
    """Select the implementation every dispatch function calls: "numba" or "numpy"."""
    global _backend, _impl
    _backend = _check(name)
    _impl = numba_impl if name == "numba" else numpy_impl


def get_backend():
    return _backend


@contextlib.contextmanager
def use_backend(name):
    """Temporarily switch backend: ``with use_backend("numpy"): ...``."""
    previous = _backend
    set_backend(name)
    try:
        yield
    finally:
        set_backend(previous)


def set_num_threads(n):
    """How many threads the kernels split their rows over (kernels/threads.py); the default
    is the number of usable cores. BLAS's own threads are separate (threadpoolctl)."""
    threads.set_threads(n)


def get_num_threads():
    return threads.get_threads()


# ---- dispatch: the only functions the autograd layer calls -------------------------------

def matmul(a, b, out=None):
    """np.matmul semantics (N-d, broadcast batch dims); transposed views are fine. out: an
    array of the result's shape and dtype to write it into (returned)."""
    return _impl.matmul(a, b, out)


def linear_rowwise(x, w, bias=None):
    """x (..., K) @ w (K, M) + bias, each row alone in a fixed summation order: a row's result
    is the same bits whatever the other rows are (batched decoding) and whatever the thread
    count; w may be a transposed view."""
    return _impl.linear_rowwise(x, w, bias)


def softmax_forward(x):
    """Softmax over the last axis."""
    return _impl.softmax_forward(x)


def softmax_backward(y, dy):
    """dx of softmax_forward, given its output y and dy."""
    return _impl.softmax_backward(y, dy)


def log_softmax_forward(x):
    """Log-softmax over the last axis."""
    return _impl.log_softmax_forward(x)


def log_softmax_backward(y, dy):
    """dx of log_softmax_forward, given its output y and dy."""
    return _impl.log_softmax_backward(y, dy)


def layer_norm_forward(x, weight, bias, eps):
    """Returns (y, mean, rstd); mean and rstd have shape x.shape[:-1]; weight/bias may be None."""
    return _impl.layer_norm_forward(x, weight, bias, eps)


def layer_norm_backward(dy, x, weight, mean, rstd):
    """Returns (dx, dweight, dbias); dweight and dbias are None when weight is None."""
    return _impl.layer_norm_backward(dy, x, weight, mean, rstd)


def gelu_forward(x):
    """GELU, GPT-2 tanh approximation."""
    return _impl.gelu_forward(x)


def gelu_backward(x, dy):
    """dx for gelu_forward at x."""
    return _impl.gelu_backward(x, dy)


def gelu_forward_keep_tanh(x):
    """(gelu_forward(x), t) with t = tanh(u), kept for gelu_backward_with_tanh."""
    return _impl.gelu_forward_keep_tanh(x)


def gelu_backward_with_tanh(x, t, dy):
    """dx for gelu at x, given its t from gelu_forward_keep_tanh."""
    return _impl.gelu_backward_with_tanh(x, t, dy)


def gelu_erf_forward(x):
    """Exact GELU, x * Phi(x) with the normal CDF from erf (PyTorch's default)."""
    return _impl.gelu_erf_forward(x)


def gelu_erf_backward(x, dy):
    """dx for gelu_erf_forward at x."""
    return _impl.gelu_erf_backward(x, dy)


def erf(x):
    """The error function, elementwise, in x's (floating) dtype."""
    return _impl.erf(x)


def cross_entropy_forward(logits, targets, ignore_index):
    """logits (N, V), targets (N,) int -> (loss 0-d array, lse (N,)); loss NaN if all ignored."""
    return _impl.cross_entropy_forward(logits, targets, ignore_index)


def cross_entropy_backward(logits, targets, lse, ignore_index, dloss):
    """dlogits for cross_entropy_forward's mean loss scaled by dloss; 0 on ignored rows."""
    return _impl.cross_entropy_backward(logits, targets, lse, ignore_index, dloss)


def attention_forward(q, k, v, scale):
    """Causal attention (bottom-right aligned mask) -> (out (B,H,Tq,D), lse (B,H,Tq))."""
    return _impl.attention_forward(q, k, v, scale)


def attention_backward(dout, q, k, v, out, lse, scale):
    """Returns (dq, dk, dv) for attention_forward."""
    return _impl.attention_backward(dout, q, k, v, out, lse, scale)


def attention_decode(q, k_cache, v_cache, rows, lengths, scale):
    """One new query per sequence, q (n, H, D), over its own cached keys and values
    k_cache[rows[i], :, :lengths[i]] (caches (B, H, capacity, D)) -> out (n, H, D)."""
    return _impl.attention_decode(q, k_cache, v_cache, rows, lengths, scale)


def embedding_backward(ids, dy, num_embeddings, into=None):
    """Scatter-add dy (ids.shape + (C,)) into a (num_embeddings, C) gradient: new zeros, or
    `into` in place; returns it."""
    return _impl.embedding_backward(ids, dy, num_embeddings, into)


def adamw_update(param, grad, m, v, lr, beta1, beta2, eps, weight_decay, step, grad_scale=1.0):
    """torch.optim.AdamW step, in place on param, m and v (step counts from 1), with the
    gradient read as grad * grad_scale (grad itself is left as it is)."""
    return _impl.adamw_update(param, grad, m, v, lr, beta1, beta2, eps, weight_decay, step, grad_scale)


def sum_squares(x):
    """sum(x * x) accumulated in float64, as a Python float; the same for any thread count."""
    return _impl.sum_squares(x)


def scale(x, s):
    """x *= s in place (s cast to x's dtype first)."""
    return _impl.scale(x, s)


def quantize_rows(w):
    """w (M, K) float -> (wq (M, K) int8, scale (M,) float32), symmetric, one scale per row."""
    return _impl.quantize_rows(w)


def linear_int8(x, wq, scale, bias=None, rowwise=False):
    """x (..., K) float32 @ the int8 rows wq (M, K), times scale (M,), plus bias -> (..., M).
    rowwise: each row's result the same bits whatever the other rows (as linear_rowwise)."""
    return _impl.linear_int8(x, wq, scale, bias, rowwise)


__all__ = ["BACKENDS", "KERNELS", "numpy_impl", "numba_impl", "set_backend", "get_backend",
           "use_backend", "set_num_threads", "get_num_threads"] + list(KERNELS)
