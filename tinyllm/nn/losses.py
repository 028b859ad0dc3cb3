"""Losses for the nn layer: the functions of :mod:`tinyllm.functional.losses` (cross-entropy,
MSE, L1, smooth L1, NLL, binary cross-entropy on probabilities or logits), re-exported so every
loss has one home, and the contrastive (InfoNCE) loss of paired embeddings.
"""
from __future__ import annotations

from ..backend import get_array_module
from ..functional.activations import normalize
from ..functional.losses import (BinaryCrossEntropyWithLogits, binary_cross_entropy,
                                 binary_cross_entropy_with_logits, cross_entropy, huber_loss, l1_loss, mse_loss,
                                 nll_loss, smooth_l1_loss)
from ..tensor import Tensor


# ----------------------------------------------------------------------------- contrastive

def l2_normalize(x: Tensor, axis: int = -1, eps: float = 1e-12) -> Tensor:
    """x / max(||x||_2, eps) along ``axis`` (PyTorch's ``F.normalize``), from differentiable ops.

    The clip comes before the square root, as max(||x||^2, eps^2), so a zero row
    gets a zero gradient instead of sqrt's 0/0 at the origin.
    """
    sq_norm = (x * x).sum(axis=axis, keepdims=True)                            # (..., 1)
    return x / sq_norm.clip(lo=eps * eps).sqrt()


def contrastive_loss(z_a: Tensor, z_b: Tensor, temperature: float = 0.07, symmetric: bool = True,
                     normalize: bool = True) -> Tensor:
    """InfoNCE over a batch of B paired embeddings (CLIP, SimCLR): row i of ``z_a``
    should match row i of ``z_b`` and no other row.

        s_ij = <z_a_i, z_b_j> / tau          (cosine similarity when ``normalize``)
        L_a  = -(1/B) sum_i log( exp(s_ii) / sum_k exp(s_ik) )
        L    = (L_a + L_b) / 2 when ``symmetric`` (L_b: the same over the columns of s), else L_a

    Built as a matmul and a cross-entropy of the (B, B) similarity matrix against
    targets 0..B-1, so its gradient is exact.

    Args:
        z_a, z_b: (B, D) embeddings; row i of each is a positive pair.
        temperature: tau > 0; smaller sharpens the softmax.
        symmetric: average the a->b and b->a losses.
        normalize: L2-normalize the rows first.
    """
    if z_a.ndim != 2 or tuple(z_a.shape) != tuple(z_b.shape):
        raise ValueError(f"contrastive_loss needs two (B, D) tensors of one shape, got "
                         f"{tuple(z_a.shape)} and {tuple(z_b.shape)}")
    if temperature <= 0:
        raise ValueError(f"temperature must be positive, got {temperature}")
    if normalize:
        z_a, z_b = l2_normalize(z_a), l2_normalize(z_b)
    logits = (z_a @ z_b.T) * (1.0 / temperature)                            # (B, D) @ (D, B) -> (B, B)
    targets = get_array_module(logits.data).arange(z_a.shape[0])           # (B,) row i matches column i
    loss = cross_entropy(logits, targets)
    if symmetric:
        loss = (loss + cross_entropy(logits.T, targets)) * 0.5
    return loss


__all__ = ["BinaryCrossEntropyWithLogits", "binary_cross_entropy", "binary_cross_entropy_with_logits",
           "contrastive_loss", "cross_entropy", "huber_loss", "l1_loss", "l2_normalize", "mse_loss", "nll_loss",
           "normalize", "smooth_l1_loss"]
