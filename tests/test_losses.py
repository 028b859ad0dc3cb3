"""Losses: gradients against finite differences in float64, values against
their formulas written out in NumPy, stability for large logits, and errors."""
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import tinyllm
from gradcases import grad_case, surface_case
from tinyllm import nn


def randn(rng: np.random.Generator, *shape: int, requires_grad: bool = True, scale: float = 1.0) -> tinyllm.Tensor:
    return tinyllm.tensor(rng.standard_normal(shape) * scale, requires_grad=requires_grad)


def np_log_softmax(z: np.ndarray) -> np.ndarray:
    z = z - z.max(axis=-1, keepdims=True)
    return z - np.log(np.exp(z).sum(axis=-1, keepdims=True))


# ----------------------------------------------------------------------------- cross-entropy

@given(lead=st.lists(st.integers(1, 3), min_size=1, max_size=2), classes=st.integers(1, 4),
       smoothing=st.sampled_from([0.0, 0.1, 0.5]), reduction=st.sampled_from(["mean", "sum", "none"]),
       seed=st.integers(0, 2**16), data=st.data())
def test_cross_entropy_gradients_with_ignore_index_and_label_smoothing(lead, classes, smoothing, reduction,
                                                                        seed, data):
    tinyllm.set_default_dtype("float64")
    rng = np.random.default_rng(seed)
    n = int(np.prod(lead))
    targets = np.array(data.draw(st.lists(st.sampled_from([*range(classes), -1]), min_size=n, max_size=n)))
    targets = targets.reshape(lead)
    logits = randn(rng, *lead, classes, scale=2.0)
    loss = nn.cross_entropy(logits, targets, ignore_index=-1, label_smoothing=smoothing, reduction=reduction)
    # the formula: -(1-eps) log p_t - eps/C sum_c log p_c over rows not ignored
    logp = np_log_softmax(logits.numpy())
    valid = targets != -1
    picked = np.take_along_axis(logp, np.where(valid, targets, 0)[..., None], -1)[..., 0]
    per_row = np.where(valid, -(1 - smoothing) * picked - smoothing * logp.mean(-1), 0.0)
    expected = {"none": per_row, "sum": per_row.sum(), "mean": per_row.sum() / max(valid.sum(), 1)}[reduction]
    np.testing.assert_allclose(loss.numpy(), expected, rtol=1e-10, atol=1e-12)
    if valid.any():
        tinyllm.gradcheck(lambda z: nn.cross_entropy(z, targets, ignore_index=-1, label_smoothing=smoothing,
                                                     reduction=reduction), logits)


# ----------------------------------------------------------------------------- mse

@given(shape=st.lists(st.integers(1, 3), max_size=3), reduction=st.sampled_from(["mean", "sum", "none"]),
       seed=st.integers(0, 2**16))
def test_mse_loss_value_and_gradients(shape, reduction, seed):
    tinyllm.set_default_dtype("float64")
    rng = np.random.default_rng(seed)
    pred, target = randn(rng, *shape), randn(rng, *shape)
    sq = (pred.numpy() - target.numpy()) ** 2
    expected = {"none": sq, "sum": sq.sum(), "mean": sq.mean()}[reduction]
    np.testing.assert_allclose(nn.mse_loss(pred, target, reduction).numpy(), expected, rtol=1e-12)
    tinyllm.gradcheck(lambda p, t: nn.mse_loss(p, t, reduction), pred, target)


def test_mse_loss_accepts_arrays_and_checks_shapes():
    pred = tinyllm.tensor(np.array([1.0, 2.0], dtype=np.float32), requires_grad=True)
    loss = nn.mse_loss(pred, np.array([0.0, 0.0], dtype=np.float32))
    assert loss.item() == pytest.approx(2.5) and loss.dtype == np.float32
    loss.backward()
    np.testing.assert_allclose(pred.grad, [1.0, 2.0])                  # 2 (p - t) / N
    with pytest.raises(ValueError, match="shape"):
        nn.mse_loss(pred, np.zeros(3, dtype=np.float32))
    with pytest.raises(ValueError, match="reduction"):
        nn.mse_loss(pred, pred, reduction="avg")


# ----------------------------------------------------------------------------- binary cross-entropy

def np_bce(x: np.ndarray, y: np.ndarray, w: np.ndarray | float = 1.0) -> np.ndarray:
    """-[w y log sigma(x) + (1 - y) log(1 - sigma(x))], straight from the definition."""
    s = 1 / (1 + np.exp(-x))
    return -(w * y * np.log(s) + (1 - y) * np.log(1 - s))


@grad_case("BinaryCrossEntropyWithLogits")
@given(shape=st.lists(st.integers(1, 3), min_size=1, max_size=3), reduction=st.sampled_from(["mean", "sum", "none"]),
       weighted=st.booleans(), seed=st.integers(0, 2**16))
def test_bce_with_logits_value_and_gradients(shape, reduction, weighted, seed):
    tinyllm.set_default_dtype("float64")
    rng = np.random.default_rng(seed)
    x = randn(rng, *shape, scale=3.0)
    y = tinyllm.tensor(rng.uniform(0, 1, shape), requires_grad=True)   # soft targets get a gradient too
    w = rng.uniform(0.5, 3.0, shape[-1]) if weighted else None
    per = np_bce(x.numpy(), y.numpy(), 1.0 if w is None else w)
    expected = {"none": per, "sum": per.sum(), "mean": per.mean()}[reduction]
    loss = nn.binary_cross_entropy_with_logits(x, y, reduction, pos_weight=w)
    np.testing.assert_allclose(loss.numpy(), expected, rtol=1e-10)
    tinyllm.gradcheck(lambda x, y: nn.binary_cross_entropy_with_logits(x, y, reduction, pos_weight=w), x, y)


@grad_case("BinaryCrossEntropyWithLogits")
@surface_case("F.binary_cross_entropy_with_logits")
def test_bce_with_logits_gradient_of_logits_alone():
    tinyllm.set_default_dtype("float64")
    rng = np.random.default_rng(0)
    x, y = randn(rng, 3, 2), tinyllm.tensor((rng.uniform(size=(3, 2)) > 0.5).astype(np.float64))
    tinyllm.gradcheck(lambda x: nn.binary_cross_entropy_with_logits(x, y, "sum", pos_weight=[2.0, 0.5]), x)


def test_bce_with_logits_is_stable_for_huge_logits():
    x = tinyllm.tensor(np.array([-1000.0, -60.0, 60.0, 1000.0, 0.0], dtype=np.float32), requires_grad=True)
    y = np.array([0.0, 1.0, 0.0, 1.0, 1.0], dtype=np.float32)
    loss = nn.binary_cross_entropy_with_logits(x, y, "none")
    # confident and right: ~0; confident and wrong: ~|x|; undecided: log 2
    np.testing.assert_allclose(loss.numpy(), [0.0, 60.0, 60.0, 0.0, np.log(2)], rtol=1e-6, atol=1e-6)
    loss.sum().backward()
    np.testing.assert_allclose(x.grad, [0.0, -1.0, 1.0, 0.0, -0.5], atol=1e-6)   # sigma(x) - y
    assert np.isfinite(x.grad).all() and loss.dtype == np.float32


def test_bce_with_logits_checks_its_arguments():
    x = tinyllm.tensor(np.zeros((2, 3), dtype=np.float32))
    with pytest.raises(ValueError, match="targets shape"):
        nn.binary_cross_entropy_with_logits(x, np.zeros(3))
    with pytest.raises(ValueError, match="pos_weight"):
        nn.binary_cross_entropy_with_logits(x, np.zeros((2, 3)), pos_weight=np.ones(2))
    with pytest.raises(ValueError, match="reduction"):
        nn.binary_cross_entropy_with_logits(x, np.zeros((2, 3)), reduction="batchmean")
    loss = nn.binary_cross_entropy_with_logits(x, np.ones((2, 3), dtype=np.int64))  # integer labels are cast
    assert loss.dtype == np.float32 and loss.item() == pytest.approx(np.log(2))


# ----------------------------------------------------------------------------- contrastive

def np_info_nce(a: np.ndarray, b: np.ndarray, tau: float, symmetric: bool, normalize: bool) -> float:
    """The InfoNCE loss written out: -mean_i log(exp(s_ii) / sum_k exp(s_ik))."""
    if normalize:
        a = a / np.linalg.norm(a, axis=1, keepdims=True)
        b = b / np.linalg.norm(b, axis=1, keepdims=True)
    s = a @ b.T / tau
    loss_a = -np.mean(np.diag(np_log_softmax(s)))
    loss_b = -np.mean(np.diag(np_log_softmax(s.T)))
    return (loss_a + loss_b) / 2 if symmetric else loss_a


@given(batch=st.integers(1, 4), dim=st.integers(1, 4), symmetric=st.booleans(), normalize=st.booleans(),
       tau=st.sampled_from([0.07, 0.5, 1.0]), seed=st.integers(0, 2**16))
def test_contrastive_loss_value_and_gradients(batch, dim, symmetric, normalize, tau, seed):
    tinyllm.set_default_dtype("float64")
    rng = np.random.default_rng(seed)
    za, zb = randn(rng, batch, dim), randn(rng, batch, dim)
    loss = nn.contrastive_loss(za, zb, tau, symmetric, normalize)
    assert loss.shape == ()
    np.testing.assert_allclose(loss.item(), np_info_nce(za.numpy(), zb.numpy(), tau, symmetric, normalize),
                               rtol=1e-10)
    tinyllm.gradcheck(lambda a, b: nn.contrastive_loss(a, b, tau, symmetric, normalize), za, zb)


def test_contrastive_loss_rewards_matching_pairs():
    """Aligned pairs of orthogonal directions: near-zero loss; shuffled pairs: large loss."""
    eye = np.eye(4) * 3.0
    tinyllm.set_default_dtype("float64")
    good = nn.contrastive_loss(tinyllm.tensor(eye), tinyllm.tensor(eye * 2), temperature=0.05).item()
    bad = nn.contrastive_loss(tinyllm.tensor(eye), tinyllm.tensor(eye[::-1].copy()), temperature=0.05).item()
    assert good < 1e-7 and bad > 15                                    # cosine 1 vs 0, over tau = 0.05
    # without normalization the scale of the embeddings matters
    assert nn.contrastive_loss(tinyllm.tensor(eye), tinyllm.tensor(eye), 1.0, normalize=False).item() < \
        nn.contrastive_loss(tinyllm.tensor(eye / 3), tinyllm.tensor(eye / 3), 1.0, normalize=False).item()


def test_contrastive_loss_checks_its_arguments():
    a = tinyllm.tensor(np.ones((3, 2), dtype=np.float32))
    with pytest.raises(ValueError, match=r"\(B, D\)"):
        nn.contrastive_loss(a, tinyllm.tensor(np.ones((2, 2), dtype=np.float32)))
    with pytest.raises(ValueError, match="temperature"):
        nn.contrastive_loss(a, a, temperature=0.0)
    assert nn.contrastive_loss(a, a).dtype == np.float32                # no silent upcast


def test_l2_normalize_is_unit_norm_and_safe_at_zero():
    tinyllm.set_default_dtype("float64")
    x = tinyllm.tensor(np.array([[3.0, 4.0], [0.0, 0.0]]), requires_grad=True)
    y = nn.l2_normalize(x)
    np.testing.assert_allclose(y.numpy(), [[0.6, 0.8], [0.0, 0.0]])
    y.sum().backward()
    assert np.isfinite(x.grad).all()
