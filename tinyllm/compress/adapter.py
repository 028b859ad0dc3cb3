"""LoRA adapters on disk: saved alone, loaded onto the base checkpoint they were trained from.

An adapter directory holds two files::

    adapter.safetensors   the trained tensors: every ``lora_A`` / ``lora_B`` and, for a
                          classifier, the new head (a few KB to a few MB)
    adapter_config.json   {"format": "tinyllm-lora-adapter", "version": 1,
                           "lora": {"r", "alpha", "dropout", "targets"},
                           "model": the model section it applies to (a GPT, a BERT or a classifier),
                           "base": {"weights_sha256": SHA-256 of the base's model.safetensors,
                                    "shapes": {name: shape of every base weight}},
                           "tensors": {name: shape of every tensor in adapter.safetensors}}

Loading refuses a base whose weights file has another SHA-256 or whose
weights have other names or shapes: an adapter only means something on top of
the exact weights it was trained against. Every value of the config is checked
(type, range, shape) before it is used.
"""
from __future__ import annotations

import hashlib
import json
import math
import numbers
import os
from pathlib import Path
from typing import Any

import numpy as np
import safetensors.numpy as st

from ..backend import to_numpy
from ..checkpoint import WEIGHTS_FILE, CheckpointError, find_checkpoint, load_checkpoint, to_json
from ..nn.lora import apply_lora, parse_targets

ADAPTER_FORMAT = "tinyllm-lora-adapter"
ADAPTER_VERSION = 1
ADAPTER_WEIGHTS = "adapter.safetensors"
ADAPTER_CONFIG = "adapter_config.json"


class AdapterError(CheckpointError):
    """An adapter that is malformed or does not belong to the base it is loaded onto."""


# ----------------------------------------------------------------------------- settings

def lora_settings(r: Any, alpha: Any = None, dropout: Any = 0.0, targets: Any = ("c_attn", "c_proj")) -> dict:
    """Checked LoRA settings as a JSON-able dict; ``alpha`` defaults to 2 r (the common choice)."""
    if isinstance(r, bool) or not isinstance(r, numbers.Integral) or not 1 <= r <= 65536:
        raise ValueError(f"LoRA rank r must be an integer in [1, 65536], got {r!r}")
    alpha = 2.0 * r if alpha is None else alpha
    if isinstance(alpha, bool) or not isinstance(alpha, numbers.Real) or not math.isfinite(alpha) or alpha <= 0:
        raise ValueError(f"LoRA alpha must be a finite number > 0, got {alpha!r}")
    if isinstance(dropout, bool) or not isinstance(dropout, numbers.Real) or not 0.0 <= dropout < 1.0:
        raise ValueError(f"LoRA dropout must be a number in [0, 1), got {dropout!r}")
    return {"r": int(r), "alpha": float(alpha), "dropout": float(dropout), "targets": list(parse_targets(targets))}


def lora_root(model: Any) -> Any:
    """The module the adapters go into: a classifier's backbone (its head is trained in full), else the model."""
    return getattr(model, "backbone", model)


def add_lora(model: Any, settings: dict) -> list[str]:
    """Apply checked ``settings`` (:func:`lora_settings`, e.g. from a checkpoint's model section) to ``model``
    (to its backbone, for a model with a head); a BERT's layers answer to Hugging Face BERT's names too."""
    if not isinstance(settings, dict):
        raise CheckpointError(f"the LoRA settings must be a table, got {settings!r}")
    try:
        s = lora_settings(settings.get("r"), settings.get("alpha"), settings.get("dropout", 0.0),
                          settings.get("targets", ()))
    except ValueError as exc:
        raise CheckpointError(f"bad LoRA settings: {exc}") from None
    from ..models import BERT  # noqa: PLC0415  (models sit above compress)
    root = lora_root(model)
    bert = isinstance(root, BERT)
    skip = ("mlm",) if bert and root is not model else ()      # a head reads encode(): the MLM head is unused
    return apply_lora(root, s["targets"], s["r"], s["alpha"], s["dropout"], bert_names=bert, skip=skip)


# ----------------------------------------------------------------------------- the base

def _is_hf_dir(p: Path) -> bool:
    return (p / "config.json").is_file() and not (p / "manifest.json").exists() and \
        any((p / f).is_file() for f in ("model.safetensors", "model.safetensors.index.json"))


def base_files(base: str | os.PathLike) -> list[Path]:
    """The files holding a base's weights: a run's best/ (or a checkpoint's) ``model.safetensors``; a
    Hugging Face directory's ``model.safetensors``, or its shard index followed by the shards it names."""
    p = Path(base)
    if not _is_hf_dir(p):
        return [find_checkpoint(p, prefer="best") / WEIGHTS_FILE]
    from ..models.hf import _weight_files  # noqa: PLC0415  (models sit above compress)
    try:
        shards = _weight_files(p)                 # checked: regular files inside the directory
    except ValueError as exc:
        raise CheckpointError(f"Hugging Face directory '{p}': {exc}") from None
    return shards if shards == [p / "model.safetensors"] else [p / "model.safetensors.index.json", *shards]


def sha256_file(path: Path) -> str:
    """SHA-256 of a file, read in 1 MiB pieces."""
    return sha256_files([path])


def sha256_files(paths: list[Path]) -> str:
    """SHA-256 of the files' bytes one after the other, read in 1 MiB pieces."""
    h = hashlib.sha256()
    for path in paths:
        with open(path, "rb") as f:
            for piece in iter(lambda: f.read(1 << 20), b""):
                h.update(piece)
    return h.hexdigest()


def base_sha256(base: str | os.PathLike) -> str:
    """SHA-256 of a base's weights (:func:`base_files`, in that order): what an adapter records and checks."""
    return sha256_files(base_files(base))


# ----------------------------------------------------------------------------- save

def save_adapter(model: Any, out: str | os.PathLike, settings: dict, model_section: dict,
                 base_weights: dict[str, Any], base_sha256: str, weights: dict[str, Any] | None = None,
                 base_path: str | os.PathLike | None = None) -> Path:
    """Write ``model``'s trainable tensors (adapters and head) to ``out``; return the directory.

    Args:
        model: the adapted model (its trainable parameters say what to save).
        settings: the LoRA settings it was built with (:func:`lora_settings`).
        model_section: ``{"kind", "config"}`` of the model without the adapters.
        base_weights: the base checkpoint's weights (name -> array), for their shapes.
        base_sha256: SHA-256 of the base's weights (:func:`base_sha256`).
        weights: values to save instead of the model's current ones (e.g. the best
            checkpoint's); names must be the trainable parameters'.
        base_path: where the base was read from, recorded (absolute) for the user's information
            only: tinyllm never opens a path read from a file, so the adapter loads onto the base
            the caller names (:func:`load_adapter`), checked by its SHA-256.
    """
    names = [n for n, p in model.named_parameters() if p.requires_grad]
    source = weights if weights is not None else {n: p.data for n, p in model.named_parameters()}
    tensors = {n: np.ascontiguousarray(to_numpy(source[n])) for n in names}
    config = {"format": ADAPTER_FORMAT, "version": ADAPTER_VERSION, "lora": dict(settings),
              "model": dict(model_section),
              "base": {"weights_sha256": base_sha256,
                       **({} if base_path is None else {"path": str(Path(base_path).resolve())}),
                       "shapes": {n: list(np.shape(a)) for n, a in base_weights.items()}},
              "tensors": {n: list(a.shape) for n, a in tensors.items()}}
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    for name, data in ((ADAPTER_WEIGHTS, st.save(tensors)), (ADAPTER_CONFIG, to_json(config).encode("utf-8"))):
        tmp = out / f".{name}.tmp"
        tmp.write_bytes(data)
        os.replace(tmp, out / name)                          # each file whole or not at all
    return out


# ----------------------------------------------------------------------------- load

def _shape(value: Any, where: str) -> tuple[int, ...]:
    if not isinstance(value, list) or len(value) > 8 or not all(
            isinstance(d, int) and not isinstance(d, bool) and 0 <= d < 2 ** 40 for d in value):
        raise AdapterError(f"{where} must be a list of at most 8 sizes >= 0, got {value!r}")
    return tuple(value)


def read_adapter_config(path: str | os.PathLike) -> dict:
    """``adapter_config.json`` of adapter directory ``path``, every field checked."""
    p = Path(path) / ADAPTER_CONFIG
    if not p.is_file():
        raise AdapterError(f"'{path}' is not a LoRA adapter directory: {ADAPTER_CONFIG} is missing")
    try:
        cfg = json.loads(p.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise AdapterError(f"{p} is not valid JSON ({exc})") from None
    if not isinstance(cfg, dict) or cfg.get("format") != ADAPTER_FORMAT:
        raise AdapterError(f"{p} is not a tinyllm LoRA adapter config (format {ADAPTER_FORMAT!r})")
    if cfg.get("version") != ADAPTER_VERSION:
        raise AdapterError(f"{p}: adapter format version {cfg.get('version')!r} is not {ADAPTER_VERSION}")
    try:
        cfg["lora"] = lora_settings(**{k: cfg["lora"][k] for k in ("r", "alpha", "dropout", "targets")})
    except (KeyError, TypeError, ValueError) as exc:
        raise AdapterError(f"{p}: bad lora section ({exc})") from None
    model, base = cfg.get("model"), cfg.get("base")
    if not isinstance(model, dict) or not isinstance(model.get("kind"), str) or not isinstance(model.get("config"),
                                                                                             dict):
        raise AdapterError(f"{p}: the model section must be {{'kind': str, 'config': table}}")
    if not isinstance(base, dict) or not isinstance(base.get("weights_sha256"), str) \
            or len(base["weights_sha256"]) != 64 or not isinstance(base.get("shapes"), dict):
        raise AdapterError(f"{p}: the base section must hold weights_sha256 (64 hex digits) and shapes")
    if not isinstance(base.get("path", ""), str) or "\0" in base.get("path", ""):
        raise AdapterError(f"{p}: the base path must be a string")
    base["shapes"] = {str(k): _shape(v, f"{p}: base shape of {k!r}") for k, v in base["shapes"].items()}
    if not isinstance(cfg.get("tensors"), dict) or not cfg["tensors"]:
        raise AdapterError(f"{p}: the tensors section must list the adapter's tensors")
    cfg["tensors"] = {str(k): _shape(v, f"{p}: shape of tensor {k!r}") for k, v in cfg["tensors"].items()}
    return cfg


def _build(section: dict, base_weights: dict[str, Any]) -> Any:
    """The model of ``section`` (a GPT or BERT, or a classifier, tagger or span extractor around one)
    with the base weights loaded into it (into its backbone, for a model with a head)."""
    from ..train.restore import build_from_config  # noqa: PLC0415  (train sits above compress)
    try:
        model = build_from_config({k: v for k, v in section.items() if k in ("kind", "config", "pruning")})
        lora_root(model).load_state_dict(base_weights, strict=True)
        return model
    except (KeyError, TypeError, ValueError) as exc:
        raise AdapterError(f"the adapter's model section does not build on this base: {exc}") from None


def load_adapter(path: str | os.PathLike, base: str | os.PathLike) -> Any:
    """The base model of ``base`` with the adapter in ``path`` applied (unmerged, in eval mode).

    ``base`` is a tinyllm run or checkpoint, or a Hugging Face GPT-2 / BERT directory.

    Raises:
        AdapterError: a malformed adapter, or a base that is not the one it was trained on
            (another SHA-256 of its weights, or weights of other names or shapes).
    """
    return _load(path, base)[0]


def _load(path: str | os.PathLike, base: str | os.PathLike) -> tuple[Any, str | None, dict]:
    from ..train.tasks.sources import load_source  # noqa: PLC0415  (train sits above compress)

    cfg = read_adapter_config(path)
    digest = base_sha256(base)
    if digest != cfg["base"]["weights_sha256"]:
        raise AdapterError(f"the adapter in '{path}' was trained on a base whose weights have SHA-256 "
                           f"{cfg['base']['weights_sha256'][:12]}..., but '{base}' has {digest[:12]}...: "
                           "not its base checkpoint (changed since, or another model)")
    src = load_source(base)                      # a tinyllm checkpoint, or a Hugging Face directory's backbone
    base_weights = src.weights
    shapes = {n: tuple(np.shape(a)) for n, a in base_weights.items()}
    if shapes != cfg["base"]["shapes"]:
        diff = sorted(set(shapes) ^ set(cfg["base"]["shapes"])) or \
            sorted(n for n in shapes if shapes[n] != cfg["base"]["shapes"][n])
        raise AdapterError(f"the base in '{base}' does not have the weights the adapter was trained on "
                           f"(differs at {', '.join(diff[:5])})")
    model = _build(cfg["model"], base_weights)
    add_lora(model, cfg["lora"])
    try:
        tensors = dict(st.load_file(str(Path(path) / ADAPTER_WEIGHTS)))
    except Exception as exc:  # safetensors raises its own error types for a bad header
        raise AdapterError(f"{Path(path) / ADAPTER_WEIGHTS} is not a valid safetensors file ({exc})") from None
    _load_trainable(model, tensors, cfg["tensors"], path)
    model.eval()
    return model, src.tokenizer_json, cfg


def _load_trainable(model: Any, tensors: dict[str, np.ndarray], listed: dict[str, tuple], path: Any) -> None:
    """Copy the adapter tensors into the model's trainable parameters: the same names, shapes, float dtypes."""
    params = {n: p for n, p in model.named_parameters() if p.requires_grad}
    if set(tensors) != set(params) or set(listed) != set(params):
        extra = sorted((set(tensors) | set(listed)) ^ set(params))
        raise AdapterError(f"the adapter in '{path}' does not fit the model it builds (differs at "
                           f"{', '.join(extra[:5])})")
    for n, a in tensors.items():
        if a.dtype.kind != "f" or tuple(a.shape) != tuple(params[n].shape) or tuple(a.shape) != listed[n]:
            raise AdapterError(f"the adapter in '{path}': tensor {n!r} has {a.dtype} {tuple(a.shape)}, "
                               f"the model expects {tuple(params[n].shape)}")
        if not np.isfinite(a).all():
            raise AdapterError(f"the adapter in '{path}': tensor {n!r} holds NaN or infinity")
    model.load_state_dict(tensors, strict=False)


def save_run_adapter(model: Any, run_dir: str | os.PathLike, section: dict, base_sha256: str,
                     base_path: str | os.PathLike | None = None) -> Path:
    """After a LoRA fine-tuning run: its best checkpoint's adapter tensors to ``run_dir/adapter``.

    ``section`` is the run's model section (with its ``lora`` settings); the base's
    weight shapes are those of the adapted module minus the adapters, exactly what
    was loaded from the base checkpoint.
    """
    from ..nn.lora import is_lora_parameter  # noqa: PLC0415
    best = load_checkpoint(run_dir, prefer="best", with_optimizer=False)
    base_shapes = {n: a for n, a in lora_root(model).state_dict().items() if not is_lora_parameter(n)}
    plain = {k: v for k, v in section.items() if k != "lora"}
    return save_adapter(model, Path(run_dir) / "adapter", section["lora"], plain, base_shapes, base_sha256,
                        weights=best.weights, base_path=base_path)
