"""Cutting token streams into fixed-length training examples, and padding ragged ones.

A language model learns from a long stream of ids ``t_0 t_1 t_2 ...``: each
window of ``block_size + 1`` consecutive ids gives ``block_size`` examples at
once, input ``x = w[:-1]`` and target ``y = w[1:]`` (predict the next token at
every position)::

    stream   t0 t1 t2 t3 t4 t5 t6 t7 t8 ...
    window   [t0 t1 t2 t3 t4]                  block_size = 4, stride = 4
    x, y     x = t0 t1 t2 t3   y = t1 t2 t3 t4
    window               [t4 t5 t6 t7 t8]      windows share one token

Classification and fine-tuning examples instead come in different lengths.
A batch is a rectangle, so short ones are *padded* with a ``[PAD]`` id and long
ones *truncated*; an attention mask (True = real token) tells the model which
positions to ignore, and targets at padded positions are set to
``IGNORE_INDEX`` (-100) so the loss skips them.
"""
from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from .errors import DataError
from .tokenfile import TokenFile

IGNORE_INDEX = -100  # target value the cross-entropy loss skips (PyTorch's convention)


def _as_ids(ids: Any, what: str = "ids") -> np.ndarray:
    arr = np.asarray(ids)
    if arr.size == 0:
        return arr.astype(np.int64).reshape(-1)
    if arr.ndim != 1 or not np.issubdtype(arr.dtype, np.integer):
        raise DataError(f"{what} must be a flat sequence of integer token ids, got shape {arr.shape} of {arr.dtype}")
    return arr


def check_enough_tokens(n_tokens: int, block_size: int, what: str = "corpus") -> None:
    """Raise a DataError unless ``n_tokens`` hold at least one window of ``block_size + 1``."""
    if block_size < 1:
        raise DataError(f"block_size must be at least 1, got {block_size}")
    if n_tokens < block_size + 1:
        raise DataError(f"{what} has {n_tokens} tokens, fewer than one block of {block_size + 1} "
                        "(block_size + 1)")


def make_blocks(ids: Any, block_size: int, stride: int | None = None) -> np.ndarray:
    """Windows of ``block_size + 1`` consecutive ids, one every ``stride`` ids.

    Args:
        ids: a 1-D sequence of token ids (list, array or TokenFile).
        block_size: the model's context length T.
        stride: distance between window starts; ``block_size`` (the default)
            gives windows that share only their boundary token, a smaller stride
            gives overlapping ones. Ids after the last whole window are dropped.

    Returns:
        int64 array (N, block_size + 1), N = (len(ids) - block_size - 1) // stride + 1;
        split it with :func:`blocks_to_xy`.
    """
    arr = _as_ids(ids)
    stride = block_size if stride is None else stride
    if stride < 1:
        raise DataError(f"stride must be at least 1, got {stride}")
    check_enough_tokens(len(arr), block_size)
    windows = np.lib.stride_tricks.sliding_window_view(arr, block_size + 1)[::stride]  # (N, T+1), a view
    return windows.astype(np.int64)  # a copy: independent of ids, writable


def blocks_to_xy(blocks: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Split (N, T+1) windows into inputs ``x = w[:, :-1]`` and targets ``y = w[:, 1:]``, each (N, T)."""
    return np.ascontiguousarray(blocks[:, :-1]), np.ascontiguousarray(blocks[:, 1:])


def split_train_val(ids: Any, val_fraction: float = 0.1) -> tuple[Any, Any]:
    """The first ``1 - val_fraction`` of a token stream for training, the rest for validation.

    The split is a cut, not a shuffle (as nanoGPT does): validation text is text
    the model never saw, not sentences interleaved with the training ones.
    A :class:`~tinyllm.data.tokenfile.TokenFile` is split into two views of the
    same file, so nothing is read into memory.
    """
    if not 0.0 < val_fraction < 1.0:
        raise DataError(f"val_fraction must be between 0 and 1 (exclusive), got {val_fraction}")
    n = len(ids)
    cut = int(n * (1.0 - val_fraction))
    if cut == 0 or cut == n:
        raise DataError(f"cannot split {n} tokens into train and validation with val_fraction={val_fraction}")
    if isinstance(ids, TokenFile):
        return ids.view(0, cut), ids.view(cut, n)
    return ids[:cut], ids[cut:]


def pad_batch(seqs: Sequence[Any], length: int | None = None, *, pad_id: int, truncate: str = "right",
              side: str = "right") -> tuple[np.ndarray, np.ndarray]:
    """Truncate and pad variable-length id sequences into one rectangle with an attention mask.

    Args:
        seqs: B sequences of token ids.
        length: T, the common length; the longest sequence's length if None.
        pad_id: the id written into padded positions (``tokenizer.pad_id``).
        truncate: which end of a too-long sequence is cut off: "right" keeps
            the first T ids (classification), "left" the last T (prompts).
        side: where padding goes: "right" (training) or "left" (batched
            generation, so that every prompt ends at the last column).

    Returns:
        ids: int64 (B, T); mask: bool (B, T), True at real tokens.
    """
    if truncate not in ("right", "left"):
        raise DataError(f"truncate must be 'right' or 'left', got {truncate!r}")
    if side not in ("right", "left"):
        raise DataError(f"side must be 'right' or 'left', got {side!r}")
    if len(seqs) == 0:
        raise DataError("cannot pad an empty batch (no sequences)")
    arrays = [_as_ids(s, f"sequence {i}") for i, s in enumerate(seqs)]
    T = max(len(a) for a in arrays) if length is None else length
    if T < 1:
        raise DataError(f"padded length must be at least 1, got {T}")
    kept = [a[:T] if truncate == "right" else a[len(a) - min(len(a), T):] for a in arrays]
    lengths = np.array([len(a) for a in kept])  # (B,)
    cols = np.arange(T)  # (T,)
    mask = cols[None, :] < lengths[:, None] if side == "right" else cols[None, :] >= T - lengths[:, None]
    ids = np.full((len(kept), T), pad_id, dtype=np.int64)
    ids[mask] = np.concatenate(kept) if lengths.sum() else []  # row-major order matches the concatenation
    return ids, mask


def collate(examples: Sequence[dict[str, Any]], *, pad_id: int | None = None, length: int | None = None,
            truncate: str = "right") -> dict[str, np.ndarray]:
    """Turn a list of examples (dicts) into a batch: a dict of stacked NumPy arrays.

    Scalars (e.g. a class ``"label"``) become a (B,) array. Sequences (e.g.
    ``"input_ids"``) are padded to one length T (the longest, or ``length``):
    with ``pad_id``, except ``"labels"`` which is padded with ``IGNORE_INDEX``.
    The mask of ``"input_ids"`` is added as ``"attention_mask"`` (B, T) bool.

    Example::

        collate([{"input_ids": [5, 6, 7], "label": 1}, {"input_ids": [5], "label": 0}], pad_id=0)
        # {"input_ids": [[5, 6, 7], [5, 0, 0]], "attention_mask": [[T, T, T], [T, F, F]], "label": [1, 0]}
    """
    if len(examples) == 0:
        raise DataError("cannot collate an empty list of examples")
    keys = list(examples[0])
    for i, ex in enumerate(examples):
        if set(ex) != set(keys):
            raise DataError(f"example {i} has keys {sorted(ex)} but example 0 has {sorted(keys)}")
    seq_keys = [k for k in keys if np.ndim(examples[0][k]) == 1]
    if length is None and seq_keys:
        length = max(len(ex[k]) for ex in examples for k in seq_keys)
    batch: dict[str, np.ndarray] = {}
    for k in keys:
        if k in seq_keys:
            fill = IGNORE_INDEX if k == "labels" else pad_id
            if fill is None:
                raise DataError(f"collate needs pad_id to pad the variable-length '{k}' sequences")
            batch[k], mask = pad_batch([ex[k] for ex in examples], length, pad_id=fill, truncate=truncate)
            if k == "input_ids":
                batch["attention_mask"] = mask
        else:
            values = [ex[k] for ex in examples]
            if any(np.ndim(v) != 0 for v in values):
                raise DataError(f"'{k}' must be a scalar or a 1-D sequence in every example")
            arr = np.asarray(values)
            batch[k] = arr.astype(np.float32) if np.issubdtype(arr.dtype, np.floating) else arr
    return batch
