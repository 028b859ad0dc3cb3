"""The fast paths of the fused ops, and the one place that chooses between them.

A fused op in ``tinyllm.functional`` states its formula once, for NumPy and
CuPy alike (the reference). This package holds the implementations that
compute the same formula faster on one kind of array:

- ``kernels/cpu/``: compiled loops (Numba) for float32 NumPy arrays, the
  thread pool that runs them on every core, and the process tuning
  (``platform``) applied when tinyllm is imported;
- ``kernels/cuda/``: CUDA kernels for CuPy arrays (one pass over memory each), float32 and float64.

An op asks once, in its forward, which implementation runs::

    self.impl = kernels.select("layer_norm", x, w, b, reference=LayerNormReference)
    y = self.impl.forward(x, w, b, eps)

keeps the object on its graph node, and its backward calls
``self.impl.backward(...)``: whatever forward ran, the same object computes
the gradient from what it saved. :func:`select` tries the kernels
registered for the op in :data:`KERNELS`, in order, and returns a new
instance of the first that takes the arrays, else of the reference.

Adding a kernel is one module (the kernel and its implementation class,
with ``forward``/``backward`` as the op's reference has them, and an
optional ``accepts(*arrays, **params)``) plus one entry in :data:`KERNELS`.

This package imports nothing of tinyllm but ``backend``.
"""
from __future__ import annotations

import importlib
from typing import Any

from . import cpu, cuda

# op -> the kernels that may run it, tried in order: "family.module:Class" under tinyllm.kernels.
# A family (cpu, cuda) first says whether it takes the arrays at all (cpu.supported: float32 NumPy
# with Numba on; cuda.supported: CuPy float32/float64); the class's ``accepts`` then decides.
KERNELS: dict[str, tuple[str, ...]] = {
    "gelu": ("cuda.gelu:Gelu", "cpu.gelu:Gelu"),
    "gelu_exact": ("cpu.gelu_exact:GeluExact",),
    "layer_norm": ("cuda.layer_norm:LayerNorm", "cpu.layer_norm:LayerNorm"),
    "softmax": ("cuda.softmax:Softmax", "cpu.softmax:Softmax"),
    "cross_entropy": ("cuda.cross_entropy:CrossEntropy", "cpu.cross_entropy:CrossEntropy"),
    "attention": ("cuda.attention:Attention", "cpu.attention:Attention"),
    "decode_attention": ("cpu.decode_attention:DecodeAttention",),
    "decode_linear": ("cpu.decode_linear:DecodeLinear",),
    "add_layer_norm": ("cpu.decode_norm:AddLayerNorm",),
    "dropout": ("cuda.dropout:Dropout",),
    "adam": ("cuda.adam:Adam", "cpu.adam:Adam"),
    "linear": ("cpu.linear:Linear",),
}

_FAMILIES = {"cpu": cpu, "cuda": cuda}
_candidates: dict[str, list] = {}       # op -> [(family module, path, class or None until loaded)]


def _load(path: str) -> type:
    module, cls = path.split(":")
    return getattr(importlib.import_module(f"{__name__}.{module}"), cls)


def candidates(op: str) -> list:
    """The kernels registered for ``op`` as [family module, path, class (loaded on first use)]."""
    found = _candidates.get(op)
    if found is None:
        if op not in KERNELS:
            raise KeyError(f"no kernels are registered for {op!r}: choose from {sorted(KERNELS)}")
        found = _candidates[op] = [[_FAMILIES[p.split(".")[0]], p, None] for p in KERNELS[op]]
    return found


def select(op: str, *arrays: Any, reference: type, **params: Any) -> Any:
    """A new implementation object for op ``op`` on ``arrays``: the first kernel of
    :data:`KERNELS` whose family supports the arrays and whose class ``accepts(*arrays,
    **params)`` them, else ``reference()``. ``None`` entries in ``arrays`` are ignored."""
    for entry in candidates(op):
        family, path, cls = entry
        if not family.supported(*arrays):
            continue
        if cls is None:
            cls = entry[2] = _load(path)
        accepts = getattr(cls, "accepts", None)
        if accepts is None or accepts(*arrays, **params):
            return cls()
    return reference()
