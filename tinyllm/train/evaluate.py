"""``tinyllm eval``: how good a trained model is on a data file.

* Language models: the mean cross-entropy per predicted token over the whole
  file, read in consecutive windows of the model's context, and the
  perplexity ``exp(loss)`` - the number of equally likely tokens the model is,
  on average, choosing between. (BERT: over a fixed 15% of masked tokens.)
* Classifiers: accuracy and the confusion matrix on a labeled file.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .. import backend
from ..data import DataError, TokenFile, eval_batches, load_labeled, load_text, resolve_corpus
from ..data.slicing import check_enough_tokens
from ..tensor import no_grad
from .data import _mlm, chunk, classification_arrays, encode_text
from .restore import Restored


@dataclass
class LMReport:
    loss: float
    perplexity: float
    tokens: int
    accuracy: float          # next-token (or masked-token) accuracy


@dataclass
class ClassifierReport:
    accuracy: float
    examples: int
    labels: list[str]
    confusion: np.ndarray    # (K, K): row = true label, column = predicted
    per_class: list[float] = field(default_factory=list)  # recall of each class


def _lm_ids(restored: Restored, data: str) -> Any:
    tok = restored.tokenizer
    if str(data).endswith(".bin") and Path(data).is_file():
        ids = TokenFile(data)
        ids.check_tokenizer(tok)
        return ids
    text = load_text(resolve_corpus(data))
    return np.asarray(encode_text(tok, text, f"data '{data}'"), dtype=np.int64)


@no_grad()
def evaluate_lm(restored: Restored, data: str, batch_size: int = 16, max_batches: int | None = None,
                seed: int = 0) -> LMReport:
    """Loss, perplexity and token accuracy of a language model (next-token or masked-LM) on ``data``."""
    from ..models import registry  # noqa: PLC0415

    model = restored.model
    masked = registry.get(restored.kind).objective == "masked-lm"
    block = model.config.block_size
    ids = _lm_ids(restored, data)
    check_enough_tokens(len(ids), block, f"data '{data}'")
    rng = np.random.default_rng([seed, 2])
    total, count, correct = 0.0, 0, 0
    for i, (x, y) in enumerate(eval_batches(ids, block, batch_size, n_batches=None)):
        if max_batches is not None and i >= max_batches:
            break
        batch = _mlm(x, restored.tokenizer, rng, 0.15) if masked else {"idx": x, "targets": y}
        logits, loss = model(**{k: backend.asarray(v) for k, v in batch.items()})
        valid = batch["targets"] != -100
        n = int(valid.sum())
        total += float(loss.data) * n
        count += n
        pred = backend.to_numpy(logits.data).argmax(axis=-1)
        correct += int(((pred == batch["targets"]) & valid).sum())
    if count == 0:
        raise DataError(f"no tokens to evaluate in '{data}'")
    loss = total / count
    return LMReport(loss, math.exp(min(loss, 700.0)), count, correct / count)


@no_grad()
def evaluate_classifier(restored: Restored, data: str, batch_size: int = 32) -> ClassifierReport:
    """Accuracy and confusion matrix of a fine-tuned classifier on a labeled file."""
    names = restored.labels or []
    texts, labels, file_names = load_labeled(data)
    unknown = [n for n in file_names if n not in names]
    if unknown:
        raise DataError(f"'{data}' has label {unknown[0]!r}, which the classifier was not trained on "
                        f"(its labels: {', '.join(names)})")
    remap = np.array([names.index(n) for n in file_names])
    labels = remap[labels]
    model = restored.model
    arrays = classification_arrays(texts, labels, restored.tokenizer, model.backbone.config.block_size,
                                   restored.lm_kind)
    k = len(names)
    confusion = np.zeros((k, k), dtype=np.int64)
    for batch in chunk(arrays, batch_size):
        logits, _ = model(idx=backend.asarray(batch["idx"]), attention_mask=backend.asarray(batch["attention_mask"]))
        pred = backend.to_numpy(logits.data).argmax(axis=-1)
        np.add.at(confusion, (batch["labels"], pred), 1)
    n = int(confusion.sum())
    per_class = [float(confusion[i, i] / row) if (row := confusion[i].sum()) else float("nan") for i in range(k)]
    return ClassifierReport(float(np.trace(confusion) / max(n, 1)), n, names, confusion, per_class)


def format_confusion(report: ClassifierReport) -> list[str]:
    """The confusion matrix as aligned text lines (rows: true label, columns: predicted)."""
    names = [str(n) for n in report.labels]
    corner = "true \\ predicted"
    first = max(len(corner), *(len(n) for n in names)) + 2
    width = max(6, *(len(n) for n in names), len(str(int(report.confusion.max(initial=0)))))
    lines = [corner.ljust(first) + " ".join(n.rjust(width) for n in names) + "   recall"]
    for name, row, recall in zip(names, report.confusion, report.per_class):
        rec = f"{recall:.1%}" if math.isfinite(recall) else "n/a"
        lines.append(name.ljust(first) + " ".join(str(int(v)).rjust(width) for v in row) + f"   {rec:>6}")
    return lines
