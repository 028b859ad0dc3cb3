"""tinyllm.optim: update rules against NumPy reference loops, flat buffers, clipping."""
import numpy as np
import pytest
from hypothesis import given, strategies as st

import tinyllm
from tinyllm import backend
from optim_helpers import SHAPES, backward_with, grad_seq, make_params
from tinyllm.optim import SGD, Adam, AdamW, clip_grad_norm_, make_schedule


# ----------------------------------------------------------------------------- reference loops

def ref_sgd(p0, seq, lr, momentum=0.0, dampening=0.0, weight_decay=0.0, nesterov=False):
    ps, bufs = [p.copy() for p in p0], [None] * len(p0)
    for grads in seq:
        for i, g in enumerate(grads):
            d = g + weight_decay * ps[i]
            if momentum:
                bufs[i] = d.copy() if bufs[i] is None else momentum * bufs[i] + (1 - dampening) * d
                d = d + momentum * bufs[i] if nesterov else bufs[i]
            ps[i] = ps[i] - lr * d
    return ps


def ref_adam(p0, seq, lr, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0, decoupled=False, lrs=None):
    b1, b2 = betas
    ps = [p.copy() for p in p0]
    ms, vs = [np.zeros_like(p) for p in p0], [np.zeros_like(p) for p in p0]
    for t, grads in enumerate(seq, start=1):
        lr_t = lr if lrs is None else lrs[t - 1]
        for i, g in enumerate(grads):
            if decoupled:
                ps[i] = ps[i] * (1 - lr_t * weight_decay)
            else:
                g = g + weight_decay * ps[i]
            ms[i] = b1 * ms[i] + (1 - b1) * g
            vs[i] = b2 * vs[i] + (1 - b2) * g * g
            m_hat, v_hat = ms[i] / (1 - b1 ** t), vs[i] / (1 - b2 ** t)
            ps[i] = ps[i] - lr_t * m_hat / (np.sqrt(v_hat) + eps)
    return ps


def run(opt_cls, seq, params=None, **kw):
    params = params or make_params()
    opt = opt_cls(params, **kw)
    for grads in seq:
        opt.zero_grad()
        backward_with(params, grads)
        opt.step()
    return params, opt


def assert_close(params, ref, rtol=1e-12, atol=1e-14):
    for p, r in zip(params, ref):
        np.testing.assert_allclose(p.numpy(), r, rtol=rtol, atol=atol)


# ----------------------------------------------------------------------------- update rules

@pytest.mark.parametrize("kw", [
    dict(lr=0.1),
    dict(lr=0.1, weight_decay=0.05),
    dict(lr=0.05, momentum=0.9),
    dict(lr=0.05, momentum=0.9, dampening=0.3, weight_decay=0.01),
    dict(lr=0.05, momentum=0.8, nesterov=True, weight_decay=0.02),
])
def test_sgd_matches_reference(kw):
    seq, p0 = grad_seq(), [p.numpy().copy() for p in make_params()]
    params, _ = run(SGD, seq, **kw)
    assert_close(params, ref_sgd(p0, seq, **kw))


@pytest.mark.parametrize("cls,kw", [
    (Adam, dict(lr=0.01)),
    (Adam, dict(lr=0.01, betas=(0.8, 0.99), eps=1e-6, weight_decay=0.1)),
    (AdamW, dict(lr=0.01, weight_decay=0.1)),
    (AdamW, dict(lr=0.02, betas=(0.5, 0.9), eps=1e-3, weight_decay=0.0)),
])
def test_adam_matches_reference(cls, kw):
    seq, p0 = grad_seq(steps=6), [p.numpy().copy() for p in make_params()]
    params, _ = run(cls, seq, **kw)
    kw.setdefault("weight_decay", 0.01 if cls is AdamW else 0.0)
    assert_close(params, ref_adam(p0, seq, decoupled=cls is AdamW, **kw))


@given(lr=st.floats(0.0, 0.5), b1=st.floats(0.0, 0.99), b2=st.floats(0.0, 0.999),
       eps=st.floats(1e-8, 1e-2), wd=st.floats(0.0, 0.5), decoupled=st.booleans())
def test_adam_matches_reference_any_hyperparameters(lr, b1, b2, eps, wd, decoupled):
    seq, p0 = grad_seq(steps=3), [p.numpy().copy() for p in make_params()]
    params, _ = run(AdamW if decoupled else Adam, seq, lr=lr, betas=(b1, b2), eps=eps, weight_decay=wd)
    assert_close(params, ref_adam(p0, seq, lr, (b1, b2), eps, wd, decoupled), rtol=1e-10, atol=1e-12)


def test_param_groups_and_schedule():
    """Groups keep their own weight decay and lr_scale; set_lr every step drives all groups."""
    params, seq = make_params(), grad_seq(steps=6)
    p0 = [p.numpy().copy() for p in params]
    sched = make_schedule("cosine", 0.05, min_lr=0.005, warmup=2, decay_iters=5)
    groups = [{"params": params[:2], "weight_decay": 0.1},
              {"params": params[2:], "weight_decay": 0.0, "lr_scale": 0.5, "name": "no_decay"}]
    opt = AdamW(groups, lr=1.0)
    for it, grads in enumerate(seq):
        opt.set_lr(sched(it))
        assert opt.lr == sched(it) and opt.param_groups[1]["lr"] == 0.5 * sched(it)
        backward_with(params, grads)
        opt.step()
        opt.zero_grad()
    lrs = [sched(it) for it in range(6)]
    ref0 = ref_adam(p0[:2], [g[:2] for g in seq], None, weight_decay=0.1, decoupled=True, lrs=lrs)
    ref1 = ref_adam(p0[2:], [g[2:] for g in seq], None, decoupled=True, lrs=[0.5 * x for x in lrs])
    assert_close(params, ref0 + ref1)


def test_group_lr_and_lr_property():
    a, b = make_params()[:2]
    opt = SGD([{"params": [a]}, {"params": [b], "lr": 0.3, "lr_scale": 0.5}], lr=0.1)
    assert [g["lr"] for g in opt.param_groups] == [0.1, 0.15] and opt.lr == 0.1
    opt.lr = 0.2  # the setter is set_lr
    assert [g["lr"] for g in opt.param_groups] == [0.2, 0.1] and opt.lr == 0.2


def test_step_issues_one_update_per_group():
    """The whole group is updated by one vectorised update_one call, not one per parameter."""
    calls = []

    class Spy(SGD):
        def update_one(self, param, grad, state, step, group):
            calls.append(param.size)
            super().update_one(param, grad, state, step, group)

    params = make_params()
    opt = Spy([{"params": params[:3]}, {"params": params[3:]}], lr=0.1, momentum=0.9)
    for grads in grad_seq(steps=3):
        backward_with(params, grads)
        opt.step()
        opt.zero_grad()
    assert calls == [17, 6] * 3


def test_chunked_updates_are_bit_identical_to_whole_buffer_updates():
    seq = grad_seq(steps=4)
    results = []
    for chunk in (1 << 18, 5):
        params = make_params(dtype=np.float32)
        opt = AdamW([{"params": params[:3]}, {"params": params[3:], "weight_decay": 0.0}], lr=0.01)
        opt.chunk_size = chunk
        for it, grads in enumerate(seq):
            live = [i for i in range(4) if (i, it) != (1, 2)]
            backward_with([params[i] for i in live], [grads[i] for i in live])
            opt.step()
            opt.zero_grad(set_to_none=True)
        results.append([p.numpy() for p in params] + list(opt.state_dict()["state"].values()))
    assert all(np.array_equal(a, b) for a, b in zip(*results))


# ----------------------------------------------------------------------------- flat buffers

def test_views_and_in_place_accumulation():
    params = make_params()
    opt = SGD(params, lr=0.1)
    flat = opt._flat[0]
    assert all(backend.xp().may_share_memory(p.data, flat.param) for p in params)
    assert all(p.grad is None for p in params)
    seq = grad_seq(steps=2)
    backward_with(params, seq[0])
    opt.step()
    assert all(backend.xp().may_share_memory(p.grad, flat.grad) for p in params)
    opt.zero_grad()
    assert all(p.grad is v for p, v in zip(params, flat.grad_views)) and not flat.grad.any()
    backward_with(params, seq[0])
    backward_with(params, seq[1])  # accumulates into the flat buffer
    assert all(p.grad is v for p, v in zip(params, flat.grad_views))
    for p, g0, g1 in zip(params, *seq):
        np.testing.assert_allclose(p.grad, g0 + g1, rtol=1e-15)


def test_gradient_accumulation_equals_full_batch():
    rng = np.random.default_rng(3)
    x, y = rng.standard_normal((8, 5)), rng.standard_normal((8, 2))
    w0, b0 = rng.standard_normal((5, 2)), rng.standard_normal(2)

    def loss(w, b, xs, ys):
        return (((tinyllm.tensor(xs) @ w + b) - tinyllm.tensor(ys)) ** 2).mean()

    results = []
    for halves in (False, True):
        w, b = tinyllm.tensor(w0.copy(), requires_grad=True), tinyllm.tensor(b0.copy(), requires_grad=True)
        opt = AdamW([w, b], lr=0.01, weight_decay=0.1)
        for _ in range(3):
            if halves:
                (loss(w, b, x[:4], y[:4]) * 0.5).backward()
                (loss(w, b, x[4:], y[4:]) * 0.5).backward()
            else:
                loss(w, b, x, y).backward()
            opt.step()
            opt.zero_grad()
        results.append((w.numpy(), b.numpy()))
    for full, acc in zip(*results):
        np.testing.assert_allclose(acc, full, rtol=1e-12)


def test_weights_assigned_from_outside_are_adopted():
    params = make_params()
    opt = SGD(params, lr=0.5)
    new = np.full((3, 4), 2.0)
    params[0].data = new  # e.g. a model loading weights by assignment
    grads = [np.ones(s) for s in SHAPES]
    for p, g in zip(params, grads):
        p.grad = g
    opt.step()
    np.testing.assert_array_equal(params[0].numpy(), np.full((3, 4), 1.5))
    assert backend.xp().may_share_memory(params[0].data, opt._flat[0].param) and new[0, 0] == 2.0
    params[1].data = np.zeros(5)
    with pytest.raises(ValueError, match=r"parameter 1 got a new .data of shape \(5,\), expected \(4,\)"):
        opt.step()
    params[1].data = np.zeros(4)
    params[1].grad = np.zeros(3)
    with pytest.raises(ValueError, match=r"parameter 1 got a new .grad of shape"):
        opt.step()
    params[1].grad = [0.0] * 4
    with pytest.raises(TypeError, match="not an array"):
        opt.step()


def test_params_without_grad_are_skipped_like_torch():
    """grad None: no update, no weight decay, moments and step count untouched."""
    params, seq = make_params(), grad_seq(steps=4)
    p0 = [p.numpy().copy() for p in params]
    opt = AdamW(params, lr=0.05, weight_decay=0.1)
    for t, grads in enumerate(seq):
        opt.zero_grad(set_to_none=True)
        live = [i for i in range(4) if not (i == 1 and t in (1, 2))]  # param 1 sits out steps 1 and 2
        backward_with([params[i] for i in live], [grads[i] for i in live])
        opt.step()
        if t == 1:
            assert params[1].grad is None
    assert [opt.state_of(p)["step"] for p in params] == [4, 2, 4, 4]
    for i in (0, 2, 3):
        assert_close([params[i]], ref_adam([p0[i]], [g[i:i + 1] for g in seq], 0.05, weight_decay=0.1,
                                           decoupled=True))
    ref1 = ref_adam([p0[1]], [[seq[0][1]], [seq[3][1]]], 0.05, weight_decay=0.1, decoupled=True)
    assert_close([params[1]], ref1)


def test_zero_grad_modes():
    params = make_params()
    opt = SGD(params, lr=0.1)
    backward_with(params[:3], grad_seq()[0][:3])  # the last parameter gets no gradient
    opt.step()
    opt.zero_grad()
    assert params[3].grad is None and all(not p.grad.any() for p in params[:3])
    assert all(p.grad is v for p, v in zip(params[:3], opt._flat[0].grad_views))
    opt.zero_grad(set_to_none=True)
    assert all(p.grad is None for p in params)
    p = params[0]
    p.zero_grad()  # the engine's own reset, then a backward assigning a fresh array
    backward_with([p], [np.ones(p.shape)])
    opt.step()
    assert p.grad is opt._flat[0].grad_views[0]


def test_float32_stays_float32():
    params = make_params(dtype=np.float32)
    p0 = [p.numpy().astype(np.float64) for p in params]
    seq = grad_seq(steps=4)
    for cls in (SGD, Adam, AdamW):
        ps = make_params(dtype=np.float32)
        kw = dict(lr=0.01, weight_decay=0.1) | (dict(momentum=0.9, nesterov=True) if cls is SGD else {})
        ps, opt = run(cls, seq, params=ps, **kw)
        opt.clip_grad_norm_(0.5)
        opt.step()
        bufs = [p.data for p in ps] + [p.grad for p in ps] + list(opt.state[0].values())
        bufs += [b for bs in opt._work.values() for b in bs]
        assert all(b.dtype == np.float32 for b in bufs)
    _, opt = run(Adam, seq, params=params, lr=0.01)
    assert_close(params, ref_adam(p0, seq, 0.01), rtol=1e-5, atol=1e-6)


# ----------------------------------------------------------------------------- clipping

def test_clip_grad_norm_paths_agree():
    seq = grad_seq()[0]
    norm = float(np.sqrt(sum((g ** 2).sum() for g in seq[:3])))
    for max_norm in (norm * 2, norm / 3):
        a, b = make_params(), make_params()
        opt = SGD(a, lr=0.1)
        for ps in (a, b):
            for p, g in zip(ps[:3], seq):
                p.grad = g.copy()
        assert opt.clip_grad_norm_(max_norm) == pytest.approx(norm, rel=1e-14)
        assert clip_grad_norm_(b, max_norm) == pytest.approx(norm, rel=1e-14)
        scale = min(1.0, max_norm / (norm + 1e-6))
        for pa, pb, g in zip(a[:3], b[:3], seq[:3]):
            np.testing.assert_allclose(pa.grad, g * scale, rtol=1e-14)
            np.testing.assert_allclose(pb.grad, g * scale, rtol=1e-14)
        assert a[3].grad is None and b[3].grad is None
    assert clip_grad_norm_(b[3], 1.0) == 0.0
    for bad in (0.0, -1.0, float("nan")):
        with pytest.raises(ValueError, match="max_norm"):
            opt.clip_grad_norm_(bad)
        with pytest.raises(ValueError, match="max_norm"):
            clip_grad_norm_(a, bad)


def test_clip_ignores_stale_slices_of_params_without_grad():
    params = make_params()
    opt = SGD(params, lr=0.1)
    backward_with(params, [np.full(s, 10.0) for s in SHAPES])
    opt.step()
    params[0].grad = None  # its slice still holds the old 10s
    norm = opt.clip_grad_norm_(1e9)
    assert norm == pytest.approx(10.0 * np.sqrt(4 + 1 + 6), rel=1e-14)
