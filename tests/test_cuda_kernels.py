"""The fused CUDA kernels against the NumPy reference (GPU only: skipped without CuPy and a GPU).

Each test runs the same op forward and backward twice, on the NumPy backend
(the reference classes in ``functional/`` / ``optim``) and on the CuPy backend
(where ``tinyllm.kernels.cuda`` takes over), from the same inputs, and compares the
outputs and every gradient. Run them with ``TINYLLM_BACKEND=cupy pytest``
or plain ``pytest`` on a machine with a GPU.
"""
from __future__ import annotations

from typing import Any, Callable

import numpy as np
import pytest
from hypothesis import given, strategies as st

import tinyllm
from tinyllm import backend, optim
from tinyllm.kernels import cuda as cuda_kernels
from tinyllm import functional as F
from tinyllm.backend import BackendError

try:
    backend.set_backend("cupy")
    HAS_GPU = True
except BackendError:
    HAS_GPU = False
finally:
    backend.set_backend("numpy")

needs_gpu = pytest.mark.skipif(not HAS_GPU, reason="needs CuPy and a CUDA GPU")


def test_the_cuda_source_ships_with_the_package_and_defines_every_row_kernel() -> None:
    source = cuda_kernels.ROW_SOURCE.read_text()           # read here without CUDA: installed next to the module
    for name in cuda_kernels.ROW_KERNELS:
        assert f"__global__ void {name}(" in source, name

TOL = {np.float32: dict(rtol=2e-4, atol=2e-5), np.float64: dict(rtol=1e-10, atol=1e-12)}
dtypes = st.sampled_from([np.float32, np.float64])


def on(backend_name: str, fn: Callable[..., tinyllm.Tensor], arrays: list, g: np.ndarray) -> tuple:
    """fn's output and the gradients of its inputs, on one backend, as NumPy arrays."""
    tinyllm.set_backend(backend_name)
    try:
        xs = [tinyllm.Tensor(backend.asarray(a), requires_grad=True) for a in arrays]
        y = fn(*xs)
        y.backward(backend.asarray(g))
        return (y.numpy(), *[x.grad.get() if backend.is_cupy_array(x.grad) else x.grad for x in xs])
    finally:
        tinyllm.set_backend("numpy")


def same_on_both(fn: Callable[..., tinyllm.Tensor], arrays: list, dtype: Any, seed: int = 0) -> None:
    arrays = [np.asarray(a, dtype=dtype) for a in arrays]
    tinyllm.set_backend("numpy")
    out_shape = fn(*[tinyllm.Tensor(a) for a in arrays]).shape
    g = np.random.default_rng(seed).standard_normal(out_shape).astype(dtype)
    ref, gpu = on("numpy", fn, arrays, g), on("cupy", fn, arrays, g)
    for i, (a, b) in enumerate(zip(gpu, ref)):
        assert a.dtype == b.dtype, f"result {i}: dtype {a.dtype} != {b.dtype}"
        np.testing.assert_allclose(a, b, err_msg=f"result {i} (0: output, then gradients)", **TOL[dtype])


def normal(rng: np.random.Generator, *shape: int, scale: float = 1.0) -> np.ndarray:
    return rng.standard_normal(shape) * scale


rows = st.integers(1, 40)
widths = st.sampled_from([1, 3, 31, 32, 33, 65, 128, 384, 700, 1500, 5000])   # 5000: wider than MAX_ROW


@needs_gpu
@given(n=rows, c=widths, dtype=dtypes, seed=st.integers(0, 99))
def test_gelu(n, c, dtype, seed) -> None:
    rng = np.random.default_rng(seed)
    same_on_both(F.gelu, [normal(rng, n, c, scale=3.0)], dtype)


@needs_gpu
@given(n=rows, c=widths, dtype=dtypes, affine=st.sampled_from(["none", "w", "wb"]), seed=st.integers(0, 99))
def test_layer_norm(n, c, dtype, affine, seed) -> None:
    rng = np.random.default_rng(seed)
    arrays = [normal(rng, 2, n, c, scale=2.0) + 1.0]
    if affine != "none":
        arrays.append(normal(rng, c) + 1.0)
    if affine == "wb":
        arrays.append(normal(rng, c))
    same_on_both(lambda *xs: F.layer_norm(*xs), arrays, dtype, seed)


@needs_gpu
@given(n=rows, c=widths, dtype=dtypes, seed=st.integers(0, 99))
def test_softmax_last_axis(n, c, dtype, seed) -> None:
    rng = np.random.default_rng(seed)
    same_on_both(F.softmax, [normal(rng, n, c, scale=5.0)], dtype, seed)


@given(tq=st.integers(1, 70), extra=st.integers(0, 40), causal=st.booleans(), masked=st.booleans(),
       dtype=dtypes, seed=st.integers(0, 99))
@needs_gpu
def test_attention_masked_softmax(tq, extra, causal, masked, dtype, seed) -> None:
    rng = np.random.default_rng(seed)
    tk = tq + extra                                          # queries are the last tq of tk positions
    q, k, v = normal(rng, 2, 3, tq, 8), normal(rng, 2, 3, tk, 8), normal(rng, 2, 3, tk, 8)
    mask = rng.random((2, 1, 1, tk)) > 0.3 if masked else None
    if masked:
        mask[0] = False                                      # batch 0 sees no key at all: zero weights

    def fn(q, k, v):
        return F.attention(q, k, v, mask=None if mask is None else backend.asarray(mask), causal=causal)
    same_on_both(fn, [q, k, v], dtype, seed)


@given(n=rows, c=widths, dtype=dtypes, smoothing=st.sampled_from([0.0, 0.1]),
       reduction=st.sampled_from(["mean", "sum", "none"]), seed=st.integers(0, 99))
@needs_gpu
def test_cross_entropy(n, c, dtype, smoothing, reduction, seed) -> None:
    rng = np.random.default_rng(seed)
    targets = rng.integers(0, c, n)
    targets[rng.random(n) < 0.2] = -100                      # some rows ignored
    z = normal(rng, n, c, scale=4.0)
    z[0, 0] = 1e4 if dtype == np.float64 else 80.0            # stable for huge logits

    def fn(z):
        return F.cross_entropy(z, backend.asarray(targets), label_smoothing=smoothing, reduction=reduction)
    same_on_both(fn, [z], dtype, seed)


@needs_gpu
def test_out_of_range_targets_and_ids_are_reported_when_deferred() -> None:
    tinyllm.set_backend("cupy")
    z = tinyllm.Tensor(backend.asarray(np.zeros((2, 3), np.float32)), requires_grad=True)
    bad = backend.asarray(np.array([0, 3]))
    with pytest.raises(IndexError, match="out of range for 3 classes"):
        F.cross_entropy(z, bad)
    with pytest.raises(IndexError, match="out of range for 3 classes"):
        with backend.deferred_checks():
            loss = F.cross_entropy(z, bad)                   # queued: nothing waits here ...
            assert not np.isfinite(loss.item())              # (the kernel marks the row NaN)
    with pytest.raises(IndexError, match=r"embedding index out of range \[0, 2\)"):
        F.embedding(tinyllm.Tensor(backend.asarray(np.ones((2, 4), np.float32))), bad)


@needs_gpu
@pytest.mark.parametrize("decoupled", [True, False])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_adam_kernel_matches_the_reference_update(decoupled, dtype) -> None:
    rng = np.random.default_rng(0)
    p0, grads = normal(rng, 1000).astype(dtype), [normal(rng, 1000).astype(dtype) for _ in range(3)]
    results = []
    for name in ("numpy", "cupy"):
        tinyllm.set_backend(name)
        p = tinyllm.Tensor(backend.asarray(p0.copy()), requires_grad=True)
        cls = optim.AdamW if decoupled else optim.Adam
        opt = cls([p], lr=1e-2, betas=(0.9, 0.99), weight_decay=0.1)
        for g in grads:
            p.grad = backend.asarray(g)
            opt.step()
        results.append(backend.to_numpy(p.data))
    tinyllm.set_backend("numpy")
    np.testing.assert_allclose(results[1], results[0], **TOL[dtype])


@needs_gpu
def test_counter_rng_is_uniform_reproducible_and_resumable() -> None:
    tinyllm.set_backend("cupy")
    tinyllm.manual_seed(5)
    first = backend.rng().random((1000, 1000), dtype="float32").get()
    assert first.dtype == np.float32 and 0.0 <= first.min() and first.max() < 1.0
    assert abs(first.mean() - 0.5) < 1e-3 and abs(first.var() - 1 / 12) < 1e-3
    state = backend.get_rng_state()
    after = backend.rng().random(7).get()
    tinyllm.manual_seed(5)
    np.testing.assert_array_equal(backend.rng().random((1000, 1000), dtype="float32").get(), first)
    tinyllm.manual_seed(99)
    backend.set_rng_state(state)                             # as a resumed run does
    np.testing.assert_array_equal(backend.rng().random(7).get(), after)
    tinyllm.manual_seed(6)
    assert not np.array_equal(backend.rng().random(7).get(), after)


@needs_gpu
def test_kernels_refuse_what_they_cannot_take() -> None:
    assert not cuda_kernels.supported(np.zeros(3, np.float32))                  # host arrays
    tinyllm.set_backend("cupy")
    assert not cuda_kernels.supported(backend.asarray(np.zeros(3, np.float16)))  # float16: the reference
    assert cuda_kernels.supported(backend.asarray(np.zeros(3, np.float32)))


@needs_gpu
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_dropout_draws_its_mask_from_the_generator_stream_and_redraws_it_in_backward(dtype) -> None:
    tinyllm.set_backend("cupy")
    x_host = np.random.default_rng(0).standard_normal((50, 70)).astype(dtype)
    tinyllm.manual_seed(3)
    backend.rng().random(11)                                 # anywhere in the stream
    x = tinyllm.Tensor(backend.asarray(x_host), requires_grad=True)
    y = F.dropout(x, 0.3)
    y.backward(backend.asarray(np.ones_like(x_host)))
    tinyllm.manual_seed(3)
    backend.rng().random(11)
    keep = backend.rng().random(x_host.shape, dtype=F._uniform_dtype(np.dtype(dtype))).get() >= 0.3
    scale = dtype(1 / 0.7)
    np.testing.assert_allclose(y.numpy(), np.where(keep, x_host * scale, 0), **TOL[dtype])
    np.testing.assert_allclose(x.grad.get(), np.where(keep, scale, 0), **TOL[dtype])
    assert 0.65 < keep.mean() < 0.75


@needs_gpu
def test_attention_dropout_gradients_on_the_gpu_match_finite_differences() -> None:
    tinyllm.set_backend("cupy")
    rng = np.random.default_rng(1)
    q, k, v = (tinyllm.Tensor(backend.asarray(rng.standard_normal((2, 2, 5, 4))), requires_grad=True)
               for _ in range(3))

    def fn(q, k, v):
        tinyllm.manual_seed(7)                               # the same mask on every call
        return F.attention(q, k, v, causal=True, dropout_p=0.3)
    assert tinyllm.gradcheck(fn, q, k, v)
