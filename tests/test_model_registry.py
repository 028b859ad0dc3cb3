"""The model registry: a new kind is one module plus one ``register`` call, and
``train/`` (pre-training, fine-tuning a head on it, restoring, evaluating) then
handles it with no other change. Here the new kind is a bag-of-embeddings
language model small enough to define in the test."""
from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tinyllm import functional as F
from tinyllm import nn
from tinyllm.backend import get_array_module
from tinyllm.models import GPTConfig, SequenceClassifier, build_model, config_class, registry
from tinyllm.models.common import token_ids
from tinyllm.models.registry import ModelKind
from tinyllm.tensor import Tensor
from tinyllm.train import pretrain, restore_model
from tinyllm.train.evaluate import evaluate_classifier, evaluate_lm
from tinyllm.train.finetune import finetune
from tinyllm.train.metrics import Progress

# ----------------------------------------------------------------------------- the new module

class MeanLM(nn.Module):
    """Next token from the running mean of the embeddings so far:
    h_t = (1/t) sum_{s<=t} W_e[x_s] + W_p[t],  logits_t = h_t W_o^T + b_o."""

    default_pooling = "mean"

    def __init__(self, config: GPTConfig) -> None:
        super().__init__()
        self.config = config
        self.wte = nn.Embedding(config.vocab_size, config.n_embd)
        self.wpe = nn.LearnedPositionalEmbedding(config.block_size, config.n_embd)
        self.head = nn.Linear(config.n_embd, config.vocab_size)

    def encode(self, idx: Any, attention_mask: Any = None, **extra: Any) -> Tensor:
        ids = token_ids(idx)
        t, xp = ids.shape[1], get_array_module(ids)
        causal_mean = xp.tril(xp.ones((t, t))) / xp.arange(1, t + 1)[:, None]       # (T, T), rows sum to 1
        e = self.wte(ids)                                                           # (B, T, C)
        return Tensor._wrap(causal_mean.astype(e.dtype)) @ e + self.wpe(t)          # (B, T, C)

    def forward(self, idx: Any, targets: Any = None) -> tuple[Tensor, Tensor | None]:
        logits = self.head(self.encode(idx))                                        # (B, T, V)
        return logits, None if targets is None else F.cross_entropy(logits, targets, ignore_index=-100)

    def flops_per_token(self, seq_len: int | None = None) -> int:
        return 6 * self.num_parameters()


# ----------------------------------------------------------------------------- its one registry entry

@pytest.fixture
def mean_kind():
    kind = registry.register(ModelKind("mean", GPTConfig, MeanLM, objective="next-token",
                                       batch_source="tinyllm.train.data:LMSource", can_generate=False,
                                       summary="running-mean toy LM"))
    yield kind
    registry.unregister("mean")


def quiet() -> Progress:
    return Progress(echo=lambda line: None, enabled=False)


def test_a_registered_kind_trains_fine_tunes_restores_and_evaluates(tmp_path: Path, mean_kind: ModelKind) -> None:
    corpus = tmp_path / "corpus.txt"
    corpus.write_text("to be or not to be, that is the question\n" * 40, encoding="utf-8")
    settings = dict(model="mean", data=str(corpus), preset="tiny", n_layer=1, n_head=1, n_embd=8, block_size=8,
                    batch_size=4, iters=2, warmup=1, eval_interval=1, eval_iters=1, sample_tokens=5, lr=1e-2)
    outcome = pretrain(settings, out=str(tmp_path / "run"), progress=quiet())
    assert outcome.result.iteration == 2 and outcome.sample is None           # can_generate=False: no sample
    r = restore_model(tmp_path / "run")
    assert r.kind == "mean" and isinstance(r.model, MeanLM)
    assert evaluate_lm(r, str(corpus), batch_size=2, max_batches=2).tokens > 0

    labels = tmp_path / "labels.csv"
    labels.write_text("text,label\n" + "".join(f"{'to be' if i % 2 else 'not'},{i % 2}\n" for i in range(12)))
    finetune(str(tmp_path / "run"), str(labels), "classify", {"iters": 2, "eval_interval": 1},
             out=str(tmp_path / "clf"), progress=quiet())
    clf = restore_model(tmp_path / "clf")
    assert isinstance(clf.model, SequenceClassifier) and clf.model.pooling == "mean"   # the backbone's default
    assert evaluate_classifier(clf, str(labels)).examples == 12


def test_registry_lookups_and_one_line_errors(mean_kind: ModelKind) -> None:
    assert registry.names() == ["gpt", "bert", "seq2seq", "mean"] and registry.get("mean") is mean_kind
    assert config_class("mean") is GPTConfig
    assert isinstance(build_model("mean", dict(vocab_size=5, block_size=4, n_layer=1, n_head=1, n_embd=4)), MeanLM)
    assert registry.kind_of(MeanLM) is mean_kind and registry.kind_of(object()) is None
    with pytest.raises(ValueError, match="already registered"):
        registry.register(mean_kind)
    with pytest.raises(ValueError, match="unknown model kind 'rnn': choose one of gpt, bert, seq2seq, mean"):
        registry.get("rnn")
    with pytest.raises(ValueError, match="objective must be one of"):
        ModelKind("x", GPTConfig, MeanLM, objective="denoise", batch_source="m:C", can_generate=False, summary="")
    with pytest.raises(ValueError, match="'module:Class'"):
        ModelKind("x", GPTConfig, MeanLM, objective="next-token", batch_source="LMSource", can_generate=False,
                  summary="")
    assert registry.get("gpt").batch_source_class().__name__ == "LMSource"
    assert registry.get("bert").batch_source_class().__name__ == "MLMSource"
