"""kernels.cpu.threads: row blocks on several threads give what one call over all rows gives."""
import threading

import numpy as np
import pytest

import tinyllm
from tinyllm import kernels
from tinyllm.functional.attention import AttentionReference
from tinyllm.functional.cross_entropy import CrossEntropyReference
from tinyllm.functional.gelu import GeluReference
from tinyllm.functional.layer_norm import LayerNormReference
from tinyllm.kernels.cpu import threads


def test_over_rows_covers_every_row_once_and_raises_a_workers_error():
    seen = np.zeros(10_000, dtype=np.int64)
    names = set()

    def fn(r):
        seen[r] += 1
        names.add(threading.current_thread().name)

    threads.over_rows(fn, seen.size, 4 * threads.MIN_SIZE, np)
    assert (seen == 1).all()
    assert len(names) > 1 or threads.THREADS == 1

    def bad(r):                     # a worker's block fails (the only block, on a one-core machine)
        if r.start > 0 or r.stop == seen.size:
            raise ValueError("row block failed")

    with pytest.raises(ValueError, match="row block failed"):
        threads.over_rows(bad, seen.size, 4 * threads.MIN_SIZE, np)


def _run(fn, one_thread, monkeypatch):
    """fn() with the rows shared between all threads, or (one_thread) in one call."""
    with monkeypatch.context() as m:
        if one_thread:
            m.setattr(threads, "THREADS", 1)
        else:
            m.setattr(threads, "MIN_SIZE", 1)
            m.setattr(threads, "KERNEL_MIN_NS", 0)
        return fn()


@pytest.mark.skipif(not kernels.cpu.enabled(), reason="needs Numba (the CPU kernels are off)")
def test_blocks_match_the_whole_array(monkeypatch):
    rng = np.random.default_rng(0)
    x = rng.standard_normal((64, 48, 100)).astype(np.float32)         # 307,200 elements: over MIN_SIZE
    g = rng.standard_normal(x.shape).astype(np.float32)
    w, b = rng.standard_normal(100).astype(np.float32), rng.standard_normal(100).astype(np.float32)
    qkv = rng.standard_normal((3, 24, 4, 64, 16)).astype(np.float32)
    mask = rng.random((24, 1, 64, 64)) > 0.3
    gy = rng.standard_normal((24, 4, 64, 16)).astype(np.float32)
    logits = rng.standard_normal((1000, 300)).astype(np.float32) * 5
    targets = rng.integers(0, 300, 1000)
    targets[::7] = -100                                                 # ignored rows
    valid = targets != -100

    def compute():
        out = []
        impl = kernels.select("gelu", x, reference=GeluReference)
        out += [impl.forward(x), impl.backward(g)]
        impl = kernels.select("layer_norm", x, w, b, reference=LayerNormReference)
        out += [impl.forward(x, w, b, 1e-5), *impl.backward(g, (True, True, True))]
        for causal, m, p in ((True, None, 0.0), (False, mask, 0.0), (True, None, 0.2)):
            tinyllm.manual_seed(1)
            impl = kernels.select("attention", *qkv, reference=AttentionReference)
            out += [impl.forward(*qkv, 0.25, causal, m, p), *impl.backward(gy, (True, True, True))]
        for eps in (0.0, 0.1):
            impl = kernels.select("cross_entropy", logits, reference=CrossEntropyReference)
            loss = impl.forward(logits, targets, valid, -100, eps)
            out += [loss, impl.backward(np.ones_like(loss), logits.shape)]
        return out

    ours = _run(compute, False, monkeypatch)
    one = _run(compute, True, monkeypatch)
    for i, (a, r) in enumerate(zip(ours, one)):
        assert a.shape == r.shape and a.dtype == r.dtype
        summed = i in (4, 5)                      # layer norm's dw, db: 3072 rows summed in another order
        np.testing.assert_allclose(a, r, rtol=1e-6, atol=1e-3 if summed else 1e-6, err_msg=f"result {i}")
