"""functional.rows.over_rows: row blocks on several threads give what one call over all rows gives."""
import threading

import numpy as np
import pytest

import tinyllm
from tinyllm.functional import Attention, CrossEntropy, Gelu, LayerNorm, rows


def test_over_rows_covers_every_row_once_and_raises_a_workers_error():
    seen = np.zeros(10_000, dtype=np.int64)
    names = set()

    def fn(r):
        seen[r] += 1
        names.add(threading.current_thread().name)

    rows.over_rows(fn, seen.size, 4 * rows.MIN_SIZE, np)
    assert (seen == 1).all()
    assert len(names) > 1 or rows.THREADS == 1

    def bad(r):
        if r.start > 0:
            raise ValueError("row block failed")

    with pytest.raises(ValueError, match="row block failed"):
        rows.over_rows(bad, seen.size, 4 * rows.MIN_SIZE, np)


def _run(fn, one_thread, monkeypatch):
    """fn() with row blocks on all threads, or (one_thread) in one call."""
    with monkeypatch.context() as m:
        if one_thread:
            m.setattr(rows, "MIN_SIZE", 1 << 62)
        return fn()


def _node(cls, n_inputs):
    node = cls.__new__(cls)
    node.needs_grad = (True,) * n_inputs
    return node


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

    def compute():
        out = []
        node = _node(Gelu, 1)
        out += [node.forward(x), *node.backward(g)]
        node = _node(LayerNorm, 3)
        out += [node.forward(x, w, b), *node.backward(g)]
        for kw in ({"causal": True}, {"mask": mask}, {"causal": True, "dropout_p": 0.2}):
            tinyllm.manual_seed(1)
            node = _node(Attention, 3)
            out += [node.forward(*qkv, scale=0.25, **kw), *node.backward(gy)]
        for kw in ({}, {"label_smoothing": 0.1, "reduction": "none"}):
            node = _node(CrossEntropy, 1)
            loss = node.forward(logits, targets=targets, **kw)
            out += [loss, *node.backward(np.ones_like(loss))]
        return out

    ours = _run(compute, False, monkeypatch)
    reference = _run(compute, True, monkeypatch)
    for a, r in zip(ours, reference):
        assert a.shape == r.shape and a.dtype == r.dtype
        np.testing.assert_allclose(a, r, rtol=1e-6, atol=1e-6)
