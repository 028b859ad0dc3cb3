"""The model registry: one record per model kind, read by ``train/`` and ``cli/``.

Everything the rest of tinyllm needs to know about a kind of model is on its
:class:`ModelKind` record: how to build it (config and model classes), what
pre-training teaches it (its objective, and the batch source that feeds that
objective), and whether it can decode text. ``train/`` and ``cli/`` read the
record instead of testing the kind's name, so a new model kind is one new
module plus one ``register(...)`` call (the built-in ones are registered in
``tinyllm/models/__init__.py``)::

    register(ModelKind("gpt", GPTConfig, GPT, objective="next-token",
                       batch_source="tinyllm.train.data:LMSource", can_generate=True,
                       summary="next-token prediction (default)"))

The batch source lives in ``train/`` (a layer above this one), so the record
names it as ``"module:Class"`` and :meth:`ModelKind.batch_source_class` imports
it when training asks for it.
"""
from __future__ import annotations

import importlib
from dataclasses import dataclass, field
from typing import Any, Callable

# What pre-training predicts (the loop reports masked-token accuracy for "masked-lm").
OBJECTIVES: dict[str, str] = {
    "next-token": "the next token at every position (a causal language model)",
    "masked-lm": "the original tokens at masked positions (a masked language model)",
    "seq2seq": "each target token from the source and the target so far (an encoder-decoder)",
}


def _no_extras(tokenizer: Any) -> dict[str, Any]:
    return {}


@dataclass(frozen=True)
class ModelKind:
    """One kind of model, as ``train/`` and ``cli/`` see it.

    Attributes:
        name: what the user types (``tinyllm train --model NAME``) and what checkpoints record.
        config_class: its config dataclass (``from_dict`` / ``to_dict`` / ``validate``).
        model_class: built as ``model_class(config)``; ``model(**batch) -> (logits, loss)``.
        objective: a key of :data:`OBJECTIVES`.
        batch_source: ``"module:Class"`` of the pre-training batch source for the objective.
        can_generate: whether ``tinyllm.decoding.generate`` can decode with it (next-token logits and a cache).
        summary: one line for ``--help``.
        config_extras: ``tokenizer -> dict``, config values taken from the tokenizer (BERT's pad_id).
        load_pretrained: ``path -> (model, tokenizer)`` for a foreign checkpoint directory, if any.
    """

    name: str
    config_class: type
    model_class: type
    objective: str
    batch_source: str
    can_generate: bool
    summary: str
    config_extras: Callable[[Any], dict[str, Any]] = field(default=_no_extras)
    load_pretrained: Callable[[Any], tuple[Any, Any]] | None = None

    def __post_init__(self) -> None:
        if not self.name or not self.name.isidentifier():
            raise ValueError(f"a model kind's name must be an identifier, got {self.name!r}")
        if self.objective not in OBJECTIVES:
            raise ValueError(f"model kind {self.name!r}: objective must be one of {', '.join(OBJECTIVES)}, "
                             f"got {self.objective!r}")
        module, _, attr = self.batch_source.partition(":")
        if not module or not attr:
            raise ValueError(f"model kind {self.name!r}: batch_source must be 'module:Class', "
                             f"got {self.batch_source!r}")

    def batch_source_class(self) -> type:
        """The batch source class named by :attr:`batch_source` (imported now)."""
        module, _, attr = self.batch_source.partition(":")
        return getattr(importlib.import_module(module), attr)

    def build(self, config: Any) -> Any:
        """A freshly initialized model from a config object or dict."""
        cfg = config if isinstance(config, self.config_class) else self.config_class.from_dict(dict(config))
        return self.model_class(cfg)


_KINDS: dict[str, ModelKind] = {}


def register(kind: ModelKind, replace: bool = False) -> ModelKind:
    """Add ``kind`` to the registry (ValueError if its name is taken, unless ``replace``)."""
    if not isinstance(kind, ModelKind):
        raise TypeError(f"register needs a ModelKind, got {type(kind).__name__}")
    if kind.name in _KINDS and not replace:
        raise ValueError(f"model kind {kind.name!r} is already registered")
    _KINDS[kind.name] = kind
    return kind


def unregister(name: str) -> None:
    """Remove a registered kind (for tests and plugins that register one for a while)."""
    get(name)
    del _KINDS[name]


def get(name: str) -> ModelKind:
    """The record of model kind ``name``; ValueError naming the known kinds otherwise."""
    kind = _KINDS.get(name) if isinstance(name, str) else None
    if kind is None:
        raise ValueError(f"unknown model kind {name!r}: choose one of {', '.join(_KINDS)}")
    return kind


def names() -> list[str]:
    """The registered kinds' names, in registration order."""
    return list(_KINDS)


def kind_of(model: Any) -> ModelKind | None:
    """The record whose model class ``model`` is (a class) or is an instance of, or None."""
    cls = model if isinstance(model, type) else type(model)
    return next((k for k in _KINDS.values() if issubclass(cls, k.model_class)), None)
