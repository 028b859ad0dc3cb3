"""GPT-2 with a task head in Hugging Face's layouts, and one entry point that writes any exportable model.

    tinyllm                                          transformers                       head tensors
    SequenceClassifier on a GPT ("last", no bias)    GPT2ForSequenceClassification      score.weight
    TokenClassifier on a GPT (CRF: + crf.safetensors) GPT2ForTokenClassification        classifier.weight, .bias
    SpanExtractor on a GPT                           GPT2ForQuestionAnswering           qa_outputs.weight, .bias

The backbone's tensors are GPT-2's own under ``transformer.`` (:mod:`tinyllm.models.hf`); a head's
layout has no ``lm_head``. ``GPT2ForSequenceClassification`` scores the rightmost token whose id is
not ``config.pad_token_id`` (whatever the attention mask says) with ``score``, a linear map without
bias: tinyllm's classifier does exactly that when built with ``bias=False`` and ``pad_id`` (what
``tinyllm finetune --task classify`` builds on a GPT), and ``pad_token_id`` is written from it.
The CRF's scores travel in a side file (:mod:`tinyllm.models.hf_crf`).
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from ..backend import to_numpy
from ..nn import Module
from .gpt import GPT
from .heads import SequenceClassifier
from .hf import (check_names_and_shapes, fitting_tokenizer, gpt_from_tensors, gpt_hf_config, gpt_hf_tensors,
                 load_tokenizer, read_gpt2_dir, write_hf_dir)
from .hf_crf import read_crf, write_crf
from .qa import SpanExtractor
from .tagging import TokenClassifier

GPT_HEADS = {"GPT2ForSequenceClassification": ("score.weight",),
             "GPT2ForTokenClassification": ("classifier.weight", "classifier.bias"),
             "GPT2ForQuestionAnswering": ("qa_outputs.weight", "qa_outputs.bias")}
GPT_ARCHITECTURES = ("GPT2Model", "GPT2LMHeadModel", *GPT_HEADS)
HEAD_PREFIXES = ("score.", "classifier.", "qa_outputs.")


def gpt2_architecture(cfg: dict[str, Any], tensors: dict[str, Any]) -> str:
    """The layout of a GPT-2 directory: config.json's ``architectures``, else told by the tensor names."""
    archs = cfg.get("architectures") or []
    known = [a for a in archs if a in GPT_ARCHITECTURES] if isinstance(archs, list) else []
    if known:
        return known[0]
    if archs:
        raise ValueError(f"config.json: architectures {archs!r} holds none of {', '.join(GPT_ARCHITECTURES)}")
    for arch, names in GPT_HEADS.items():
        if names[0] in tensors:
            return arch
    return "GPT2LMHeadModel"


def _labels(cfg: dict[str, Any]) -> list[str]:
    from .hf_bert import _num_labels  # noqa: PLC0415  (the same id2label rules as BERT's)

    return _num_labels(cfg)[1]


def load_gpt2(path: str | Path) -> tuple[Module, Any, dict[str, Any]]:
    """Read a Hugging Face GPT-2 directory of any layout: ``(model, tokenizer or None, info)``.

    The model is a :class:`GPT` (GPT2Model, GPT2LMHeadModel) or a head on one, in the
    default dtype and in eval mode; ``info`` has ``architecture`` and ``labels``.
    """
    p, cfg, config, tensors = read_gpt2_dir(path)
    arch = gpt2_architecture(cfg, tensors)
    head = {k: tensors.pop(k) for k in list(tensors) if k.startswith(HEAD_PREFIXES)}
    if "score.weight" in head:                                        # our classifier's name for HF's score
        head["classifier.weight"] = head.pop("score.weight")
    backbone = gpt_from_tensors(tensors, config, p, lm_head=arch not in GPT_HEADS)
    labels: list[str] | None = None
    model: Module = backbone
    if arch == "GPT2ForSequenceClassification":
        labels = _labels(cfg)
        pad = cfg.get("pad_token_id")
        if pad is None:
            raise ValueError("config.json: GPT2ForSequenceClassification needs pad_token_id (the token its "
                             "classifier skips to find the last real one)")
        model = SequenceClassifier(backbone, len(labels), "last", dropout=0.0, bias=False, pad_id=pad)
    elif arch == "GPT2ForTokenClassification":
        labels = _labels(cfg)
        crf = read_crf(p, len(labels))
        drop = cfg.get("classifier_dropout")
        model = TokenClassifier(backbone, len(labels), crf=crf is not None, tags=labels,
                                scheme=crf[0] if crf else None, dropout=drop if drop is not None else 0.1)
        if crf:
            head.update({f"crf.{n}": v for n, v in crf[1].items()})
    elif arch == "GPT2ForQuestionAnswering":
        model = SpanExtractor(backbone, dropout=0.0)
    full = {k: to_numpy(v) for k, v in model.state_dict().items()}
    own = {k: v for k, v in full.items() if not k.startswith("backbone.")} if model is not backbone else {}
    check_names_and_shapes(head, own, p, f"the head tensors do not match a {arch}")
    if head:
        model.load_state_dict({**full, **head})
    model.eval()
    tokenizer = fitting_tokenizer(load_tokenizer(p), backbone.config.vocab_size, p)
    return model, tokenizer, {"architecture": arch, "labels": labels}


def _gpt_architecture(model: Module) -> str:
    """Which GPT-2 layout a tinyllm model on a GPT is written in (ValueError if none holds it exactly)."""
    if isinstance(model, GPT):
        return "GPT2LMHeadModel"
    if isinstance(model, SequenceClassifier):
        if model.pooling != "last" or model.bias or model.pad_id is None:
            raise ValueError(f"GPT2ForSequenceClassification scores the last non-padding token with a linear map "
                             f"without bias; this classifier has pooling {model.pooling!r}, "
                             f"{'a' if model.bias else 'no'} bias and pad_id {model.pad_id}: fine-tune it again with "
                             f"'tinyllm finetune --task classify' (no --pooling), which builds that head on a GPT")
        return "GPT2ForSequenceClassification"
    if isinstance(model, TokenClassifier):
        return "GPT2ForTokenClassification"
    if isinstance(model, SpanExtractor):
        return "GPT2ForQuestionAnswering"
    raise TypeError(f"no Hugging Face GPT-2 layout for a {type(model).__name__}")


def gpt2_hf_tensors(model: Module, values: dict[str, Any] | None = None) -> tuple[str, dict[str, np.ndarray]]:
    """The layout name and Hugging Face tensors of a GPT or a head on one (or of ``values``: arrays under
    the model's own ``state_dict`` names, e.g. its gradients). A CRF's scores are not among them."""
    arch = _gpt_architecture(model)
    gpt = model if isinstance(model, GPT) else model.backbone
    values = {k: to_numpy(v) for k, v in (model.state_dict() if values is None else values).items()}
    if model is gpt:
        return arch, gpt_hf_tensors(values, gpt.config)
    backbone = {k[len("backbone."):]: v for k, v in values.items() if k.startswith("backbone.")}
    out = gpt_hf_tensors(backbone, gpt.config, lm_head=False)
    for name in GPT_HEADS[arch]:
        ours = "classifier.weight" if name == "score.weight" else name
        out[name] = values[ours]
    return arch, out


def _label_config(model: Module, labels: list[str] | None) -> dict[str, Any]:
    n = getattr(model, "num_classes", None) or getattr(model, "num_tags", None)
    if not n:
        return {}
    names = labels or [f"LABEL_{i}" for i in range(n)]
    if len(names) != n:
        raise ValueError(f"{len(names)} label names for a head with {n} outputs")
    return {"id2label": {str(i): name for i, name in enumerate(names)},
            "label2id": {name: i for i, name in enumerate(names)}}


def save_gpt2(model: Module, path: str | Path, tokenizer: Any = None, labels: list[str] | None = None) -> None:
    """Write a GPT or a head on one as a Hugging Face directory that ``transformers`` and :func:`load_gpt2`
    read (a CRF tagger: the token-classification layout plus crf.safetensors)."""
    arch, tensors = gpt2_hf_tensors(model)
    gpt = model if isinstance(model, GPT) else model.backbone
    cfg = {**gpt_hf_config(gpt.config, tokenizer), "architectures": [arch], **_label_config(model, labels)}
    if arch == "GPT2ForSequenceClassification":
        cfg.update(pad_token_id=model.pad_id, problem_type="single_label_classification")
    elif arch == "GPT2ForTokenClassification":
        cfg["classifier_dropout"] = model.drop.p
    write_hf_dir(path, tensors, cfg, tokenizer)
    if getattr(model, "use_crf", False):
        write_crf(model.crf, path)


def save_hf(model: Module, path: str | Path, tokenizer: Any = None, labels: list[str] | None = None) -> str:
    """Write any exportable tinyllm model (a GPT or a BERT, bare or with a head) as a Hugging Face
    directory; the layout's name. TypeError/ValueError, before anything is written, for what has none."""
    from .bert import BERT  # noqa: PLC0415
    from .hf_bert import hf_tensors, save_bert  # noqa: PLC0415

    base = getattr(model, "backbone", model)
    if isinstance(base, GPT):
        arch = _gpt_architecture(model)
        save_gpt2(model, path, tokenizer, labels)
        return arch
    if isinstance(base, BERT):
        arch, _ = hf_tensors(model)
        save_bert(model, path, tokenizer, labels)
        return arch
    raise TypeError(f"no Hugging Face layout for a {type(model).__name__} (GPT and BERT models, bare or with "
                    f"a head, can be exported)")
