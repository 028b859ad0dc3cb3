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
    out: list[list[int]] = [[] for _ in range(b)]
    logprob = np.zeros(b)
    done = np.zeros(b, dtype=bool)
    with inference(model):
        cache = model.start(backend.asarray(ids), src_mask)
        last = np.full((b, 1), c.bos_id, dtype=np.int64)                    # (B, 1)
        for _ in range(steps):
            logp = _log_probs(model.step_logits(backend.asarray(last), cache), (c.pad_id, c.bos_id))  # (B, V)
            nxt = logp.argmax(axis=-1)                                       # (B,)
            for i in np.flatnonzero(~done):
                logprob[i] += logp[i, nxt[i]]
                if nxt[i] == c.eos_id:
                    done[i] = True
                else:
                    out[i].append(int(nxt[i]))
            if done.all():
                break
            last = nxt[:, None]
    return [Hypothesis(toks, float(lp), float(lp)) for toks, lp in zip(out, logprob)]


def beam_search(model: Seq2SeqDecoder, src: Any, beam: int, max_new_tokens: int, alpha: float = 0.6,
                src_mask: Any = None, n_best: int = 1) -> list[list[Hypothesis]]:
    """The ``n_best`` best targets of each source of ``src`` (B, S), best first (see the module docstring).

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
    b = ids.shape[0]
    finished: list[list[Hypothesis]] = [[] for _ in range(b)]
    seqs: list[list[list[int]]] = [[[] for _ in range(k)] for _ in range(b)]   # the tokens of each live beam
    scores = np.full((b, k), -np.inf)
    scores[:, 0] = 0.0                          # one real beam at the start: the K copies would tie
    done = np.zeros(b, dtype=bool)
    with inference(model):
        cache = model.start(backend.asarray(ids), src_mask, repeat=k)        # B * K rows, a source's adjacent
        last = np.full((b * k, 1), c.bos_id, dtype=np.int64)                 # (B*K, 1)
        for t in range(1, steps + 1):
            logp = _log_probs(model.step_logits(backend.asarray(last), cache), (c.pad_id, c.bos_id))
            v = logp.shape[-1]
            cand = (scores[:, :, None] + logp.reshape(b, k, v)).reshape(b, k * v)   # (B, K*V)
            top = np.argsort(-cand, axis=-1, kind="stable")[:, :2 * k]        # (B, 2K) best extensions
            rows = np.repeat(np.arange(b) * k, k)                             # default: keep row order
            new_last = np.full((b * k, 1), c.eos_id, dtype=np.int64)
            new_scores = np.full((b, k), -np.inf)
            new_seqs: list[list[list[int]]] = [[[] for _ in range(k)] for _ in range(b)]
            for i in np.flatnonzero(~done):
                live = 0
                for rank, flat in enumerate(top[i]):
                    s = cand[i, flat]
                    if not np.isfinite(s):
                        break
                    origin, tok = divmod(int(flat), v)
                    toks = seqs[i][origin]
                    if tok == c.eos_id or t == steps:
                        if rank >= k:                   # an ending below the K best extensions is not kept
                            continue
                        ended = toks if tok == c.eos_id else toks + [tok]
                        if len(finished[i]) < k:
                            finished[i].append(Hypothesis(list(ended), float(s), float(s / length_penalty(t, alpha))))
                        continue
                    if live < k:
                        rows[i * k + live] = i * k + origin
                        new_last[i * k + live, 0] = tok
                        new_scores[i, live] = s
                        new_seqs[i][live] = toks + [tok]
                        live += 1
                    if live == k and len(finished[i]) >= k:
                        break
                done[i] = len(finished[i]) >= k or live == 0
            if done.all():
                break
            cache.select(backend.asarray(rows))                               # each row continues its origin
            scores, seqs, last = new_scores, new_seqs, new_last
    return [sorted(f, key=lambda h: -h.score)[:n_best] for f in finished]
