"""Benchmark every kernel on GPT-like shapes: NumPy twin vs Numba, medians, same run.

    python bench/kernels.py [--reps N] [--dtype float32|float64] [--only NAME]

Timings alternate twin / Numba / np.matmul call by call, so machine noise (other
processes) hits all columns alike; the ratios are of medians from this one run.
"""
import argparse
import math
import os
import sys
import time

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
import minigrad.kernels as K  # noqa: E402


def medians(fns, reps):
    for f in fns:                          # warm-up (and JIT compile)
        f()
    times = [[] for _ in fns]
    for _ in range(reps):
        for f, t in zip(fns, times):
            t0 = time.perf_counter()
            f()
            t.append(time.perf_counter() - t0)
    return [1e3 * float(np.median(t)) for t in times]


def cases(dt, rng):
    r = lambda *s: rng.standard_normal(s).astype(dt)        # noqa: E731
    T = lambda a: a.swapaxes(-1, -2)                         # noqa: E731
    mm = [  # label, a, b
        ("(768,128)@(128,384)", r(768, 128), r(128, 384)),
        ("(12,4,64,32)@(12,4,32,64)", r(12, 4, 64, 32), r(12, 4, 32, 64)),
        ("(2048,384)@(384,1152)", r(2048, 384), r(384, 1152)),
        ("(8,6,256,64)@(8,6,64,256)", r(8, 6, 256, 64), r(8, 6, 64, 256)),
        ("(768,128)@(128,65)", r(768, 128), r(128, 65)),
        ("(8,256,384)@(384,1152)", r(8, 256, 384), r(384, 1152)),
        ("a.T@g (2048,384).T@(2048,1152)", T(r(2048, 384)), r(2048, 1152)),
        ("g@b.T (2048,1152)@(384,1152).T", r(2048, 1152), T(r(384, 1152))),
        ("g@b.T (8,256,1152)@(384,1152).T", r(8, 256, 1152), T(r(384, 1152))),
        ("q@k.T (8,6,256,64)@T(8,6,256,64)", r(8, 6, 256, 64), T(r(8, 6, 256, 64))),
    ]
    for label, a, b in mm:
        flops = 2 * math.prod(np.broadcast_shapes(a.shape[:-2], b.shape[:-2])) * a.shape[-2] * a.shape[-1] * b.shape[-1]
        yield "matmul", label, (a, b), flops
    # decoding steps: N rows against a layer's weights (default model, GPT-2 124M), the head tied (w = wte.T)
    for N, K_, M, tied in [(1, 128, 384, False), (8, 128, 384, False), (8, 128, 512, True),
                           (1, 768, 3072, False), (8, 768, 3072, False), (8, 3072, 768, False),
                           (1, 768, 50257, True), (8, 768, 50257, True)]:
        w = r(M, K_).T if tied else r(K_, M)
        yield "linear_rowwise", f"({N},{K_})@({K_},{M}){' tied' if tied else ''}", (r(N, K_), w, r(M)), 2 * N * K_ * M
    for shape in [(48, 64, 64), (48, 256, 256)]:
        x, dy = r(*shape), r(*shape)
        y = K.numpy_impl.softmax_forward(x)
        yield "softmax_forward", shape, (x,), None
        yield "softmax_backward", shape, (y, dy), None
        yield "softmax fwd+bwd", shape, (x, dy), None
    x = r(8 * 256, 65)
    yield "log_softmax_forward", x.shape, (x,), None
    yield "log_softmax_backward", x.shape, (K.numpy_impl.log_softmax_forward(x), r(*x.shape)), None
    for shape in [(12, 64, 128), (8, 256, 384)]:
        x, w, b, dy = r(*shape), r(shape[-1]), r(shape[-1]), r(*shape)
        _, mean, rstd = K.numpy_impl.layer_norm_forward(x, w, b, 1e-5)
        yield "layer_norm_forward", shape, (x, w, b, 1e-5), None
        yield "layer_norm_backward", shape, (dy, x, w, mean, rstd), None
    for shape in [(12, 64, 512), (8, 256, 1536)]:
        x, dy = r(*shape), r(*shape)
        yield "gelu_forward", shape, (x,), None
        yield "gelu_backward", shape, (x, dy), None
    x, dy = r(12, 64, 512), r(12, 64, 512)
    yield "gelu_erf_forward", x.shape, (x,), None      # exact GELU (PyTorch's default; the GPT uses tanh)
    yield "gelu_erf_backward", x.shape, (x, dy), None
    yield "erf", x.shape, (x,), None
    for N, V in [(768, 65), (2048, 65), (512, 50257)]:
        logits, t = r(N, V), rng.integers(0, V, N)
        _, lse = K.numpy_impl.cross_entropy_forward(logits, t, -100)
        yield "cross_entropy_forward", (N, V), (logits, t, -100), None
        yield "cross_entropy_backward", (N, V), (logits, t, lse, -100, 1.0), None
    for B, H, Tq, Tk, D in [(12, 4, 64, 64, 32), (8, 6, 256, 256, 64), (1, 6, 1, 256, 64)]:
        q, k, v = r(B, H, Tq, D), r(B, H, Tk, D), r(B, H, Tk, D)
        out, lse = K.numpy_impl.attention_forward(q, k, v, D ** -0.5)
        yield "attention_forward", (B, H, Tq, Tk, D), (q, k, v, D ** -0.5), None
        yield "attention_backward", (B, H, Tq, Tk, D), (r(*out.shape), q, k, v, out, lse, D ** -0.5), None
    for ids_shape, V, C in [((12, 64), 65, 128), ((8, 256), 50257, 384)]:
        yield "embedding_backward", (ids_shape, V, C), (rng.integers(0, V, ids_shape), r(*ids_shape, C), V), None
    for n in [128 * 384, 10_000_000]:
        p, g, m, v = r(n), r(n), r(n), np.abs(r(n))
        yield "adamw_update", (n,), (p, g, m, v, 3e-4, 0.9, 0.95, 1e-8, 0.1, 10), None


def fns_for(name, args):
    if name == "softmax fwd+bwd":
        x, dy = args
        return [lambda: K.numpy_impl.softmax_backward(K.numpy_impl.softmax_forward(x), dy),
                lambda: K.numba_impl.softmax_backward(K.numba_impl.softmax_forward(x), dy)]
    if name == "linear_rowwise":  # against BLAS, not the twin (a Python loop over K)
        x, w, b = args
        return [lambda: K.numba_impl.matmul(x, w) + b, lambda: K.numba_impl.linear_rowwise(x, w, b)]
    twin, fast = K.KERNELS[name]
    return [lambda: twin(*args), lambda: fast(*args)]


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--reps", type=int, default=15)
    ap.add_argument("--dtype", default="float32", choices=["float32", "float64"])
    ap.add_argument("--only", default="", help="substring of kernel names to run")
    opts = ap.parse_args(argv)
    print(f"numpy {np.__version__}, kernel threads {K.get_num_threads()}, dtype {opts.dtype}, "
          f"median of {opts.reps}, load avg {os.getloadavg()[0]:.1f}")
    head = f"{'kernel':24s} {'shape':36s} {'twin ms':>9s} {'numba ms':>9s} {'speedup':>8s}"
    print(head + f" {'GF/s ours':>9s} {'GF/s np.mm':>10s}")
    print("-" * (len(head) + 36))
    rng = np.random.default_rng(0)
    for name, shape, args, flops in cases(np.dtype(opts.dtype).type, rng):
        if opts.only not in name:
            continue
        fns = fns_for(name, args)
        ts = medians(fns, opts.reps)
        line = f"{name:24s} {str(shape):36s} {ts[0]:9.3f} {ts[1]:9.3f} {ts[0] / ts[1]:7.2f}x"
        if flops:   # the first column is np.matmul (the matmul twin; BLAS for linear_rowwise)
            line += f" {flops / ts[1] / 1e6:9.1f} {flops / ts[0] / 1e6:10.1f}"
        print(line, flush=True)


if __name__ == "__main__":
    main()
