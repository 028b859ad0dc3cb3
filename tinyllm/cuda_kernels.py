"""Fused CUDA kernels for the CuPy backend.

The NumPy code in ``functional/`` and ``optim/adam.py`` is the reference:
it says what each op computes, one array operation per line. On the GPU that
style costs one kernel launch and one full trip through memory per line, and
for the elementwise and row-wise ops of a transformer (GELU, layer norm,
softmax, cross-entropy, the attention softmax, AdamW) launches and memory
traffic are the whole cost. Each kernel here computes the same formula as its
reference in ONE pass: a thread per element (``ElementwiseKernel``), or a
thread block per row that reduces in shared memory (``RawModule``), in float32
or float64. ``tests/test_cuda_kernels.py`` checks every kernel against the
NumPy reference.

Row kernels (their CUDA C++ is ``cuda_rows.cu``): block ``r`` owns row ``r``
of a C-contiguous (rows, C) array; each thread keeps up to four of the row's
elements in registers, so the row is read once and written once, and
``block_sum`` / ``block_max`` combine the threads' partial results (warp
shuffles, then one value per warp in shared memory). Rows wider than
``MAX_ROW`` take the reference path. The wrappers make their inputs
C-contiguous.
"""
from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from . import backend

SQRT_2_OVER_PI = math.sqrt(2.0 / math.pi)
GELU_C = 0.044715

_cache: dict[str, Any] = {}

# No fused multiply-add contraction: a*b - c computed as one FMA rounds differently from the
# reference's two steps (LayerNorm's backward of one feature then gives 1e-6 instead of 0).
# These kernels are bound by memory traffic, so the FMAs would not buy speed.
_NO_FMA = ("--fmad=false",)


def supported(*arrays: Any) -> bool:
    """Whether the kernels can take these arrays: CuPy, float32 or float64."""
    return all(backend.is_cupy_array(a) and a.dtype.char in "fd" for a in arrays)


def _cp() -> Any:
    return backend._import_cupy()


def _cached(name: str, build: Any) -> Any:
    k = _cache.get(name)
    if k is None:
        k = _cache[name] = build(_cp())
    return k


# ----------------------------------------------------------------------------- GELU (elementwise)
# y = x/2 (1 + t), t = tanh(u), u = sqrt(2/pi) (x + 0.044715 x^3)
# dx = g [ (1 + t)/2 + x/2 (1 - t^2) du ],  du = sqrt(2/pi) (1 + 3 * 0.044715 x^2)

_GELU_U = f"T u = (T){SQRT_2_OVER_PI!r} * (x + (T){GELU_C!r} * x * x * x);"


def gelu_forward(x: Any) -> Any:
    k = _cached("gelu_fwd", lambda cp: cp.ElementwiseKernel(
        "T x", "T y", _GELU_U + "y = (T)0.5 * x * ((T)1 + tanh(u));", "tinyllm_gelu_fwd", options=_NO_FMA))
    return k(x)


def gelu_backward(x: Any, g: Any) -> Any:
    k = _cached("gelu_bwd", lambda cp: cp.ElementwiseKernel(
        "T x, T g", "T dx",
        _GELU_U + f"""T t = tanh(u);
        T du = (T){SQRT_2_OVER_PI!r} * ((T)1 + (T){3 * GELU_C!r} * x * x);
        dx = g * ((T)0.5 * ((T)1 + t) + (T)0.5 * x * ((T)1 - t * t) * du);""",
        "tinyllm_gelu_bwd", options=_NO_FMA))
    return k(x, g)


# ----------------------------------------------------------------------------- counter-based uniform numbers

_SPLITMIX = """unsigned long long z = key + (offset + (unsigned long long)i) * 0x9E3779B97F4A7C15ull;
        z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
        z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
        z ^= z >> 31;
        T u = sizeof(T) == 4 ? (T)(z >> 40) * (T)5.9604644775390625e-08
                             : (T)(z >> 11) * (T)1.1102230246251565e-16;"""


def uniform(shape: tuple, dtype: Any, key: int, offset: int) -> Any:
    """Value i (flat) is SplitMix64(key + (offset + i) * golden ratio), its top bits scaled to [0, 1)."""
    k = _cached("uniform", lambda cp: cp.ElementwiseKernel(
        "uint64 key, uint64 offset", "T out", _SPLITMIX + "out = u;", "tinyllm_uniform"))
    cp = _cp()
    return k(cp.uint64(key), cp.uint64(offset % (1 << 64)), cp.empty(shape, dtype=dtype))


def dropout(x: Any, p: float, key: int, offset: int) -> Any:
    """x * keep / (1 - p) with keep = (uniform number i of the stream at ``offset``) >= p.

    The mask is never stored: backward calls this again on the gradient with the
    same key and offset, which draws the same numbers (they are a hash of the
    position), so dx = g * keep / (1 - p) costs no memory for the mask.
    """
    k = _cached("dropout", lambda cp: cp.ElementwiseKernel(
        "T x, T p, T scale, uint64 key, uint64 offset", "T y",
        _SPLITMIX + "y = u >= p ? x * scale : (T)0;", "tinyllm_dropout", options=_NO_FMA))
    cp = _cp()
    t = x.dtype.type
    return k(x, t(p), t(1.0 / (1.0 - p)), cp.uint64(key), cp.uint64(offset % (1 << 64)))


# ----------------------------------------------------------------------------- row kernels (one block per row)

_ROW_SOURCE = Path(__file__).with_name("cuda_rows.cu")   # the CUDA C++ of the row kernels

_ROW_KERNELS = ("ln_fwd", "ln_bwd", "softmax_rows", "softmax_bwd_rows", "xent_fwd")


def _row_kernel(name: str, dtype: Any) -> Any:
    key = f"{name}<{'float' if dtype.char == 'f' else 'double'}>"
    fn = _cache.get(key)
    if fn is None:
        def build(cp: Any) -> Any:
            names = [f"{k}<{t}>" for k in _ROW_KERNELS for t in ("float", "double")]
            return cp.RawModule(code=_ROW_SOURCE.read_text(), options=("-std=c++14",) + _NO_FMA,
                                name_expressions=names)
        fn = _cache[key] = _cached("rows", build).get_function(key)
    return fn


MAX_ROW = 4 * 1024  # KC * the most threads of a block: wider rows take the reference path


def fits(a: Any) -> bool:
    """Whether the row kernels can take ``a``: :func:`supported`, rows of at most MAX_ROW."""
    return supported(a) and a.ndim >= 1 and a.shape[-1] <= MAX_ROW


def _threads(c: int) -> int:
    """Threads per row block: a power of two (warp shuffles) with KC * threads >= c."""
    return min(1024, max(32, 1 << (max(c, 1) // 4 + (c % 4 > 0) - 1).bit_length()))


def _launch(name: str, dtype: Any, rows: int, c: int, args: tuple) -> None:
    if rows:
        _row_kernel(name, dtype)((rows,), (_threads(c),), args)


# ----------------------------------------------------------------------------- layer norm

def layer_norm_forward(x: Any, w: Any, b: Any, eps: float) -> tuple[Any, Any, Any]:
    """(y, xhat, rstd) of layer norm over the last axis; ``w``/``b`` may be None."""
    cp = _cp()
    x = cp.ascontiguousarray(x)
    c = x.shape[-1]
    rows = x.size // c if c else 0
    y, xhat = cp.empty_like(x), cp.empty_like(x)
    rstd = cp.empty(x.shape[:-1] + (1,), dtype=x.dtype)
    args = (x, _ptr(w, x.dtype), _ptr(b, x.dtype), y, xhat, rstd, cp.int32(c), x.dtype.type(eps))
    _launch("ln_fwd", x.dtype, rows, c, args)
    return y, xhat, rstd


def layer_norm_backward_x(g: Any, w: Any, xhat: Any, rstd: Any) -> Any:
    """dx of layer norm: (g w - mean(g w) - xhat mean(g w xhat)) * rstd, per row."""
    cp = _cp()
    g = cp.ascontiguousarray(g)
    c = g.shape[-1]
    dx = cp.empty_like(g)
    _launch("ln_bwd", g.dtype, g.size // c if c else 0, c, (g, _ptr(w, g.dtype), xhat, rstd, dx, cp.int32(c)))
    return dx


def column_sum(a: Any) -> Any:
    """Sum over every axis but the last, (..., C) -> (C,): a bias or LayerNorm gradient.

    As ``ones(N) @ a``, one matrix-vector product: cuBLAS reads the (N, C) array
    once, coalesced, where a reduction along axis 0 (``a.sum(axis=0)``) took
    0.35 ms for a (16384, 384) gradient, 30x longer, and ran 38 times a step.
    """
    c = a.shape[-1]
    a2 = a.reshape(-1, c)
    return _ones(a2.shape[0], a.dtype) @ a2


def _ones(n: int, dtype: Any) -> Any:
    key = f"ones{n}{dtype.char}"
    ones = _cache.get(key)
    if ones is None:
        if len(_cache) > 64:
            for k in [k for k in _cache if k.startswith("ones")]:
                del _cache[k]
        ones = _cache[key] = _cp().ones(n, dtype=dtype)
    return ones


def _ptr(a: Any, dtype: Any) -> Any:
    """A kernel argument for an optional array: the array, or a null pointer."""
    if a is None:
        return _cp().uint64(0)
    if a.dtype != dtype:
        raise TypeError(f"dtype {a.dtype} does not match {dtype}")
    return _cp().ascontiguousarray(a)


# ----------------------------------------------------------------------------- softmax

def softmax_lastaxis(x: Any) -> Any:
    """softmax over the last axis, in a new array."""
    cp = _cp()
    y = cp.array(x, order="C", copy=True)
    c = y.shape[-1]
    _launch("softmax_rows", y.dtype, y.size // c if c else 0, c,
            (y, cp.int32(c), cp.int32(1), cp.int32(0), y.dtype.type(1)))
    return y


def softmax_lastaxis_backward(g: Any, y: Any) -> Any:
    """y * (g - sum(g * y)) over the last axis, in a new array."""
    cp = _cp()
    dx = cp.array(g, order="C", copy=True)
    c = dx.shape[-1]
    _launch("softmax_bwd_rows", dx.dtype, dx.size // c if c else 0, c,
            (dx, cp.ascontiguousarray(y), cp.int32(c), dx.dtype.type(1)))
    return dx


def attention_softmax_(s: Any, causal: bool, scale: float) -> Any:
    """In place: P = softmax(S * scale) over keys for scores S = Q K^T (..., Tq, Tk), causal mask included."""
    cp = _cp()
    tq, tk = s.shape[-2], s.shape[-1]
    _launch("softmax_rows", s.dtype, s.size // tk if tk else 0, tk,
            (s, cp.int32(tk), cp.int32(tq), cp.int32(causal), s.dtype.type(scale)))
    return s


def attention_softmax_backward_(dp: Any, p: Any, scale: float) -> Any:
    """In place in dp: d(Q K^T) = scale * P * (dP - rowsum(dP * P)) (the scale of the forward folded in)."""
    c = dp.shape[-1]
    _launch("softmax_bwd_rows", dp.dtype, dp.size // c if c else 0, c, (dp, p, _cp().int32(c), dp.dtype.type(scale)))
    return dp


# ----------------------------------------------------------------------------- cross-entropy

def cross_entropy_forward(z: Any, t: Any, ignore_index: int, eps: float) -> tuple[Any, Any, Any]:
    """Per-row (loss, max, log-sum-exp after the max) of logits z (N, C) and targets t (N,)."""
    cp = _cp()
    z = cp.ascontiguousarray(z)
    t = cp.ascontiguousarray(t, dtype=cp.int64)
    n, c = z.shape
    loss, mx, ls = (cp.empty(n, dtype=z.dtype) for _ in range(3))
    _launch("xent_fwd", z.dtype, n, c, (z, t, loss, mx, ls, cp.int32(c), cp.int64(ignore_index), z.dtype.type(eps)))
    return loss, mx, ls


def cross_entropy_backward(z: Any, t: Any, mx: Any, ls: Any, w: Any, eps: float) -> Any:
    """dz[n, c] = w[n] (p[n, c] - (1 - eps) [c == t[n]] - eps / C),  p = exp((z - max) - ls);
    w[n] = 0 on ignored rows."""
    k = _cached("xent_bwd", lambda cp: cp.ElementwiseKernel(
        "T z, raw T mx, raw T ls, raw int64 t, raw T w, int32 C, T eps", "T dz",
        """long long n = i / C, c = i % C;
        T p = exp((z - mx[n]) - ls[n]) - eps / (T)C - (c == t[n] ? (T)1 - eps : (T)0);
        dz = w[n] * p;""", "tinyllm_xent_bwd", options=_NO_FMA))
    cp = _cp()
    c = z.shape[1]
    return k(cp.ascontiguousarray(z), mx, ls, cp.ascontiguousarray(t, dtype=cp.int64), w, cp.int32(c),
             z.dtype.type(eps))


# ----------------------------------------------------------------------------- Adam / AdamW over a flat buffer

def adam_update_(p: Any, g: Any, m: Any, v: Any, *, lr: float, b1: float, b2: float, eps: float,
                 wd: float, decoupled: bool, step: int) -> None:
    """One Adam(W) step on flat buffers, in place, one pass over memory: the formulas of
    ``optim.adam`` with its operations in the same order, so results round alike."""
    k = _cached("adam", lambda cp: cp.ElementwiseKernel(
        "T g, T b1, T b2, T c1, T c2, T eps, T wd, T decay, T step_size, T sqrt_bias2, bool coupled",
        "T p, T m, T v",
        """T gg = coupled ? p * wd + g : g;
        p = p * decay;
        m = m * b1 + gg * c1;
        v = v * b2 + (gg * gg) * c2;
        p = p + (m / (sqrt(v) / sqrt_bias2 + eps)) * step_size;""", "tinyllm_adam", options=_NO_FMA))
    t = p.dtype.type
    bias1, bias2 = 1.0 - b1 ** step, 1.0 - b2 ** step
    decay = 1.0 - lr * wd if decoupled else 1.0
    k(g, t(b1), t(b2), t(1.0 - b1), t(1.0 - b2), t(eps), t(wd), t(decay), t(-lr / bias1), t(math.sqrt(bias2)),
      not decoupled and wd != 0, p, m, v)
