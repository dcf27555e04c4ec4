"""minigrad.kernels: every Numba kernel equal to its NumPy twin, twins equal to references.

Three tables:
  CASES      - (kernel, shape spec): Numba vs twin in float32 and float64, dtype kept,
               inputs untouched.                      tolerance: TWIN_TOL below
  FD_CASES   - backward kernels (twin) against central finite differences in float64.
                                                      tolerance: FD_TOL below
  torch refs - twins against PyTorch float64 on small shapes.  tolerance: REF_TOL below
"""
import math

import numpy as np
import pytest

import minigrad.kernels as K
from conftest import require

# (rtol, atol relative to the largest |reference| value) per dtype.
TWIN_TOL = {np.float32: (1e-5, 1e-5), np.float64: (1e-10, 1e-12)}
FD_TOL = (1e-6, 1e-7)   # float64, h = 1e-6
REF_TOL = (1e-10, 1e-12)
IGNORE = -100


def rand(rng, shape, dtype, scale=1.0):
    return (rng.standard_normal(shape) * scale).astype(dtype)


# ---- input makers: (rng, dtype, spec) -> positional args ----------------------------------

def mk_matmul(rng, dt, spec):
    (sa, sb, transpose) = spec
    a, b = rand(rng, sa, dt), rand(rng, sb, dt)
    if transpose == "a":          # a arrives as a transposed view, as in a.T @ g
        a = np.ascontiguousarray(a.swapaxes(-1, -2)).swapaxes(-1, -2)
    if transpose == "b":          # b arrives as a transposed view, as in g @ b.T
        b = np.ascontiguousarray(b.swapaxes(-1, -2)).swapaxes(-1, -2)
    return a, b


def mk_linear(rng, dt, spec):
    x_shape, M, layout, bias = spec
    K_ = x_shape[-1]
    w = rand(rng, (M, K_), dt).T if layout == "T" else rand(rng, (K_, M), dt)  # "T": the tied lm_head's wte.T
    return rand(rng, x_shape, dt), w, (rand(rng, M, dt) if bias else None)


def mk_x(rng, dt, shape):
    return (rand(rng, shape, dt, 2.0),)


def mk_softmax_bwd(rng, dt, shape):
    return K.numpy_impl.softmax_forward(rand(rng, shape, dt, 2.0)), rand(rng, shape, dt)


def mk_log_softmax_bwd(rng, dt, shape):
    return K.numpy_impl.log_softmax_forward(rand(rng, shape, dt, 2.0)), rand(rng, shape, dt)


def mk_ln_fwd(rng, dt, spec):
    shape, affine = spec
    C = shape[-1]
    w = rand(rng, C, dt) if affine else None
    b = rand(rng, C, dt) if affine else None
    return rand(rng, shape, dt, 3.0) + dt(1.5), w, b, 1e-5


def mk_ln_bwd(rng, dt, spec):
    x, w, b, eps = mk_ln_fwd(rng, dt, spec)
    _, mean, rstd = K.numpy_impl.layer_norm_forward(x, w, b, eps)
    return rand(rng, x.shape, dt), x, w, mean, rstd


def mk_gelu_bwd_tanh(rng, dt, shape):
    x, dy = mk_gelu_bwd(rng, dt, shape)
    return x, K.numpy_impl.gelu_forward_keep_tanh(x)[1], dy


def mk_gelu_bwd(rng, dt, shape):
    return rand(rng, shape, dt, 3.0), rand(rng, shape, dt)


def _targets(rng, N, V, n_ignored):
    t = rng.integers(0, V, N).astype(np.int64)
    t[rng.permutation(N)[:n_ignored]] = IGNORE
    return t


def mk_ce_fwd(rng, dt, spec):
    N, V, n_ignored = spec
    return rand(rng, (N, V), dt, 3.0), _targets(rng, N, V, n_ignored), IGNORE


def mk_ce_bwd(rng, dt, spec):
    logits, t, ig = mk_ce_fwd(rng, dt, spec)
    _, lse = K.numpy_impl.cross_entropy_forward(logits, t, ig)
    return logits, t, lse, ig, 0.7


def mk_attn_fwd(rng, dt, spec):
    B, H, Tq, Tk, D = spec
    q, k, v = rand(rng, (B, H, Tq, D), dt), rand(rng, (B, H, Tk, D), dt), rand(rng, (B, H, Tk, D), dt)
    return q, k, v, 1.0 / math.sqrt(D)


def mk_attn_decode(rng, dt, spec):
    n, B, H, cap, D = spec  # n sequences among B cache rows, each at its own length in 1..cap
    rows = rng.permutation(B)[:n]
    lengths = rng.integers(1, cap + 1, n)
    return (rand(rng, (n, H, D), dt), rand(rng, (B, H, cap, D), dt), rand(rng, (B, H, cap, D), dt),
            rows, lengths, 1.0 / math.sqrt(D))


def mk_attn_bwd(rng, dt, spec):
    q, k, v, scale = mk_attn_fwd(rng, dt, spec)
    out, lse = K.numpy_impl.attention_forward(q, k, v, scale)
    return rand(rng, out.shape, dt), q, k, v, out, lse, scale


def mk_emb_bwd(rng, dt, spec):
    ids_shape, V, C = spec
    ids = rng.integers(0, V, ids_shape).astype(np.int64)
    return ids, rand(rng, ids_shape + (C,), dt), V


def mk_adamw(rng, dt, spec):
    shape, step = spec
    p, g, m = rand(rng, shape, dt), rand(rng, shape, dt), rand(rng, shape, dt, 0.1)
    v = np.abs(rand(rng, shape, dt, 0.01))
    return p, g, m, v, 3e-4, 0.9, 0.95, 1e-8, 0.1, step


def mk_scale(rng, dt, shape):
    return rand(rng, shape, dt), 0.37


MAKERS = {
    "matmul": mk_matmul,
    "linear_rowwise": mk_linear,
    "softmax_forward": mk_x, "softmax_backward": mk_softmax_bwd,
    "log_softmax_forward": mk_x, "log_softmax_backward": mk_log_softmax_bwd,
    "layer_norm_forward": mk_ln_fwd, "layer_norm_backward": mk_ln_bwd,
    "gelu_forward": mk_x, "gelu_backward": mk_gelu_bwd,
    "gelu_forward_keep_tanh": mk_x, "gelu_backward_with_tanh": mk_gelu_bwd_tanh,
    "gelu_erf_forward": mk_x, "gelu_erf_backward": mk_gelu_bwd, "erf": mk_x,
    "cross_entropy_forward": mk_ce_fwd, "cross_entropy_backward": mk_ce_bwd,
    "attention_forward": mk_attn_fwd, "attention_backward": mk_attn_bwd, "attention_decode": mk_attn_decode,
    "embedding_backward": mk_emb_bwd,
    "adamw_update": mk_adamw, "sum_squares": mk_x, "scale": mk_scale,
}

CASES = [
    # kernel                   spec
    ("matmul",                 ((5, 7), (7, 3), None)),
    ("matmul",                 ((1, 1), (1, 1), None)),
    ("matmul",                 ((64, 128), (128, 96), None)),
    ("matmul",                 ((64, 128), (128, 96), "a")),
    ("matmul",                 ((64, 128), (128, 96), "b")),
    ("matmul",                 ((3, 4, 17, 8), (3, 4, 8, 17), None)),
    ("matmul",                 ((3, 4, 17, 8), (3, 4, 8, 17), "b")),
    ("matmul",                 ((3, 4, 17, 8), (3, 4, 8, 5), "a")),
    ("matmul",                 ((2, 1, 5, 3), (4, 3, 6), None)),          # broadcast batch
    ("matmul",                 ((6, 33, 16), (16, 9), None)),             # N-d @ 2-D
    ("matmul",                 ((7,), (7, 3), None)),                     # 1-D operand
    ("matmul",                 ((1, 600), (600, 500), None)),             # decoding: column tiles
    ("matmul",                 ((2, 1, 600), (600, 500), None)),          # decoding, (N, T, C) @ (C, M)
    ("matmul",                 ((3, 600), (600, 2100), "b")),             # x @ W.T: dot per output
    ("linear_rowwise",         ((1, 1), 1, "rows", False)),
    ("linear_rowwise",         ((3, 7), 5, "rows", True)),
    ("linear_rowwise",         ((8, 130), 600, "rows", True)),             # K % 4, two column tiles
    ("linear_rowwise",         ((2, 1, 33), 17, "rows", False)),           # (N, T, K) of a decoding step
    ("linear_rowwise",         ((3, 7), 5, "T", False)),
    ("linear_rowwise",         ((8, 130), 600, "T", True)),
    ("linear_rowwise",         ((4, 256), 2048, "rows", True)),            # large: split over threads
    ("linear_rowwise",         ((4, 256), 2048, "T", False)),
    ("softmax_forward",        (1,)),
    ("softmax_forward",        (3, 1)),
    ("softmax_forward",        (5, 7)),
    ("softmax_forward",        (2, 3, 4, 33)),
    ("softmax_backward",       (1,)),
    ("softmax_backward",       (5, 7)),
    ("softmax_backward",       (2, 3, 4, 33)),
    ("log_softmax_forward",    (1,)),
    ("log_softmax_forward",    (5, 7)),
    ("log_softmax_forward",    (2, 3, 65)),
    ("log_softmax_backward",   (1, 1)),
    ("log_softmax_backward",   (2, 3, 65)),
    ("layer_norm_forward",     ((1, 1), True)),
    ("layer_norm_forward",     ((5, 7), True)),
    ("layer_norm_forward",     ((2, 3, 48), False)),
    ("layer_norm_forward",     ((2, 9, 384), True)),
    ("layer_norm_backward",    ((1, 1), True)),
    ("layer_norm_backward",    ((5, 7), True)),
    ("layer_norm_backward",    ((2, 3, 48), False)),
    ("layer_norm_backward",    ((2, 9, 384), True)),
    ("gelu_forward",           (1,)),
    ("gelu_forward",           (5, 7)),
    ("gelu_forward",           (2, 3, 101)),
    ("gelu_backward",          (1,)),
    ("gelu_backward",          (2, 3, 101)),
    ("gelu_forward_keep_tanh", (1,)),
    ("gelu_forward_keep_tanh", (2, 3, 101)),
    ("gelu_backward_with_tanh", (1,)),
    ("gelu_backward_with_tanh", (2, 3, 101)),
    ("gelu_erf_forward",       (1,)),
    ("gelu_erf_forward",       (2, 3, 101)),
    ("gelu_erf_backward",      (1,)),
    ("gelu_erf_backward",      (2, 3, 101)),
    ("erf",                    ()),
    ("erf",                    (5, 7)),
    ("erf",                    (3, 40000)),                                # several thread pieces
    ("cross_entropy_forward",  (1, 1, 0)),
    ("cross_entropy_forward",  (7, 5, 2)),
    ("cross_entropy_forward",  (33, 65, 0)),
    ("cross_entropy_forward",  (4, 9, 4)),                                 # all ignored -> NaN
    ("cross_entropy_backward", (1, 1, 0)),
    ("cross_entropy_backward", (7, 5, 2)),
    ("cross_entropy_backward", (33, 65, 0)),
    ("cross_entropy_backward", (4, 9, 4)),
    ("attention_forward",      (1, 1, 1, 1, 1)),
    ("attention_forward",      (2, 3, 7, 7, 5)),
    ("attention_forward",      (1, 2, 3, 8, 4)),                           # Tq < Tk
    ("attention_forward",      (2, 2, 1, 9, 16)),                          # KV-cache step
    ("attention_forward",      (2, 4, 64, 64, 32)),
    ("attention_forward",      (1, 2, 130, 150, 8)),                       # query blocks, Tq < Tk
    ("attention_forward",      (2, 3, 256, 256, 16)),                      # 4 query blocks
    ("attention_decode",       (1, 1, 1, 1, 1)),
    ("attention_decode",       (3, 5, 2, 9, 4)),                           # rows of a cache, own lengths
    ("attention_decode",       (8, 8, 4, 130, 32)),
    ("attention_backward",     (1, 1, 1, 1, 1)),
    ("attention_backward",     (2, 3, 7, 7, 5)),
    ("attention_backward",     (1, 2, 3, 8, 4)),
    ("attention_backward",     (2, 2, 1, 9, 16)),
    ("attention_backward",     (2, 4, 64, 64, 32)),
    ("attention_backward",     (1, 2, 130, 150, 8)),
    ("attention_backward",     (2, 3, 256, 256, 16)),
    ("embedding_backward",     ((1,), 1, 1)),
    ("embedding_backward",     ((3, 5), 4, 7)),                            # many repeats
    ("embedding_backward",     ((4, 33), 65, 48)),
    ("adamw_update",           ((1,), 1)),
    ("adamw_update",           ((5, 7), 1)),
    ("adamw_update",           ((3, 64, 33), 1000)),
    ("adamw_update",           ((300, 1000), 3)),                          # several threads' pieces
    ("sum_squares",            (1,)),
    ("sum_squares",            (5, 7)),
    ("sum_squares",            (300, 1001)),                               # many chunks, a short last one
    ("scale",                  (1,)),
    ("scale",                  (300, 1001)),
]

DTYPES = [np.float32, np.float64]


def run(name, fn, args):
    """Call a kernel; for the in-place adamw and scale return the updated arrays."""
    if name in ("adamw_update", "scale"):
        args = [a.copy() if isinstance(a, np.ndarray) else a for a in args]
        assert fn(*args) is None
        return (args[0], args[2], args[3]) if name == "adamw_update" else args[0]
    return fn(*args)


def flat(out):
    return list(out) if isinstance(out, tuple) else [out]


def assert_close(got, want, tol, what=""):
    rtol, atol_rel = tol
    if want is None:
        assert got is None, what
        return
    got, want = np.asarray(got), np.asarray(want)
    assert got.shape == want.shape, (what, got.shape, want.shape)
    scale = float(np.nanmax(np.abs(want))) if want.size and not np.isnan(want).all() else 1.0
    scale = scale or 1.0          # an all-zero reference (e.g. dx of a 1-wide layer norm)
    np.testing.assert_allclose(got, want, rtol=rtol, atol=atol_rel * scale, err_msg=what)


def case_id(case):
    return f"{case[0]}-{case[1]}"


@pytest.mark.parametrize("dtype", DTYPES, ids=["f32", "f64"])
@pytest.mark.parametrize("case", CASES, ids=case_id)
def test_numba_matches_twin(case, dtype):
    name, spec = case
    args = MAKERS[name](np.random.default_rng(0), dtype, spec)
    saved = [a.copy() if isinstance(a, np.ndarray) else a for a in args]
    twin, fast = K.KERNELS[name]
    want = flat(run(name, twin, args))
    got = flat(run(name, fast, args))
    for i, (g, w) in enumerate(zip(got, want)):
        assert_close(g, w, TWIN_TOL[dtype], f"{name} output {i}")
        if isinstance(g, np.ndarray) and g.dtype.kind == "f":   # (sum_squares gives a Python float)
            assert np.asarray(g).dtype == dtype, f"{name} output {i} dtype {np.asarray(g).dtype}"
            assert np.asarray(w).dtype == dtype, f"twin {name} output {i} dtype {np.asarray(w).dtype}"
    for a, s in zip(args, saved):   # no kernel mutates its inputs (adamw and scale run on copies)
        if isinstance(a, np.ndarray):
            np.testing.assert_array_equal(a, s, err_msg=f"{name} mutated an input")


# ---- linear_rowwise: a row's result does not depend on the other rows -----------------------

@pytest.mark.parametrize("backend", K.BACKENDS)
@pytest.mark.parametrize("layout,K_,M", [("rows", 130, 600), ("T", 130, 600), ("rows", 256, 2048), ("T", 256, 2048)])
@pytest.mark.parametrize("dtype", DTYPES, ids=["f32", "f64"])
def test_linear_rowwise_rows_are_bit_identical_for_any_batch(dtype, layout, K_, M, backend):
    x, w, b = mk_linear(np.random.default_rng(8), dtype, ((8, K_), M, layout, True))
    with K.use_backend(backend):
        y8 = K.linear_rowwise(x, w, b)
        for n in range(8):  # alone (N = 1), and at each position of a batch of 3
            np.testing.assert_array_equal(K.linear_rowwise(x[n:n + 1], w, b)[0], y8[n], err_msg=f"row {n} alone")
            p, others = n % 3, [x[(n + 1) % 8], x[(n + 2) % 8]]
            trio = np.stack(others[:p] + [x[n]] + others[p:])
            np.testing.assert_array_equal(K.linear_rowwise(trio, w, b)[p], y8[n], err_msg=f"row {n} among 3")
    assert_close(y8, np.matmul(x.astype(np.float64), w) + b, TWIN_TOL[dtype], "vs np.matmul")


def test_linear_rowwise_rows_layout_is_the_twin_bit_for_bit_and_thread_count_free():
    x, w, b = mk_linear(np.random.default_rng(9), np.float32, ((5, 256), 2048, "rows", True))
    np.testing.assert_array_equal(K.numba_impl.linear_rowwise(x, w, b), K.numpy_impl.linear_rowwise(x, w, b))
    before = K.get_num_threads()
    try:
        K.set_num_threads(1)
        one = K.numba_impl.linear_rowwise(x, w.T.copy().T, b)
        K.set_num_threads(2)
        np.testing.assert_array_equal(K.numba_impl.linear_rowwise(x, w.T.copy().T, b), one)
    finally:
        K.set_num_threads(before)


def test_attention_decode_is_each_sequence_alone():
    """The Numba kernel: each sequence's output is attention_forward of its one query over its
    own keys, and the same bits whichever other sequences share the call. (The twin is
    attention_forward per sequence by definition: run on it, this test could not fail.)"""
    q, kc, vc, rows, lengths, scale = mk_attn_decode(np.random.default_rng(10), np.float32, (6, 8, 4, 70, 16))
    with K.use_backend("numba"):
        out = K.attention_decode(q, kc, vc, rows, lengths, scale)
        for i, (r, L) in enumerate(zip(rows, lengths)):
            want = K.attention_forward(q[i, :, None], kc[r, :, :L], vc[r, :, :L], scale)[0][:, 0]
            assert_close(out[i], want, TWIN_TOL[np.float32], f"sequence {i}")
            alone = K.attention_decode(q[i:i + 1], kc, vc, rows[i:i + 1], lengths[i:i + 1], scale)[0]
            np.testing.assert_array_equal(alone, out[i])


# ---- twins (and so the Numba kernels) against finite differences ------------------------

def fd_grad(f, args, i, dy, h=1e-6):
    """d/d args[i] of sum(f(*args) * dy), by central differences."""
    x = args[i]
    grad = np.zeros_like(x)
    for j in range(x.size):
        xp, xm = x.copy(), x.copy()
        xp.flat[j] += h
        xm.flat[j] -= h
        fp = f(*args[:i], xp, *args[i + 1:])
        fm = f(*args[:i], xm, *args[i + 1:])
        grad.flat[j] = np.sum((fp - fm) * dy) / (2 * h)
    return grad


def _ln_y(x, w, b):
    return K.numpy_impl.layer_norm_forward(x, w, b, 1e-5)[0]


def _attn_out(q, k, v):
    return K.numpy_impl.attention_forward(q, k, v, 0.4)[0]


FD_CASES = ["softmax", "log_softmax", "gelu", "gelu_erf", "layer_norm", "cross_entropy", "attention", "attention_kv"]


@pytest.mark.parametrize("backend", K.BACKENDS)
@pytest.mark.parametrize("which", FD_CASES)
def test_backward_finite_differences(which, backend):
    rng = np.random.default_rng(1)
    f64 = np.float64
    with K.use_backend(backend):
        if which in ("softmax", "log_softmax", "gelu", "gelu_erf"):
            x, dy = rand(rng, (3, 5), f64, 2.0), rand(rng, (3, 5), f64)
            fwd = getattr(K.numpy_impl, which + "_forward")
            if which.startswith("gelu"):
                got, want = [getattr(K, which + "_backward")(x, dy)], [fd_grad(fwd, [x], 0, dy)]
            else:
                bwd = getattr(K, which + "_backward")
                got, want = [bwd(fwd(x), dy)], [fd_grad(fwd, [x], 0, dy)]
        elif which == "layer_norm":
            x, w, b = rand(rng, (2, 3, 6), f64), rand(rng, 6, f64), rand(rng, 6, f64)
            dy = rand(rng, x.shape, f64)
            _, mean, rstd = K.numpy_impl.layer_norm_forward(x, w, b, 1e-5)
            got = K.layer_norm_backward(dy, x, w, mean, rstd)
            want = [fd_grad(_ln_y, [x, w, b], i, dy) for i in range(3)]
        elif which == "cross_entropy":
            logits, t = rand(rng, (6, 5), f64, 2.0), np.array([0, IGNORE, 4, 2, 2, IGNORE])
            _, lse = K.numpy_impl.cross_entropy_forward(logits, t, IGNORE)
            got = [K.cross_entropy_backward(logits, t, lse, IGNORE, 0.7)]
            loss = lambda lg: K.numpy_impl.cross_entropy_forward(lg, t, IGNORE)[0]
            want = [fd_grad(loss, [logits], 0, 0.7)]
        else:
            Tq = 4 if which == "attention" else 2
            q, k, v = rand(rng, (1, 2, Tq, 3), f64), rand(rng, (1, 2, 4, 3), f64), rand(rng, (1, 2, 4, 3), f64)
            out, lse = K.numpy_impl.attention_forward(q, k, v, 0.4)
            dout = rand(rng, out.shape, f64)
            got = K.attention_backward(dout, q, k, v, out, lse, 0.4)
            want = [fd_grad(_attn_out, [q, k, v], i, dout) for i in range(3)]
    for i, (g, w) in enumerate(zip(got, want)):
        assert_close(g, w, FD_TOL, f"{which} grad {i}")


# ---- twins against PyTorch in float64 ----------------------------------------------------

def test_twins_match_torch():
    torch = require("torch")
    F = torch.nn.functional
    rng = np.random.default_rng(2)
    T = lambda a: torch.from_numpy(a)
    x = rand(rng, (4, 5, 11), np.float64, 2.0)
    w, b = rand(rng, 11, np.float64), rand(rng, 11, np.float64)
    checks = [
        # name             ours                                              torch
        ("softmax",        K.numpy_impl.softmax_forward(x),                  F.softmax(T(x), -1)),
        ("log_softmax",    K.numpy_impl.log_softmax_forward(x),              F.log_softmax(T(x), -1)),
        ("gelu",           K.numpy_impl.gelu_forward(x),                     F.gelu(T(x), approximate="tanh")),
        ("gelu_erf",       K.numpy_impl.gelu_erf_forward(x),                 F.gelu(T(x))),
        ("erf",            K.numpy_impl.erf(x),                              torch.erf(T(x))),
        ("layer_norm",     K.numpy_impl.layer_norm_forward(x, w, b, 1e-5)[0], F.layer_norm(T(x), (11,), T(w), T(b), 1e-5)),
    ]
    logits, t = rand(rng, (9, 7), np.float64, 2.0), np.array([1, IGNORE, 6, 0, 0, 3, IGNORE, 2, 5])
    checks.append(("cross_entropy", K.numpy_impl.cross_entropy_forward(logits, t, IGNORE)[0],
                   F.cross_entropy(T(logits), T(t), ignore_index=IGNORE)))
    for Tq in (6, 2):
        q, k, v = rand(rng, (2, 3, Tq, 4), np.float64), rand(rng, (2, 3, 6, 4), np.float64), rand(rng, (2, 3, 6, 4), np.float64)
        allowed = torch.ones(Tq, 6, dtype=torch.bool).tril(diagonal=6 - Tq)
        checks.append((f"attention Tq={Tq}", K.numpy_impl.attention_forward(q, k, v, 0.5)[0],
                       F.scaled_dot_product_attention(T(q), T(k), T(v), attn_mask=allowed, scale=0.5)))
    ids = rng.integers(0, 5, (3, 4))
    dy = rand(rng, (3, 4, 6), np.float64)
    checks.append(("embedding", K.numpy_impl.embedding_backward(ids, dy, 5),
                   torch.zeros(5, 6, dtype=torch.float64).index_add_(0, T(ids.reshape(-1)), T(dy.reshape(-1, 6)))))
    for name, ours, ref in checks:
        assert_close(ours, ref.numpy(), REF_TOL, name)


@pytest.mark.parametrize("backend", K.BACKENDS)
@pytest.mark.parametrize("dtype", DTYPES, ids=["f32", "f64"])
def test_adamw_matches_torch(dtype, backend):
    torch = require("torch")
    rng = np.random.default_rng(3)
    p = rand(rng, (4, 9), dtype)
    m, v = np.zeros_like(p), np.zeros_like(p)
    tp = torch.nn.Parameter(torch.from_numpy(p.copy()))
    opt = torch.optim.AdamW([tp], lr=1e-2, betas=(0.9, 0.95), eps=1e-8, weight_decay=0.1, foreach=False)
    with K.use_backend(backend):
        for step in range(1, 6):
            g = rand(rng, p.shape, dtype)
            tp.grad = torch.from_numpy(g.copy())
            opt.step()
            K.adamw_update(p, g, m, v, 1e-2, 0.9, 0.95, 1e-8, 0.1, step)
    tol = (1e-6, 1e-6) if dtype == np.float32 else (1e-12, 1e-14)
    assert_close(p, tp.detach().numpy(), tol, "adamw param")
    assert p.dtype == dtype


# ---- the backend switch ------------------------------------------------------------------

def test_backend_switch():
    start = K.get_backend()
    with K.use_backend("numpy"):
        assert K.get_backend() == "numpy"
        with K.use_backend("numba"):
            assert K.get_backend() == "numba"
        assert K.get_backend() == "numpy"
    assert K.get_backend() == start
    with pytest.raises(ValueError, match="numba, numpy"):
        K.set_backend("cuda")
    assert K.get_backend() == start


def test_backend_env_var(tmp_path):
    import subprocess
    import sys
    code = "import minigrad.kernels as K; print(K.get_backend())"
    env = dict(__import__("os").environ, MINIGRAD_BACKEND="numpy")
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True)
    assert out.stdout.strip() == "numpy", out.stderr


@pytest.mark.parametrize("backend", K.BACKENDS)
def test_cross_entropy_all_ignored_is_nan_with_zero_grad(backend):
    logits, t = np.ones((3, 4), np.float32), np.full(3, IGNORE)
    with K.use_backend(backend):
        loss, lse = K.cross_entropy_forward(logits, t, IGNORE)
        assert np.isnan(loss) and loss.shape == () and loss.dtype == np.float32
        assert not K.cross_entropy_backward(logits, t, lse, IGNORE, 1.0).any()


@pytest.mark.parametrize("backend", K.BACKENDS)
def test_out_of_range_indices_raise(backend):
    with K.use_backend(backend):
        with pytest.raises(IndexError):
            K.cross_entropy_forward(np.zeros((2, 3)), np.array([0, 3]), IGNORE)
        with pytest.raises(IndexError):
            K.embedding_backward(np.array([0, 5]), np.zeros((2, 4)), 5)


# ---- the packed attention op (fused.causal_self_attention) -----------------------------

@pytest.mark.parametrize("backend", K.BACKENDS)
@pytest.mark.parametrize("dtype", DTYPES, ids=["f32", "f64"])
def test_packed_attention_equals_split_heads_composition(dtype, backend):
    import minigrad as mg
    from minigrad import functional as F
    rng = np.random.default_rng(5)
    B, T, H, D = 2, 7, 3, 4
    qkv = mg.Tensor(rand(rng, (B, T, 3 * H * D), dtype), requires_grad=True)
    dy = rand(rng, (B, T, H * D), dtype)
    with K.use_backend(backend):
        y = F.causal_self_attention(qkv, H)
        y.backward(dy)
        got, got_grad = y.data, qkv.grad
        qkv.grad = None
        heads = [t.reshape(B, T, H, D).transpose(1, 2) for t in qkv.split(H * D, axis=2)]
        ref = F.scaled_dot_product_attention(*heads, is_causal=True).transpose(1, 2).reshape(B, T, H * D)
        ref.backward(dy)
    assert got.dtype == dtype and got_grad.dtype == dtype
    assert_close(got, ref.data, TWIN_TOL[dtype], "packed attention")
    assert_close(got_grad, qkv.grad, TWIN_TOL[dtype], "packed attention grad")


@pytest.mark.parametrize("backend", K.BACKENDS)
def test_packed_attention_gradcheck(backend):
    import minigrad as mg
    from minigrad import functional as F
    qkv = mg.Tensor(np.random.default_rng(6).standard_normal((2, 5, 18)), requires_grad=True)
    with K.use_backend(backend):
        assert mg.gradcheck(lambda t: F.causal_self_attention(t, 2, scale=0.7), (qkv,))


def test_packed_attention_rejects_bad_shapes():
    import minigrad as mg
    from minigrad import functional as F
    with pytest.raises(ValueError, match="causal_self_attention"):
        F.causal_self_attention(mg.ones(2, 5, 10), 2)



@pytest.mark.parametrize("backend", K.BACKENDS)
@pytest.mark.parametrize("dtype", DTYPES, ids=["f32", "f64"])
def test_gelu_keep_tanh_pair_equals_plain_gelu(dtype, backend):
    rng = np.random.default_rng(7)
    x, dy = rand(rng, (3, 50), dtype, 3.0), rand(rng, (3, 50), dtype)
    with K.use_backend(backend):
        y, t = K.gelu_forward_keep_tanh(x)
        assert_close(y, K.gelu_forward(x), TWIN_TOL[dtype], "gelu y")
        assert_close(K.gelu_backward_with_tanh(x, t, dy), K.gelu_backward(x, dy), TWIN_TOL[dtype], "gelu dx")
