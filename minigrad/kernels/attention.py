"""Causal multi-head attention, fused: scores, bottom-right causal mask, softmax, and both matmuls.

Shapes: q (B, H, Tq, D), k and v (B, H, Tk, D), Tq <= Tk. Query i sits at
absolute position Tk - Tq + i and attends keys j <= Tk - Tq + i.
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


# attention: P = softmax(mask(q k^T * scale));  out = P v;  lse = logsumexp(mask(q k^T * scale))
def attention_forward_numpy(q, k, v, scale):
    p, lse = _probs(q, k, scale)
    return np.matmul(p, v), lse


# attention': dv = P^T dO;  dP = dO v^T;  dS = P (dP - rowsum(dO * O));  dq = dS k s;  dk = dS^T q s
def attention_backward_numpy(dout, q, k, v, out, lse, scale):
    p, _ = _probs(q, k, scale, lse)
    dv = np.matmul(p.swapaxes(-1, -2), dout)
    dp = np.matmul(dout, v.swapaxes(-1, -2))
    ds = p * (dp - (dout * out).sum(axis=-1, keepdims=True))
    s = q.dtype.type(scale)
    dq = np.matmul(ds, k) * s
    dk = np.matmul(ds.swapaxes(-1, -2), q) * s
    return dq, dk, dv


# ---- Numba ---------------------------------------------------------------------------------
# One prange iteration per (batch, head); inside it, one query row at a time:
#   scores for the visible keys only (j <= Tk - Tq + i, so the mask costs nothing),
#   softmax with the vectorised exp, then the row of P times V, all in row-sized scratch.
# Nothing of size T x T is ever stored: backward recomputes P from q, k and the saved lse.
# Scores are dot products over contiguous D (vectorised with reassociation). dk and dv of a
# head are only touched by that head's thread, so no races.

from numba import njit, prange  # noqa: E402

from .common import EXP_CONSTANTS, FASTMATH, exp_row, exp_scratch, run_kernel  # noqa: E402


@njit(cache=True, fastmath=FASTMATH)
def _row_scores(qi, keys, n, scale, s):
    """s[:n] = scale * (qi . keys[j]) for keys j < n; each dot runs over contiguous D."""
    D = qi.size
    for j in range(n):
        acc = qi[0] * keys[j, 0]
        for d in range(1, D):
            acc += qi[d] * keys[j, d]
        s[j] = acc * scale


@njit(cache=True, parallel=True, fastmath=FASTMATH)
def _attn_fwd_kernel(q, k, v, scale, out, lse, s_buf, bits, kc):
    BH, Tq, D = q.shape
    Tk = k.shape[1]
    for bh in prange(BH):
        s = s_buf[bh]
        for i in range(Tq):
            n = Tk - Tq + i + 1                      # visible keys
            _row_scores(q[bh, i], k[bh], n, scale, s)
            m = s[0]
            for j in range(1, n):
                m = max(m, s[j])
            for j in range(n):
                s[j] -= m
            exp_row(s[:n], bits[bh], kc)
            total = 0.0
            for j in range(n):
                total += s[j]
            o = out[bh, i]
            for d in range(D):
                o[d] = 0
            for j in range(n):
                pj = s[j]
                for d in range(D):
                    o[d] += pj * v[bh, j, d]
            inv = q.dtype.type(1.0 / total)
            for d in range(D):
                o[d] *= inv
            lse[bh, i] = m + np.log(total)


@njit(cache=True, parallel=True, fastmath=FASTMATH)
def _attn_bwd_kernel(dout, q, k, v, out, lse, scale, dq, dk, dv, p_buf, dp_buf, bits, kc):
    BH, Tq, D = q.shape
    Tk = k.shape[1]
    for bh in prange(BH):
        p, dp = p_buf[bh], dp_buf[bh]
        for i in range(Tq):
            n = Tk - Tq + i + 1
            _row_scores(q[bh, i], k[bh], n, scale, p)           # p = scores
            for j in range(n):
                p[j] -= lse[bh, i]
            exp_row(p[:n], bits[bh], kc)                      # p = softmax row
            _row_scores(dout[bh, i], v[bh], n, q.dtype.type(1), dp)   # dp = dO_i . v_j
            di = 0.0
            for d in range(D):
                di += dout[bh, i, d] * out[bh, i, d]
            di_ = q.dtype.type(di)
            dqi = dq[bh, i]
            for d in range(D):
                dqi[d] = 0
            for j in range(n):
                pj = p[j]
                dsj = pj * (dp[j] - di_) * scale            # dS_j, already times scale
                for d in range(D):
                    dv[bh, j, d] += pj * dout[bh, i, d]
                    dk[bh, j, d] += dsj * q[bh, i, d]
                    dqi[d] += dsj * k[bh, j, d]


def _heads(a):
    a = np.ascontiguousarray(a)
    return a.reshape((-1,) + a.shape[-2:])


def attention_forward_numba(q, k, v, scale):
    B_H, Tq, D = q.shape[:-2], q.shape[-2], q.shape[-1]
    Tk = k.shape[-2]
    if q.size == 0 or Tk == 0:
        return attention_forward_numpy(q, k, v, scale)
    q3, k3, v3 = _heads(q), _heads(k), _heads(v)
    BH = q3.shape[0]
    out = np.empty_like(q3)
    lse = np.empty((BH, Tq), q.dtype)
    run_kernel(_attn_fwd_kernel, q3.size * Tk, q3, k3, v3, q.dtype.type(scale), out, lse, np.empty((BH, Tk), q.dtype),
                     exp_scratch(q.dtype, BH, Tk), EXP_CONSTANTS[q.dtype])
    return out.reshape(q.shape), lse.reshape(B_H + (Tq,))


def attention_backward_numba(dout, q, k, v, out, lse, scale):
    Tq, Tk = q.shape[-2], k.shape[-2]
    if q.size == 0 or Tk == 0:
        return attention_backward_numpy(dout, q, k, v, out, lse, scale)
    q3, k3, v3, do3, o3 = _heads(q), _heads(k), _heads(v), _heads(dout), _heads(out)
    BH = q3.shape[0]
    lse2 = np.ascontiguousarray(lse).reshape(BH, Tq)
    dq = np.empty_like(q3)
    dk = np.zeros_like(k3)
    dv = np.zeros_like(v3)
    run_kernel(_attn_bwd_kernel, q3.size * Tk, do3, q3, k3, v3, o3, lse2, q.dtype.type(scale), dq, dk, dv,
                     np.empty((BH, Tk), q.dtype), np.empty((BH, Tk), q.dtype),
                     exp_scratch(q.dtype, BH, Tk), EXP_CONSTANTS[q.dtype])
    return dq.reshape(q.shape), dk.reshape(k.shape), dv.reshape(v.shape)
