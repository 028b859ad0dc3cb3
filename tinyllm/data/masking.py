"""Masked-language-model inputs (BERT): hide some tokens, ask the model to restore them.

For each sequence, every token that is not special ([CLS], [SEP], [PAD]) is
*selected* with probability ``prob`` (0.15 in BERT). The model must predict the
original id at selected positions only; everywhere else the target is
``IGNORE_INDEX`` (-100) and the loss skips it. A selected token's input is

* replaced by ``[MASK]``          with probability 0.8,
* replaced by a random token      with probability 0.1,
* left unchanged                  with probability 0.1,

so the model cannot learn that only ``[MASK]`` positions matter: it has to keep
a good representation of every input token (Devlin et al., 2019, section 3.1).
"""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from .errors import DataError
from .slicing import IGNORE_INDEX


def special_tokens_mask(ids: np.ndarray, special_ids: Sequence[int | None]) -> np.ndarray:
    """True where ``ids`` holds one of ``special_ids`` (None entries, for absent tokens, are ignored)."""
    wanted = [i for i in special_ids if i is not None]
    return np.isin(ids, np.asarray(wanted, dtype=np.int64))


def mask_tokens(ids: np.ndarray, mask_id: int, vocab_size: int, special_mask: np.ndarray,
                rng: np.random.Generator, prob: float = 0.15) -> tuple[np.ndarray, np.ndarray]:
    """BERT's masking of a batch of token ids.

    Args:
        ids: int array (B, T) of token ids (any shape works).
        mask_id: the id of ``[MASK]``.
        vocab_size: random replacements are drawn uniformly from ``[0, vocab_size)``.
        special_mask: bool array like ``ids``, True at tokens that must never be
            selected ([CLS], [SEP], [PAD]); see :func:`special_tokens_mask`.
        rng: the NumPy generator to draw from (seed it for reproducible data).
        prob: the chance that each ordinary token is selected.

    Returns:
        inputs: int64 (B, T), ``ids`` with the selected tokens masked/replaced/kept.
        labels: int64 (B, T), the original id where selected, else -100.
    """
    ids = np.asarray(ids)
    special_mask = np.asarray(special_mask, dtype=bool)
    if not np.issubdtype(ids.dtype, np.integer):
        raise DataError(f"mask_tokens needs integer token ids, got {ids.dtype}")
    if special_mask.shape != ids.shape:
        raise DataError(f"special_mask has shape {special_mask.shape}, ids have {ids.shape}")
    if not 0.0 <= prob <= 1.0:
        raise DataError(f"masking probability must be between 0 and 1, got {prob}")
    if mask_id is None:
        raise DataError("the tokenizer has no [MASK] token, which masked-language modelling needs")
    if not 0 <= mask_id < vocab_size:
        raise DataError(f"mask_id {mask_id} is outside the vocabulary (size {vocab_size})")
    selected = (rng.random(ids.shape) < prob) & ~special_mask  # (B, T)
    labels = np.where(selected, ids, IGNORE_INDEX).astype(np.int64)
    action = rng.random(ids.shape)  # one draw per position decides mask / random / keep
    to_mask = selected & (action < 0.8)
    to_random = selected & (action >= 0.8) & (action < 0.9)
    inputs = ids.astype(np.int64)  # a copy
    inputs[to_mask] = mask_id
    inputs[to_random] = rng.integers(0, vocab_size, size=int(to_random.sum()))
    return inputs, labels
