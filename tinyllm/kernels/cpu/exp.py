"""A vectorizable float32 exp for the CPU kernels: :func:`exp_neg`, and tanh built on it.

The library exp is a function call, which keeps a loop from being
vectorized; these are inlined into each kernel's loop instead.
"""
from __future__ import annotations

import numpy as np
from llvmlite import ir
from numba import types
from numba.extending import intrinsic

from .jit import F, inline, jit

LOG2E = F(1.4426950408889634)
LN2_HI, LN2_LO = F(0.693359375), F(-2.12194440e-4)        # ln 2 = LN2_HI + LN2_LO, LN2_HI exact in 9 bits
EXP_MIN = F(-87.3)                                         # e^v < 2^-126 (the smallest normal float) below


@intrinsic
def _pow2(typingctx, n):
    """2^n for an integral float32 n in [-126, 127]: the float whose exponent bits are n + 127."""
    sig = types.float32(types.float32)

    def codegen(context, builder, signature, args):
        i32 = ir.IntType(32)
        e = builder.add(builder.fptosi(args[0], i32), ir.Constant(i32, 127))
        return builder.bitcast(builder.shl(e, ir.Constant(i32, 23)), ir.FloatType())
    return sig, codegen


@inline
def exp_neg(v):
    """e^v for float32 v <= 0 (exactly 0 below -87.3, NaN stays NaN), within 2 ulp.

    The classic Cody-Waite reduction:
        v = n ln2 + r,  n = round(v / ln2),  |r| <= ln2 / 2,
        e^v = 2^n e^r,  e^r = 1 + r + r^2/2 + ... (a degree-7 minimax polynomial, Cephes' expf),
    with 2^n built directly from its exponent bits (``_pow2``). ln2 is split
    in two (LN2_HI has few bits, so n * LN2_HI is exact) to keep r accurate.
    """
    if v < EXP_MIN:
        return F(0.0)
    n = F(np.int32(v * LOG2E - F(0.5)))                   # round(v / ln2): v <= 0, so truncation rounds up
    r = (v - n * LN2_HI) - n * LN2_LO
    p = F(1.9875691500e-4)
    p = p * r + F(1.3981999507e-3)
    p = p * r + F(8.3334519073e-3)
    p = p * r + F(4.1665795894e-2)
    p = p * r + F(1.6666665459e-1)
    p = p * r + F(5.0000001201e-1)
    return (p * r * r + r + F(1.0)) * _pow2(n)


@inline
def one_plus_minus_tanh(u):
    """(1 + tanh(u), 1 - tanh(u)) without cancellation: with e = e^(-2|u|) <= 1 (so exp_neg applies),
    tanh(|u|) = (1 - e) / (1 + e), so the two are 2 / (1 + e) and 2e / (1 + e), in the order of u's sign."""
    e = exp_neg(F(-2.0) * abs(u))
    big = F(2.0) / (F(1.0) + e)
    small = e * big
    if u >= F(0.0):
        return big, small
    return small, big


@jit
def exp_neg_array(v, out):
    """out = e^v elementwise, v <= 0 (the unit under test for ``exp_neg``)."""
    for i in range(v.size):
        out[i] = exp_neg(v[i])
