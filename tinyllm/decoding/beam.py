"""Decoding an encoder-decoder: greedy search and beam search, batched over sources.

A :class:`Seq2SeqDecoder` (``tinyllm.models.Seq2Seq``) encodes the sources
once (:meth:`start`, which also projects the cross-attention keys and values
of the memory once per source) and then scores the next target token of
every row from the newest token alone (:meth:`step_logits`, with the
decoder's self-attention keys and values cached).

**Greedy**: y_t = argmax_v log p(v | x, y_<t), until EOS or max_new_tokens.

**Beam search** keeps the K best partial targets of each source by their
log-probability s(y) = sum_t log p(y_t | x, y_<t). Each step extends every
beam by every token, keeps the 2K best extensions of each source, moves the
ones that end with EOS among the K best to the source's finished list and
continues the best K others. Finished targets are ranked by the length-normalized score of Wu
et al. (2016, GNMT, eq. 14):

    score(y) = s(y) / lp(|y|),    lp(n) = ((5 + n) / 6) ** alpha

(alpha = 0: raw log-probability; larger alpha favours longer outputs).
A source is done once it has K finished targets ("every beam has ended";
Hugging Face's ``early_stopping=True``); at ``max_new_tokens`` the beams
still open count as finished. The PAD and BOS tokens are never produced.
With K = 1 this is greedy search exactly.
"""
from __future__ import annotations

import numbers
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np

from .. import backend
from ..models.common import inference, token_ids


class Seq2SeqDecoder(Protocol):
    """What :func:`greedy_search` and :func:`beam_search` need (``tinyllm.models.Seq2Seq`` provides it)."""

    config: Any          # vocab_size, block_size, pad_id, bos_id, eos_id

    def start(self, src: Any, src_mask: Any = None, repeat: int = 1) -> Any:
        """Encode (B, S) sources; a cache of ``repeat`` adjacent rows per source (``.select(rows)`` reorders)."""
        ...

    def step_logits(self, tgt_new: Any, cache: Any) -> Any:
        """Scores (rows, V) of the token after each row's newest tokens ``tgt_new`` (rows, 1)."""
        ...


@dataclass
class Hypothesis:
    """One decoded target: its tokens (no BOS, no EOS), log-probability and length-normalized score."""

    tokens: list[int]
    logprob: float
    score: float


def length_penalty(n: int | np.ndarray, alpha: float) -> Any:
    """lp(n) = ((5 + n) / 6) ** alpha (Wu et al. 2016); n counts the produced tokens, EOS included."""
    return ((5.0 + n) / 6.0) ** alpha


def _check(model: Seq2SeqDecoder, src: Any, max_new_tokens: int) -> tuple[np.ndarray, int]:
    if isinstance(max_new_tokens, bool) or not isinstance(max_new_tokens, numbers.Integral) or max_new_tokens < 1:
        raise ValueError(f"max_new_tokens must be an integer >= 1, got {max_new_tokens!r}")
    ids = backend.to_numpy(token_ids(src, "src"))                          # (B, S)
    v = model.config.source_vocab if hasattr(model.config, "source_vocab") else model.config.vocab_size
    if ids.min() < 0 or ids.max() >= v:
        raise ValueError(f"source token ids must be in [0, {v}), got min {ids.min()}, max {ids.max()}")
    return ids, min(int(max_new_tokens), model.config.block_size - 1)      # BOS takes one target position


def _log_probs(logits: Any, banned: tuple[int, ...]) -> np.ndarray:
    """log softmax over the allowed tokens of (R, V) scores, in float64 on the host; banned tokens get -inf."""
    z = backend.to_numpy(logits).astype(np.float64)                         # (R, V)
    z[:, list(banned)] = -np.inf                                            # renormalized over the others
    z = z - z.max(axis=-1, keepdims=True)
    return z - np.log(np.exp(z).sum(axis=-1, keepdims=True))                # (R, V)


def greedy_search(model: Seq2SeqDecoder, src: Any, max_new_tokens: int, src_mask: Any = None) -> list[Hypothesis]:
    """The most likely next token at every step, for each source of ``src`` (B, S): B hypotheses."""
    ids, steps = _check(model, src, max_new_tokens)
    c = model.config
    b = ids.shape[0]
    tokens = np.full((b, steps), c.eos_id, dtype=np.int64)                 # (B, steps), EOS after the end
    logprob = np.zeros(b)
    done = np.zeros(b, dtype=bool)
    with inference(model):
        cache = model.start(backend.asarray(ids), src_mask)
        last = np.full((b, 1), c.bos_id, dtype=np.int64)                    # (B, 1)
        for t in range(steps):
            logp = _log_probs(model.step_logits(backend.asarray(last), cache), (c.pad_id, c.bos_id))  # (B, V)
            nxt = logp.argmax(axis=-1)                                       # (B,)
            logprob += np.where(done, 0.0, logp[np.arange(b), nxt])
            tokens[~done, t] = nxt[~done]
            done |= nxt == c.eos_id
            if done.all():
                break
            last = nxt[:, None]
    ends = np.where((tokens == c.eos_id).any(axis=1), (tokens == c.eos_id).argmax(axis=1), steps)   # (B,)
    return [Hypothesis(tokens[i, :ends[i]].tolist(), float(lp), float(lp)) for i, lp in enumerate(logprob)]


def beam_search(model: Seq2SeqDecoder, src: Any, beam: int, max_new_tokens: int, alpha: float = 0.6,
                src_mask: Any = None, n_best: int = 1) -> list[list[Hypothesis]]:
    """The ``n_best`` best targets of each source of ``src`` (B, S), best first (see the module docstring).

    Every step works on all (open source x beam) rows at once: one decoder call on the newest
    tokens, one sort of each source's K x V extensions, and the rows kept gathered from the cache
    (:meth:`select`); a source that is done leaves the batch.

    Args:
        beam: K, the beams per source (>= 1).
        max_new_tokens: the longest target (EOS included), capped by the model's block_size - 1.
        alpha: the length penalty's exponent (>= 0).
        src_mask: (B, S) True for real source tokens (default: ``src != pad_id``).
        n_best: how many hypotheses to return per source (<= beam).
    """
    if isinstance(beam, bool) or not isinstance(beam, numbers.Integral) or beam < 1:
        raise ValueError(f"beam must be an integer >= 1, got {beam!r}")
    if not isinstance(alpha, numbers.Real) or not alpha >= 0 or not np.isfinite(alpha):
        raise ValueError(f"alpha (the length penalty) must be a number >= 0, got {alpha!r}")
    if isinstance(n_best, bool) or not isinstance(n_best, numbers.Integral) or not 1 <= n_best <= beam:
        raise ValueError(f"n_best must be between 1 and the beam size {beam}, got {n_best!r}")
    ids, steps = _check(model, src, max_new_tokens)
    c, k = model.config, int(beam)
    finished: list[list[Hypothesis]] = [[] for _ in range(ids.shape[0])]
    n_done = np.zeros(ids.shape[0], dtype=np.int64)                        # finished targets per source
    active = np.arange(ids.shape[0])                                       # (A,) the sources still open
    seqs = np.zeros((len(active), k, 0), dtype=np.int64)                  # (A, K, t - 1) tokens of each beam
    scores = np.full((len(active), k), -np.inf)
    scores[:, 0] = 0.0                          # one real beam at the start: the K copies would tie
    slots = np.arange(2 * k)                                               # rank of each kept extension
    with inference(model):
        cache = model.start(backend.asarray(ids), src_mask, repeat=k)        # A * K rows, a source's adjacent
        last = np.full((len(active) * k, 1), c.bos_id, dtype=np.int64)      # (A*K, 1)
        for t in range(1, steps + 1):
            a = len(active)
            logp = _log_probs(model.step_logits(backend.asarray(last), cache), (c.pad_id, c.bos_id))
            v = logp.shape[-1]
            cand = (scores[:, :, None] + logp.reshape(a, k, v)).reshape(a, k * v)   # (A, K*V)
            top = np.argsort(-cand, axis=-1, kind="stable")[:, :2 * k]        # (A, 2K) best extensions
            s = np.take_along_axis(cand, top, axis=-1)                        # (A, 2K) their log-probabilities
            origin, tok = np.divmod(top, v)                                   # (A, 2K) beam and token
            ok = np.isfinite(s)
            ending = ok & ((tok == c.eos_id) | (t == steps))
            # an ending among the K best extensions finishes a target, while the source has room for it
            keep_end = ending & (slots < k) & (n_done[active, None] + np.cumsum(ending & (slots < k), 1) <= k)
            for i, j in zip(*np.nonzero(keep_end)):                          # at most K per source in all
                toks = seqs[i, origin[i, j]].tolist() + ([] if tok[i, j] == c.eos_id else [int(tok[i, j])])
                finished[active[i]].append(Hypothesis(toks, float(s[i, j]),
                                                      float(s[i, j] / length_penalty(t, alpha))))
            n_done[active] += keep_end.sum(axis=1)
            # the K best extensions that do not end continue as the beams; the rest of the slots are dead
            live = ok & ~ending
            rank = np.cumsum(live, axis=1) - 1                                 # (A, 2K) slot among the live
            pick = np.argsort(~live, axis=1, kind="stable")[:, :k]            # (A, K) the first K live ones
            alive = np.take_along_axis(live & (rank < k), pick, axis=1)       # (A, K)
            src_beam = np.where(alive, np.take_along_axis(origin, pick, axis=1), 0)
            open_ = (n_done[active] < k) & alive.any(axis=1)                   # (A,) sources going on
            if not open_.any():
                break
            rows = (np.arange(a)[:, None] * k + src_beam)[open_].reshape(-1)   # (A'*K,) each row's origin
            cache.select(backend.asarray(rows))
            seqs = np.concatenate([np.take_along_axis(seqs, src_beam[:, :, None], axis=1),
                                   np.take_along_axis(tok, pick, axis=1)[:, :, None]], axis=2)[open_]
            scores = np.where(alive, np.take_along_axis(s, pick, axis=1), -np.inf)[open_]
            last = np.where(alive, np.take_along_axis(tok, pick, axis=1), c.eos_id)[open_].reshape(-1, 1)
            active = active[open_]
    return [sorted(f, key=lambda h: -h.score)[:n_best] for f in finished]
