"""bench/floor.py: the matrix products recorded from one real training step, at tiny shapes.

The recording must see every product the step makes (each Linear node
forward and backward, each attention node and its query spans) with the
FLOPs those products have, and the replay must compute what the Linear
formula computes on the same arrays.
"""
import importlib
import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def bench():
    sys.path.insert(0, str(ROOT / "bench"))
    try:
        yield importlib.import_module("floor"), importlib.import_module("train")
    finally:
        sys.path.remove(str(ROOT / "bench"))


def recorded_step(train, cfg):
    model, step, _ = train.build_tinyllm(cfg)
    batch = train.batches(cfg, 1)[0]
    return model, step, batch


@pytest.mark.parametrize("block_size", [16, 80])     # one query span; two (80 > the kernel's span of 64)
def test_recording_sees_every_product_of_a_step(bench, block_size):
    floor, train = bench
    cfg = dict(vocab_size=65, block_size=block_size, n_layer=2, n_head=2, n_embd=16, batch_size=2)
    model, step, batch = recorded_step(train, cfg)
    calls = floor.record(step, batch)
    kinds = [c.kind for c in calls]
    n_linear = 4 * cfg["n_layer"] + 1                                   # q|k|v, proj, fc, proj per block; LM head
    assert kinds.count("linear_forward") == kinds.count("linear_backward") == n_linear
    assert kinds.count("attention_forward") == kinds.count("attention_backward") == cfg["n_layer"]
    assert kinds.index("linear_backward") > kinds.index("linear_forward") + n_linear - 1   # forward, then backward

    flops = floor.product_flops(calls)
    tokens, (b, t), c, nh = cfg["batch_size"] * block_size, batch[0].shape, cfg["n_embd"], cfg["n_head"]
    weights = sum(m.weight.data.size for _, m in model.named_modules() if type(m).__name__ == "Linear")
    assert flops["Linear x W^T"] == flops["Linear dY W"] == flops["Linear dY^T X"] == 2 * tokens * weights
    attn = calls[kinds.index("attention_forward")]
    spans = attn.params["spans"]
    if attn.params["kernel"]:                                           # the kernel's own spans, covering T
        assert [s[0] for s in spans] == sorted(s[0] for s in spans) and spans[-1][1] == t
        assert len(spans) == (1 if t <= 64 else 2)
    pairs = sum((q1 - q0) * kb for q0, q1, kb in spans)                 # (query, key) pairs computed
    assert pairs == (t * t if len(spans) == 1 else 64 * 64 + 16 * 80)
    hs = c // nh
    for label in ("attention forward Q K^T", "attention forward P V", "attention backward P^T dY",
                  "attention backward dY V^T", "attention backward dS K", "attention backward dS^T Q"):
        assert flops[label] == cfg["n_layer"] * b * nh * pairs * 2 * hs, label
    if len(spans) == 1:                                                 # the model's FLOPs formula, exactly
        per_token = 12 * cfg["n_layer"] * nh * hs * t
        assert sum(v for k, v in flops.items() if k.startswith("attention")) == per_token * tokens

    fns = floor.replay(calls)
    labels = [label for label, _ in fns]
    backward = labels.count("Linear dY W + Linear dY^T X")             # at once (the CPU kernel, 2 cores)
    assert labels.count("Linear x W^T") == n_linear                    # every Linear's input needs a gradient
    assert labels.count("Linear dY W") == labels.count("Linear dY^T X") == n_linear - backward
    assert labels.count("attention forward") == labels.count("attention backward") == cfg["n_layer"]
    res = floor.time_floor(fns, None, reps=2, warmup=1)
    assert res["floor_wall_s"] > 0 and set(res["by_label_s"]) == set(labels)


def test_replay_computes_the_linear_formula(bench):
    floor, train = bench
    from tinyllm.functional.linear import LinearReference
    cfg = train.CONFIGS["tiny"]
    _, step, batch = recorded_step(train, cfg)
    calls = floor.record(step, batch)
    arrays = floor.Arrays(seed=3)
    fwd = next(c for c in calls if c.kind == "linear_forward")
    bwd = next(c for c in calls if c.kind == "linear_backward")
    x, w = arrays.get(fwd.arrays["x"]), arrays.get(fwd.arrays["w"])
    assert x.shape == fwd.arrays["x"].shape and x.strides == fwd.arrays["x"].strides
    ref = LinearReference()
    np.testing.assert_array_equal(floor._replay_fns(fwd, arrays)[0][1](), ref.forward(x, w, None).reshape(-1, w.shape[0]))
    g, w, x = (arrays.get(bwd.arrays[n]) for n in ("g", "w", "x"))
    ref.forward(x, w, None)
    want = ref.backward(g, bwd.params["needs"] + (False,))
    got = []
    for _, fn in floor._replay_fns(bwd, arrays):                       # one product, or the kernel's two at once
        out = fn()
        got += list(out) if isinstance(out, tuple) else [out]
    want = [e for e in want[:2] if e is not None]
    assert len(got) == len(want) == sum(bwd.params["needs"])
    for a, e in zip(got, want):
        np.testing.assert_array_equal(a.reshape(e.shape), e)


def test_layouts_share_a_buffer_as_the_step_did(bench):
    floor, _ = bench
    qkv = np.zeros((2, 4, 3, 2, 8), dtype=np.float32)
    q, k, _ = qkv.transpose(2, 0, 3, 1, 4)
    lq, lk = floor.Layout.of(q), floor.Layout.of(k)
    assert lq.base == lk.base and lk.offset - lq.offset == 2 * 8 * 4
    arrays = floor.Arrays()
    aq, ak = arrays.get(lq), arrays.get(lk)
    assert aq.strides == q.strides and np.may_share_memory(aq, ak)     # one buffer ...
    ak[...] = 7.0
    assert not (aq == 7.0).any()                                        # ... not overlapping
