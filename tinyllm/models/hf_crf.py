"""A CRF tagger in a Hugging Face directory: the emission layer in the token-classification layout,
the CRF's scores in a side file.

``transformers`` has no CRF head. A :class:`~tinyllm.models.TokenClassifier` with ``crf=True`` is
exported as ``BertForTokenClassification`` / ``GPT2ForTokenClassification`` (its linear
``classifier`` gives the emission scores, which is what those classes compute), and the CRF's
parameters go beside it in

    crf.safetensors    start_transitions (K,), end_transitions (K,), transitions (K, K)
                       metadata: format "tinyllm-crf", version "1", scheme "" | "BIO" | "BIOES"

``transformers`` ignores the file: it reads the directory as a per-token argmax tagger (the
emission scores are the same; only decoding differs). tinyllm reads the file back and restores the
CRF, Viterbi decoding and the transition constraints of the scheme included. The tag names are
``id2label`` of config.json.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from ..backend import to_numpy
from ..validate import contained, regular_file
from .crf import SCHEMES

CRF_FILE = "crf.safetensors"
CRF_FORMAT, CRF_VERSION = "tinyllm-crf", "1"
CRF_NAMES = ("start_transitions", "end_transitions", "transitions")


def write_crf(crf: Any, path: str | Path) -> None:
    """Write the CRF's three score tensors and its scheme to ``path / crf.safetensors``."""
    from safetensors.numpy import save_file  # noqa: PLC0415

    tensors = {n: np.ascontiguousarray(to_numpy(getattr(crf, n).data)) for n in CRF_NAMES}
    save_file(tensors, str(Path(path) / CRF_FILE),
              metadata={"format": CRF_FORMAT, "version": CRF_VERSION, "scheme": crf.scheme or ""})


def read_crf(path: str | Path, num_tags: int) -> tuple[str | None, dict[str, np.ndarray]] | None:
    """``(scheme, tensors)`` of ``path / crf.safetensors``, None when there is no such file; every
    value checked (format, version, scheme, names, shapes, finite floats): ValueError naming the file."""
    from safetensors import safe_open  # noqa: PLC0415

    p = Path(path)
    if not (p / CRF_FILE).exists() and not (p / CRF_FILE).is_symlink():
        return None
    f = contained(p, CRF_FILE, p)                                    # never outside the directory
    regular_file(f, "CRF file")
    try:
        with safe_open(str(f), "np") as handle:
            meta = handle.metadata() or {}
            names = sorted(handle.keys())
            tensors = {n: handle.get_tensor(n) for n in names}
    except Exception as exc:  # safetensors raises its own error types (bad header, ...)
        raise ValueError(f"cannot read {f}: {exc}") from None
    if meta.get("format") != CRF_FORMAT or meta.get("version") != CRF_VERSION:
        raise ValueError(f"{f}: not a {CRF_FORMAT} version {CRF_VERSION} file (metadata {meta})")
    scheme = meta.get("scheme") or None
    if scheme is not None and scheme not in SCHEMES:
        raise ValueError(f"{f}: scheme {scheme!r} is not one of {', '.join(SCHEMES)}")
    if names != sorted(CRF_NAMES):
        raise ValueError(f"{f}: expected the tensors {', '.join(CRF_NAMES)}, got {', '.join(names) or 'none'}")
    shapes = {"start_transitions": (num_tags,), "end_transitions": (num_tags,), "transitions": (num_tags, num_tags)}
    for n, arr in tensors.items():
        if arr.dtype.kind != "f" or tuple(arr.shape) != shapes[n]:
            raise ValueError(f"{f}: {n} must be a float tensor of shape {shapes[n]} for {num_tags} tags, "
                             f"got {arr.dtype} {tuple(arr.shape)}")
        if not np.isfinite(arr).all():
            raise ValueError(f"{f}: {n} holds a value that is not finite")
    return scheme, tensors
