"""Causal multi-head attention, fused: scores, bottom-right causal mask, softmax, and both matmuls.

Shapes: q (B, H, Tq, D), k and v (B, H, Tk, D), Tq <= Tk. Query i sits at
absolute position Tk - Tq + i and attends keys j <= Tk - Tq + i.

attention_decode is the same attention for one new query per sequence, read straight
from a key-value cache in which each sequence has its own length (batched decoding).
"""
import numpy as np


def _causal_mask(Tq, Tk):
    # True where a key must be hidden from a query.
    return np.arange(Tk)[None, :] > (np.arange(Tq)[:, None] + (Tk - Tq))


def _probs(q, k, scale, lse=None):
    s = np.matmul(q, k.swapaxes(-1, -2)) * q.dtype.type(scale)
    s = np.where(_causal_mask(q.shape[-2], k.shape[-2]), -np.inf, s).astype(q.dtype, copy=False)
    if lse is None:
        m = s.max(axis=-1, keepdims=True)
        e = np.exp(s - m)
        l = e.sum(axis=-1, keepdims=True)
        return e / l, (m + np.log(l))[..., 0]
    return np.exp(s - lse[..., None]), lse


# attention forward; lse = logsumexp of each masked score row (math: minigrad/fused.py, CausalAttention)
def attention_forward_numpy(q, k, v, scale):
    p, lse = _probs(q, k, scale)
    return np.matmul(p, v), lse


# attention backward, recomputing P from q, k and lse
def attention_backward_numpy(dout, q, k, v, out, lse, scale):
    p, _ = _probs(q, k, scale, lse)
    dv = np.matmul(p.swapaxes(-1, -2), dout)
    dp = np.matmul(dout, v.swapaxes(-1, -2))
    ds = p * (dp - (dout * out).sum(axis=-1, keepdims=True))
    s = q.dtype.type(scale)
    dq = np.matmul(ds, k) * s
    dk = np.matmul(ds.swapaxes(-1, -2), q) * s
    return dq, dk, dv


# attention decode: sequence i's new query over its own keys k_cache[rows[i], :, :lengths[i]]
# (math: attention_forward with Tq = 1; out (n, H, D))
def attention_decode_numpy(q, k_cache, v_cache, rows, lengths, scale):
    out = np.empty_like(q)
    for i, (r, L) in enumerate(zip(rows, lengths)):
        out[i] = attention_forward_numpy(q[i, :, None], k_cache[r, :, :L], v_cache[r, :, :L], scale)[0][:, 0]
    return out


# ---- Numba ---------------------------------------------------------------------------------
# The four small matmuls per head (q k^T, P v and, backward, P^T dO, dO v^T, dS k, dS^T q)
# go to BLAS through np.matmul over the stacked (B, H) heads: at the GPT shapes a row of
# dot products in Numba cannot keep up with BLAS's register blocking. Numba fuses what lies between:
# scale, bottom-right causal mask, softmax and logsumexp in one pass over the scores, and
# dS = P (dP - rowsum(dO * O)) * scale in one pass in backward (NumPy takes five passes and
# temporaries of size T x T for each). Keys above the diagonal are never exponentiated.
# The T x T scores are a temporary of each call; backward recomputes P from q, k and lse
# rather than keeping it from forward (memory: B H T^2 per layer is not held between passes).

from numba import njit  # noqa: E402

from . import threads  # noqa: E402
from .common import FASTMATH, exp_le0, exp_neg, row_max  # noqa: E402

# Reassociation lets LLVM vectorise the row sums. Scores are exponentiated in their own
# precision by the inlined common.exp_le0: one vectorised loop per row, no call per row; the
# sum of a row's exps is kept in float64.
JIT = dict(cache=True, nogil=True, fastmath=FASTMATH, error_model="numpy")


@njit(**JIT)
def _causal_softmax(s, scale, lse):
    """In place: s[b, i] <- softmax over the visible keys of scale * s[b, i], 0 beyond; lse[b, i]."""
    BH, Tq, Tk = s.shape
    f = s.dtype.type
    sc, zero = f(scale), f(0)
    for b in range(BH):
        for i in range(Tq):
            n = Tk - Tq + i + 1                      # visible keys
            row = s[b, i]
            m = sc * row_max(row, n)                 # scale > 0: the largest scaled score
            total = 0.0
            for j in range(n):
                e = exp_le0(sc * row[j] - m)
                row[j] = e
                total += e
            inv = f(1.0 / total)
            for j in range(n):
                row[j] *= inv
            for j in range(n, Tk):
                row[j] = zero
            lse[b, i] = m + np.log(total)


@njit(**JIT)
def _causal_probs(s, scale, lse):
    """In place: s[b, i] <- exp(scale * s[b, i] - lse[b, i]) on the visible keys, 0 beyond (P again)."""
    BH, Tq, Tk = s.shape
    f = s.dtype.type
    sc, zero = f(scale), f(0)
    for b in range(BH):
        for i in range(Tq):
            n = Tk - Tq + i + 1
            row = s[b, i]
            shift = f(lse[b, i])
            for j in range(n):
                row[j] = exp_le0(sc * row[j] - shift)
            for j in range(n, Tk):
                row[j] = zero


@njit(**JIT)
def _softmax_grad(p, dp, dout, out, scale):
    """In place: dp[b, i] <- scale * p (dp - dO_i . O_i), the gradient of the scaled scores."""
    BH, Tq, Tk = p.shape
    D = out.shape[2]
    sc = p.dtype.type(scale)
    for b in range(BH):
        for i in range(Tq):
            di = 0.0
            for d in range(D):
                di += dout[b, i, d] * out[b, i, d]
            di_ = p.dtype.type(di)
            for j in range(Tk):
                dp[b, i, j] = sc * p[b, i, j] * (dp[b, i, j] - di_)


def _scores(q, k):
    """q k^T for every head as a fresh C-contiguous (BH, Tq, Tk) array."""
    s = np.matmul(q, np.swapaxes(k, -1, -2))
    return s.reshape((-1,) + s.shape[-2:])


def attention_forward_numba(q, k, v, scale):
    Tq, Tk = q.shape[-2], k.shape[-2]
    if q.size == 0 or Tk == 0:
        return attention_forward_numpy(q, k, v, scale)
    if q.ndim == 2:  # one (T, D) head: give it a batch axis of 1
        return tuple(a[0] for a in attention_forward_numba(q[None], k[None], v[None], scale))
    out = np.empty(q.shape, q.dtype)
    lse = np.empty(q.shape[:-1], q.dtype)

    def piece(lo, hi):  # batch items lo:hi, one block of queries at a time
        qs, ks, vs = q[lo:hi], k[lo:hi], v[lo:hi]
        for i0, i1, kend in _query_blocks(Tq, Tk):
            p = _scores(qs[..., i0:i1, :], ks[..., :kend, :])  # (BH, i1 - i0, kend)
            block_lse = np.empty(p.shape[:2], q.dtype)
            _causal_softmax(p, float(scale), block_lse)
            lse[lo:hi, ..., i0:i1] = block_lse.reshape(qs.shape[:-2] + (i1 - i0,))
            np.matmul(p.reshape(qs.shape[:-2] + p.shape[1:]), vs[..., :kend, :], out=out[lo:hi, ..., i0:i1, :])

    _over_batch(piece, q, Tk)
    return out, lse


def attention_backward_numba(dout, q, k, v, out, lse, scale):
    Tq, Tk = q.shape[-2], k.shape[-2]
    if q.size == 0 or Tk == 0:
        return attention_backward_numpy(dout, q, k, v, out, lse, scale)
    if q.ndim == 2:
        return tuple(a[0] for a in attention_backward_numba(dout[None], q[None], k[None], v[None], out[None],
                                                            lse[None], scale))
    dq, dk, dv = np.empty(q.shape, q.dtype), np.empty(k.shape, k.dtype), np.empty(v.shape, v.dtype)

    def piece(lo, hi):  # batch items lo:hi; the last block of queries (it sees every key) first
        for n, (i0, i1, kend) in enumerate(reversed(_query_blocks(Tq, Tk))):
            qb, dob = q[lo:hi, ..., i0:i1, :], dout[lo:hi, ..., i0:i1, :]
            kb, vb = k[lo:hi, ..., :kend, :], v[lo:hi, ..., :kend, :]
            p = _scores(qb, kb)  # (BH, i1 - i0, kend)
            _causal_probs(p, float(scale), np.ascontiguousarray(lse[lo:hi, ..., i0:i1]).reshape(p.shape[:2]))
            ds = np.matmul(dob, np.swapaxes(vb, -1, -2))  # dP, then dS in place
            _softmax_grad(p, ds.reshape(p.shape), _rows(dob), _rows(out[lo:hi, ..., i0:i1, :]), float(scale))
            p = p.reshape(ds.shape)
            np.matmul(ds, kb, out=dq[lo:hi, ..., i0:i1, :])
            if n == 0:  # keys :Tk, all of them: the first contribution to dk and dv
                np.matmul(np.swapaxes(p, -1, -2), dob, out=dv[lo:hi])
                np.matmul(np.swapaxes(ds, -1, -2), qb, out=dk[lo:hi])
            else:
                dv[lo:hi, ..., :kend, :] += np.matmul(np.swapaxes(p, -1, -2), dob)
                dk[lo:hi, ..., :kend, :] += np.matmul(np.swapaxes(ds, -1, -2), qb)

    _over_batch(piece, q, Tk)
    return dq, dk, dv


# Queries per block: a block of queries is multiplied only with the keys up to its last query,
# so the product skips the blocks above the causal diagonal (T = 256: 4 blocks, 62.5% of the
# FLOPs of the full T x T), while each GEMM keeps enough rows to run at BLAS speed.
QUERY_BLOCK = 64


def _query_blocks(Tq, Tk):
    """[(i0, i1, kend)]: query rows i0:i1 attend keys :kend (bottom-right causal)."""
    n = max(1, Tq // QUERY_BLOCK)
    bounds = [Tq * i // n for i in range(n + 1)]
    return [(i0, i1, Tk - Tq + i1) for i0, i1 in zip(bounds[:-1], bounds[1:])]


# Decoding: one query row per (sequence, head) against that sequence's own keys, so no padding
# and no mask; a (sequence, head)'s result depends on its own keys only, never on which other
# sequences share the call (batched decoding is batch-invariant). Scores, softmax and the
# weighted sum of values run in float64 in one pass each; pairs split over threads.
@njit(**JIT)
def _decode_pairs(q, kc, vc, rows, lengths, scale, out, lo, hi):
    """out[i, h] for the (sequence i, head h) pairs lo..hi-1 of the flattened (n, H) grid."""
    H, D = q.shape[1], q.shape[2]
    s = np.empty(kc.shape[2], np.float64)
    acc = np.empty(D, np.float64)
    for p in range(lo, hi):
        i, h = p // H, p % H
        r, L = rows[i], lengths[i]
        qi = q[i, h]
        m = -np.inf
        for j in range(L):
            kj = kc[r, h, j]
            dot = 0.0
            for d in range(D):
                dot += qi[d] * kj[d]
            s[j] = scale * dot
            m = max(m, s[j])
        total = 0.0
        for j in range(L):
            e = exp_neg(s[j] - m)
            s[j] = e
            total += e
        acc[:] = 0.0
        for j in range(L):
            vj = vc[r, h, j]
            for d in range(D):
                acc[d] += s[j] * vj[d]
        for d in range(D):
            out[i, h, d] = acc[d] / total


def attention_decode_numba(q, k_cache, v_cache, rows, lengths, scale):
    n, H, D = q.shape
    out = np.empty((n, H, D), q.dtype)
    q = np.ascontiguousarray(q)
    rows, lengths = np.asarray(rows, np.int64), np.asarray(lengths, np.int64)
    if n == 0:
        return out
    per_pair = 4 * D * int(lengths.max())  # scores and weighted sum, 2 flops per term each
    threads.split(lambda lo, hi: _decode_pairs(q, k_cache, v_cache, rows, lengths, float(scale), out, lo, hi),
                  n * H, -(-MIN_PIECE_FLOPS // per_pair))
    return out


# FLOPs a piece must hold to be worth a helper thread (~30 us to hand over; ~20 GFLOP/s here).
MIN_PIECE_FLOPS = 1 << 21


def _over_batch(piece, q, Tk):
    """piece(lo, hi) over the batch axis, split over threads (kernels/threads.py)."""
    per_item = 4 * q[0].size * Tk  # two matmuls of 2 * Tq * Tk * D per head
    threads.split(piece, len(q), -(-MIN_PIECE_FLOPS // per_item))


def _rows(a):
    a = np.ascontiguousarray(a)
    return a.reshape((-1,) + a.shape[-2:])
