"""The compiled CPU kernels (``tinyllm.kernels.cpu``) against the reference formulas.

Each test runs the same float32 op forward and backward twice from the same
inputs: once with ``TINYLLM_CPU_KERNELS=0`` (the reference classes in
``functional/``) and once with the kernels on, and compares the output and
every gradient. Skipped where Numba is not installed.
"""
from __future__ import annotations

import contextlib
import importlib
import os
from typing import Callable, Iterator

import numpy as np
import pytest
from hypothesis import given, strategies as st

import tinyllm
from tinyllm import nn
from tinyllm import functional as F
from tinyllm.kernels import cpu as cpu_kernels
from tinyllm.kernels.cpu import threads

attention_module = importlib.import_module("tinyllm.kernels.cpu.attention")

pytestmark = [
    pytest.mark.skipif(not cpu_kernels.enabled(), reason="needs Numba (the CPU kernels are off)"),
    pytest.mark.skipif(tinyllm.get_backend() != "numpy", reason="CPU kernels: NumPy backend only"),
]

TOL = dict(rtol=2e-5, atol=2e-6)


@contextlib.contextmanager
def kernels_on(on: bool) -> Iterator[None]:
    """TINYLLM_CPU_KERNELS=1 or 0 inside, as it was after (a context manager: hypothesis runs
    a test many times within one function-scoped fixture)."""
    old = os.environ.get("TINYLLM_CPU_KERNELS")
    os.environ["TINYLLM_CPU_KERNELS"] = "1" if on else "0"
    try:
        yield
    finally:
        if old is None:
            del os.environ["TINYLLM_CPU_KERNELS"]
        else:
            os.environ["TINYLLM_CPU_KERNELS"] = old


def run(fn: Callable[..., tinyllm.Tensor], arrays: list, g: np.ndarray, kernels: bool) -> list:
    """fn's output and the gradients of its inputs, with the kernels on or off."""
    with kernels_on(kernels):
        xs = [tinyllm.tensor(a, requires_grad=True) for a in arrays]
        y = fn(*xs)
        y.backward(g)
        return [y.numpy(), *[x.grad for x in xs]]


def same_both_ways(fn: Callable[..., tinyllm.Tensor], arrays: list, tol: dict = TOL, seed: int = 0) -> list:
    arrays = [np.asarray(a, dtype=np.float32) for a in arrays]
    shape = fn(*[tinyllm.tensor(a) for a in arrays]).shape
    g = np.random.default_rng(seed).standard_normal(shape).astype(np.float32)
    ref = run(fn, arrays, g, False)
    fast = run(fn, arrays, g, True)
    for i, (a, b) in enumerate(zip(fast, ref)):
        assert a.dtype == np.float32, f"output {i} is {a.dtype}"
        np.testing.assert_allclose(a, b, **tol, err_msg=f"output {i} (0 = forward, then gradients)")
    return fast


def normal(shape: tuple, seed: int, scale: float = 1.0) -> np.ndarray:
    return (np.random.default_rng(seed).standard_normal(shape) * scale).astype(np.float32)


# ----------------------------------------------------------------------------- exp

def test_exp_neg_is_within_2_ulp_and_exactly_zero_or_nan_where_it_should_be() -> None:
    from tinyllm.kernels.cpu.exp import exp_neg_array
    v = np.concatenate([-np.geomspace(1e-8, 87.3, 200_000), np.linspace(-87.3, 0, 100_001)]).astype(np.float32)
    out = np.empty_like(v)
    exp_neg_array(v, out)
    ref = np.exp(v.astype(np.float64))
    ulp = np.spacing(ref.astype(np.float32)).astype(np.float64)
    assert np.max(np.abs(out - ref) / ulp) <= 2.0
    edge = np.array([0.0, -0.0, -87.4, -100.0, -1e30, -np.inf, np.nan], dtype=np.float32)
    out = np.empty_like(edge)
    exp_neg_array(edge, out)
    np.testing.assert_array_equal(out[:2], [1.0, 1.0])
    np.testing.assert_array_equal(out[2:6], 0.0)                      # below e^-87.3: 0 (no denormals)
    assert np.isnan(out[6])


# ----------------------------------------------------------------------------- GELU, layer norm, Linear

@given(n=st.integers(1, 70_000), scale=st.sampled_from([0.1, 3.0, 30.0]), seed=st.integers(0, 99))
def test_gelu(n: int, scale: float, seed: int) -> None:
    # atol: for x << 0 the reference's 1 + tanh(u) cancels (absolute errors near 1e-6);
    # the kernel computes it as 2e/(1+e) with e = e^(-2|u|), so the two differ by that much
    same_both_ways(F.gelu, [normal((n,), seed, scale)], dict(rtol=2e-5, atol=1e-5))


@given(rows_=st.integers(1, 300), c=st.integers(1, 400), affine=st.sampled_from(["none", "w", "wb"]),
       seed=st.integers(0, 99))
def test_layer_norm(rows_: int, c: int, affine: str, seed: int) -> None:
    x = normal((rows_, c), seed, 2.0) + 5.0                           # an offset: the mean matters
    params = [normal((c,), seed + 1), normal((c,), seed + 2)][:{"none": 0, "w": 1, "wb": 2}[affine]]
    tol = dict(rtol=1e-4, atol=1e-4 if c > 1 else 1e-6)              # dw sums over up to 300 rows
    same_both_ways(lambda x, *wb: F.layer_norm(x, *wb), [x, *params], tol)


@given(rows_=st.integers(1, 300), n_in=st.integers(1, 70), n_out=st.integers(1, 70), bias=st.booleans(),
       seed=st.integers(0, 99))
def test_linear(rows_: int, n_in: int, n_out: int, bias: bool, seed: int) -> None:
    x, w = normal((rows_, 1, n_in), seed), normal((n_out, n_in), seed + 1)     # a 3-d input: rows of all but the last axis
    params = [normal((n_out,), seed + 2)] if bias else []
    out = same_both_ways(F.linear, [x, w, *params], dict(rtol=1e-5, atol=1e-5))
    if bias:                                        # the bias add and its sum add in NumPy's order: the same floats
        g = np.random.default_rng(0).standard_normal((rows_, 1, n_out)).astype(np.float32)   # same_both_ways's
        np.testing.assert_array_equal(out[3], g.reshape(-1, n_out).sum(axis=0))


def test_linear_kernel_on_a_transposed_gradient_and_over_threads(monkeypatch: pytest.MonkeyPatch) -> None:
    x, w, b = normal((3000, 40), 0), normal((50, 40), 1), normal((50,), 2)
    g = np.ascontiguousarray(normal((50, 3000), 3)).T                   # a non-contiguous gradient
    monkeypatch.setattr(threads, "KERNEL_MIN_NS", 0)                      # rows shared between cores
    xs = [tinyllm.tensor(a, requires_grad=True) for a in (x, w, b)]
    y = F.linear(*xs)
    assert type(y._ctx.impl).__module__ == "tinyllm.kernels.cpu.linear"
    y.backward(g)
    np.testing.assert_allclose(y.numpy(), x @ w.T + b, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(xs[2].grad, g.sum(axis=0), rtol=1e-5, atol=1e-4)
    np.testing.assert_allclose(xs[0].grad, g @ w, rtol=1e-5, atol=1e-5)


def test_linear_backward_products_at_once_are_the_same_floats(monkeypatch: pytest.MonkeyPatch) -> None:
    linear = importlib.import_module("tinyllm.kernels.cpu.linear")
    g, w, x = normal((700, 90), 0), normal((90, 60), 1), normal((700, 60), 2)
    monkeypatch.setattr(threads, "THREADS", 1)                        # one core: one after the other, as NumPy
    for a, b in zip(linear.backward_products(g, w, x, True, True), (g @ w, g.T @ x)):
        np.testing.assert_array_equal(a, b)
    monkeypatch.setattr(threads, "THREADS", 2)
    both = linear.backward_products(g, w, x, True, True)
    with tinyllm.backend.one_blas_thread():                           # each product as one BLAS thread computes it
        for a, b in zip(both, (g @ w, g.T @ x)):
            np.testing.assert_array_equal(a, b)
    for a, b in zip(both, (g @ w, g.T @ x)):                           # OpenBLAS on two threads: the last bits may differ
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-4)
    assert linear.backward_products(g, w, x, False, True)[0] is None


def test_layer_norm_module_in_3d_and_on_a_non_contiguous_input() -> None:
    ln = nn.LayerNorm(64)
    ln.weight.data[:] = normal((64,), 1)
    x = normal((3, 64, 9), 2).transpose(0, 2, 1)                       # (3, 9, 64), not contiguous
    same_both_ways(lambda x: ln(x), [x], dict(rtol=1e-4, atol=1e-5))


# ----------------------------------------------------------------------------- softmax

@given(n=st.integers(1, 200), c=st.integers(1, 3000), scale=st.sampled_from([1.0, 30.0]), seed=st.integers(0, 99))
def test_softmax(n: int, c: int, scale: float, seed: int) -> None:
    same_both_ways(F.softmax, [normal((n, c), seed, scale)], dict(rtol=1e-4, atol=1e-6))


def test_softmax_of_masked_and_of_empty_rows_is_what_the_formula_gives() -> None:
    z = normal((4, 5), 0)
    z[1, 2:] = -np.inf                                                # masked: weight 0
    z[2] = -np.inf                                                    # nothing left: NaN, as the formula
    z[3, 0] = np.nan
    fast = same_both_ways(lambda x: F.softmax(x, axis=1), [z[:2]], dict(rtol=1e-5, atol=1e-7))
    np.testing.assert_array_equal(fast[0][1, 2:], 0.0)
    assert np.isnan(F.softmax(tinyllm.tensor(z[2:])).numpy()).all()
    np.testing.assert_allclose(F.softmax(tinyllm.tensor(z[:2]), axis=0).numpy().sum(0), 1.0, rtol=1e-6)


# ----------------------------------------------------------------------------- cross-entropy

@given(n=st.integers(1, 200), c=st.integers(2, 3000), smoothing=st.sampled_from([0.0, 0.1]),
       reduction=st.sampled_from(["mean", "sum", "none"]), scale=st.sampled_from([1.0, 20.0]),
       seed=st.integers(0, 99))
def test_cross_entropy(n: int, c: int, smoothing: float, reduction: str, scale: float, seed: int) -> None:
    rng = np.random.default_rng(seed)
    t = rng.integers(0, c, n)
    t[rng.random(n) < 0.2] = -100                                      # some rows ignored
    same_both_ways(lambda z: F.cross_entropy(z, t, label_smoothing=smoothing, reduction=reduction),
                   [normal((n, c), seed, scale)], dict(rtol=1e-4, atol=1e-5))


def test_cross_entropy_is_exact_at_plus_minus_1e4_and_a_nan_row_gives_nan() -> None:
    z = np.array([[1e4, -1e4, 0.0], [-1e4, -1e4, -1e4], [1e4, 1e4, -1e4]], dtype=np.float32)
    loss = F.cross_entropy(tinyllm.tensor(z), np.array([1, 0, 2]), reduction="none").numpy()
    np.testing.assert_allclose(loss, [2e4, np.log(3), 2e4 + np.log(2)], rtol=1e-6)
    same_both_ways(lambda z: F.cross_entropy(z, np.array([1, 0, 2]), label_smoothing=0.1), [z],
                   dict(rtol=1e-6, atol=1e-6))
    z[1, 2] = np.nan
    loss = F.cross_entropy(tinyllm.tensor(z), np.array([1, 0, 2]), reduction="none").numpy()
    assert np.isnan(loss[1]) and np.isfinite(loss[[0, 2]]).all()


# ----------------------------------------------------------------------------- attention

@given(b=st.integers(1, 3), nh=st.integers(1, 3), tq=st.integers(1, 40), extra=st.integers(0, 20),
       causal=st.booleans(), dropout=st.booleans(), masked=st.booleans(), span=st.sampled_from([7, 64]),
       seed=st.integers(0, 99))
def test_attention(b: int, nh: int, tq: int, extra: int, causal: bool, dropout: bool, masked: bool, span: int,
                   seed: int) -> None:
    tk = tq + extra                                                    # more keys than queries: a KV cache
    q, k, v = normal((b, nh, tq, 16), seed, 2.0), normal((b, nh, tk, 16), seed + 1, 2.0), normal((b, nh, tk, 8), seed + 2)
    mask = None
    if masked:                                                         # padding keys; batch 0 sees none
        mask = np.random.default_rng(seed).random((b, 1, 1, tk)) > 0.3
        mask[0] = False

    # The kernel draws a dropout mask per query span, the reference one for all: the same numbers
    # (from the same seed) only where there is one span.
    dropout = dropout and not (causal and tq > span)

    def attn(q, k, v):
        if dropout:                                                    # the same seed: the same mask both ways
            tinyllm.manual_seed(seed)
        return F.attention(q, k, v, mask=mask, causal=causal, dropout_p=0.3 if dropout else 0.0)

    old, attention_module.QUERY_BLOCK = attention_module.QUERY_BLOCK, span   # 7: causal runs in several spans
    try:
        same_both_ways(attn, [q, k, v], dict(rtol=1e-4, atol=1e-5))
    finally:
        attention_module.QUERY_BLOCK = old


def test_attention_rows_that_see_no_key_get_zero_weights() -> None:
    q, k, v = normal((2, 6, 8), 0), normal((2, 4, 8), 1), normal((2, 4, 8), 2)   # more queries than keys
    weights: list = []
    y = F.attention(tinyllm.tensor(q), tinyllm.tensor(k), tinyllm.tensor(v), causal=True, weights_out=weights)
    np.testing.assert_array_equal(weights[0][:, :2], 0.0)              # queries 0, 1 see no key
    np.testing.assert_array_equal(y.numpy()[:, :2], 0.0)
    np.testing.assert_allclose(weights[0][:, 2:].sum(-1), 1.0, rtol=1e-6)
    same_both_ways(lambda q, k, v: F.attention(q, k, v, causal=True), [q, k, v])


@given(b=st.integers(1, 3), nh=st.integers(1, 3), t=st.integers(1, 20), causal=st.booleans(),
       span=st.sampled_from([7, 64]), seed=st.integers(0, 99))
def test_self_attention_of_packed_qkv(b: int, nh: int, t: int, causal: bool, span: int, seed: int) -> None:
    qkv = normal((b, t, 3 * nh * 4), seed, 2.0)
    old, attention_module.QUERY_BLOCK = attention_module.QUERY_BLOCK, span
    try:
        same_both_ways(lambda x: F.self_attention(x, nh, causal=causal), [qkv], dict(rtol=1e-4, atol=1e-5))
    finally:
        attention_module.QUERY_BLOCK = old


def test_attention_kernel_writes_into_the_arrays_it_is_given() -> None:
    """The merged heads of Y and the packed dQ | dK | dV are written in place, not copied after."""
    b, t, nh, hs = 2, 9, 3, 4
    qkv = normal((b, t, 3 * nh * hs), 0)
    q, k, v = qkv.reshape(b, t, 3, nh, hs).transpose(2, 0, 3, 1, 4)
    impl = attention_module.Attention()
    heads = np.empty((b, t, nh, hs), dtype=np.float32).transpose(0, 2, 1, 3)
    assert impl.forward(q, k, v, 0.5, True, None, 0.0, out=heads) is heads
    parts = tuple(np.empty((b, t, 3, nh, hs), dtype=np.float32).transpose(2, 0, 3, 1, 4))
    grads = impl.backward(normal((b, nh, t, hs), 1), (True, True, True), out=parts)
    assert all(g is p for g, p in zip(grads, parts))


# ----------------------------------------------------------------------------- threads

@pytest.mark.parametrize("n_threads", [1, 2, 3])
def test_kernels_give_the_same_numbers_on_any_number_of_threads(n_threads: int, monkeypatch: pytest.MonkeyPatch) -> None:
    x, w, b = normal((1000, 96), 0), normal((96,), 1), normal((96,), 2)
    g = normal((1000, 96), 3)

    def go() -> list:
        xs = [tinyllm.tensor(a, requires_grad=True) for a in (x, w, b)]
        y = F.cross_entropy(F.gelu(F.layer_norm(*xs), approximate="tanh"), np.arange(1000) % 96, reduction="none")
        y.backward(g[:, 0])
        return [y.numpy(), *[t.grad for t in xs]]

    monkeypatch.setattr(threads, "THREADS", 1)
    one = go()
    monkeypatch.setattr(threads, "THREADS", n_threads)
    monkeypatch.setattr(threads, "KERNEL_MIN_NS", 0)
    many = go()
    for a, b_ in zip(many, one):
        np.testing.assert_allclose(a, b_, rtol=1e-5, atol=1e-6)       # dw, db: summed in another order


# ----------------------------------------------------------------------------- Adam(W)

@pytest.mark.parametrize("name, wd", [("Adam", 0.0), ("Adam", 0.1), ("AdamW", 0.0), ("AdamW", 0.1)])
def test_adam_kernel_gives_the_reference_weights_bit_for_bit(name: str, wd: float) -> None:
    from tinyllm import optim
    from tinyllm.nn import Parameter
    rng = np.random.default_rng(0)
    start = [rng.standard_normal(n).astype(np.float32) for n in (300_000, 7, 1000)]   # > one chunk, and tiny
    grads = [[rng.standard_normal(a.shape).astype(np.float32) for a in start] for _ in range(4)]

    def train(kernels: bool) -> list:
        with kernels_on(kernels):
            ps = [Parameter(a.copy()) for a in start]
            opt = getattr(optim, name)(ps, lr=3e-3, betas=(0.9, 0.99), eps=1e-8, weight_decay=wd)
            for step_grads in grads:
                for p, g in zip(ps, step_grads):
                    p.grad = g.copy()
                opt.step()
            return [p.data for p in ps] + [buf for st in opt.state for buf in st.values()]

    for a, b in zip(train(True), train(False)):
        np.testing.assert_array_equal(a, b)


def test_without_numba_the_reference_runs_and_says_why() -> None:
    import subprocess
    import sys
    code = ("import sys; sys.modules['numba'] = None\n"        # import numba -> ImportError
            "import warnings, numpy as np, tinyllm\n"
            "from tinyllm import functional as F\n"
            "from tinyllm.kernels import cpu as cpu_kernels\n"
            "with warnings.catch_warnings(record=True) as w:\n"
            "    warnings.simplefilter('always')\n"
            "    y = F.gelu(tinyllm.tensor(np.ones(3, dtype=np.float32)), approximate=\"tanh\")\n"
            "print(cpu_kernels.enabled(), y.numpy()[0].round(4), len(w), 'kernels are off' in str(w[0].message))\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split()
    assert out == ["False", "0.8412", "1", "True"]
