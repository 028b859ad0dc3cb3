"""The fused CPU kernels themselves, compiled by Numba: loops over rows, float32.

Imported by ``cpu_kernels`` on first use (importing Numba takes a few tenths
of a second). Each kernel is a plain loop that states its formula element by
element; Numba compiles it to machine code once (``cache=True`` keeps the
result on disk next to this file), vectorizes the inner loops (AVX2: 8 lanes)
and releases the GIL (``nogil=True``), so ``rows.over_rows`` can run one call
per core on its own rows. Every array is C-contiguous float32, 2-d (rows, C)
or 1-d; row statistics (mean, rstd, logsumexp) are 1-d per row.

``_FAST`` lets LLVM reorder sums (so a row sum runs in 8 lanes at once) and
fuse a*b + c (one rounding instead of two); it does NOT assume away NaN or inf, so a NaN in a row still
comes out as NaN in the row's result, which is how training notices it.
"""
from __future__ import annotations

import math

import numba
import numpy as np
from llvmlite import ir
from numba import types
from numba.extending import intrinsic

F = np.float32
_FAST = {"reassoc", "contract"}            # not "arcp"/"nsz": with "reassoc" they cost exp_neg 60 ulp
_jit = numba.njit(nogil=True, cache=True, fastmath=_FAST, error_model="numpy", boundscheck=False)
# Layer norm without "contract": fma(g, w, -mean(g w)) keeps g*w unrounded, so with one feature
# dx = rstd (g w - mean(g w) - 0) comes out as 1e-6 instead of exactly 0.
_jit_no_fma = numba.njit(nogil=True, cache=True, fastmath={"reassoc"}, error_model="numpy", boundscheck=False)
_inline = numba.njit(inline="always", fastmath=_FAST, error_model="numpy")

LOG2E = F(1.4426950408889634)
LN2_HI, LN2_LO = F(0.693359375), F(-2.12194440e-4)        # ln 2 = LN2_HI + LN2_LO, LN2_HI exact in 9 bits
EXP_MIN = F(-87.3)                                         # e^v < 2^-126 (the smallest normal float) below
SQRT_2_OVER_PI = F(math.sqrt(2.0 / math.pi))
GELU_C = F(0.044715)


# ----------------------------------------------------------------------------- exp, vectorizable

@intrinsic
def _pow2(typingctx, n):
    """2^n for an integral float32 n in [-126, 127]: the float whose exponent bits are n + 127."""
    sig = types.float32(types.float32)

    def codegen(context, builder, signature, args):
        i32 = ir.IntType(32)
        e = builder.add(builder.fptosi(args[0], i32), ir.Constant(i32, 127))
        return builder.bitcast(builder.shl(e, ir.Constant(i32, 23)), ir.FloatType())
    return sig, codegen


@_inline
def exp_neg(v):
    """e^v for float32 v <= 0 (exactly 0 below -87.3, NaN stays NaN), within 2 ulp.

    The library exp is a function call, which keeps a loop from being
    vectorized; this is the classic Cody-Waite reduction instead:
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


@_inline
def one_plus_minus_tanh(u):
    """(1 + tanh(u), 1 - tanh(u)) without cancellation: with e = e^(-2|u|) <= 1 (so exp_neg applies),
    tanh(|u|) = (1 - e) / (1 + e), so the two are 2 / (1 + e) and 2e / (1 + e), in the order of u's sign."""
    e = exp_neg(F(-2.0) * abs(u))
    big = F(2.0) / (F(1.0) + e)
    small = e * big
    if u >= F(0.0):
        return big, small
    return small, big


@_jit
def exp_neg_array(v, out):
    """out = e^v elementwise, v <= 0 (the unit under test for ``exp_neg``)."""
    for i in range(v.size):
        out[i] = exp_neg(v[i])


# ----------------------------------------------------------------------------- GELU

@_jit
def gelu_forward(x, y):
    """y = x/2 (1 + tanh(u)),  u = sqrt(2/pi) (x + 0.044715 x^3); x, y 1-d."""
    for i in range(x.size):
        a = x[i]
        tp, _ = one_plus_minus_tanh(SQRT_2_OVER_PI * (a + GELU_C * a * a * a))
        y[i] = F(0.5) * a * tp


@_jit
def gelu_backward(x, g, dx):
    """dx = g [ (1 + t)/2 + x/2 (1 - t^2) du ] = g (1 + t)/2 (1 + x (1 - t) du),
    du = sqrt(2/pi) (1 + 3 * 0.044715 x^2)."""
    for i in range(x.size):
        a = x[i]
        tp, tm = one_plus_minus_tanh(SQRT_2_OVER_PI * (a + GELU_C * a * a * a))
        du = SQRT_2_OVER_PI * (F(1.0) + F(3.0) * GELU_C * a * a)
        dx[i] = g[i] * F(0.5) * tp * (F(1.0) + a * tm * du)


# ----------------------------------------------------------------------------- layer norm

@_jit_no_fma
def layer_norm_forward(x, w, b, eps, y, mean, rstd):
    """Per row:  mean = sum(x)/C,  rstd = 1/sqrt(sum((x - mean)^2)/C + eps),
    y = (x - mean) * rstd * w + b.  Two reads of the row (it stays in cache) and one write."""
    n, c = x.shape
    for i in range(n):
        s = F(0.0)
        for j in range(c):
            s += x[i, j]
        mu = s / F(c)
        ss = F(0.0)
        for j in range(c):
            d = x[i, j] - mu
            ss += d * d
        r = F(1.0) / math.sqrt(ss / F(c) + eps)
        for j in range(c):
            y[i, j] = (x[i, j] - mu) * r * w[j] + b[j]
        mean[i] = mu
        rstd[i] = r


@_jit_no_fma
def layer_norm_backward(g, x, mean, rstd, w, dx, dw, db):
    """Per row, with xhat = (x - mean) rstd recomputed and gxhat = g w:
        dx = rstd (gxhat - mean(gxhat) - xhat mean(gxhat xhat));
    and ADDS this block's sum over rows of g xhat into dw and of g into db."""
    n, c = x.shape
    for i in range(n):
        mu, r = mean[i], rstd[i]
        s1 = F(0.0)
        s2 = F(0.0)
        for j in range(c):
            xh = (x[i, j] - mu) * r
            gw = g[i, j] * w[j]
            s1 += gw
            s2 += gw * xh
            dw[j] += g[i, j] * xh
            db[j] += g[i, j]
        s1 /= F(c)
        s2 /= F(c)
        for j in range(c):
            xh = (x[i, j] - mu) * r
            dx[i, j] = r * (g[i, j] * w[j] - s1 - xh * s2)


# ----------------------------------------------------------------------------- softmax rows

@_inline
def _row_max(z, i, c):
    m = F(-np.inf)
    for j in range(c):
        m = max(m, z[i, j])
    return m


@_jit
def cross_entropy_forward(z, t, valid, eps, loss, mx, log_s_out):
    """Per row n of logits z (N, C), target t_n, all relative to the row max m (exact at +-1e4):
        lse_n = m + log S,   S = sum_c e^(z_c - m),
        loss_n = log S - (1 - eps) (z_{t_n} - m) - eps mean_c(z_c - m)
               (= -(1 - eps) log p_t - eps/C sum_c log p_c),
    0 where ``valid`` is False. m and log S are kept for the backward."""
    n, c = z.shape
    for i in range(n):
        m = _row_max(z, i, c)
        s = F(0.0)
        zsum = F(0.0)
        for j in range(c):
            s += exp_neg(z[i, j] - m)
            zsum += z[i, j] - m
        log_s = F(math.log(s))
        if m != m or s != s:                                 # a NaN anywhere in the row: say so
            log_s = F(np.nan)
        mx[i] = m
        log_s_out[i] = log_s
        if valid[i]:
            loss[i] = log_s - (F(1.0) - eps) * (z[i, t[i]] - m) - eps * zsum / F(c)
        else:
            loss[i] = F(0.0)


@_jit
def cross_entropy_backward(z, t, mx, log_s, w, eps, dz):
    """dz_n = w_n (p_n - (1 - eps) onehot(t_n) - eps / C), p_n = e^((z_n - m) - log S) recomputed."""
    n, c = z.shape
    for i in range(n):
        wi = w[i]
        m, ls = mx[i], log_s[i]
        off = eps / F(c)
        for j in range(c):
            dz[i, j] = wi * (exp_neg((z[i, j] - m) - ls) - off)
        if wi != F(0.0):
            dz[i, t[i]] -= wi * (F(1.0) - eps)


@_jit
def causal_softmax_(s, tq, offset):
    """In place, rows of attention scores s (R, Tk), row i being query (i mod tq): keys j with
    j <= (i mod tq) + offset are allowed (offset = Tk - Tq with a KV cache), the rest get weight 0;
    allowed ones get softmax over the allowed. A row with no allowed key is all 0."""
    n, c = s.shape
    for i in range(n):
        last = min(i % tq + offset, c - 1)                   # the last key this query sees
        m = F(-np.inf)
        for j in range(last + 1):
            m = max(m, s[i, j])
        d = F(0.0)
        for j in range(last + 1):
            e = exp_neg(s[i, j] - m)
            s[i, j] = e
            d += e
        inv = F(1.0) / d if d > F(0.0) else F(0.0)
        for j in range(last + 1):
            s[i, j] *= inv
        for j in range(max(last + 1, 0), c):
            s[i, j] = F(0.0)


@_jit
def softmax_(s):
    """In place, rows of s (R, C): s = e^(s - max) / sum e^(s - max); a row of -inf becomes 0."""
    n, c = s.shape
    for i in range(n):
        m = _row_max(s, i, c)
        if m == F(-np.inf):
            m = F(0.0)
        d = F(0.0)
        for j in range(c):
            e = exp_neg(s[i, j] - m)
            s[i, j] = e
            d += e
        inv = F(1.0) / d if d > F(0.0) else F(0.0)
        for j in range(c):
            s[i, j] *= inv


@_jit
def softmax_backward_(dp, p):
    """In place, rows: dp = p (dp - sum(dp p)), the gradient of the scores from that of the weights."""
    n, c = p.shape
    for i in range(n):
        s = F(0.0)
        for j in range(c):
            s += dp[i, j] * p[i, j]
        for j in range(c):
            dp[i, j] = p[i, j] * (dp[i, j] - s)


# ----------------------------------------------------------------------------- Adam(W)

# No fastmath here: every product and sum is rounded as in the NumPy reference (optim/adam.py),
# so the kernel and the reference give bit-identical weights and resume stays exact either way.
_jit_exact = numba.njit(nogil=True, cache=True, error_model="numpy", boundscheck=False)


@_jit_exact
def adam_update_(p, g, m, v, decay, wd, b1, c1, b2, c2, sqrt_bias2, eps, step):
    """In place over flat float32 buffers, in the reference's order of operations:
        p <- p * decay                       (AdamW: decay = 1 - lr λ; else 1)
        g' = p λ + g                         (Adam with weight decay: wd = λ; else 0)
        m <- m β1 + g' (1 - β1),   v <- v β2 + g'^2 (1 - β2)
        p <- p + m / (sqrt(v) / sqrt(1 - β2^t) + ε) * step,   step = -lr / (1 - β1^t)."""
    for i in range(p.size):
        pi = p[i]
        if decay != F(1.0):
            pi = pi * decay
        gi = g[i]
        if wd != F(0.0):
            gi = pi * wd + gi
        mi = m[i] * b1 + gi * c1
        vi = v[i] * b2 + gi * gi * c2
        m[i] = mi
        v[i] = vi
        p[i] = pi + mi / (math.sqrt(vi) / sqrt_bias2 + eps) * step
