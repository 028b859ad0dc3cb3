"""Model configurations: plain dataclasses, checked when they are made.

A config holds every number needed to rebuild a model's shapes, and nothing
else. ``to_dict()`` / ``from_dict()`` turn it into JSON-able data for
checkpoints; ``validate()`` (run by ``__post_init__``) rejects a bad value
with a one-line :class:`ValueError` that names it.
"""
from __future__ import annotations

import dataclasses
import numbers
from dataclasses import dataclass
from typing import Any, TypeVar

C = TypeVar("C", bound="_Config")


class _Config:
    """to_dict / from_dict / validate, shared by the model configs (no fields of its own)."""

    def __post_init__(self) -> None:
        self.validate()

    def to_dict(self) -> dict[str, Any]:
        """The fields as a plain dict (JSON-able)."""
        return dataclasses.asdict(self)  # type: ignore[call-overload]

    @classmethod
    def from_dict(cls: type[C], d: dict[str, Any]) -> C:
        """Build a config from a dict; an unknown or missing key is a ValueError naming it."""
        if not isinstance(d, dict):
            raise ValueError(f"{cls.__name__}.from_dict needs a dict, got {type(d).__name__}")
        fields = {f.name: f for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
        unknown = [k for k in d if k not in fields]
        if unknown:
            raise ValueError(f"unknown {cls.__name__} key {unknown[0]!r} (known: {', '.join(fields)})")
        missing = [name for name, f in fields.items()
                   if name not in d and f.default is dataclasses.MISSING]
        if missing:
            raise ValueError(f"{cls.__name__} is missing the key {missing[0]!r}")
        return cls(**d)

    def validate(self) -> None:
        raise TypeError(f"{type(self).__name__} must define validate()")  # pragma: no cover


def _positive_int(name: str, value: Any) -> None:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 1:
        raise ValueError(f"{name} must be a positive integer, got {value!r}")


def _flag(name: str, value: Any) -> None:
    if not isinstance(value, bool):
        raise ValueError(f"{name} must be true or false, got {value!r}")


def _probability(name: str, value: Any) -> None:
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not 0.0 <= value < 1.0:
        raise ValueError(f"{name} must be a number in [0, 1), got {value!r}")


def _transformer_shape(cfg: Any) -> None:
    for name in ("vocab_size", "block_size", "n_layer", "n_head", "n_embd"):
        _positive_int(name, getattr(cfg, name))
    if cfg.n_embd % cfg.n_head:
        raise ValueError(f"n_embd ({cfg.n_embd}) must be divisible by n_head ({cfg.n_head})")
    _probability("dropout", cfg.dropout)
    _flag("bias", cfg.bias)
    _flag("tie_weights", cfg.tie_weights)


@dataclass
class GPTConfig(_Config):
    """Shapes of a GPT-2-style decoder.

    Args:
        vocab_size: number of token ids (V).
        block_size: longest context, in tokens (the number of learned positions).
        n_layer: Transformer blocks (L).
        n_head: attention heads per block (H); ``n_embd`` must be divisible by it.
        n_embd: model width (C); each head has C / H dimensions.
        dropout: on embeddings, attention weights and residual branches (0 to turn it off).
        bias: biases in Linear and LayerNorm layers (GPT-2 has them).
        tie_weights: the output layer reuses the token embedding matrix (GPT-2 does).
    """

    vocab_size: int
    block_size: int
    n_layer: int
    n_head: int
    n_embd: int
    dropout: float = 0.0
    bias: bool = True
    tie_weights: bool = True

    def validate(self) -> None:
        """Raise ValueError naming the first field with a bad value."""
        _transformer_shape(self)


@dataclass
class BertConfig(_Config):
    """Shapes of a BERT-style encoder.

    Args:
        vocab_size, n_layer, n_head, n_embd, dropout, bias, tie_weights: as :class:`GPTConfig`.
        block_size: number of learned positions (the longest input).
        type_vocab_size: number of segment ids (2: sentence A and sentence B).
        pad_id: the padding token; its embedding row starts at 0 and padded keys are masked.
        eps: LayerNorm epsilon (1e-12 in BERT).
        exact_gelu: GELU with erf, as the original BERT and Hugging Face's "gelu" (default: the tanh form).
    """

    vocab_size: int
    block_size: int
    n_layer: int
    n_head: int
    n_embd: int
    dropout: float = 0.1
    type_vocab_size: int = 2
    pad_id: int = 0
    eps: float = 1e-12
    bias: bool = True
    tie_weights: bool = True
    exact_gelu: bool = False

    def validate(self) -> None:
        """Raise ValueError naming the first field with a bad value."""
        _transformer_shape(self)
        _flag("exact_gelu", self.exact_gelu)
        _positive_int("type_vocab_size", self.type_vocab_size)
        if isinstance(self.pad_id, bool) or not isinstance(self.pad_id, numbers.Integral) \
                or not 0 <= self.pad_id < self.vocab_size:
            raise ValueError(f"pad_id must be a token id in [0, {self.vocab_size}), got {self.pad_id!r}")
        if isinstance(self.eps, bool) or not isinstance(self.eps, numbers.Real) or not 0.0 < self.eps < 1.0:
            raise ValueError(f"eps must be a small positive number, got {self.eps!r}")
