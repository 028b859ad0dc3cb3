"""Models built from ``tinyllm.nn``: GPT (decoder), BERT (encoder), a sequence
classifier head for either, and sentence embeddings.

``build_model(kind, config_dict)`` makes a model from a checkpoint's config;
``config_class(kind)`` gives its config dataclass.
"""
from __future__ import annotations

from typing import Any

from .bert import BERT, MLMHead
from .config import BertConfig, GPTConfig
from .embedding import SentenceEncoder, info_nce_loss, mean_pool
from .gpt import GPT
from .heads import SequenceClassifier
from .hf import load_pretrained
from .crf import CRF
from .qa import SpanExtractor
from .tagging import TokenClassifier

MODEL_KINDS = ("gpt", "bert")
_CLASSES: dict[str, tuple[type, type]] = {"gpt": (GPTConfig, GPT), "bert": (BertConfig, BERT)}


def config_class(kind: str) -> type:
    """The config dataclass of a model kind ("gpt" -> GPTConfig, "bert" -> BertConfig)."""
    if kind not in _CLASSES:
        raise ValueError(f"unknown model kind {kind!r}: choose one of {', '.join(MODEL_KINDS)}")
    return _CLASSES[kind][0]


def build_model(kind: str, config: dict[str, Any] | Any) -> Any:
    """A freshly initialized model of ``kind`` from a config dict (or config object)."""
    cfg_cls = config_class(kind)
    cfg = config if isinstance(config, cfg_cls) else cfg_cls.from_dict(dict(config))
    return _CLASSES[kind][1](cfg)


__all__ = ["BERT", "BertConfig", "GPT", "GPTConfig", "MLMHead", "MODEL_KINDS", "SentenceEncoder",
           "SequenceClassifier", "build_model", "config_class", "info_nce_loss", "load_pretrained", "mean_pool"]
__all__ += ["CRF", "SpanExtractor", "TokenClassifier"]
