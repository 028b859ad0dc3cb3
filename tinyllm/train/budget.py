"""Will it fit? The size and memory of a model, worked out before anything is allocated.

A Transformer's size follows from its config alone. With width C, depth L,
vocabulary V, context T and biases on (GPT-2's layout)::

    embeddings      V*C + T*C                  (+ type_vocab*C for BERT)
    one block       12*C^2 + 13*C              (attention 4C^2+4C, MLP 8C^2+5C, two LayerNorms 4C)
    output          2*C (final LayerNorm)      (+ V*C when the output layer is not tied)

Training keeps, for every parameter, its value, its gradient and AdamW's two
moments, and a checkpoint save briefly copies weights and moments: 6 numbers,
24 bytes in float32. The activations saved for the
backward pass grow with the batch: per token and layer about ``34*C`` numbers
plus ``5*H*T`` for the attention weights (Korthikanti et al. 2022, "Reducing
Activation Recomputation in Large Transformer Models"), plus the logits (three
arrays of V per token: logits, probabilities, their gradient).

:func:`check_training` and :func:`check_model` compare such an estimate with
the memory this process may still use (:func:`available_memory`: the least of
``MemAvailable``, a cgroup limit and an address-space limit) and refuse, in one
line with the figures and a hint, what does not fit. :func:`check_settings`
caps the sizes a run may ask for (``LIMITS``), whatever the memory.
"""
from __future__ import annotations

import os
import resource
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..validate import LIMITS
from ..validate.schema import RUN_SETTINGS

HEADROOM = 0.9   # use at most this share of what is available: the interpreter and the data need some too
# Numbers kept per parameter in training: value, gradient, AdamW's two moments, and the copies a checkpoint
# save makes of the weights and moments (state_dict) while they are written.
TRAINING_COPIES = 6


class BudgetError(ValueError):
    """A model or a batch that is too big to build, or a size above tinyllm's limits."""


def gib(n: float) -> str:
    """Bytes in words: ``'3.2 GB'``, ``'812 MB'``."""
    for unit, scale in (("TB", 1 << 40), ("GB", 1 << 30), ("MB", 1 << 20)):
        if n >= scale:
            return f"{n / scale:.3g} {unit}"
    return f"{n / 1024:.3g} KB"


def _read_int(path: str) -> int | None:
    try:
        text = Path(path).read_text().split()[0]
    except (OSError, IndexError):
        return None
    return int(text) if text.isdigit() else None


def available_memory() -> tuple[int, str]:
    """(bytes this process may still allocate, where the figure comes from).

    The least of: the kernel's ``MemAvailable`` (/proc/meminfo, else
    ``os.sysconf``), the cgroup v2 limit less current use, and the
    address-space limit (``ulimit -v``) less the address space already mapped.
    """
    found: list[tuple[int, str]] = []
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                found.append((int(line.split()[1]) * 1024, "available memory"))
    except (OSError, ValueError, IndexError):
        pass
    if not found:
        try:
            found.append((os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE"), "free memory"))
        except (ValueError, OSError, AttributeError):
            found.append((1 << 62, "memory (unknown)"))
    limit, used = _read_int("/sys/fs/cgroup/memory.max"), _read_int("/sys/fs/cgroup/memory.current")
    if limit is not None and used is not None:
        found.append((max(limit - used, 0), "memory left under the cgroup limit"))
    soft, _ = resource.getrlimit(resource.RLIMIT_AS)
    if soft != resource.RLIM_INFINITY:
        mapped = 0
        try:
            for line in Path("/proc/self/status").read_text().splitlines():
                if line.startswith("VmSize:"):
                    mapped = int(line.split()[1]) * 1024
        except (OSError, ValueError, IndexError):
            pass
        found.append((max(soft - mapped, 0), "address space left under the ulimit"))
    return min(found)


def parameter_count(kind: str, config: dict[str, Any]) -> int:
    """The number of parameters of a ``gpt``, ``bert`` or ``classifier`` config (see the module docstring)."""
    if kind == "classifier":
        backbone = config["backbone_config"]
        c, k = int(backbone["n_embd"]), int(config["num_classes"])
        return parameter_count(config["backbone"], backbone) + c * c + c + c * k + k
    if "backbone_config" in config:             # another head: a linear layer (and a CRF) per token
        backbone = config["backbone_config"]
        c, k = int(backbone.get("n_embd", 0)), len(config.get("tags") or ()) or 2
        return parameter_count(config["backbone"], backbone) + c * k + k + k * k + 2 * k
    if not all(k in config for k in ("vocab_size", "block_size", "n_layer", "n_embd")):
        return 0        # a registered kind of another shape: nothing to estimate from (its own class checks it)
    v, t, n_layer, c = (int(config[k]) for k in ("vocab_size", "block_size", "n_layer", "n_embd"))
    n = v * c + t * c + n_layer * (12 * c * c + 13 * c) + 2 * c
    if kind == "bert":
        n += int(config.get("type_vocab_size", 2)) * c + 2 * c + (c * c + 3 * c + v)   # segments, LN, MLM head
    if not config.get("tie_weights", True):
        n += v * c
    return n


@dataclass
class Estimate:
    """Bytes a model needs: its parameters (with gradients and optimizer state) and its activations."""

    parameters: int
    state_bytes: int          # weights (+ gradients + AdamW moments when training)
    activation_bytes: int     # one micro-batch's saved activations, plus the validation batches

    @property
    def total(self) -> int:
        return self.state_bytes + self.activation_bytes


def estimate(kind: str, config: dict[str, Any], batch_size: int = 0, seq_len: int | None = None,
             training: bool = True, itemsize: int = 4, eval_tokens: int = 0) -> Estimate:
    """Memory of a model of ``kind`` and ``config`` (bytes), trained or used with ``batch_size`` sequences."""
    p = parameter_count(kind, config)
    cfg = config["backbone_config"] if "backbone_config" in config else config
    c, n_layer, n_head, v = (int(cfg.get(k, 0)) for k in ("n_embd", "n_layer", "n_head", "vocab_size"))
    t = int(seq_len or cfg.get("block_size", 0))
    tokens = batch_size * t
    per_token = n_layer * (34 * c + 5 * n_head * t) + (c if "backbone_config" in config else 3 * v)
    activations = tokens * per_token * itemsize if training else tokens * (4 * c + 2 * n_head * t + v) * itemsize
    return Estimate(p, p * itemsize * (TRAINING_COPIES if training else 2), activations + eval_tokens * 16)


def _refuse(what: str, est: Estimate, available: int, where_from: str, hint: str) -> BudgetError:
    return BudgetError(f"{what} needs about {gib(est.total)} of memory ({est.parameters:,} parameters: "
                       f"{gib(est.state_bytes)}; activations {gib(est.activation_bytes)}) but only "
                       f"{gib(available)} {where_from} is there; {hint}")


def _check_caps(kind: str, config: dict[str, Any], where: str) -> None:
    cfg = config.get("backbone_config", config)
    for key in ("vocab_size", "block_size", "n_layer", "n_head", "n_embd"):
        value = cfg.get(key)
        if isinstance(value, int) and value > LIMITS[key]:
            raise BudgetError(f"{where}{key} {value:,} is more than tinyllm builds ({LIMITS[key]:,})")


def check_model(kind: str, config: dict[str, Any], *, training: bool = False, batch_size: int = 1,
                seq_len: int | None = None, itemsize: int = 4, eval_tokens: int = 0, where: str = "") -> Estimate:
    """Refuse (BudgetError) a model that is over ``LIMITS`` or would not fit in memory; return the estimate.

    Args:
        kind, config: as a checkpoint's ``config["model"]`` section.
        training: count gradients, AdamW state and the activations of ``batch_size`` sequences.
        where: prefix of the message (e.g. the config file's path and ": ").
    """
    _check_caps(kind, config, where)
    est = estimate(kind, config, batch_size, seq_len, training, itemsize, eval_tokens)
    available, where_from = available_memory()
    if est.total > HEADROOM * available:
        if training:
            hint = "make the model smaller (--n-layer, --n-embd, --block-size) or the batch (--batch-size)"
        else:
            hint = "it cannot be loaded on this machine"
        raise _refuse(f"{where}this {kind} model", est, available, where_from, hint)
    return est


def check_settings(cfg: Any) -> None:
    """Refuse settings above what tinyllm allows (``--n-layer 1000000``, ``--sample-tokens 10**12``)."""
    for key, (kind, _lo, hi, _none) in RUN_SETTINGS.items():
        value = getattr(cfg, key, None)
        if kind == "int" and isinstance(value, int) and not isinstance(value, bool) and value > hi:
            raise BudgetError(f"--{key.replace('_', '-')} {value:,} is more than tinyllm allows ({int(hi):,})")


# Command-line counts that only cost time, capped so that no command runs unbounded.
FLAG_LIMITS = {"max_new_tokens": 1 << 17, "num_samples": 1 << 12, "batch_size": 1 << 20, "max_batches": 1 << 30,
               "top_k": LIMITS["vocab_size"]}


def check_flags(**flags: Any) -> None:
    """Refuse a command-line count above ``FLAG_LIMITS`` (``--max-new-tokens 10**12``), naming the flag."""
    for name, value in flags.items():
        cap = FLAG_LIMITS[name]
        if isinstance(value, int) and value > cap:
            raise BudgetError(f"--{name.replace('_', '-')} {value:,} is more than tinyllm allows ({cap:,})")


def check_training(kind: str, config: dict[str, Any], cfg: Any, seq_len: int | None = None) -> Estimate:
    """:func:`check_model` for training with the settings ``cfg`` (batch size, dtype, validation batches)."""
    check_settings(cfg)
    itemsize = 8 if getattr(cfg, "dtype", "float32") == "float64" else 4
    t = int(seq_len or config.get("backbone_config", config).get("block_size", 0))
    return check_model(kind, config, training=True, batch_size=cfg.batch_size, seq_len=t, itemsize=itemsize,
                       eval_tokens=cfg.eval_iters * cfg.batch_size * t)
