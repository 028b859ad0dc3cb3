"""Training settings: one dataclass, a few named presets, and config files.

Where a setting comes from, lowest priority first::

    TrainConfig defaults  <  the preset  <  --config FILE  <  command-line flags

so ``tinyllm train --preset nano --iters 100`` is the nano preset for 100
iterations. A config file (TOML or JSON) uses the command line's option names,
with dashes or underscores (``n-layer = 4`` or ``"n_layer": 4``); an unknown
key is an error naming it, never silently ignored.
"""
from __future__ import annotations

import dataclasses
import json
import math
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..validate import check_run_settings, read_file

MODEL_SHAPE_KEYS = ("n_layer", "n_head", "n_embd", "block_size", "dropout")

# Named sizes. Each sets the model shape and the training length that suits it.
PRESETS: dict[str, dict[str, Any]] = {
    # About a minute on 2 CPU cores: the val loss falls from 4.1 to about 1.75 and words appear.
    "tiny": dict(n_layer=2, n_head=4, n_embd=64, block_size=64, batch_size=16, iters=1500, lr=5e-3,
                 min_lr=5e-4, warmup=50, eval_interval=250, eval_iters=10),
    # What `tinyllm train` runs with no arguments: 2-3 minutes on 2 idle CPU cores, val loss about 1.6,
    # and the sample at the end has speaker names, line breaks and mostly real words. Measured: for
    # this budget a shallow, wide model trained for many steps beats a deeper one trained for fewer.
    "default": dict(n_layer=2, n_head=4, n_embd=96, block_size=64, batch_size=16, iters=3000, lr=4e-3,
                    min_lr=4e-4, warmup=50, eval_interval=250, eval_iters=10),
    # nanoGPT's CPU configuration for shakespeare_char (its README).
    "nano": dict(n_layer=4, n_head=4, n_embd=128, block_size=64, batch_size=12, iters=2000, lr=1e-3,
                 min_lr=1e-4, warmup=100, eval_interval=250, eval_iters=20),
    # nanoGPT's shakespeare_char GPU configuration: a GPU (--backend cupy) or patience.
    "small": dict(n_layer=6, n_head=6, n_embd=384, block_size=256, batch_size=64, iters=5000, lr=1e-3,
                  min_lr=1e-4, warmup=100, eval_interval=250, eval_iters=200, dropout=0.2, beta2=0.99),
}
DEFAULT_PRESET = "default"


@dataclass
class TrainConfig:
    """Everything a training run needs besides the model weights; saved in every checkpoint.

    Model shape (None: taken from the preset):
        model: a registered model kind (``tinyllm.models.registry.names()``): "gpt"
            (next-token prediction) or "bert" (masked-language modelling).
        n_layer, n_head, n_embd, block_size, dropout: the Transformer's sizes.
    Data:
        data: a text file, a directory of .txt files, a .bin token file, or a
            built-in corpus name ("tiny", "shakespeare").
        tokenizer: "char", "bpe" (trained on the corpus) or the path of a saved tokenizer.
        vocab_size: the BPE vocabulary size.
        val_fraction: the share of the corpus (its end) kept for validation.
        mlm_prob: BERT only, the share of tokens masked.
        tgt_tokenizer: seq2seq only, the target side's tokenizer ("char", "symbols" or "bpe";
            empty: the same as ``tokenizer``).
        tgt_vocab_size: seq2seq only, the target side's BPE vocabulary size (0: ``vocab_size``).
        label_smoothing: seq2seq only, eps of the label-smoothed cross-entropy.
    Seq2seq model options:
        src_block_size, tgt_block_size: the longest source and target (0: ``block_size``).
        norm: "pre" (pre-LN) or "post" (post-LN, the paper's); positions: "sinusoidal" or "learned";
        share_embeddings: one embedding table for both sides; tie_weights: the output
        projection is the target embedding.
    Optimization (AdamW, warmup + cosine decay):
        iters, batch_size, grad_accum (micro-batches per step), lr, min_lr, warmup
        (capped at iters), weight_decay, beta2, grad_clip (0 to turn it off).
    Evaluation and stopping:
        eval_interval, eval_iters, early_stop (evaluations without improvement before
        stopping; 0 = never), log_interval (iterations between metric records).
    Engine:
        seed, backend ("numpy"/"cupy"), dtype ("float32"/"float64").
    """

    model: str = "gpt"
    preset: str = DEFAULT_PRESET
    n_layer: int | None = None
    n_head: int | None = None
    n_embd: int | None = None
    block_size: int | None = None
    dropout: float = 0.0
    data: str = "tiny"
    tokenizer: str = "char"
    vocab_size: int = 512
    val_fraction: float = 0.1
    mlm_prob: float = 0.15
    tgt_tokenizer: str = ""
    tgt_vocab_size: int = 0
    label_smoothing: float = 0.0
    src_block_size: int = 0
    tgt_block_size: int = 0
    norm: str = "pre"
    positions: str = "sinusoidal"
    share_embeddings: bool = False
    tie_weights: bool = True
    iters: int = 1000
    batch_size: int = 16
    grad_accum: int = 1
    lr: float = 1e-3
    min_lr: float = 1e-4
    warmup: int = 100
    weight_decay: float = 0.1
    beta2: float = 0.99
    grad_clip: float = 1.0
    eval_interval: int = 100
    eval_iters: int = 20
    early_stop: int = 0
    log_interval: int = 10
    seed: int = 1337
    backend: str = "numpy"
    dtype: str = "float32"
    sample_tokens: int = 300

    def validate(self) -> None:
        """Raise ValueError with one line naming the first bad setting."""
        from ..models import registry  # noqa: PLC0415  (the models load when settings are checked)
        _choice("model", self.model, tuple(registry.names()))
        _choice("preset", self.preset, tuple(PRESETS))
        _choice("backend", self.backend, ("numpy", "cupy"))
        _choice("dtype", self.dtype, ("float32", "float64"))
        for name in ("n_layer", "n_head", "n_embd", "block_size"):
            value = getattr(self, name)
            if value is not None:
                _positive(name, value, int)
        if self.n_embd is not None and self.n_head is not None and self.n_embd % self.n_head:
            raise ValueError(f"n_embd ({self.n_embd}) must be divisible by n_head ({self.n_head})")
        for name in ("iters", "batch_size", "grad_accum", "eval_interval", "eval_iters", "log_interval",
                     "vocab_size"):
            _positive(name, getattr(self, name), int)
        for name in ("lr",):
            _positive(name, getattr(self, name), float)
        for name in ("min_lr", "weight_decay", "grad_clip"):
            _nonnegative(name, getattr(self, name))
        for name in ("warmup", "early_stop", "seed", "sample_tokens", "tgt_vocab_size", "src_block_size",
                     "tgt_block_size"):
            _nonnegative(name, getattr(self, name), int)
        if self.min_lr > self.lr:
            raise ValueError(f"min_lr ({self.min_lr}) must not exceed lr ({self.lr})")
        for name in ("dropout", "mlm_prob", "label_smoothing"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0.0 <= value < 1.0:
                raise ValueError(f"{name} must be a number in [0, 1), got {value!r}")
        _choice("norm", self.norm, ("pre", "post"))
        _choice("positions", self.positions, ("sinusoidal", "learned"))
        for name in ("share_embeddings", "tie_weights"):
            if not isinstance(getattr(self, name), bool):
                raise ValueError(f"{name} must be true or false, got {getattr(self, name)!r}")
        if not 0.0 < self.val_fraction < 1.0:
            raise ValueError(f"val_fraction must be between 0 and 1, got {self.val_fraction!r}")
        if not 0.0 < self.beta2 < 1.0:
            raise ValueError(f"beta2 must be between 0 and 1, got {self.beta2!r}")

    def schedule(self) -> Any:
        """The learning-rate schedule: linear warmup to ``lr``, cosine decay to ``min_lr`` at ``iters``."""
        from ..optim import make_schedule  # noqa: PLC0415
        return make_schedule("cosine", self.lr, self.min_lr, min(self.warmup, self.iters), self.iters)

    def model_shape(self) -> dict[str, Any]:
        """The model's sizes (everything but the vocabulary size)."""
        return {k: getattr(self, k) for k in MODEL_SHAPE_KEYS}

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "TrainConfig":
        """Build from a checkpoint's saved settings; an unknown key is a ValueError naming it."""
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = [k for k in d if k not in known]
        if unknown:
            raise ValueError(f"unknown training setting {unknown[0]!r}")
        cfg = cls(**d)
        cfg.validate()
        return cfg


def _choice(name: str, value: Any, allowed: tuple) -> None:
    if value not in allowed:
        raise ValueError(f"{name} must be one of {', '.join(allowed)}, got {value!r}")


def _positive(name: str, value: Any, kind: type = float) -> None:
    ok = not isinstance(value, bool) and isinstance(value, (int, float) if kind is float else int)
    if not ok or not math.isfinite(value) or value <= 0:
        what = "a positive integer" if kind is int else "a positive number"
        raise ValueError(f"{name} must be {what}, got {value!r}")


def _nonnegative(name: str, value: Any, kind: type = float) -> None:
    ok = not isinstance(value, bool) and isinstance(value, (int, float) if kind is float else int)
    if not ok or not math.isfinite(value) or value < 0:
        what = "an integer >= 0" if kind is int else "a number >= 0"
        raise ValueError(f"{name} must be {what}, got {value!r}")


def resolve(settings: dict[str, Any]) -> TrainConfig:
    """A validated TrainConfig from explicit ``settings`` (file + flags) on top of the preset.

    Args:
        settings: setting name -> value, only the ones the user gave.
    """
    known = {f.name for f in dataclasses.fields(TrainConfig)}
    unknown = [k for k in settings if k not in known]
    if unknown:
        raise ValueError(f"unknown training setting {unknown[0]!r}")
    preset = settings.get("preset", DEFAULT_PRESET)
    _choice("preset", preset, tuple(PRESETS))
    merged = {**PRESETS[preset], **settings, "preset": preset}
    cfg = TrainConfig(**merged)
    cfg.validate()
    if None in (cfg.n_layer, cfg.n_head, cfg.n_embd, cfg.block_size):
        raise ValueError(f"preset {preset!r} does not define the model shape")
    return cfg


def read_config_file(path: str | Path, allowed: tuple[str, ...]) -> dict[str, Any]:
    """Settings from a TOML (``.toml``) or JSON file, keys normalized to underscores.

    Args:
        path: the file.
        allowed: the keys that may appear (underscore spelling).

    Raises:
        ValueError: unreadable file, bad syntax, a nested value, or an unknown key (named).
    """
    p = Path(path)
    if not p.exists():
        raise ValueError(f"config file '{path}' does not exist")
    try:
        text = read_file(p, "config file", max_bytes=1 << 20).decode("utf-8")
    except UnicodeDecodeError:
        raise ValueError(f"config file '{path}' is not UTF-8 text") from None
    try:
        if p.suffix.lower() == ".json":
            raw = json.loads(text)
        else:
            raw = tomllib.loads(text)
    except (json.JSONDecodeError, tomllib.TOMLDecodeError, RecursionError, ValueError) as exc:
        raise ValueError(f"config file '{path}' is not valid {'JSON' if p.suffix.lower() == '.json' else 'TOML'}: "
                         f"{exc}") from None
    if not isinstance(raw, dict):
        raise ValueError(f"config file '{path}' must hold a table of settings")
    out: dict[str, Any] = {}
    for key, value in raw.items():
        name = str(key).replace("-", "_")
        if name not in allowed:
            raise ValueError(f"config file '{path}': unknown key '{key}' "
                             f"(known: {', '.join(k.replace('_', '-') for k in allowed)})")
        if isinstance(value, (dict, list)):
            raise ValueError(f"config file '{path}': '{key}' must be a single value, not a "
                             f"{'table' if isinstance(value, dict) else 'list'}")
        out[name] = value
    return check_run_settings(out, path)
