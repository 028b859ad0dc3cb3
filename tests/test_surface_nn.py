"""Losses, activation modules, ``normalize`` and additive float attention masks:
values and gradients against PyTorch (skipped without torch), and finite
differences in float64 for the losses built from primitive ops."""
from __future__ import annotations

import numpy as np
import pytest

import tinyllm
import tinyllm.functional as F
from gradcases import grad_case, surface_case
from tinyllm import gradcheck, nn

torch = pytest.importorskip("torch")
TF = torch.nn.functional
RNG = np.random.default_rng(0)


def _pair(a):
    return tinyllm.tensor(a, requires_grad=True), torch.tensor(a, requires_grad=True)


def _same(ours, theirs, x, tx, rtol=1e-10):
    np.testing.assert_allclose(ours.numpy(), theirs.detach().numpy(), rtol=rtol, atol=1e-12)
    cot = RNG.standard_normal(ours.shape)
    ours.backward(cot)
    theirs.backward(torch.from_numpy(cot))
    np.testing.assert_allclose(x.grad, tx.grad.numpy(), rtol=rtol, atol=1e-12)


@surface_case("F.mse_loss", "F.l1_loss", "F.smooth_l1_loss", "F.huber_loss")
@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
@pytest.mark.parametrize("name", ["mse_loss", "l1_loss", "smooth_l1_loss", "huber_loss"])
def test_regression_losses_match_torch(name, reduction) -> None:
    a, b = RNG.standard_normal((3, 4)), RNG.standard_normal((3, 4)) * 2
    x, tx = _pair(a)
    kw = {"beta": 0.5} if name == "smooth_l1_loss" else {"delta": 0.7} if name == "huber_loss" else {}
    _same(getattr(F, name)(x, b, reduction=reduction, **kw),
          getattr(TF, name)(tx, torch.from_numpy(b), reduction=reduction, **kw), x, tx)
    gradcheck(lambda z: getattr(F, name)(z, b, reduction=reduction, **kw), tinyllm.tensor(a, requires_grad=True))


@surface_case("F.nll_loss")
@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
def test_nll_loss_with_weights_and_ignore_index_matches_torch(reduction) -> None:
    logp = np.log(RNG.dirichlet(np.ones(5), size=6))
    target = np.array([0, 4, -100, 2, 2, 1])
    weight = np.array([1.0, 2.0, 0.5, 1.5, 3.0])
    x, tx = _pair(logp)
    _same(F.nll_loss(x, target, weight=weight, reduction=reduction),
          TF.nll_loss(tx, torch.from_numpy(target), weight=torch.from_numpy(weight), reduction=reduction), x, tx)
    gradcheck(lambda z: F.nll_loss(z, target, reduction=reduction), tinyllm.tensor(logp, requires_grad=True))


@pytest.mark.parametrize("smoothing", [0.0, 0.2])
@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
def test_cross_entropy_with_probability_targets_matches_torch(smoothing, reduction) -> None:
    z, q = RNG.standard_normal((4, 5)), RNG.dirichlet(np.ones(5), size=4)
    x, tx = _pair(z)
    _same(F.cross_entropy(x, q, label_smoothing=smoothing, reduction=reduction),
          TF.cross_entropy(tx, torch.from_numpy(q), label_smoothing=smoothing, reduction=reduction), x, tx)
    gradcheck(lambda w: F.cross_entropy(w, q, label_smoothing=smoothing), tinyllm.tensor(z, requires_grad=True))
    t = np.array([0, 3, 1, 4])                                   # integer targets still take the fused op
    np.testing.assert_allclose(F.cross_entropy(tinyllm.tensor(z), t).item(),
                               TF.cross_entropy(torch.from_numpy(z), torch.from_numpy(t)).item(), rtol=1e-10)


@grad_case("BinaryCrossEntropy")
@surface_case("F.binary_cross_entropy")
@pytest.mark.parametrize("weighted", [False, True])
def test_binary_cross_entropy_on_probabilities_matches_torch(weighted) -> None:
    p = np.concatenate([RNG.uniform(0.05, 0.95, 6), [0.0, 1.0]]).reshape(2, 4)
    y = np.array([[0, 1, 1, 0], [1, 0, 0.3, 1.0]])
    w = RNG.uniform(0.5, 2, (2, 4)) if weighted else None
    x, tx = _pair(p)
    ours = F.binary_cross_entropy(x, y, weight=w)
    theirs = TF.binary_cross_entropy(tx, torch.from_numpy(y), weight=None if w is None else torch.from_numpy(w))
    np.testing.assert_allclose(ours.item(), theirs.item(), rtol=1e-10)      # log clamped at -100, as torch
    ours.backward()
    theirs.backward()
    np.testing.assert_allclose(x.grad, tx.grad.numpy(), rtol=1e-7)        # finite at p = 0 and 1, as torch
    inner = np.s_[:1]                                                      # away from 0 and 1
    gradcheck(lambda z: F.binary_cross_entropy(z, y[inner]), tinyllm.tensor(p[inner], requires_grad=True))
    with pytest.raises(ValueError, match="probabilities"):
        F.binary_cross_entropy(tinyllm.tensor([1.5]), [1.0])


def test_bce_with_logits_moved_to_functional_and_kept_in_nn() -> None:
    assert nn.BinaryCrossEntropyWithLogits is F.BinaryCrossEntropyWithLogits
    assert nn.binary_cross_entropy_with_logits is F.binary_cross_entropy_with_logits


@pytest.mark.parametrize("p", [1.0, 2.0, 3.0])
def test_normalize_matches_torch_and_keeps_zero_rows_finite(p) -> None:
    a = RNG.standard_normal((3, 4))
    a[1] = 0.0
    x, tx = _pair(a)
    _same(F.normalize(x, p=p), TF.normalize(tx, p=p), x, tx)
    assert np.isfinite(x.grad).all()


def test_gelu_exact_and_tanh_dispatch() -> None:
    a = RNG.standard_normal((3, 4))
    for approximate in ("none", "tanh"):
        x, tx = _pair(a)
        _same(F.gelu(x, approximate=approximate), TF.gelu(tx, approximate=approximate), x, tx)
        m = nn.GELU(approximate=approximate)
        np.testing.assert_allclose(m(tinyllm.tensor(a)).numpy(), TF.gelu(torch.from_numpy(a), approximate=approximate),
                                   rtol=1e-10)
    assert tinyllm.gelu(tinyllm.tensor(a)).numpy() == pytest.approx(TF.gelu(torch.from_numpy(a)).numpy(),
                                                                    rel=1e-10)   # PyTorch's default: exact
    with pytest.raises(ValueError, match="approximate"):
        F.gelu(tinyllm.tensor(a), approximate="erf")


MODULES = [("SiLU", {}), ("Mish", {}), ("Softplus", {"beta": 2.0}), ("ELU", {"alpha": 0.5}), ("CELU", {"alpha": 2.0}),
           ("SELU", {}), ("LeakyReLU", {"negative_slope": 0.1}), ("ReLU6", {}), ("Hardtanh", {"min_val": -0.5}),
           ("Hardsigmoid", {}), ("Hardswish", {}), ("LogSigmoid", {}), ("Softsign", {}), ("Sigmoid", {}), ("Tanh", {}),
           ("Softmax", {"dim": -1}), ("LogSoftmax", {"dim": 0}), ("Softmin", {"dim": 1})]


@pytest.mark.parametrize("name, kwargs", MODULES)
def test_activation_modules_match_torch(name, kwargs) -> None:
    a = RNG.standard_normal((3, 4)) * 3
    ours, theirs = getattr(nn, name)(**kwargs), getattr(torch.nn, name)(**kwargs)
    x, tx = _pair(a)
    _same(ours(x), theirs(tx), x, tx, rtol=1e-7)          # torch rounds some constants (hardsigmoid's 1/6) to float32
    assert not list(ours.parameters())


@surface_case("F.attention_with_bias")
def test_additive_float_attention_masks_match_torch() -> None:
    q, k, v = (RNG.standard_normal(s) for s in [(2, 3, 4), (2, 5, 4), (2, 5, 2)])
    bias = RNG.standard_normal((3, 5))                               # e.g. ALiBi: any float bias
    neg_inf = np.where(RNG.random((3, 5)) < 0.3, -np.inf, 0.0)
    neg_inf[:, 0] = 0.0                                              # every query sees a key
    for mask in (bias, neg_inf):
        ours = [tinyllm.tensor(a, requires_grad=True) for a in (q, k, v)]
        theirs = [torch.tensor(a, requires_grad=True) for a in (q, k, v)]
        y = F.attention(*ours, mask=mask)
        ty = TF.scaled_dot_product_attention(*theirs, attn_mask=torch.from_numpy(mask))
        np.testing.assert_allclose(y.numpy(), ty.detach().numpy(), rtol=1e-10, atol=1e-12)
        cot = RNG.standard_normal(y.shape)
        y.backward(cot)
        ty.backward(torch.from_numpy(cot))
        for a, b in zip(ours, theirs):
            np.testing.assert_allclose(a.grad, b.grad.numpy(), rtol=1e-9, atol=1e-12)
    gradcheck(lambda a, b, c: F.attention(a, b, c, mask=bias, causal=True),
              *[tinyllm.tensor(a[..., :3, :] if i == 0 else a, requires_grad=True) for i, a in enumerate((q, k, v))])
