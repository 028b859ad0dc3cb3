"""Choosing the next token from a language model's scores (logits).

At each step the model gives one row of logits z (V scores) per sequence.
Decoding turns a row into a token id:

* greedy:       argmax_i z_i (deterministic);
* temperature:  p = softmax(z / T); T < 1 sharpens, T > 1 flattens;
* top-k:        keep the k largest scores, set the rest to -inf, renormalize;
* top-p:        "nucleus" sampling (Holtzman et al., 2019): keep the smallest
                set of most probable tokens whose total probability is >= p.

They compose in the order Hugging Face applies them: temperature, then top-k,
then top-p, then one draw from what is left. Sampling runs on the host in
float64 (a (B, V) row per step is small) with a NumPy ``Generator``, so a
seed gives the same tokens on every backend.
"""
from __future__ import annotations

import numbers
from typing import Any

import numpy as np

from ..backend import to_numpy
from ..tensor import Tensor


def check_sampling_args(temperature: float = 1.0, top_k: int | None = None, top_p: float | None = None,
                        greedy: bool = False) -> None:
    """Raise ValueError on a temperature <= 0 (unless greedy), a top_k < 1, or a top_p outside (0, 1]."""
    if not greedy and (isinstance(temperature, bool) or not isinstance(temperature, numbers.Real)
                       or not temperature > 0 or not np.isfinite(temperature)):
        raise ValueError(f"temperature must be a positive number (or use greedy=True), got {temperature!r}")
    if top_k is not None and (isinstance(top_k, bool) or not isinstance(top_k, numbers.Integral) or top_k < 1):
        raise ValueError(f"top_k must be an integer >= 1, got {top_k!r}")
    if top_p is not None and (isinstance(top_p, bool) or not isinstance(top_p, numbers.Real)
                              or not 0.0 < top_p <= 1.0):
        raise ValueError(f"top_p must be in (0, 1], got {top_p!r}")


def _as_rows(logits: Any) -> np.ndarray:
    """Logits as a float64 NumPy array (B, V), from a Tensor or any backend array."""
    arr = to_numpy(logits.data if isinstance(logits, Tensor) else logits).astype(np.float64)
    if arr.ndim != 2 or arr.shape[1] == 0:
        raise ValueError(f"logits must have shape (B, V), got {arr.shape}")
    if np.isnan(arr).any():
        raise ValueError("logits contain NaN")
    return arr


def softmax(logits: np.ndarray) -> np.ndarray:
    """p_i = exp(z_i - max z) / sum_j exp(z_j - max z), row by row; -inf scores get p = 0."""
    z = logits - logits.max(axis=-1, keepdims=True)     # (B, V)
    e = np.exp(z)
    return e / e.sum(axis=-1, keepdims=True)


def top_k_filter(logits: np.ndarray, k: int) -> np.ndarray:
    """Keep the ``k`` largest scores of each row (exactly k, ties broken by position); the rest become -inf."""
    v = logits.shape[-1]
    if k >= v:
        return logits
    keep = np.argpartition(-logits, k - 1, axis=-1)[:, :k]           # (B, k) ids of the k largest
    out = np.full_like(logits, -np.inf)
    rows = np.arange(logits.shape[0])[:, None]                       # (B, 1)
    out[rows, keep] = logits[rows, keep]
    return out


def top_p_filter(logits: np.ndarray, p: float) -> np.ndarray:
    """Keep the smallest set of most probable tokens whose probabilities sum to >= ``p``.

    Sorted by probability, token j is kept when the tokens before it sum to < p,
    so the most probable token is always kept.
    """
    if p >= 1.0:
        return logits
    probs = softmax(logits)                                          # (B, V)
    order = np.argsort(-probs, axis=-1, kind="stable")               # (B, V) most probable first
    sorted_p = np.take_along_axis(probs, order, axis=-1)
    before = np.cumsum(sorted_p, axis=-1) - sorted_p                 # mass of the tokens ahead of each
    keep = np.zeros(logits.shape, dtype=bool)
    np.put_along_axis(keep, order, before < p, axis=-1)
    return np.where(keep, logits, -np.inf)


def sample_from(probs: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """One draw per row of ``probs`` (B, V) by inverting the CDF: one uniform number per row.

    Token i is chosen when cdf[i-1] <= u * total < cdf[i], so a token with
    probability 0 is never chosen.
    """
    cdf = np.cumsum(probs, axis=-1)                                  # (B, V)
    u = rng.random(probs.shape[0])[:, None] * cdf[:, -1:]            # (B, 1)
    ids = (cdf <= u).sum(axis=-1)                                    # (B,)
    return np.minimum(ids, probs.shape[-1] - 1).astype(np.int64)


def sample_next(logits: Any, temperature: float = 1.0, top_k: int | None = None, top_p: float | None = None,
                greedy: bool = False, rng: np.random.Generator | None = None) -> np.ndarray:
    """The next token of each sequence, from its logits.

    Args:
        logits: (B, V) scores (a Tensor, NumPy or CuPy array).
        temperature: divide the scores by it before softmax (> 0).
        top_k: keep only the k most likely tokens.
        top_p: keep only the nucleus of total probability top_p, in (0, 1].
        greedy: take the argmax (temperature, top_k, top_p and rng are not used).
        rng: a NumPy Generator; a fresh unseeded one if None.

    Returns:
        (B,) int64 NumPy array of token ids.
    """
    check_sampling_args(temperature, top_k, top_p, greedy)
    z = _as_rows(logits)                                             # (B, V) float64
    if greedy:
        return z.argmax(axis=-1).astype(np.int64)
    z = z / temperature
    if top_k is not None:
        z = top_k_filter(z, int(top_k))
    if top_p is not None:
        z = top_p_filter(z, float(top_p))
    return sample_from(softmax(z), rng if rng is not None else np.random.default_rng())
