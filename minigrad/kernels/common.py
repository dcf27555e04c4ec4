"""Shared Numba helpers: the jit settings every kernel uses and a vectorisable exp.

Why a hand-written exp: Numba (without Intel SVML) turns np.exp into one libm
call per element, which cannot be vectorised and costs ~5 ns; softmax and
attention are dominated by it. `exp_row` below is plain arithmetic LLVM turns
into AVX2 code (~0.5 ns/element), accurate to a few ulp in float32 and float64.
`exp_le0(x)` is the one kernels inline into their own loops: in x's precision,
float32 at 16 lanes per AVX-512 instruction (~0.25 ns/element).
"""
import math

import numpy as np
from llvmlite import ir
from numba import njit, types
from numba.extending import intrinsic, overload

# Fast-math flags that only reorder or fuse arithmetic (sums may change in the last
# bits). Deliberately NOT 'nnan'/'ninf': masked scores are -inf and must stay so.
FASTMATH = {"reassoc", "contract", "nsz", "arcp"}
# exp_row may only fuse multiply-adds: reassociation would undo its exact ln2 split.
EXP_FASTMATH = {"contract"}

# Options of the serial elementwise kernels: only FMA contraction (results stay within a few
# ulp of the plain arithmetic), NumPy's error model, without which every division gets a
# Python zero check that keeps LLVM from vectorising the loop, and nogil so that
# kernels/threads.py can run pieces of one call on several threads at once.
JIT = dict(cache=True, nogil=True, fastmath={"contract"}, error_model="numpy")

LN2 = math.log(2.0)


def _exp_constants(dtype, ln2_hi, ln2_lo, n_min, n_max):
    # [log2(e), ln2_hi, ln2_lo, x_min, x_max, 0.5, c0 .. c12] with c_k = 1/k!, all in `dtype`
    # (constants must carry the dtype: a Python float would upcast float32 math to float64).
    taylor = [1.0 / math.factorial(k) for k in range(13)]
    return np.array([1.0 / LN2, ln2_hi, ln2_lo, n_min * LN2, n_max * LN2, 0.5] + taylor, dtype=dtype)


# ln2 split so that n * ln2_hi is exact (Cody-Waite); exponents clamped to the normal range.
EXP_CONSTANTS = {
    np.dtype(np.float32): _exp_constants(np.float32, 0.693359375, -2.12194440e-4, -127, 127),
    np.dtype(np.float64): _exp_constants(np.float64, 6.93147180369123816490e-01,
                                         1.90821492927058770002e-10, -1023, 1023),
}
# exp of a non-positive float64 for the serial kernels, inlined so the caller's loop stays
# one vectorisable loop (exp_row is a call per row, slow on short rows): exp(x) = exp(r)^1024,
# r = x / 1024 in [-0.04, 0] by Taylor (degree 7, error ~1e-16), then ten squarings (relative
# error ~2e-13). x is clamped at -40: exp(-40) = 4e-18, far below float32's resolution and
# below float64's test tolerances relative to a softmax's largest term (1).
EXP_NEG_MIN = -40.0


@njit(inline="always", cache=True, fastmath={"contract"}, error_model="numpy")
def exp_neg(x):
    r = max(x, EXP_NEG_MIN) * (1.0 / 1024.0)
    p = 1.0 / 5040.0
    p = p * r + 1.0 / 720.0
    p = p * r + 1.0 / 120.0
    p = p * r + 1.0 / 24.0
    p = p * r + 1.0 / 6.0
    p = p * r + 0.5
    p = p * r + 1.0
    p = p * r + 1.0
    p = p * p
    p = p * p
    p = p * p
    p = p * p
    p = p * p
    p = p * p
    p = p * p
    p = p * p
    p = p * p
    return p * p


# Exponent bias and mantissa width by float size: 2^n has the bit pattern (n + bias) << shift.
_INT_FOR_FLOAT = {np.dtype(np.float32): np.int32, np.dtype(np.float64): np.int64}


def exp_scratch(dtype, *shape):
    """Integer scratch (same item size as `dtype`) for exp_row's 2^n bit patterns."""
    return np.empty(shape, dtype=_INT_FOR_FLOAT[np.dtype(dtype)])


# exp(x) = 2^n * exp(r),  n = round(x / ln2),  r = x - n ln2 in [-ln2/2, ln2/2],  exp(r) by Taylor (degree 12)
@njit(cache=True, fastmath=EXP_FASTMATH)   # not inlined: it keeps its own flags
def exp_row(row, bits, k):
    """In place row[:] = exp(row[:]); bits: int scratch of row's item size; k: EXP_CONSTANTS[dtype].

    Inputs below ~-88 (float32) / -709 (float64) give 0; above the mirror bound they saturate
    at 2^127 / 2^1023 (callers only pass max-shifted values <= 0). NaN stays NaN.
    """
    log2e, ln2_hi, ln2_lo, x_min, x_max = k[0], k[1], k[2], k[3], k[4]
    half, c0, c1, c2, c3, c4, c5 = k[5], k[6], k[7], k[8], k[9], k[10], k[11]
    c6, c7, c8, c9, c10, c11, c12 = k[12], k[13], k[14], k[15], k[16], k[17], k[18]
    if bits.itemsize == 4:
        bias, shift = 127, 23
    else:
        bias, shift = 1023, 52
    for j in range(row.size):
        x = row[j]
        x = x_min if x < x_min else x          # written so that NaN passes through
        x = x_max if x > x_max else x
        n = np.floor(x * log2e + half)
        r = (x - n * ln2_hi) - n * ln2_lo
        p = c12
        p = p * r + c11
        p = p * r + c10
        p = p * r + c9
        p = p * r + c8
        p = p * r + c7
        p = p * r + c6
        p = p * r + c5
        p = p * r + c4
        p = p * r + c3
        p = p * r + c2
        p = p * r + c1
        p = p * r + c0
        row[j] = p
        bits[j] = (int(n) + bias) << shift    # n == -bias gives bits 0, i.e. exp -> 0
    scale = bits[:row.size].view(row.dtype)
    for j in range(row.size):
        row[j] *= scale[j]



# ---- exp of a non-positive number, inlined, in the argument's own precision ------------------

@intrinsic
def _float32_from_bits(typingctx, bits):
    """The float32 whose bit pattern is the int32 `bits` (a register move, vectorisable)."""
    if bits != types.int32:
        return None

    def codegen(context, builder, signature, args):
        return builder.bitcast(args[0], ir.FloatType())
    return types.float32(types.int32), codegen


_F32 = np.float32
_LOG2E32, _LN2_HI32, _LN2_LO32 = _F32(1.0 / LN2), _F32(0.693359375), _F32(-2.12194440e-4)
_EXP32_MIN = _F32(-87.0)   # exp(-87) = 1.6e-38: the smallest normal float32 is 1.2e-38


# exp(x) = 2^n exp(r),  n = round(x / ln2),  r = x - n ln2 in [-ln2/2, ln2/2] (Cody-Waite: n ln2_hi
# is exact),  exp(r) by Taylor to degree 7 (error < 1e-8),  2^n built from its bit pattern.
@njit(inline="always", cache=True, fastmath={"contract"}, error_model="numpy")
def exp32(x):
    """exp of a float32 x <= 0, to ~3 ulp; inputs below -87 give exp(-87)."""
    x = max(x, _EXP32_MIN)
    n = np.floor(x * _LOG2E32 + _F32(0.5))
    r = (x - n * _LN2_HI32) - n * _LN2_LO32
    p = _F32(1.0 / 5040.0)
    p = p * r + _F32(1.0 / 720.0)
    p = p * r + _F32(1.0 / 120.0)
    p = p * r + _F32(1.0 / 24.0)
    p = p * r + _F32(1.0 / 6.0)
    p = p * r + _F32(0.5)
    p = p * r + _F32(1.0)
    p = p * r + _F32(1.0)
    return p * _float32_from_bits(np.int32((np.int32(n) + np.int32(127)) << np.int32(23)))


def exp_le0(x):
    """exp(x) for x <= 0 inside a Numba kernel, in x's precision: exp32 for float32, exp_neg
    (float64 throughout) for anything else. Inlined, so the caller's loop stays vectorisable."""
    raise NotImplementedError("exp_le0 runs inside Numba kernels only")


@overload(exp_le0, inline="always")
def _exp_le0(x):
    if x == types.float32:
        return lambda x: exp32(x)
    return lambda x: exp_neg(x)


@njit(inline="always", cache=True, error_model="numpy")
def row_max(row, n):
    """max(row[:n]), n >= 1, by eight independent running maxima: LLVM does not vectorise a
    float max reduction, and one chain of dependent compares runs 3.4x slower."""
    a0 = a1 = a2 = a3 = a4 = a5 = a6 = a7 = row[0]
    n8 = n - n % 8
    for j in range(0, n8, 8):
        a0, a1, a2, a3 = max(a0, row[j]), max(a1, row[j + 1]), max(a2, row[j + 2]), max(a3, row[j + 3])
        a4, a5, a6, a7 = max(a4, row[j + 4]), max(a5, row[j + 5]), max(a6, row[j + 6]), max(a7, row[j + 7])
    for j in range(n8, n):
        a0 = max(a0, row[j])
    return max(max(max(a0, a1), max(a2, a3)), max(max(a4, a5), max(a6, a7)))
