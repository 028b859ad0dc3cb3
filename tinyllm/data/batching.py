"""Batches for language-model training: random windows, seeded and resumable.

Each training step draws ``batch_size`` random start positions in the token
stream and takes the ``block_size + 1`` ids from each (as nanoGPT's
``get_batch``)::

    starts = rng.integers(0, N - T, size=B)            # (B,)
    idx    = starts[:, None] + arange(T + 1)[None, :]  # (B, T+1)
    w      = tokens[idx]                               # ONE gather: (B, T+1)
    x, y   = w[:, :-1], w[:, 1:]                       # (B, T) each

Random windows see every offset of the text rather than a fixed tiling, and
the batcher needs no epoch bookkeeping. What it does need is to be exactly
reproducible: the generator's state and a step counter are all it holds, and
:meth:`LMBatcher.state_dict` returns them as JSON-able data so that a run
resumed from a checkpoint draws the very batches the interrupted run would
have drawn.
"""
from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np

from .errors import DataError
from .slicing import check_enough_tokens
from .tokenfile import TokenFile


def _as_tokens(tokens: Any) -> np.ndarray | TokenFile:
    """Arrays and token files as they are (no copy, nothing read); anything else as an array."""
    if isinstance(tokens, TokenFile):
        return tokens
    if isinstance(tokens, (str, bytes)):
        raise DataError("token ids are needed here, not text; encode it with a tokenizer first")
    arr = tokens if isinstance(tokens, np.ndarray) else np.asarray(tokens)
    if arr.ndim != 1 or (arr.size and not np.issubdtype(arr.dtype, np.integer)):
        raise DataError(f"token ids must be a flat integer sequence, got shape {arr.shape} of {arr.dtype}")
    return arr


def _gather(tokens: Any, starts: np.ndarray, block_size: int) -> tuple[np.ndarray, np.ndarray]:
    """``x, y`` (B, T) int64 for windows starting at ``starts`` (B,), read with one fancy index."""
    idx = starts[:, None] + np.arange(block_size + 1)[None, :]  # (B, T+1)
    w = np.asarray(tokens[idx])  # (B, T+1); a TokenFile reads it through one fresh memmap
    return w[:, :-1].astype(np.int64), w[:, 1:].astype(np.int64)  # (B, T) each, contiguous copies


class LMBatcher:
    """Random ``(x, y)`` batches of next-token examples from one token stream.

    Args:
        tokens: a 1-D int array, list or :class:`~tinyllm.data.tokenfile.TokenFile`.
        block_size: context length T.
        batch_size: windows per batch B.
        seed: seed of the batcher's own generator (independent of the model's).

    ``next()`` returns ``x, y``, int64 arrays (B, T) on the host, with
    ``y[:, t] == x[:, t + 1]`` for t < T - 1; the training loop moves them to
    the backend.
    """

    def __init__(self, tokens: Any, block_size: int, batch_size: int, seed: int = 0) -> None:
        if batch_size < 1:
            raise DataError(f"batch_size must be at least 1, got {batch_size}")
        self.tokens = _as_tokens(tokens)
        check_enough_tokens(len(self.tokens), block_size)
        self.block_size = block_size
        self.batch_size = batch_size
        self.seed = seed
        self.rng = np.random.default_rng(seed)
        self.step = 0  # batches drawn so far

    def next(self) -> tuple[np.ndarray, np.ndarray]:
        """The next batch: ``x, y`` int64 arrays of shape (batch_size, block_size)."""
        high = len(self.tokens) - self.block_size  # a start s needs s + T + 1 <= N, so s < N - T
        starts = self.rng.integers(0, high, size=self.batch_size)  # (B,)
        self.step += 1
        return _gather(self.tokens, starts, self.block_size)

    def __iter__(self) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        return self

    def __next__(self) -> tuple[np.ndarray, np.ndarray]:
        return self.next()

    def state_dict(self) -> dict:
        """The batcher's position as plain JSON-able data (ints, strings, dicts)."""
        return {"rng": self.rng.bit_generator.state, "step": self.step, "seed": self.seed,
                "block_size": self.block_size, "batch_size": self.batch_size, "n_tokens": len(self.tokens)}

    def load_state_dict(self, state: dict) -> None:
        """Continue from a :meth:`state_dict`: the next batches equal those the saved batcher would draw."""
        for key in ("block_size", "batch_size", "n_tokens"):
            mine = len(self.tokens) if key == "n_tokens" else getattr(self, key)
            if state.get(key) != mine:
                raise DataError(f"batcher state was saved with {key}={state.get(key)}, but this run has "
                                f"{key}={mine}; the resumed batches would differ")
        rng = np.random.default_rng()
        try:
            rng.bit_generator.state = state["rng"]
        except (KeyError, TypeError, ValueError) as exc:
            raise DataError(f"batcher state has no usable generator state ({exc})") from None
        self.rng = rng
        self.step = int(state["step"])
        self.seed = state.get("seed", self.seed)


def eval_batches(tokens: Any, block_size: int, batch_size: int, n_batches: int | None = None,
                 seed: int = 0) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """The same validation batches on every call, for comparable validation losses.

    Args:
        tokens: the validation ids (array, list or TokenFile).
        block_size: context length T.
        batch_size: windows per batch B.
        n_batches: how many random-window batches to draw (from a generator
            seeded with ``seed``, so always the same ones); None for one pass
            over the whole stream in consecutive windows (stride T; the last
            batch may be smaller), which gives the exact loss on the full set.
        seed: seed of the windows' positions.

    Returns:
        An iterator of ``x, y`` int64 arrays (B, T).
    """
    tokens = _as_tokens(tokens)
    check_enough_tokens(len(tokens), block_size, "validation set")
    if batch_size < 1:
        raise DataError(f"batch_size must be at least 1, got {batch_size}")
    if n_batches is None:
        starts = np.arange(0, len(tokens) - block_size, block_size)  # every whole window, in order
    else:
        if n_batches < 1:
            raise DataError(f"n_batches must be at least 1, got {n_batches}")
        rng = np.random.default_rng(seed)
        starts = rng.integers(0, len(tokens) - block_size, size=n_batches * batch_size)
    # Checked above, read lazily below: a bad argument fails at the call, not at the first batch.
    return (_gather(tokens, starts[i:i + batch_size], block_size) for i in range(0, len(starts), batch_size))
