"""A linear-chain conditional random field over per-token tag scores (Lafferty et al., 2001).

For emissions e (B, T, K) from a tagger, a tag sequence y of length n scores

    s(y) = start[y_0] + sum_{t<n} e_t[y_t] + sum_{1<=t<n} trans[y_{t-1}, y_t] + end[y_{n-1}]

and p(y | x) = exp s(y) / Z with Z = sum over all K^n sequences of exp s(y').
The loss is the negative log-likelihood -log p(y | x) = log Z - s(y).

log Z comes from the forward algorithm in log space, one (B, K, K) logsumexp
per time step (vectorised over the batch, a loop over time only):

    alpha_0 = start + e_0
    alpha_t[j] = logsumexp_i(alpha_{t-1}[i] + trans[i, j]) + e_t[j]
    log Z = logsumexp_j(alpha_{n-1}[j] + end[j])

Its gradient is the marginals (forward-backward): with
beta_{n-1} = end and beta_{t-1}[i] = logsumexp_j(trans[i, j] + e_t[j] + beta_t[j]),

    d log Z / d e_t[j]       = p(y_t = j)                   = exp(alpha_t[j] + beta_t[j] - log Z)
    d log Z / d trans[i, j]  = sum_t p(y_{t-1} = i, y_t = j) = sum_t exp(alpha_{t-1}[i] + trans[i, j]
                                                                    + e_t[j] + beta_t[j] - log Z)
    d log Z / d start[j]     = p(y_0 = j),     d log Z / d end[j] = p(y_{n-1} = j)

and d s(y) / d(.) counts the gold path's emissions and transitions, so the
whole NLL is one graph node (:class:`CRFNegLogLikelihood`) whose backward is
"marginals minus gold counts".

Padding: ``mask`` (B, T) is True for real tokens; the first position is always
real and the real tokens come first (a prefix), as in batches padded on the
right. Viterbi decoding replaces logsumexp by max and follows back-pointers.

Constraints: with a tagging scheme (BIO or BIOES) and the tag names, the
transitions the scheme forbids (O -> I-PER, B-PER -> I-LOC, a sequence starting
with I-PER, ...) get a score of -inf, so neither the loss nor the decoder ever
considers them.
"""
from __future__ import annotations

from typing import Any, Sequence

import numpy as np

from ..backend import get_array_module, get_default_dtype
from ..nn import Module, Parameter, init
from ..tensor import Function, Tensor
from .common import padding_mask

SCHEMES = ("BIO", "BIOES")


# ----------------------------------------------------------------------------- constraints

def _split_tag(tag: str) -> tuple[str, str]:
    """("B", "PER") from "B-PER"; ("O", "") from "O"."""
    if tag == "O":
        return "O", ""
    prefix, sep, kind = tag.partition("-")
    if not sep or not kind or prefix not in "BIES" or len(prefix) != 1:
        raise ValueError(f"tag {tag!r} is not O or <B|I|E|S>-<type>")
    return prefix, kind


def allowed_transitions(tags: Sequence[str], scheme: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Which starts (K,), transitions (K, K) [from, to] and ends (K,) a tagging scheme allows.

    BIO: I-x only after B-x or I-x. BIOES additionally: B-x and I-x must be
    followed by I-x or E-x, and a sequence ends with O, E-x or S-x.
    """
    if scheme not in SCHEMES:
        raise ValueError(f"scheme must be one of {', '.join(SCHEMES)}, got {scheme!r}")
    parts = [_split_tag(t) for t in tags]
    if scheme == "BIO" and any(p in "ES" for p, _ in parts):
        raise ValueError("tags with E- or S- prefixes need the BIOES scheme, not BIO")
    k = len(parts)
    start, end = np.ones(k, dtype=bool), np.ones(k, dtype=bool)
    trans = np.ones((k, k), dtype=bool)
    for j, (pj, kj) in enumerate(parts):
        inside = pj in "IE"                                            # continues an entity
        if inside:
            start[j] = False
        if scheme == "BIOES" and pj in "BI":
            end[j] = False
        for i, (pi, ki) in enumerate(parts):
            open_i = pi in "BI"                                        # an entity is open after tag i
            if scheme == "BIO":
                trans[i, j] = not inside or (open_i and ki == kj)
            else:
                trans[i, j] = (open_i and ki == kj) if inside else not open_i
    return start, trans, end


# ----------------------------------------------------------------------------- the math, on arrays

def _logsumexp(x: Any, axis: int) -> Any:
    xp = get_array_module(x)
    m = x.max(axis=axis, keepdims=True)
    m = xp.where(xp.isfinite(m), m, 0.0)
    return (xp.log(xp.exp(x - m).sum(axis=axis, keepdims=True)) + m).squeeze(axis)


def check_mask(mask: Any) -> None:
    """ValueError unless every row of the (B, T) mask is a non-empty prefix of True values."""
    if not bool(mask[:, 0].all()):
        raise ValueError("the CRF mask must be on at the first position of every sequence")
    if bool((mask[:, 1:] & ~mask[:, :-1]).any()):
        raise ValueError("the CRF mask must be a prefix (padding on the right only)")


def forward_scores(e: Any, start: Any, trans: Any, end: Any, mask: Any) -> tuple[Any, Any]:
    """alpha (B, T, K) of the forward algorithm (carried over padding) and log Z (B,)."""
    xp = get_array_module(e)
    t = e.shape[1]
    alpha = xp.empty_like(e)
    alpha[:, 0] = start + e[:, 0]                                      # (B, K)
    for i in range(1, t):
        nxt = _logsumexp(alpha[:, i - 1, :, None] + trans, axis=1) + e[:, i]   # (B, K, 1) + (K, K) -> (B, K)
        alpha[:, i] = xp.where(mask[:, i, None], nxt, alpha[:, i - 1])
    return alpha, _logsumexp(alpha[:, -1] + end, axis=1)               # (B, K) -> (B,)


def backward_scores(e: Any, trans: Any, end: Any, mask: Any) -> Any:
    """beta (B, T, K): log-sum of the scores of every completion after position t."""
    xp = get_array_module(e)
    t = e.shape[1]
    beta = xp.empty_like(e)
    beta[:, -1] = end
    for i in range(t - 1, 0, -1):
        prev = _logsumexp(trans + (e[:, i] + beta[:, i])[:, None, :], axis=2)   # (K, K) + (B, 1, K) -> (B, K)
        beta[:, i - 1] = xp.where(mask[:, i, None], prev, beta[:, i])
    return beta


def path_score(e: Any, start: Any, trans: Any, end: Any, tags: Any, mask: Any) -> Any:
    """s(y) (B,) of the tag sequences ``tags`` (B, T) (entries under padding are ignored)."""
    xp = get_array_module(e)
    b, t, _ = e.shape
    rows = xp.arange(b)
    y = xp.where(mask, tags, 0)
    emit = xp.take_along_axis(e, y[:, :, None], axis=2)[:, :, 0]      # (B, T)
    score = start[y[:, 0]] + xp.where(mask, emit, 0.0).sum(axis=1)
    if t > 1:                                                          # where, not * m: trans may hold -inf
        score = score + xp.where(mask[:, 1:], trans[y[:, :-1], y[:, 1:]], 0.0).sum(axis=1)
    last = mask.sum(axis=1) - 1                                        # (B,) index of the last real token
    return score + end[y[rows, last]]


def viterbi(e: Any, start: Any, trans: Any, end: Any, mask: Any) -> tuple[Any, Any]:
    """The best tag sequence (B, T) (-1 under padding) and its score s(y*) (B,)."""
    xp = get_array_module(e)
    b, t, k = e.shape
    delta = start + e[:, 0]                                            # (B, K)
    back = xp.empty((b, t, k), dtype=np.int64)
    same = xp.broadcast_to(xp.arange(k), (b, k))
    for i in range(1, t):
        cand = delta[:, :, None] + trans                               # (B, K, 1) + (K, K) -> (B, K from, K to)
        best = cand.argmax(axis=1)                                     # (B, K)
        nxt = xp.take_along_axis(cand, best[:, None, :], axis=1)[:, 0] + e[:, i]
        on = mask[:, i, None]
        delta = xp.where(on, nxt, delta)
        back[:, i] = xp.where(on, best, same)                          # padding: stay on the same tag
    final = delta + end
    tag = final.argmax(axis=1)                                         # (B,)
    score = xp.take_along_axis(final, tag[:, None], axis=1)[:, 0]
    path = xp.empty((b, t), dtype=np.int64)
    path[:, -1] = tag
    for i in range(t - 1, 0, -1):
        tag = xp.take_along_axis(back[:, i], tag[:, None], axis=1)[:, 0]
        path[:, i - 1] = tag
    return xp.where(mask, path, -1), score


class CRFNegLogLikelihood(Function):
    """-log p(y | x) = log Z - s(y) per sequence (B,); the backward is marginals minus gold counts
    (see the module docstring). Inputs: emissions (B, T, K), start (K,), trans (K, K), end (K,)."""

    def forward(self, e, start, trans, end, tags=None, mask=None):
        xp = get_array_module(e)
        alpha, log_z = forward_scores(e, start, trans, end, mask)
        gold = path_score(e, start, trans, end, tags, mask)
        if not bool(xp.isfinite(gold).all()):
            bad = int(xp.nonzero(~xp.isfinite(gold))[0][0])
            raise ValueError(f"the tag sequence of example {bad} has a transition the CRF's constraints forbid")
        self.saved = (e, start, trans, end, tags, mask, alpha, log_z)
        return log_z - gold

    def backward(self, g):
        e, _, trans, end, tags, mask, alpha, log_z = self.saved
        xp = get_array_module(e)
        b, t, k = e.shape
        beta = backward_scores(e, trans, end, mask)
        m = mask.astype(e.dtype)
        node = xp.exp(xp.where(mask[:, :, None], alpha + beta - log_z[:, None, None], -np.inf))  # (B, T, K) p(y_t=j)
        y = xp.where(mask, tags, 0)
        onehot = (y[:, :, None] == xp.arange(k)).astype(e.dtype) * m[:, :, None]   # (B, T, K) gold counts
        gb = g[:, None, None]
        de = gb * (node - onehot)
        d_start = (g[:, None] * (node[:, 0] - onehot[:, 0])).sum(axis=0)
        last = mask.sum(axis=1) - 1
        rows = xp.arange(b)
        d_end = (g[:, None] * (node[rows, last] - onehot[rows, last])).sum(axis=0)
        d_trans = xp.zeros_like(trans)
        for i in range(1, t):                                           # edge marginals, one (B, K, K) per step
            edge = alpha[:, i - 1, :, None] + trans + (e[:, i] + beta[:, i])[:, None, :] - log_z[:, None, None]
            edge = xp.where(mask[:, i, None, None], edge, -np.inf)     # padding: no edge
            w = g * m[:, i]                                             # (B,)
            d_trans += (xp.exp(edge) * w[:, None, None]).sum(axis=0)
            gold = (onehot[:, i - 1, :, None] * onehot[:, i, None, :]) * w[:, None, None]
            d_trans -= gold.sum(axis=0)
        return de, d_start, d_trans, d_end


# ----------------------------------------------------------------------------- the module

class CRF(Module):
    """A linear-chain CRF over ``num_tags`` tags: parameters ``start_transitions`` (K,),
    ``transitions`` (K, K) [from, to] and ``end_transitions`` (K,) (pytorch-crf's names).

    Args:
        num_tags: K.
        tags: the tag names, needed with ``scheme``.
        scheme: None (every transition allowed), "BIO" or "BIOES" (forbidden ones score -inf).
    """

    def __init__(self, num_tags: int, tags: Sequence[str] | None = None, scheme: str | None = None) -> None:
        super().__init__()
        if isinstance(num_tags, bool) or not isinstance(num_tags, int) or num_tags < 1:
            raise ValueError(f"num_tags must be a positive integer, got {num_tags!r}")
        self.num_tags, self.scheme = num_tags, scheme
        dt = get_default_dtype()
        self.start_transitions = Parameter(np.zeros(num_tags, dtype=dt))
        self.end_transitions = Parameter(np.zeros(num_tags, dtype=dt))
        self.transitions = Parameter(np.zeros((num_tags, num_tags), dtype=dt))
        for p in (self.start_transitions, self.end_transitions, self.transitions):
            init.uniform_(p, -0.1, 0.1)
        self._allowed = None
        if scheme is not None:
            if tags is None or len(tags) != num_tags:
                raise ValueError(f"a {scheme} scheme needs the {num_tags} tag names")
            self._allowed = allowed_transitions(list(tags), scheme)

    def _scores(self) -> tuple[Tensor, Tensor, Tensor]:
        """start, trans, end with the forbidden entries at -inf (their gradient is 0)."""
        s, tr, e = self.start_transitions, self.transitions, self.end_transitions
        if self._allowed is None:
            return s, tr, e
        ok_s, ok_t, ok_e = self._allowed
        return (s.masked_fill(~ok_s, -np.inf), tr.masked_fill(~ok_t, -np.inf), e.masked_fill(~ok_e, -np.inf))

    def _mask(self, emissions: Tensor, mask: Any) -> Any:
        b, t, k = emissions.shape
        if k != self.num_tags:
            raise ValueError(f"emissions have {k} tags, the CRF {self.num_tags}")
        xp = get_array_module(emissions.data)
        m = xp.ones((b, t), dtype=bool) if mask is None else padding_mask(mask, (b, t), "mask")
        check_mask(m)
        return m

    def forward(self, emissions: Tensor, tags: Any, mask: Any = None, reduction: str = "mean") -> Tensor:
        """The negative log-likelihood of ``tags`` (B, T): per sequence ("none"), "sum" or "mean"."""
        if reduction not in ("mean", "sum", "none"):
            raise ValueError(f"reduction must be 'mean', 'sum' or 'none', got {reduction!r}")
        m = self._mask(emissions, mask)
        xp = get_array_module(emissions.data)
        y = xp.asarray(tags.data if isinstance(tags, Tensor) else tags).astype(np.int64)
        if tuple(y.shape) != tuple(m.shape):
            raise ValueError(f"tags must have shape {tuple(m.shape)}, got {tuple(y.shape)}")
        if bool(((y < 0) | (y >= self.num_tags))[m].any()):
            raise ValueError(f"a tag is outside [0, {self.num_tags}) at a real (unmasked) position")
        start, trans, end = self._scores()
        nll = CRFNegLogLikelihood.apply(emissions, start, trans, end, tags=y, mask=m)   # (B,)
        if reduction == "none":
            return nll
        return nll.sum() if reduction == "sum" else nll.mean()

    def decode(self, emissions: Tensor, mask: Any = None) -> tuple[Any, Any]:
        """Viterbi: the best tags (B, T) (-1 under padding) and their scores (B,), as arrays."""
        m = self._mask(emissions, mask)
        start, trans, end = (p.data for p in self._scores())
        return viterbi(emissions.data, start, trans, end, m)

    def extra_repr(self) -> str:
        return f"num_tags={self.num_tags}" + (f", scheme={self.scheme}" if self.scheme else "")
