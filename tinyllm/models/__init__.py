"""Models built from ``tinyllm.nn``: GPT (decoder), BERT (encoder), a sequence
classifier head for either, and sentence embeddings.

Each model kind has one record in :mod:`tinyllm.models.registry`, registered
below; ``build_model(kind, config_dict)`` makes a model from a checkpoint's
config and ``config_class(kind)`` gives its config dataclass. Heads take any
:class:`Backbone` (``encode(idx, attention_mask) -> (B, T, C)``).
"""
from __future__ import annotations

from typing import Any

from . import registry
from .backbone import Backbone
from .bert import BERT, MLMHead
from .config import BertConfig, GPTConfig
from .crf import CRF
from .embedding import SentenceEncoder, info_nce_loss, mean_pool
from .gpt import GPT
from .heads import SequenceClassifier
from .hf import load_pretrained
from .qa import SpanExtractor
from .registry import ModelKind
from .seq2seq import Seq2Seq, Seq2SeqConfig
from .tagging import TokenClassifier


def _bert_config_extras(tokenizer: Any) -> dict[str, Any]:
    """BERT's pad_id is the tokenizer's [PAD] (0 when it has none)."""
    return {"pad_id": tokenizer.pad_id if tokenizer.pad_id is not None else 0}


registry.register(ModelKind(
    "gpt", GPTConfig, GPT, objective="next-token", batch_source="tinyllm.train.data:LMSource",
    can_generate=True, summary="next-token prediction (default)", load_pretrained=load_pretrained))
registry.register(ModelKind(
    "bert", BertConfig, BERT, objective="masked-lm", batch_source="tinyllm.train.data:MLMSource",
    can_generate=False, summary="masked-LM", config_extras=_bert_config_extras))
registry.register(ModelKind(
    "seq2seq", Seq2SeqConfig, Seq2Seq, objective="seq2seq", batch_source="tinyllm.train.seq2seq:PairSource",
    can_generate=True, summary="encoder-decoder on source/target pairs (--data pairs.tsv)"))

MODEL_KINDS = tuple(registry.names())    # the built-in kinds (registry.names() includes any added later)


def config_class(kind: str) -> type:
    """The config dataclass of a model kind ("gpt" -> GPTConfig, "bert" -> BertConfig)."""
    return registry.get(kind).config_class


def build_model(kind: str, config: dict[str, Any] | Any) -> Any:
    """A freshly initialized model of ``kind`` from a config dict (or config object)."""
    return registry.get(kind).build(config)


__all__ = ["BERT", "Backbone", "BertConfig", "CRF", "GPT", "GPTConfig", "MLMHead", "MODEL_KINDS", "ModelKind",
           "Seq2Seq", "Seq2SeqConfig", "SentenceEncoder", "SequenceClassifier", "SpanExtractor", "TokenClassifier",
           "build_model", "config_class", "info_nce_loss", "load_pretrained", "mean_pool", "registry"]
