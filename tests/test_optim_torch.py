"""tinyllm.optim against torch.optim on the same parameters and gradients (float64, ~1e-12)."""
import numpy as np
import pytest
from hypothesis import given, strategies as st

import tinyllm
from tinyllm.optim import SGD, Adam, AdamW, clip_grad_norm_, make_schedule

torch = pytest.importorskip("torch")

SHAPES = [(5, 3), (3,), (4, 2, 2), ()]
TORCH = {SGD: "SGD", Adam: "Adam", AdamW: "AdamW"}


def setup(cls, kw, group_kw=None, dtype=np.float64, seed=0):
    """The same parameters in both libraries, split into two groups (group 1 gets group_kw)."""
    rng = np.random.default_rng(seed)
    init = [rng.standard_normal(s).astype(dtype) for s in SHAPES]
    ours = [tinyllm.tensor(a.copy(), requires_grad=True) for a in init]
    theirs = [torch.tensor(a.copy(), requires_grad=True) for a in init]
    group_kw = group_kw or {}
    opt = cls([{"params": ours[:2]}, {"params": ours[2:], **group_kw}], **kw)
    topt = getattr(torch.optim, TORCH[cls])([{"params": theirs[:2]}, {"params": theirs[2:], **group_kw}],
                                            foreach=False, **kw)
    return ours, theirs, opt, topt


def feed(ours, theirs, grads, via_backward):
    """Give both the same gradients (None means: this parameter has no gradient this step)."""
    for p, q, g in zip(ours, theirs, grads):
        q.grad = None if g is None else torch.tensor(g.astype(q.detach().numpy().dtype))
        if g is None:
            p.grad = None
        elif not via_backward:
            p.grad = g.astype(p.dtype)
    if via_backward:
        live = [(p, g) for p, g in zip(ours, grads) if g is not None]
        sum((p * tinyllm.tensor(g.astype(p.dtype))).sum() for p, g in live).backward()


def compare(ours, theirs, rtol=1e-12, atol=1e-13):
    for p, q in zip(ours, theirs):
        np.testing.assert_allclose(p.numpy(), q.detach().numpy(), rtol=rtol, atol=atol)


def run_both(cls, kw, group_kw=None, steps=6, lrs=None, skip=(), dtype=np.float64, rtol=1e-12, atol=1e-13):
    """Step both optimizers through one gradient sequence; compare after every step.

    lrs: a learning rate per step (set_lr here, group["lr"] there, with group 1 scaled);
    skip: (step, param index) pairs whose gradient is None.
    """
    ours, theirs, opt, topt = setup(cls, kw, group_kw, dtype)
    scale = (group_kw or {}).get("lr_scale", 1.0)
    if scale != 1.0:  # torch has no lr_scale: give it the scaled lr directly
        topt.param_groups[1].pop("lr_scale")
        topt.param_groups[1]["lr"] = kw["lr"] * scale
    rng = np.random.default_rng(1)
    for t in range(steps):
        if lrs is not None:
            opt.set_lr(lrs[t])
            topt.param_groups[0]["lr"], topt.param_groups[1]["lr"] = lrs[t], lrs[t] * scale
        grads = [None if (t, i) in skip else rng.standard_normal(s) for i, s in enumerate(SHAPES)]
        opt.zero_grad(set_to_none=t % 3 == 2)
        feed(ours, theirs, grads, via_backward=t % 2 == 0)
        opt.step()
        topt.step()
        compare(ours, theirs, rtol, atol)
    return ours, opt


@pytest.mark.parametrize("kw", [
    dict(lr=0.1),
    dict(lr=0.1, weight_decay=0.05),
    dict(lr=0.05, momentum=0.9),
    dict(lr=0.05, momentum=0.9, dampening=0.5, weight_decay=1e-2),
    dict(lr=0.05, momentum=0.9, nesterov=True),
    dict(lr=0.05, momentum=0.7, nesterov=True, weight_decay=0.1),
])
def test_sgd_matches_torch(kw):
    run_both(SGD, kw)
    run_both(SGD, kw, group_kw={"weight_decay": 0.0, "lr_scale": 0.5}, lrs=np.linspace(0.1, 0.01, 6))


@pytest.mark.parametrize("cls", [Adam, AdamW])
@pytest.mark.parametrize("kw", [
    dict(lr=1e-2),
    dict(lr=1e-2, weight_decay=0.1),
    dict(lr=3e-3, betas=(0.8, 0.95), eps=1e-6, weight_decay=0.01),
    dict(lr=1e-1, betas=(0.0, 0.5), eps=1e-3),
])
def test_adam_adamw_match_torch(cls, kw):
    run_both(cls, kw, steps=8)


@pytest.mark.parametrize("cls", [SGD, Adam, AdamW])
def test_groups_with_different_decay_and_a_schedule_match_torch(cls):
    """nanoGPT-style groups (decay / no decay) and an lr that changes every step."""
    sched = make_schedule("cosine", 0.05, min_lr=0.005, warmup=3, decay_iters=8)
    kw = dict(lr=0.05, weight_decay=0.1) | (dict(momentum=0.9, nesterov=True) if cls is SGD else {})
    run_both(cls, kw, group_kw={"weight_decay": 0.0}, steps=10, lrs=[sched(it) for it in range(10)])
    run_both(cls, kw, group_kw={"weight_decay": 0.0, "lr_scale": 0.1}, steps=10,
             lrs=[sched(it) for it in range(10)])


@pytest.mark.parametrize("cls", [SGD, Adam, AdamW])
def test_parameters_without_grad_are_skipped_as_in_torch(cls):
    kw = dict(lr=0.05, weight_decay=0.1) | (dict(momentum=0.9) if cls is SGD else {})
    skip = {(0, 3), (1, 1), (2, 1), (2, 2), (4, 0), (5, 0), (5, 1), (5, 2), (5, 3)}
    run_both(cls, kw, steps=7, skip=skip)


def test_float32_matches_torch():
    for cls in (SGD, Adam, AdamW):
        kw = dict(lr=0.01, weight_decay=0.1) | (dict(momentum=0.9) if cls is SGD else {})
        ours, _ = run_both(cls, kw, dtype=np.float32, rtol=1e-5, atol=1e-6)
        assert all(p.dtype == np.float32 for p in ours)


@given(lr=st.floats(1e-4, 0.3), b1=st.floats(0.0, 0.99), b2=st.floats(0.5, 0.9999),
       eps=st.floats(1e-10, 1e-3), wd=st.floats(0.0, 0.3), decoupled=st.booleans())
def test_adam_matches_torch_any_hyperparameters(lr, b1, b2, eps, wd, decoupled):
    run_both(AdamW if decoupled else Adam, dict(lr=lr, betas=(b1, b2), eps=eps, weight_decay=wd),
             steps=4, rtol=1e-10, atol=1e-12)


@given(lr=st.floats(1e-4, 0.3), mu=st.floats(0.0, 0.99), tau=st.floats(0.0, 1.0),
       wd=st.floats(0.0, 0.3), nesterov=st.booleans())
def test_sgd_matches_torch_any_hyperparameters(lr, mu, tau, wd, nesterov):
    if nesterov:
        mu, tau = max(mu, 0.1), 0.0
    run_both(SGD, dict(lr=lr, momentum=mu, dampening=tau, weight_decay=wd, nesterov=nesterov),
             steps=4, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("max_norm", [0.5, 100.0])
def test_clip_grad_norm_matches_torch(max_norm):
    ours, theirs, opt, _ = setup(SGD, dict(lr=0.1))
    plain = [tinyllm.tensor(q.detach().numpy().copy(), requires_grad=True) for q in theirs]
    rng = np.random.default_rng(2)
    grads = [rng.standard_normal(s) for s in SHAPES]
    grads[1] = None
    feed(ours, theirs, grads, via_backward=True)
    feed(plain, theirs, grads, via_backward=False)
    expected = float(torch.nn.utils.clip_grad_norm_(theirs, max_norm))
    assert opt.clip_grad_norm_(max_norm) == pytest.approx(expected, rel=1e-13)
    assert clip_grad_norm_(plain, max_norm) == pytest.approx(expected, rel=1e-13)
    for p, r, q in zip(ours, plain, theirs):
        if q.grad is None:
            assert p.grad is None and r.grad is None
            continue
        np.testing.assert_allclose(p.grad, q.grad.numpy(), rtol=1e-13)
        np.testing.assert_allclose(r.grad, q.grad.numpy(), rtol=1e-13)
