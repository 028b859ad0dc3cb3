"""Fine-tuning tasks with a head per token: ``tag`` (a TokenClassifier, linear or CRF) and ``qa``
(a SpanExtractor). Each task module has the same five functions, called by ``train/finetune.py``,
``train/restore.py`` and ``cli/evaluate.py``:

    prepare(data, tokenizer, block_size, lm_kind, task_info, options) -> (arrays, task_info, description)
    build(backbone, lm_kind, backbone_config, task_info, options)      -> (model, checkpoint model section)
    from_section(backbone, section_config)                            -> model (to restore a checkpoint)
    evaluate(model, tokenizer, lm_kind, ..., data, batch_size)        -> report
    format_report(report)                                             -> text lines
"""
from __future__ import annotations

from types import ModuleType
from typing import Any

from . import qa, tag

HEAD_TASKS = ("tag", "qa")
HEAD_KINDS = {"tagger": "tag", "span_extractor": "qa"}      # checkpoint model kind -> task


def task_module(task: str) -> ModuleType:
    """The module of a head task ("tag" or "qa")."""
    if task not in HEAD_TASKS:
        raise ValueError(f"unknown head task {task!r}: choose one of {', '.join(HEAD_TASKS)}")
    return tag if task == "tag" else qa


def build_head_model(kind: str, cfg: dict[str, Any]) -> Any:
    """A freshly initialised tagger or span extractor from a checkpoint's model section."""
    from ...models import build_model  # noqa: PLC0415

    backbone = build_model(cfg["backbone"], cfg["backbone_config"])
    return task_module(HEAD_KINDS[kind]).from_section(backbone, cfg)


def evaluate_head(restored: Any, data: str, batch_size: int) -> list[str]:
    """Evaluate a restored tagger or span extractor on ``data``: the report as text lines."""
    task = HEAD_KINDS[restored.kind]
    info = restored.checkpoint.config.get("task", {}) if restored.checkpoint is not None else {}
    model, tok, lm_kind = restored.model, restored.tokenizer, restored.lm_kind
    if task == "tag":
        names = info.get("tags") or restored.labels
        report = tag.evaluate(model, tok, lm_kind, names, data, batch_size)
        return tag.format_report(report) + [f"time        {report.seconds:.1f} s"]
    report = qa.evaluate(model, tok, lm_kind, info, data, batch_size)
    return qa.format_report(report) + [f"time        {report.seconds:.1f} s"]


__all__ = ["HEAD_KINDS", "HEAD_TASKS", "build_head_model", "evaluate_head", "task_module"]
