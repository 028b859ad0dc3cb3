"""What a head needs from the model under it: the :class:`Backbone` interface.

A backbone turns token ids into one hidden vector per position,

    h = backbone.encode(idx, attention_mask, **extra)      (B, T) -> (B, T, C),  C = backbone.config.n_embd

and says which single position best summarizes a sequence (``default_pooling``:
"last" for a causal decoder, whose last real token is the only one that has
read the whole text; "cls" for a bidirectional encoder trained with a [CLS]
token). Heads (:class:`~tinyllm.models.SequenceClassifier`,
:class:`~tinyllm.models.SentenceEncoder`) are written against this interface
alone, so any model that provides it can carry any head.
"""
from __future__ import annotations

from typing import Any, Protocol, runtime_checkable

from ..tensor import Tensor


@runtime_checkable
class Backbone(Protocol):
    """Token ids -> hidden states; implemented by :class:`~tinyllm.models.GPT` and :class:`~tinyllm.models.BERT`.

    Attributes:
        config: has ``n_embd`` (the width C of the hidden states) and ``dropout``.
        default_pooling: "last", "cls" or "mean": the pooling a head uses unless told otherwise.
    """

    config: Any
    default_pooling: str

    def encode(self, idx: Any, attention_mask: Any = None, **extra: Any) -> Tensor:
        """Hidden states (B, T, C) of token ids ``idx`` (B, T).

        ``attention_mask`` (B, T): True/1 for real tokens, False/0 for padding.
        ``extra``: inputs only some backbones take (BERT's ``segment_ids``); a
        backbone given one it does not take raises ValueError naming it.
        """
        ...


def check_backbone(backbone: Any, pooling: bool = True) -> None:
    """TypeError unless ``backbone`` provides the :class:`Backbone` interface
    (``default_pooling`` only when ``pooling``: a head that always pools one way needs none)."""
    needs = ("encode", "config", "default_pooling") if pooling else ("encode", "config")
    missing = [name for name in needs if not hasattr(backbone, name)]
    if not missing and not hasattr(backbone.config, "n_embd"):
        missing = ["config.n_embd"]
    if missing or not callable(backbone.encode):
        raise TypeError(f"the backbone must provide the Backbone interface (encode(idx, attention_mask), "
                        f"config.n_embd, default_pooling); {type(backbone).__name__} lacks "
                        f"{', '.join(missing) or 'a callable encode'}")
