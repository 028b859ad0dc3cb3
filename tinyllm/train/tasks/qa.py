"""The ``qa`` task: extractive question answering with a :class:`~tinyllm.models.qa.SpanExtractor`.

Every example becomes one or more windows (question + a slice of the context,
overlapping by ``stride`` tokens: :func:`~tinyllm.models.qa.make_windows`).
Training keeps the windows that hold the whole answer (the others have both
targets -100, so they would add nothing to the loss); evaluation reads every
window and takes the best span of at most ``max_answer`` tokens over all of
them, mapped back to the context's characters, then scores it with SQuAD's
exact match and F1 against every reference answer.
"""
from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import numpy as np

from ... import backend
from ...data import DataError
from ...data.qa import QAExample, load_qa
from ...models.qa import IGNORE, SpanExtractor, Window, decode_answer, make_windows
from ...tensor import no_grad
from .metrics import exact_match, f1_score

DEFAULT_STRIDE, DEFAULT_MAX_ANSWER = 32, 30


def windows_of(examples: list[QAExample], tokenizer: Any, block_size: int, lm_kind: str, stride: int,
               labelled: bool) -> list[Window]:
    """All windows of ``examples`` (with answer labels from each example's first answer when ``labelled``)."""
    out = []
    for i, ex in enumerate(examples):
        text, start = ex.answers[0] if ex.answers else ("", 0)
        try:
            out += make_windows(tokenizer, ex.question, ex.context, block_size, stride, example=i,
                                answer=(start, start + len(text)) if labelled else None,
                                bert_style=lm_kind == "bert")
        except ValueError as exc:
            raise DataError(f"question {ex.id}: {exc}") from None
    return out


def window_arrays(windows: list[Window], tokenizer: Any, lm_kind: str) -> dict[str, np.ndarray]:
    """idx, attention_mask (and segment_ids for BERT), start_positions, end_positions."""
    from ...data import pad_batch  # noqa: PLC0415

    pad = tokenizer.pad_id if tokenizer.pad_id is not None else 0
    idx, mask = pad_batch([w.ids for w in windows], pad_id=pad)
    out = {"idx": idx, "attention_mask": mask}
    if lm_kind == "bert":
        out["segment_ids"] = pad_batch([w.segment_ids for w in windows], idx.shape[1], pad_id=0)[0]
    out["start_positions"] = np.array([w.start for w in windows], dtype=np.int64)
    out["end_positions"] = np.array([w.end for w in windows], dtype=np.int64)
    return out


def prepare(data: str, tokenizer: Any, block_size: int, lm_kind: str, task_info: dict,
            options: dict) -> tuple[dict, dict, str]:
    """Training arrays (the windows holding their answer), the task record (stride, max answer length)."""
    examples = load_qa(data)
    stride = int(task_info.get("stride", options.get("stride") or DEFAULT_STRIDE))
    info = {**task_info, "stride": stride, "max_answer": int(task_info.get("max_answer", DEFAULT_MAX_ANSWER))}
    windows = windows_of(examples, tokenizer, block_size, lm_kind, stride, labelled=True)
    kept = [w for w in windows if w.start != IGNORE]
    if not kept:
        raise DataError(f"'{data}': no answer fits inside a window of {block_size} tokens")
    return window_arrays(kept, tokenizer, lm_kind), info, (
        f"{len(examples)} questions, {len(windows)} windows (stride {stride}), "
        f"{len(windows) - len(kept)} without their answer left out")


def build(backbone: Any, lm_kind: str, backbone_config: dict, task_info: dict,
          options: dict) -> tuple[SpanExtractor, dict]:
    freeze = bool(options.get("freeze_backbone", False))
    model = SpanExtractor(backbone, freeze_backbone=freeze)
    return model, {"kind": "span_extractor", "config": {"backbone": lm_kind, "backbone_config": backbone_config,
                                                        "freeze_backbone": freeze}}


def from_section(backbone: Any, cfg: dict) -> SpanExtractor:
    return SpanExtractor(backbone, freeze_backbone=bool(cfg.get("freeze_backbone", False)))


@dataclass
class QAReport:
    exact_match: float
    f1: float
    questions: int
    windows: int
    seconds: float
    worst: list[tuple[float, str, str, str]]          # (F1, question, predicted, first reference)


@no_grad()
def evaluate(model: SpanExtractor, tokenizer: Any, lm_kind: str, task_info: dict, data: str,
             batch_size: int = 32, worst: int = 5) -> QAReport:
    """SQuAD exact match and F1 of a span extractor on a QA file, and its worst answers."""
    start = time.perf_counter()
    examples = load_qa(data)
    stride = int(task_info.get("stride", DEFAULT_STRIDE))
    max_answer = int(task_info.get("max_answer", DEFAULT_MAX_ANSWER))
    windows = windows_of(examples, tokenizer, model.backbone.config.block_size, lm_kind, stride, labelled=False)
    arrays = window_arrays(windows, tokenizer, lm_kind)
    starts, ends = [], []
    for i in range(0, len(windows), batch_size):
        batch = {k: backend.asarray(v[i:i + batch_size]) for k, v in arrays.items()
                 if k not in ("start_positions", "end_positions")}
        extra = {"segment_ids": batch.pop("segment_ids")} if "segment_ids" in batch else {}
        (s, e), _ = model(batch["idx"], attention_mask=batch["attention_mask"], **extra)
        starts += list(backend.to_numpy(s.data))
        ends += list(backend.to_numpy(e.data))
    by_example: dict[int, list[int]] = {}
    for j, w in enumerate(windows):
        by_example.setdefault(w.example, []).append(j)
    em = f1 = 0.0
    table = []
    for i, ex in enumerate(examples):
        rows = by_example[i]
        text, _, _ = decode_answer(ex.context, [windows[j] for j in rows], [starts[j] for j in rows],
                                   [ends[j] for j in rows], max_answer)
        refs = [a for a, _ in ex.answers]
        e_i, f_i = exact_match(text, refs), f1_score(text, refs)
        em, f1 = em + e_i, f1 + f_i
        table.append((f_i, ex.question, text, refs[0]))
    table.sort(key=lambda r: r[0])
    n = len(examples)
    return QAReport(em / n, f1 / n, n, len(windows), time.perf_counter() - start,
                    [r for r in table[:worst] if r[0] < 1.0])


def format_report(report: QAReport) -> list[str]:
    lines = [f"exact match {report.exact_match:.2%}", f"F1          {report.f1:.2%}",
             f"            over {report.questions} questions ({report.windows} windows)"]
    if report.worst:
        lines.append("worst answers (F1 | question | predicted | reference):")
        for f, q, pred, ref in report.worst:
            lines.append(f"  {f:5.2f} | {q[:60]} | {pred[:40]!r} | {ref[:40]!r}")
    return lines
