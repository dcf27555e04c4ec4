"""gradcheck: hold the analytical gradients of a function against finite differences.

As torch.autograd.gradcheck: every input that requires grad is perturbed,
element by element, by +-eps in float64, and the central difference
(f(x+eps) - f(x-eps)) / 2eps is compared with what backward computes, for
every output element. `fast_mode` compares one random projection u^T J v per
input instead of the whole Jacobian: one backward and two forwards per input.
"""
import numpy as np

from minigrad.tensor import Tensor


class GradcheckError(AssertionError):
    pass


def gradcheck(fn, inputs, eps=1e-6, atol=1e-5, rtol=1e-3, fast_mode=False,
              raise_exception=True, seed=0):
    """True when backward matches central differences within atol + rtol*|numerical|.

    `inputs` is a Tensor or a tuple of Tensors (other values pass through).
    Floating inputs are copied to float64 first: finite differences need it.
    On a mismatch raises GradcheckError naming the input, the worst element and
    both values (or returns False when raise_exception=False).
    """
    inputs = tuple(inputs) if isinstance(inputs, (tuple, list)) else (inputs,)
    xs = tuple(_float64_copy(x) for x in inputs)
    checked = [i for i, x in enumerate(xs) if isinstance(x, Tensor) and x.requires_grad]
    if not checked:
        raise ValueError("gradcheck: no input requires grad, so there is nothing to check")
    check = _check_fast if fast_mode else _check_full
    for i in checked:
        problem = check(fn, xs, i, eps, atol, rtol, np.random.default_rng(seed + i))
        if problem:
            if raise_exception:
                raise GradcheckError(problem)
            return False
    return True


def _float64_copy(x):
    if isinstance(x, Tensor) and np.issubdtype(x.dtype, np.floating):
        return Tensor(x.data.astype(np.float64), requires_grad=x.requires_grad)
    return x


def _outputs(fn, xs):
    """Evaluate fn and return its outputs as a list of Tensors."""
    out = fn(*xs)
    outs = list(out) if isinstance(out, (tuple, list)) else [out]
    for o in outs:
        if not isinstance(o, Tensor):
            raise TypeError(f"gradcheck: fn must return Tensors, got {type(o).__name__}")
    return outs


def _flat(fn, xs):
    from minigrad.autograd import no_grad
    with no_grad():
        return np.concatenate([o.data.astype(np.float64).ravel() for o in _outputs(fn, xs)])


def _vjp(fn, xs, i, v):
    """Analytical v^T J for input i: backward from the outputs with grad v."""
    xs[i].grad = None
    outs = _outputs(fn, xs)
    offset, total = 0, None
    for o in outs:
        piece = v[offset:offset + o.data.size].reshape(o.shape)
        offset += o.data.size
        if o.requires_grad:
            term = (o * Tensor(piece.astype(o.dtype))).sum()
            total = term if total is None else total + term
    if total is None:
        return np.zeros(xs[i].shape)
    total.backward()
    return np.zeros(xs[i].shape) if xs[i].grad is None else xs[i].grad.astype(np.float64)


def _numerical_column(fn, xs, i, direction, eps):
    """(f(x + eps*d) - f(x - eps*d)) / 2eps for a perturbation direction d of input i."""
    x = xs[i].data
    original = x.copy()
    x += eps * direction
    plus = _flat(fn, xs)
    x[...] = original - eps * direction
    minus = _flat(fn, xs)
    x[...] = original
    return (plus - minus) / (2 * eps)


def _check_full(fn, xs, i, eps, atol, rtol, gen):
    n_out = _flat(fn, xs).size
    n_in = xs[i].data.size
    numerical = np.zeros((n_out, n_in))
    for e in range(n_in):
        d = np.zeros(n_in)
        d[e] = 1
        numerical[:, e] = _numerical_column(fn, xs, i, d.reshape(xs[i].shape), eps)
    analytical = np.stack([_vjp(fn, xs, i, np.eye(n_out)[j]).ravel() for j in range(n_out)]) \
        if n_out else np.zeros((0, n_in))
    return _compare(analytical, numerical, i, xs[i].shape, atol, rtol)


def _check_fast(fn, xs, i, eps, atol, rtol, gen):
    n_out = _flat(fn, xs).size
    u = gen.standard_normal(xs[i].shape)
    u /= max(np.linalg.norm(u), 1e-12)
    v = gen.standard_normal(n_out)
    numerical = np.array([[_numerical_column(fn, xs, i, u, eps) @ v]])
    analytical = np.array([[(_vjp(fn, xs, i, v) * u).sum()]])
    return _compare(analytical, numerical, i, None, atol, rtol)


def _compare(analytical, numerical, i, shape, atol, rtol):
    err = np.abs(analytical - numerical) - (atol + rtol * np.abs(numerical))
    if err.size == 0 or err.max() <= 0:
        return None
    out_idx, in_idx = np.unravel_index(np.argmax(err), err.shape)
    where = "projection u^T J v" if shape is None else \
        f"element {tuple(int(k) for k in np.unravel_index(in_idx, shape))} (output element {out_idx})"
    return (f"gradcheck: gradient of input {i} is wrong at {where}: analytical "
            f"{analytical[out_idx, in_idx]:.10g} vs numerical {numerical[out_idx, in_idx]:.10g} "
            f"(atol={atol}, rtol={rtol})")
