"""Evaluation on the fixed validation batches, on one process or split between ranks.

``val_loss`` is the mean of the batches' mean losses; ``val_acc`` (classifiers,
masked LM) the share of right predictions among the counted targets (label
-100 is not counted). With a communicator of ``world`` ranks, rank ``r``
evaluates batches ``r, r + world, ...`` and one all-reduce of
``[Σ losses, batches, right, counted]`` gives every rank the same totals, the
single-process result up to the order of the float64 sums.
"""
from __future__ import annotations

from typing import Any

import numpy as np

from .. import backend
from ..distributed import Communicator, get_comm
from ..tensor import no_grad


def to_backend(batch: dict[str, np.ndarray]) -> dict[str, Any]:
    """Move a batch of host arrays to the active backend (a no-op on NumPy)."""
    if backend.get_backend() == "numpy":
        return batch
    return {k: backend.asarray(v) for k, v in batch.items()}


def correct_predictions(logits: Any, batch: dict) -> tuple[int, int]:
    """(right, counted) predictions: classifier labels, or the non-ignored targets of an LM."""
    pred = backend.to_numpy(logits.data).argmax(axis=-1)
    target = batch["labels"] if "labels" in batch else batch["targets"]
    valid = target != -100
    return int(((pred == target) & valid).sum()), int(valid.sum())


@no_grad()
def evaluate_batches(model: Any, batches: list[dict], accuracy: bool = False,
                     comm: Communicator | None = None) -> dict[str, float]:
    """``{"val_loss"[, "val_acc"]}`` of ``model`` over ``batches``, in eval mode (train mode after)."""
    comm = comm if comm is not None else get_comm()
    model.eval()
    losses, correct, counted = [], 0, 0
    try:
        for batch in batches[comm.rank::comm.world]:
            logits, loss = model(**to_backend(batch))
            losses.append(loss.data)                               # read all at once below
            if accuracy:
                c, n = correct_predictions(logits, batch)
                correct, counted = correct + c, counted + n
    finally:
        model.train()
    xp = backend.xp()
    if comm.world > 1:                                             # sum over the ranks' shares
        sums = np.asarray([sum(float(v) for v in losses), len(losses), correct, counted], dtype=np.float64)
        comm.allreduce_sum_(sums)
        mean = float(sums[0] / sums[1]) if sums[1] else float("nan")
        correct, counted = int(sums[2]), int(sums[3])
    else:
        mean = float(xp.stack([xp.asarray(v, dtype=xp.float64) for v in losses]).mean()) if losses else float("nan")
    out = {"val_loss": mean}
    if accuracy:
        out["val_acc"] = correct / max(counted, 1)
    return out
