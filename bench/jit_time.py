"""Cold and warm JIT cost: import minigrad.kernels and call every kernel once (float32).

    python bench/jit_time.py

Runs the same child script twice in fresh processes with an empty NUMBA_CACHE_DIR (cold:
everything compiles) and then again with that now-filled cache (warm: loads from disk).
"""
import os
import subprocess
import sys
import tempfile

CHILD = r"""
import time
t0 = time.perf_counter()
import numpy as np
import minigrad.kernels as K
t_import = time.perf_counter() - t0
rng = np.random.default_rng(0)
r = lambda *s: rng.standard_normal(s).astype(np.float32)
x, w, b = r(4, 8, 16), r(16), r(16)
q = r(2, 2, 8, 4)
t = rng.integers(0, 16, 32)
calls = {
    "matmul": lambda: K.matmul(x, r(16, 5)),
    "softmax": lambda: K.softmax_backward(K.softmax_forward(x), x),
    "log_softmax": lambda: K.log_softmax_backward(K.log_softmax_forward(x), x),
    "layer_norm": lambda: K.layer_norm_backward(x, x, w, *K.layer_norm_forward(x, w, b, 1e-5)[1:]),
    "gelu": lambda: K.gelu_backward(x, K.gelu_forward(x)),
    "cross_entropy": lambda: K.cross_entropy_backward(x.reshape(32, 16), t, K.cross_entropy_forward(x.reshape(32, 16), t, -100)[1], -100, 1.0),
    "attention": lambda: K.attention_backward(q, q, q, q, *K.attention_forward(q, q, q, 0.5), 0.5),
    "embedding": lambda: K.embedding_backward(t, r(32, 16), 16),
    "adamw": lambda: K.adamw_update(r(16), r(16), r(16), np.abs(r(16)), 1e-3, 0.9, 0.95, 1e-8, 0.1, 1),
}
parts = []
for name, f in calls.items():
    t1 = time.perf_counter(); f(); parts.append(f"{name} {time.perf_counter() - t1:.2f}")
total = time.perf_counter() - t0
print(f"import {t_import:.2f} s, first calls {total - t_import:.2f} s, total {total:.2f} s  ({', '.join(parts)})")
"""


def run(cache_dir):
    env = dict(os.environ, NUMBA_CACHE_DIR=cache_dir, MINIGRAD_BACKEND="numba")
    root = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
    out = subprocess.run([sys.executable, "-c", CHILD], env=env, cwd=root, capture_output=True, text=True)
    if out.returncode:
        sys.exit(out.stderr)
    return out.stdout.strip()


if __name__ == "__main__":
    with tempfile.TemporaryDirectory() as cache:
        print("cold (empty cache):", run(cache))
        print("warm (cache filled):", run(cache))
