"""Hugging Face BERT directories, read and written without torch or pickle.

A directory written by ``BertModel`` / ``BertFor*.save_pretrained`` holds ``config.json``,
``model.safetensors`` (or shards listed in ``model.safetensors.index.json``) and a
WordPiece tokenizer (``tokenizer.json`` or ``vocab.txt``). The layouts map onto
tinyllm's modules one to one, except that Hugging Face keeps the query, key and
value projections apart and tinyllm packs them into one (3C, C) matrix:

    embeddings.word_embeddings / position_embeddings / token_type_embeddings   wte / wpe / wse
    embeddings.LayerNorm                                                        ln_emb
    encoder.layer.i.attention.self.{query, key, value}                          h.i.attn.c_attn  (q | k | v rows)
    encoder.layer.i.attention.output.dense / .LayerNorm                         h.i.attn.c_proj / h.i.ln_1
    encoder.layer.i.intermediate.dense, output.dense / .LayerNorm               h.i.mlp.c_fc, h.i.mlp.c_proj / h.i.ln_2
    cls.predictions.transform.dense / .LayerNorm, cls.predictions.bias         mlm.dense / mlm.ln, mlm.decoder.bias
    pooler.dense + classifier (BertForSequenceClassification)                  SequenceClassifier pooler + classifier
    classifier (BertForTokenClassification)                                     TokenClassifier classifier
    crf.safetensors beside it (tinyllm's, :mod:`tinyllm.models.hf_crf`)         TokenClassifier crf
    qa_outputs (BertForQuestionAnswering)                                       SpanExtractor qa_outputs

Weights of heads (``bert.`` prefix) and of a bare ``BertModel`` (no prefix) are
both read. Every value of ``config.json`` that tinyllm cannot honour exactly
(another activation or position type, an MLP width other than 4 C, a decoder)
is one ValueError naming the key.
"""
from __future__ import annotations

import numbers
from pathlib import Path
from typing import Any

import numpy as np

from ..backend import to_numpy
from ..nn import Module
from .bert import BERT
from .config import BertConfig
from .heads import SequenceClassifier
from ..validate import check_hf_bert_config
from .hf import fitting_tokenizer, read_hf_dir, write_hf_dir
from .hf_crf import read_crf, write_crf
from .hf_wordpiece import WordPieceTokenizer, load_wordpiece
from .qa import SpanExtractor
from .tagging import TokenClassifier

ARCHITECTURES = ("BertModel", "BertForMaskedLM", "BertForSequenceClassification", "BertForTokenClassification",
                 "BertForQuestionAnswering")
EXACT_GELUS = ("gelu",)
TANH_GELUS = ("gelu_new", "gelu_pytorch_tanh", "gelu_fast")
SKIPPED = ("embeddings.position_ids", "cls.predictions.decoder.bias")   # a buffer; a tied alias of the bias


def bert_config_from_hf(cfg: dict[str, Any]) -> BertConfig:
    """A :class:`BertConfig` from a Hugging Face BERT ``config.json`` (ValueError naming a key we cannot honour)."""
    if cfg.get("model_type") != "bert":
        raise ValueError(f"config.json: model_type {cfg.get('model_type')!r} is not 'bert'")
    for key in ("vocab_size", "hidden_size", "num_hidden_layers", "num_attention_heads", "max_position_embeddings"):
        v = cfg.get(key)
        if isinstance(v, bool) or not isinstance(v, numbers.Integral) or v < 1:
            raise ValueError(f"config.json: {key} must be a positive integer, got {v!r}")
    act = cfg.get("hidden_act", "gelu")
    if act not in EXACT_GELUS + TANH_GELUS:
        raise ValueError(f"config.json: hidden_act {act!r} is not supported (only gelu, or its tanh form "
                         f"{', '.join(TANH_GELUS)})")
    if cfg.get("position_embedding_type", "absolute") != "absolute":
        raise ValueError(f"config.json: position_embedding_type {cfg['position_embedding_type']!r} is not "
                         "supported (only 'absolute')")
    width = cfg.get("intermediate_size", 4 * cfg["hidden_size"])
    if width != 4 * cfg["hidden_size"]:
        raise ValueError(f"config.json: intermediate_size {width} is not supported: the MLP width is "
                         f"4 * hidden_size = {4 * cfg['hidden_size']}")
    for key in ("is_decoder", "add_cross_attention"):
        if cfg.get(key):
            raise ValueError(f"config.json: {key} is not supported (tinyllm's BERT is an encoder)")
    drop, attn_drop = cfg.get("hidden_dropout_prob", 0.1), cfg.get("attention_probs_dropout_prob", 0.1)
    if attn_drop != drop:
        raise ValueError(f"config.json: attention_probs_dropout_prob {attn_drop} differs from hidden_dropout_prob "
                         f"{drop}; tinyllm uses one dropout rate")
    try:
        return BertConfig(vocab_size=cfg["vocab_size"], block_size=cfg["max_position_embeddings"],
                          n_layer=cfg["num_hidden_layers"], n_head=cfg["num_attention_heads"],
                          n_embd=cfg["hidden_size"], dropout=drop, type_vocab_size=cfg.get("type_vocab_size", 2),
                          pad_id=cfg.get("pad_token_id", 0) or 0, eps=cfg.get("layer_norm_eps", 1e-12),
                          tie_weights=bool(cfg.get("tie_word_embeddings", True)), exact_gelu=act in EXACT_GELUS)
    except ValueError as exc:
        raise ValueError(f"config.json: {exc}") from None


def _layer_names(i: int) -> list[tuple[str, str]]:
    """(tinyllm name, HF name) of block i, without the fused q|k|v."""
    hf, ours = f"encoder.layer.{i}.", f"h.{i}."
    pairs = [("attn.c_proj", "attention.output.dense"), ("ln_1", "attention.output.LayerNorm"),
             ("mlp.c_fc", "intermediate.dense"), ("mlp.c_proj", "output.dense"), ("ln_2", "output.LayerNorm")]
    return [(ours + a + s, hf + b + s) for a, b in pairs for s in (".weight", ".bias")]


def backbone_names(config: BertConfig) -> list[tuple[str, str]]:
    """(tinyllm, HF) names of every backbone tensor but the packed attention."""
    names = [("wte.weight", "embeddings.word_embeddings.weight"),
             ("wpe.weight", "embeddings.position_embeddings.weight"),
             ("wse.weight", "embeddings.token_type_embeddings.weight"),
             ("ln_emb.weight", "embeddings.LayerNorm.weight"),
             ("ln_emb.bias", "embeddings.LayerNorm.bias")]
    for i in range(config.n_layer):
        names += _layer_names(i)
    return names


MLM_NAMES = [("mlm.dense.weight", "cls.predictions.transform.dense.weight"),
             ("mlm.dense.bias", "cls.predictions.transform.dense.bias"),
             ("mlm.ln.weight", "cls.predictions.transform.LayerNorm.weight"),
             ("mlm.ln.bias", "cls.predictions.transform.LayerNorm.bias"),
             ("mlm.decoder.bias", "cls.predictions.bias")]


def _head_names(arch: str) -> list[tuple[str, str]]:
    """(tinyllm, HF) names of a head's tensors, tinyllm's relative to the head module."""
    lin = {"BertForSequenceClassification": ["pooler", "classifier"], "BertForTokenClassification": ["classifier"],
           "BertForQuestionAnswering": ["qa_outputs"]}.get(arch, [])
    out = [(f"{m}{s}", f"{'bert.pooler.dense' if m == 'pooler' else m}{s}") for m in lin for s in (".weight", ".bias")]
    return out


def _take(tensors: dict[str, np.ndarray], name: str, where: Path) -> np.ndarray:
    if name not in tensors:
        raise ValueError(f"{where}: tensor {name} is missing")
    return tensors.pop(name)


def _architecture(cfg: dict[str, Any], tensors: dict[str, np.ndarray]) -> str:
    archs = cfg.get("architectures") or []
    known = [a for a in archs if a in ARCHITECTURES] if isinstance(archs, list) else []
    if known:
        return known[0]
    if archs:
        raise ValueError(f"config.json: architectures {archs!r} holds none of {', '.join(ARCHITECTURES)}")
    if "qa_outputs.weight" in tensors:
        return "BertForQuestionAnswering"
    if "classifier.weight" in tensors:
        pooled = "bert.pooler.dense.weight" in tensors
        return "BertForSequenceClassification" if pooled else "BertForTokenClassification"
    return "BertForMaskedLM" if "cls.predictions.bias" in tensors else "BertModel"


def _num_labels(cfg: dict[str, Any]) -> tuple[int, list[str]]:
    id2label = cfg.get("id2label") or {}
    if not isinstance(id2label, dict) or not id2label:
        n = cfg.get("num_labels", 2)
        return n, [f"LABEL_{i}" for i in range(n)]
    try:
        order = sorted(id2label, key=int)
    except (TypeError, ValueError):
        raise ValueError("config.json: id2label keys must be integers") from None
    if [int(k) for k in order] != list(range(len(order))):
        raise ValueError("config.json: id2label keys must be 0 .. num_labels - 1")
    return len(order), [str(id2label[k]) for k in order]


def load_bert(path: str | Path) -> tuple[Module, WordPieceTokenizer | None, dict[str, Any]]:
    """Read a Hugging Face BERT directory: ``(model, tokenizer or None, info)``.

    The model is a :class:`BERT` (BertModel, BertForMaskedLM), a :class:`SequenceClassifier`
    with the "pooler" pooling, a :class:`TokenClassifier` or a :class:`SpanExtractor`, in the
    default dtype and in eval mode. ``info`` has ``architecture`` and ``labels``.
    """
    p, cfg, config, tensors = read_hf_dir(path, "bert", check_hf_bert_config, bert_config_from_hf)
    arch = _architecture(cfg, tensors)
    prefixed = any(k.startswith("bert.") for k in tensors)
    tensors = {k: v for k, v in tensors.items() if not k.removeprefix("bert.").endswith(SKIPPED)}
    if not prefixed:
        tensors = {f"bert.{k}" if not k.startswith(("cls.", "classifier.", "qa_outputs.")) else k: v
                   for k, v in tensors.items()}
    backbone = BERT(config)
    state = {k: to_numpy(v).copy() for k, v in backbone.state_dict().items()}
    for ours, hf in backbone_names(config):
        state[ours] = _take(tensors, "bert." + hf, p)
    for i in range(config.n_layer):
        for s in ("weight", "bias"):
            parts = [_take(tensors, f"bert.encoder.layer.{i}.attention.self.{n}.{s}", p)
                     for n in ("query", "key", "value")]
            state[f"h.{i}.attn.c_attn.{s}"] = np.concatenate(parts, axis=0)      # (3C, C) q | k | v
    if arch == "BertForMaskedLM":
        for ours, hf in MLM_NAMES:
            state[ours] = _take(tensors, hf, p)
        if config.tie_weights:
            tensors.pop("cls.predictions.decoder.weight", None)
        else:
            state["mlm.decoder.weight"] = _take(tensors, "cls.predictions.decoder.weight", p)
    if config.tie_weights:
        state["mlm.decoder.weight"] = state["wte.weight"]
    if arch != "BertForSequenceClassification":                      # BertModel's pooler, unused by other heads
        for s in ("weight", "bias"):
            tensors.pop(f"bert.pooler.dense.{s}", None)
    _check_shapes(backbone, state, p)
    backbone.load_state_dict(state)
    num_labels, labels = _num_labels(cfg)
    model: Module = backbone
    if arch == "BertForSequenceClassification":
        drop = cfg.get("classifier_dropout")
        model = SequenceClassifier(backbone, num_labels, "pooler", dropout=drop)
    elif arch == "BertForTokenClassification":
        crf = read_crf(p, num_labels)                                  # a CRF tagger's scores, when exported
        model = TokenClassifier(backbone, num_labels, crf=crf is not None, tags=labels,
                                scheme=crf[0] if crf else None, dropout=cfg.get("classifier_dropout"))
    elif arch == "BertForQuestionAnswering":
        if num_labels != 2:
            raise ValueError(f"config.json: num_labels {num_labels} is not supported for question answering "
                             "(2 outputs: start and end)")
        model = SpanExtractor(backbone)
    if model is not backbone:
        head = {ours: _take(tensors, hf, p) for ours, hf in _head_names(arch)}
        if arch == "BertForTokenClassification" and crf:
            head.update({f"crf.{n}": v for n, v in crf[1].items()})
        _check_shapes(model, head, p)
        model.load_state_dict({**{k: to_numpy(v) for k, v in model.state_dict().items()}, **head})
    leftover = sorted(k for k in tensors if not k.startswith("cls.") or arch == "BertForMaskedLM")
    if leftover:
        raise ValueError(f"{p}: tensors {', '.join(leftover[:5])} do not belong to a {arch}")
    model.eval()
    tokenizer = fitting_tokenizer(load_wordpiece(p), backbone.config.vocab_size, p)
    return model, tokenizer, {"architecture": arch, "labels": labels if model is not backbone
                              and arch != "BertForQuestionAnswering" else None}


def _check_shapes(model: Module, state: dict[str, Any], where: Path) -> None:
    expected = model.state_dict()
    for k, arr in state.items():
        if k in expected and tuple(arr.shape) != tuple(expected[k].shape):
            raise ValueError(f"{where}: tensor for {k} has shape {tuple(arr.shape)}, config.json implies "
                             f"{tuple(expected[k].shape)}")


def _architecture_of(model: Module) -> tuple[str, BERT]:
    """Which HF layout a tinyllm model is saved in, and its BERT backbone."""
    if isinstance(model, BERT):
        return "BertForMaskedLM", model
    backbone = getattr(model, "backbone", None)
    if not isinstance(backbone, BERT):
        raise TypeError(f"save_bert writes BERT models and heads on a BERT, got {type(model).__name__}")
    if isinstance(model, SequenceClassifier):
        if model.pooling != "pooler":
            raise ValueError(f"BertForSequenceClassification reads the pooler; this classifier pools "
                             f"{model.pooling!r}: fine-tune it with pooling 'pooler' to export it")
        return "BertForSequenceClassification", backbone
    if isinstance(model, TokenClassifier):                    # a CRF's scores go to crf.safetensors
        return "BertForTokenClassification", backbone
    if isinstance(model, SpanExtractor):
        return "BertForQuestionAnswering", backbone
    raise TypeError(f"no Hugging Face BERT layout for a {type(model).__name__}")


def hf_tensors(model: Module, values: dict[str, Any] | None = None) -> tuple[str, dict[str, np.ndarray]]:
    """The Hugging Face layout name and tensors of ``model`` (or of ``values``, arrays under the model's own
    ``state_dict`` names, e.g. its gradients): the inverse of :func:`load_bert`'s mapping."""
    arch, bert = _architecture_of(model)
    c = bert.config
    if not c.bias:
        raise ValueError("Hugging Face BERT has biases: a model with bias=False cannot be saved in its layout")
    values = {k: to_numpy(v) for k, v in (model.state_dict() if values is None else values).items()}
    pre = "" if model is bert else "backbone."
    state = {k[len(pre):]: v for k, v in values.items() if k.startswith(pre)}
    out = {"bert." + hf: state[ours] for ours, hf in backbone_names(c)}
    for i in range(c.n_layer):
        for s in ("weight", "bias"):
            q, k, v = np.split(state[f"h.{i}.attn.c_attn.{s}"], 3, axis=0)
            for name, part in zip(("query", "key", "value"), (q, k, v)):
                out[f"bert.encoder.layer.{i}.attention.self.{name}.{s}"] = part
    if arch == "BertForMaskedLM":
        out.update({hf: state[ours] for ours, hf in MLM_NAMES})
        if not c.tie_weights:
            out["cls.predictions.decoder.weight"] = state["mlm.decoder.weight"]
    else:
        out.update({hf: values[ours] for ours, hf in _head_names(arch)})
    return arch, out


def save_bert(model: Module, path: str | Path, tokenizer: Any = None, labels: list[str] | None = None) -> None:
    """Write ``model`` (a BERT, or a classifier / tagger / span extractor on one) as a Hugging Face
    directory that ``transformers`` and :func:`load_bert` read: config.json, model.safetensors, and the
    tokenizer's tokenizer.json when given (a CRF tagger: crf.safetensors as well)."""
    arch, out = hf_tensors(model)
    c = _architecture_of(model)[1].config
    n_labels = getattr(model, "num_classes", None) or getattr(model, "num_tags", None)
    hf_config: dict[str, Any] = {
        "model_type": "bert", "architectures": [arch], "vocab_size": c.vocab_size, "hidden_size": c.n_embd,
        "num_hidden_layers": c.n_layer, "num_attention_heads": c.n_head, "intermediate_size": 4 * c.n_embd,
        "hidden_act": "gelu" if c.exact_gelu else "gelu_new", "hidden_dropout_prob": c.dropout,
        "attention_probs_dropout_prob": c.dropout, "max_position_embeddings": c.block_size,
        "type_vocab_size": c.type_vocab_size, "layer_norm_eps": c.eps, "pad_token_id": c.pad_id,
        "position_embedding_type": "absolute", "tie_word_embeddings": c.tie_weights}
    if n_labels:
        names = labels or [f"LABEL_{i}" for i in range(n_labels)]
        if len(names) != n_labels:
            raise ValueError(f"{len(names)} label names for a head with {n_labels} outputs")
        hf_config["id2label"] = {str(i): n for i, n in enumerate(names)}
        hf_config["label2id"] = {n: i for i, n in enumerate(names)}
        drop = getattr(model, "drop", None)
        hf_config["classifier_dropout"] = getattr(drop, "p", None)
    write_hf_dir(path, out, hf_config, tokenizer)
    if getattr(model, "use_crf", False):
        write_crf(model.crf, path)
