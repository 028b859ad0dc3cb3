"""Magnitude pruning: set the smallest weights to zero and keep them there.

The Linear weights of the model (of a classifier's backbone; not the
embeddings, nor an output layer tied to them) are pruned by |w|:

* per layer (default): in each matrix, the ``round(s * size)`` weights of
  smallest magnitude become zero;
* global (``scope="global"``): one threshold over all the matrices together,
  so layers with many small weights lose more;
* N:M (``structured=(2, 4)``): in every group of M consecutive inputs of a
  row, the M - N smallest become zero (sparsity 1 - N/M), the pattern sparse
  tensor cores run at twice the speed.

Each pruned layer keeps a boolean buffer ``weight_mask`` (True = kept), saved
in the checkpoint with the weights; the model section of its ``config.json``
gets a ``pruning`` entry naming the layers, so rebuilding the model
(``tinyllm.train.restore.build_from_config``) attaches the buffers before the
weights are loaded. :class:`KeepPruned` wraps an optimizer so that after each
step the pruned weights are multiplied by their mask again: a following
``tinyllm finetune`` keeps them at zero.
"""
from __future__ import annotations

import numbers
import os
from typing import Any

import numpy as np

from .. import __version__, backend
from ..checkpoint import CheckpointError, save_checkpoint
from ..nn import Embedding, Linear, Module
from ..nn.lora import unwrap_lora
from ..tensor import Tensor
from .adapter import lora_root
from .source import check_out, load_source

MASK = "weight_mask"
SCOPES = ("layer", "global")


def prunable(model: Module) -> list[tuple[str, Linear]]:
    """(name, layer) of the Linear layers pruning acts on: those of the backbone whose weight is not an
    embedding table (GPT's ``lm_head`` shares ``wte``'s)."""
    root = lora_root(model)
    tables = {id(m.weight) for _, m in root.named_modules() if isinstance(m, Embedding)}
    return [(n, m) for n, m in root.named_modules() if isinstance(m, Linear) and id(m.weight) not in tables]


def parse_structured(text: Any) -> tuple[int, int] | None:
    """``"2:4"`` -> (2, 4); None stays None. N and M are integers with 1 <= N < M <= 64."""
    if text is None:
        return None
    parts = str(text).split(":")
    if len(parts) != 2 or not all(p.strip().isdigit() for p in parts):
        raise ValueError(f"--structured must be N:M such as 2:4, got {text!r}")
    n, m = int(parts[0]), int(parts[1])
    if not 1 <= n < m <= 64:
        raise ValueError(f"--structured N:M needs 1 <= N < M <= 64, got {n}:{m}")
    return n, m


def _keep_largest(a: np.ndarray, k_zero: int) -> np.ndarray:
    """A boolean mask of ``a``'s shape with exactly ``k_zero`` False entries, at the smallest |a|."""
    flat = np.abs(a).ravel()
    mask = np.ones(flat.size, dtype=bool)
    if k_zero > 0:
        mask[np.argpartition(flat, k_zero - 1)[:k_zero]] = False
    return mask.reshape(a.shape)


def magnitude_masks(weights: dict[str, np.ndarray], sparsity: float, scope: str = "layer",
                    structured: tuple[int, int] | None = None) -> dict[str, np.ndarray]:
    """Name -> boolean mask (True = kept) for 2-D ``weights``: see the module docstring."""
    if structured is not None:
        n, m = structured
        out = {}
        for name, w in weights.items():
            if w.shape[1] % m:
                raise ValueError(f"{n}:{m} pruning needs the input width to be a multiple of {m}; "
                                 f"{name} has {w.shape[1]}")
            groups = np.abs(w).reshape(w.shape[0], -1, m)                          # (out, in / M, M)
            order = np.argsort(groups, axis=2, kind="stable")
            mask = np.ones(groups.shape, dtype=bool)
            np.put_along_axis(mask, order[:, :, :m - n], False, axis=2)           # the M - N smallest
            out[name] = mask.reshape(w.shape)
        return out
    if isinstance(sparsity, bool) or not isinstance(sparsity, numbers.Real) or not 0.0 <= sparsity < 1.0:
        raise ValueError(f"sparsity must be a number in [0, 1), got {sparsity!r}")
    if scope not in SCOPES:
        raise ValueError(f"scope must be one of {', '.join(SCOPES)}, got {scope!r}")
    if scope == "layer":
        return {name: _keep_largest(w, int(round(sparsity * w.size))) for name, w in weights.items()}
    names = list(weights)
    everything = np.concatenate([weights[n].ravel() for n in names])
    keep = _keep_largest(everything, int(round(sparsity * everything.size)))
    ends = np.cumsum([weights[n].size for n in names])
    return {n: part.reshape(weights[n].shape) for n, part in zip(names, np.split(keep, ends[:-1]))}


def attach_masks(model: Module, settings: Any) -> list[str]:
    """Give the layers a checkpoint's ``pruning`` entry names an all-True ``weight_mask`` buffer
    (filled by ``load_state_dict`` afterwards). Raises CheckpointError for a malformed entry."""
    layers = settings.get("layers") if isinstance(settings, dict) else None
    if not isinstance(layers, list) or not all(isinstance(n, str) for n in layers) or len(set(layers)) != len(layers):
        raise CheckpointError(f"the pruning entry must hold 'layers', a list of distinct layer names; got {settings!r}"
                              [:300])
    found = dict(prunable(model))
    unknown = [n for n in layers if n not in found]
    if unknown:
        raise CheckpointError(f"the pruning entry names layers the model does not have: {', '.join(unknown[:5])}")
    for n in layers:
        w = found[n].weight
        found[n].register_buffer(MASK, Tensor(backend.get_array_module(w.data).ones(w.shape, dtype=bool)))
    return layers


def masked_layers(model: Module) -> list[tuple[str, Linear]]:
    """(name, layer) of the layers that carry a pruning mask."""
    return [(n, m) for n, m in lora_root(model).named_modules()
            if isinstance(m, Linear) and getattr(m, MASK, None) is not None]


def apply_masks(model: Module) -> None:
    """w <- w * mask for every masked layer, in place (the arrays stay the same objects)."""
    for _, m in masked_layers(model):
        m.weight.data *= getattr(m, MASK).data


class KeepPruned:
    """An optimizer that, after each step, zeroes the pruned weights again (w <- w * mask).

    Everything else (learning rate, clipping, state) is the wrapped optimizer's.
    The moments of pruned weights still move; their weights do not.
    """

    def __init__(self, optimizer: Any, model: Module) -> None:
        self.optimizer, self.model = optimizer, model

    def step(self) -> None:
        self.optimizer.step()
        apply_masks(self.model)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.optimizer, name)


def keep_pruned(model: Module, optimizer: Any) -> Any:
    """``optimizer`` wrapped in :class:`KeepPruned` if ``model`` has pruning masks (applied once now), else itself."""
    if not masked_layers(model):
        return optimizer
    apply_masks(model)
    return KeepPruned(optimizer, model)


def prune_model(model: Module, sparsity: float = 0.5, scope: str = "layer",
                structured: tuple[int, int] | None = None) -> list[dict]:
    """Prune ``model`` in place (LoRA adapters merged first); return one report row per layer:
    ``{"layer", "shape", "zeros", "sparsity"}`` (the fraction of its weights now zero)."""
    unwrap_lora(model)
    layers = prunable(model)
    if not layers:
        raise ValueError("the model has no Linear layers to prune")
    weights = {n: backend.to_numpy(m.weight.data) for n, m in layers}
    masks = magnitude_masks(weights, sparsity, scope, structured)
    rows = []
    for n, m in layers:
        xp = backend.get_array_module(m.weight.data)
        m.register_buffer(MASK, Tensor(xp.asarray(masks[n])))
        m.weight.data *= getattr(m, MASK).data
        zeros = int((backend.to_numpy(m.weight.data) == 0).sum())
        rows.append({"layer": n, "shape": list(m.weight.shape), "zeros": zeros, "sparsity": zeros / m.weight.size})
    return rows


def prune_checkpoint(path: str | os.PathLike, out: str | os.PathLike, sparsity: float = 0.5, scope: str = "layer",
                     structured: tuple[int, int] | None = None, force: bool = False) -> dict:
    """Write a pruned copy of checkpoint ``path`` (a run's best/, or a Hugging Face GPT-2 or BERT directory)
    to run directory ``out``; return the report."""
    src = load_source(path, "prune")
    out = check_out(out, src.path, force)
    rows = prune_model(src.model, sparsity, scope, structured)
    total = sum(r["zeros"] for r in rows) / sum(int(np.prod(r["shape"])) for r in rows)
    entry = {"method": "magnitude", "scope": scope, "structured": None if structured is None else
             f"{structured[0]}:{structured[1]}", "sparsity": total, "layers": [r["layer"] for r in rows]}
    section = {**{k: v for k, v in src.config["model"].items() if k != "lora"}, "pruning": entry}
    config = {**src.config, "model": section, "tinyllm_version": __version__}
    dest = save_checkpoint(out, "best", config=config, weights=src.model.state_dict(),
                           tokenizer_json=src.tokenizer_json, state=src.state)
    return {"checkpoint": dest, "layers": rows, "sparsity": total}
