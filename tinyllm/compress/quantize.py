"""int8 weight quantization of whole models, for inference (Q8_0: see :mod:`tinyllm.compress.q8`).

:func:`quantize_model` replaces, in place, every ``Linear`` by a
:class:`QuantizedLinear` and every ``Embedding`` (token, position, segment) by
a :class:`QuantizedEmbedding`: the weight becomes an int8 Parameter (frozen)
with a float32 buffer ``weight_scale`` (out, ceil(in / 32)) beside it; biases,
LayerNorms and activations stay float32. A tied weight (GPT's ``wte`` and
``lm_head``) stays one int8 matrix with one scale table, used for the lookup
and for the output layer alike: both read rows of 32-input blocks.

:func:`quantize_checkpoint` (``tinyllm quantize``) writes a checkpoint whose
``config.json`` has a ``quantization`` section and whose weights hold the int8
matrices and float16 scales; :func:`load_quantized` (called by
``tinyllm.train.restore.restore_model``, so ``generate``, ``eval`` and the
Python API take such a checkpoint as they take any other) checks that section
and every array before it builds the model.
"""
from __future__ import annotations

import os
from typing import Any

import numpy as np

from .. import __version__, backend
from ..backend import get_array_module
from ..checkpoint import CheckpointError, save_checkpoint
from ..nn import Embedding, LearnedPositionalEmbedding, Linear, Module, Parameter
from ..nn.lora import unwrap_lora
from ..tensor import Function, Tensor
from . import q8
from .source import check_out, load_source

FORMAT = "q8_0"


class QuantizedLinearFunction(Function):
    """y = x W~^T + b with W~ = d * Q the dequantized int8 weight (:mod:`tinyllm.compress.q8`).

    The weight is a constant (inference): backward gives dx = g W~ and db = sum of g, no dW.
    """

    def forward(self, x, b=None, q=None, scale=None):
        self.q, self.scale, self.x_shape, self.has_bias = q, scale, x.shape, b is not None
        x2 = x.reshape(-1, x.shape[-1])                               # (N, in)
        y = q8.matmul(x2, q, scale)                                   # (N, out)
        if b is not None:
            y = y + b
        return y.reshape(*x.shape[:-1], q.shape[0])

    def backward(self, g):
        g2 = g.reshape(-1, g.shape[-1])                               # (N, out)
        dx = (g2 @ q8.dequantize(self.q, self.scale, g.dtype)).reshape(self.x_shape) if self.needs_grad[0] else None
        if not self.has_bias:
            return (dx,)
        return dx, (g2.sum(axis=0) if self.needs_grad[1] else None)


def _int8_parameter(q: Any) -> Parameter:
    return Parameter(backend.asarray(q), requires_grad=False)


def _scale_buffer(scale: Any) -> Tensor:
    return Tensor(backend.asarray(np.asarray(backend.to_numpy(scale), dtype=np.float32)))


class QuantizedLinear(Module):
    """A Linear whose weight is Q8_0 int8 (``weight``, int8) with per-block scales (``weight_scale``)."""

    def __init__(self, in_features: int, out_features: int, weight: Parameter, scale: Tensor,
                 bias: Parameter | None) -> None:
        super().__init__()
        self.in_features, self.out_features = in_features, out_features
        self.weight = weight                                          # (out, in) int8, frozen
        self.register_buffer("weight_scale", scale)                   # (out, ceil(in / 32)) float32
        self.bias = bias

    def forward(self, x: Tensor) -> Tensor:
        q, s = self.weight.data, self.weight_scale.data
        if self.bias is None:
            return QuantizedLinearFunction.apply(x, q=q, scale=s)     # (..., in) -> (..., out)
        return QuantizedLinearFunction.apply(x, self.bias, q=q, scale=s)

    def extra_repr(self) -> str:
        return f"{self.in_features}, {self.out_features}, bias={self.bias is not None}, int8 {FORMAT}"


class QuantizedEmbedding(Module):
    """An Embedding whose table is Q8_0 int8: row i is dequantized when it is looked up."""

    def __init__(self, num_embeddings: int, embedding_dim: int, weight: Parameter, scale: Tensor) -> None:
        super().__init__()
        self.num_embeddings, self.embedding_dim = num_embeddings, embedding_dim
        self.weight = weight                                          # (V, C) int8, frozen
        self.register_buffer("weight_scale", scale)                   # (V, ceil(C / 32)) float32

    def rows(self, idx: Any) -> Tensor:
        """Dequantized rows ``idx`` (...) -> (..., C), float32 (no gradient: the table is a constant)."""
        xp = get_array_module(self.weight.data)
        idx = xp.asarray(idx.data if isinstance(idx, Tensor) else idx)
        if idx.dtype.kind not in "iu":
            raise TypeError(f"embedding indices must be integers, got {idx.dtype}")
        if idx.size and (int(idx.min()) < 0 or int(idx.max()) >= self.num_embeddings):
            raise IndexError(f"embedding index out of range [0, {self.num_embeddings}): "
                             f"min {int(idx.min())}, max {int(idx.max())}")
        scale = self.weight_scale.data
        return Tensor._wrap(q8.dequantize(self.weight.data[idx], scale[idx], scale.dtype))

    def forward(self, idx: Any) -> Tensor:
        return self.rows(idx)                                         # (...) -> (..., C)

    def extra_repr(self) -> str:
        return f"{self.num_embeddings}, {self.embedding_dim}, int8 {FORMAT}"


class QuantizedPositionalEmbedding(QuantizedEmbedding):
    """A learned position table (GPT-2's ``wpe``) in Q8_0: ``forward(T, offset)`` -> rows offset..offset+T-1."""

    def forward(self, length: int, offset: int = 0) -> Tensor:  # type: ignore[override]
        if offset + length > self.num_embeddings:
            raise ValueError(f"positions up to {offset + length} exceed the {self.num_embeddings} learned ones")
        return self.rows(np.arange(offset, offset + length))         # (T, C)


# ----------------------------------------------------------------------------- whole models

def _targets(model: Module) -> list[tuple[Module, str, Module]]:
    """(parent, attribute, child) for every Linear and Embedding below ``model``."""
    out = []
    for _, mod in model.named_modules():
        for attr, child in mod.named_children():
            if isinstance(child, (Linear, Embedding)):
                out.append((mod, attr, child))
    return out


def _replace(model: Module, make: Any) -> list[str]:
    """Swap every Linear/Embedding for its quantized twin; ``make(weight) -> (int8 Parameter, scale Tensor)``
    is called once per distinct weight, so tied layers stay tied. Returns the distinct weights' names."""
    first_name = {}
    for name, p in model.named_parameters():
        first_name.setdefault(id(p), name)
    made: dict[int, tuple[Parameter, Tensor]] = {}
    for parent, attr, child in _targets(model):
        w = child.weight
        if id(w) not in made:
            made[id(w)] = make(first_name[id(w)], w)
        qw, scale = made[id(w)]
        if isinstance(child, Linear):
            bias = child.bias
            if bias is not None:
                bias.requires_grad = False
            new: Module = QuantizedLinear(child.in_features, child.out_features, qw, scale, bias)
        elif isinstance(child, LearnedPositionalEmbedding):
            new = QuantizedPositionalEmbedding(child.num_embeddings, child.embedding_dim, qw, scale)
        else:
            new = QuantizedEmbedding(child.num_embeddings, child.embedding_dim, qw, scale)
        new.training = child.training
        order = list(parent._module_names)
        setattr(parent, attr, new)
        parent._module_names[:] = order       # in place: the first name of a tied weight stays the first
    return sorted(first_name[i] for i in made)


def quantize_model(model: Module) -> list[str]:
    """Quantize ``model`` in place (LoRA adapters are merged into their weights first).

    Returns the names of the quantized weights (a tied weight once).
    """
    unwrap_lora(model)

    def make(name: str, w: Parameter) -> tuple[Parameter, Tensor]:
        q, scale = q8.quantize(w.data)
        return _int8_parameter(q), _scale_buffer(scale)

    return _replace(model, make)


def quantized_size(model: Module) -> int:
    """Bytes of the model's parameters and buffers as they are held (int8 weights at 1 byte each)."""
    seen, total = set(), 0
    for t in [p for _, p in model.named_parameters()] + [b for _, b in model.named_buffers()]:
        if id(t) not in seen:
            seen.add(id(t))
            total += int(t.data.nbytes)
    return total


# ----------------------------------------------------------------------------- checkpoints

def _check_meta(meta: Any) -> list[str]:
    if not isinstance(meta, dict) or meta.get("format") != FORMAT or meta.get("block_size") != q8.BLOCK:
        raise CheckpointError(f"the quantization section must be {{'format': '{FORMAT}', 'block_size': "
                              f"{q8.BLOCK}, 'weights': [...]}}, got {meta!r}"[:300])
    names = meta.get("weights")
    if not isinstance(names, list) or not names or not all(isinstance(n, str) for n in names) \
            or len(set(names)) != len(names):
        raise CheckpointError("the quantization section's 'weights' must be a non-empty list of distinct names")
    return names


def _tensors(model: Module) -> list[tuple[str, Tensor]]:
    """Every parameter and buffer under each of its names (tied ones more than once)."""
    return list(model.named_parameters(remove_duplicate=False)) + list(model.named_buffers())


def unique_state(model: Module) -> dict[str, Any]:
    """``state_dict()`` with a tied tensor under its first name only (GPT's lm_head is wte): saved once."""
    seen: set[int] = set()
    out = {}
    for name, t in _tensors(model):
        if id(t) not in seen:
            seen.add(id(t))
            out[name] = t.data
    return out


def _with_aliases(model: Module, weights: dict[str, Any]) -> dict[str, Any]:
    """``weights`` completed with the other names of tied tensors (the inverse of :func:`unique_state`)."""
    first: dict[int, str] = {}
    for name, t in _tensors(model):
        first.setdefault(id(t), name)
    return {**{name: weights[first[id(t)]] for name, t in _tensors(model)
               if name not in weights and first[id(t)] in weights}, **weights}


def load_quantized(model: Module, weights: dict[str, np.ndarray], meta: Any) -> None:
    """Turn a freshly built float ``model`` into the quantized model saved in ``weights``.

    ``meta`` is the checkpoint's ``quantization`` section. Every quantized weight
    must be int8 of its layer's shape with finite, non-negative scales of shape
    (out, ceil(in / 32)); every other array must fit as ``load_state_dict``
    demands (names and shapes). Raises :class:`CheckpointError` otherwise.
    """
    names = _check_meta(meta)
    params = dict(model.named_parameters())
    unknown = [n for n in names if n not in params]
    if unknown:
        raise CheckpointError(f"the quantization section names weights the model does not have: {unknown[:5]}")

    def make(name: str, w: Parameter) -> tuple[Parameter, Tensor]:
        if name not in names:
            raise CheckpointError(f"weight {name!r} of a Linear/Embedding layer is not in the quantization section")
        q, scale = weights.get(name), weights.get(name + "_scale")          # "h.0.mlp.c_fc.weight_scale"
        if q is None or scale is None:
            raise CheckpointError(f"quantized weight {name!r} or its scales are missing")
        want = (w.shape[0], q8.n_blocks(w.shape[1]))
        if q.dtype != np.int8 or tuple(q.shape) != tuple(w.shape):
            raise CheckpointError(f"quantized weight {name!r} is {q.dtype} {tuple(q.shape)}, expected int8 "
                                  f"{tuple(w.shape)}")
        if q.size and int(np.abs(q.astype(np.int16)).max()) > q8.QMAX:
            raise CheckpointError(f"quantized weight {name!r} holds -128 (Q8_0 uses -127..127)")
        if scale.dtype.kind != "f" or tuple(scale.shape) != want or not np.isfinite(scale).all() \
                or (scale < 0).any():
            raise CheckpointError(f"scales of {name!r} must be finite, >= 0, of shape {want}; got "
                                  f"{scale.dtype} {tuple(scale.shape)}")
        return _int8_parameter(q), _scale_buffer(scale)

    got = _replace(model, make)
    if sorted(names) != got:
        raise CheckpointError(f"the quantization section lists {len(names)} weights, the model has {len(got)} "
                              "Linear/Embedding weights")
    model.load_state_dict(_with_aliases(model, weights), strict=True)
    model.requires_grad_(False)


def quantize_checkpoint(path: str | os.PathLike, out: str | os.PathLike, force: bool = False) -> dict:
    """Write an int8 copy of checkpoint ``path`` (a run's best/, a checkpoint, or a Hugging Face GPT-2 or
    BERT directory, a BERT with its head included) to run directory ``out``.

    Returns figures: quantized weights, float and int8 sizes of the weights file.
    """
    src = load_source(path, "quantize")
    out = check_out(out, src.path, force)
    model = src.model
    names = quantize_model(model)
    state = unique_state(model)
    weights = {k: (backend.to_numpy(v).astype(np.float16) if k.endswith("weight_scale") else v)
               for k, v in state.items()}
    section = {k: v for k, v in src.config["model"].items() if k not in ("lora", "pruning")}  # merged / zeros
    config = {**src.config, "model": section, "tinyllm_version": __version__,
              "quantization": {"format": FORMAT, "block_size": q8.BLOCK, "scale_dtype": "float16",
                               "weights": names, "source": str(src.path)}}
    dest = save_checkpoint(out, "best", config=config, weights=weights, tokenizer_json=src.tokenizer_json,
                           state=src.state)
    source_size = sum(f.stat().st_size for f in src.weights_files)
    size = (dest / "model.safetensors").stat().st_size
    return {"checkpoint": dest, "weights": names, "source_bytes": source_size, "bytes": size,
            "ratio": size / source_size}

