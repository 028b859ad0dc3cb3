"""Autoregressive decoding as functions over any model that can score a next token.

    x_{t+1} ~ choose(logits(x_1..x_t))         one token per step, appended, until max_new_tokens
                                               (or every sequence has produced ``stop_token``)

``choose`` is a rule of :mod:`tinyllm.decoding.sampling` (greedy, temperature,
top-k, top-p). The model is any :class:`Decoder`: it scores the token after
the ones it is given, and keeps the keys and values of past positions in a
cache so that each new token costs one position, not the whole context.

The cache policy is the same for every decoder (:func:`next_logits`): the
first step reads the prompt into a fresh cache (the prefill); every later step
feeds only the newest token, whose key and value are written in place after
the cached ones, until the context holds ``block_size`` tokens.

Past ``block_size`` the context slides: the model sees the last ``block_size``
tokens, as nanoGPT's and the PyTorch reference's "crop, then run the forward"
loop does. With learned absolute positions (GPT-2) the cache cannot follow:
every token of the window moves to a new position, so every key and value of
every layer changes (and, through attention, so do the deeper layers' keys of
tokens whose left context lost its oldest token). A ring buffer that kept the
old keys would compute something else. The exact computation past the
context is one forward of the window per new token, which is what is run
there: the cache restarts from the window (a prefill of ``block_size``
tokens, none of the old keys reused). So cached and uncached decoding choose
the same tokens, within the context and past it.
"""
from __future__ import annotations

import numbers
from typing import Any, Iterator, Protocol

import numpy as np

from .. import backend
from ..models.common import token_ids
from ..tensor import no_grad
from .sampling import check_sampling_args, sample_next


class Cache(Protocol):
    """A decoder's keys and values of past positions (e.g. :class:`tinyllm.nn.KVCacheStack`)."""

    pos: int                                   # positions held

    def reset(self) -> None:
        """Forget every position."""
        ...


class Decoder(Protocol):
    """What :func:`generate` needs from a model (``tinyllm.models.GPT`` provides it).

    Attributes:
        config: has ``vocab_size`` (V) and ``block_size`` (the longest context).
    """

    config: Any

    def new_cache(self, batch: int) -> Cache:
        """An empty cache for ``batch`` sequences of up to ``block_size`` positions."""
        ...

    def next_logits(self, idx: Any, cache: Cache | None = None) -> Any:
        """Scores (B, V) of the token after ``idx`` (B, T).

        Without a cache ``idx`` is the whole context. With one, ``idx`` holds the
        new tokens only, at positions ``cache.pos .. cache.pos + T - 1``, and
        their keys and values are appended to the cache.
        """
        ...


def next_logits(model: Decoder, tokens: np.ndarray, cache: Cache | None) -> Any:
    """Scores (B, V) of the token after ``tokens`` (B, T), with the cache policy of the module docstring."""
    block = model.config.block_size
    if cache is None:
        return model.next_logits(backend.asarray(tokens[:, -block:]))                 # the window (B, T') -> (B, V)
    n = tokens.shape[1]
    if cache.pos == 0 or n > block or cache.pos != n - 1:         # the first step, or the window slides
        cache.reset()
        return model.next_logits(backend.asarray(tokens[:, -block:]), cache)          # prefill (B, T')
    return model.next_logits(backend.asarray(tokens[:, -1:]), cache)                  # one token (B, 1)


def generate_stream(model: Decoder, idx: Any, max_new_tokens: int, temperature: float = 1.0,
                    top_k: int | None = None, top_p: float | None = None, greedy: bool = False,
                    seed: int | None = None, stop_token: int | None = None,
                    use_cache: bool = True) -> Iterator[Any]:
    """Yield new tokens one at a time as they are made: an int when B == 1, else a (B,) array.

    Args:
        model: a :class:`Decoder`.
        idx: (B, T) prompt token ids. Prompts longer than block_size are cropped to their end.
        max_new_tokens: how many tokens to add (>= 0).
        temperature, top_k, top_p, greedy: how to choose each token (:func:`~tinyllm.decoding.sample_next`).
        seed: seed a private generator (the same tokens every time); None uses the global seeded one.
        stop_token: stop once every sequence has produced it (it is included); a sequence that
            stopped early keeps producing it while the others go on.
        use_cache: reuse past keys and values (same tokens as without, much faster).

    Runs without recording gradients, in eval mode (dropout off); the model's
    previous mode is restored before each token is yielded. Arguments are
    checked at the call, before the first token.
    """
    check_sampling_args(temperature, top_k, top_p, greedy)
    if isinstance(max_new_tokens, bool) or not isinstance(max_new_tokens, numbers.Integral) \
            or max_new_tokens < 0:
        raise ValueError(f"max_new_tokens must be an integer >= 0, got {max_new_tokens!r}")
    v = model.config.vocab_size
    if stop_token is not None and (isinstance(stop_token, bool) or not isinstance(stop_token, numbers.Integral)
                                   or not 0 <= stop_token < v):
        raise ValueError(f"stop_token must be a token id in [0, {v}), got {stop_token!r}")
    tokens = backend.to_numpy(token_ids(idx))                       # (B, T), kept on the host
    if tokens.min() < 0 or tokens.max() >= v:
        raise ValueError(f"prompt token ids must be in [0, {v}), got min {tokens.min()}, max {tokens.max()}")
    rng = np.random.default_rng(seed) if seed is not None else backend.rng(np)
    sampling = dict(temperature=temperature, top_k=top_k, top_p=top_p, greedy=greedy)
    return _decode(model, tokens, int(max_new_tokens), sampling, rng, stop_token, use_cache)


def _decode(model: Decoder, tokens: np.ndarray, max_new_tokens: int, sampling: dict, rng: np.random.Generator,
            stop_token: int | None, use_cache: bool) -> Iterator[Any]:
    b, t = tokens.shape
    cache = model.new_cache(b) if use_cache else None
    done = np.zeros(b, dtype=bool)
    buf = np.empty((b, t + max_new_tokens), dtype=np.int64)        # the prompt, then each new token in place
    buf[:, :t] = tokens
    modules = list(model.modules())                                 # walked once, not at every token
    for n in range(t, t + max_new_tokens):
        training = [m for m in modules if m.training]               # the modes to restore before yielding
        for m in training:
            object.__setattr__(m, "training", False)               # what Module.train does, per module
        try:
            with no_grad():
                logits = next_logits(model, buf[:, :n], cache)      # (B, V)
        finally:
            for m in training:
                object.__setattr__(m, "training", True)
        nxt = sample_next(logits, rng=rng, **sampling)              # (B,)
        if stop_token is not None:
            nxt = np.where(done, stop_token, nxt)                   # finished rows repeat the stop token
            done |= nxt == stop_token
        buf[:, n] = nxt
        yield int(nxt[0]) if b == 1 else nxt
        if stop_token is not None and done.all():
            return


def generate(model: Decoder, idx: Any, max_new_tokens: int, temperature: float = 1.0, top_k: int | None = None,
             top_p: float | None = None, greedy: bool = False, seed: int | None = None,
             stop_token: int | None = None, use_cache: bool = True) -> np.ndarray:
    """Extend each prompt by up to ``max_new_tokens`` tokens; the arguments are :func:`generate_stream`'s.

    Returns:
        (B, T + n) int64 NumPy array: the prompts followed by the n new tokens
        (n < max_new_tokens only when every sequence produced ``stop_token``).
    """
    prompt = backend.to_numpy(token_ids(idx))                       # (B, T)
    new = list(generate_stream(model, prompt, max_new_tokens, temperature, top_k, top_p, greedy, seed,
                               stop_token, use_cache))
    if not new:
        return prompt.copy()
    cols = np.asarray(new, dtype=np.int64).reshape(len(new), -1).T  # (n, B) -> (B, n)
    return np.concatenate([prompt, cols], axis=1)                   # (B, T + n)
