"""Hugging Face GPT-2 checkpoints, read and written without torch.

A directory written by ``GPT2LMHeadModel.save_pretrained`` holds

    config.json                    sizes: n_positions, n_embd, n_layer, n_head, vocab_size, ...
    model.safetensors              the weights (or shards listed in model.safetensors.index.json)
    tokenizer.json                 optional (or vocab.json + merges.txt, the older layout)

The weights are read with ``safetensors.numpy`` (no pickle, no torch). Names
are GPT-2's own, so the mapping is small:

* drop the ``transformer.`` prefix (files saved from ``GPT2Model`` lack it);
* HF's ``Conv1D`` layers (``c_attn``, ``c_proj``, ``c_fc``) store W as (in, out),
  our ``Linear`` as (out, in): transpose;
* skip the causal-mask buffers ``attn.bias`` / ``attn.masked_bias`` of old
  files, and ``lm_head.weight`` when it is tied to ``wte.weight``.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from ..backend import to_numpy
from ..validate import (check_finite, check_hf_config, check_hf_index, check_weight_dtypes, contained, load_json,
                        regular_file)
from .config import GPTConfig
from .gpt import GPT
from .hf_tokenizer import tokenizer_json

CONV1D_SUFFIXES = ("attn.c_attn.weight", "attn.c_proj.weight", "mlp.c_fc.weight", "mlp.c_proj.weight")
TANH_GELUS = ("gelu_new", "gelu_pytorch_tanh", "gelu_fast")   # all the tanh approximation our GELU computes
SKIPPED_BUFFERS = (".attn.bias", ".attn.masked_bias")
HF_BUFFERS = (*SKIPPED_BUFFERS, "position_ids")          # the tensors that may hold other than floats


def _read_json(path: Path, check: Any) -> dict:
    """A JSON file of the model directory, checked against its schema (FileError naming it otherwise)."""
    obj = load_json(path)
    check(obj, path)
    return obj


def gpt_config_from_hf(cfg: dict[str, Any]) -> GPTConfig:
    """A :class:`GPTConfig` from a Hugging Face GPT-2 ``config.json`` (ValueError if we cannot run it exactly)."""
    kind = cfg.get("model_type")
    if kind != "gpt2":
        raise ValueError(f"unsupported model_type {kind!r} in config.json: only 'gpt2' checkpoints can be loaded")
    missing = [k for k in ("vocab_size", "n_positions", "n_embd", "n_layer", "n_head") if k not in cfg]
    if missing:
        raise ValueError(f"config.json lacks {', '.join(missing)}")
    eps = cfg.get("layer_norm_epsilon", 1e-5)
    if abs(eps - 1e-5) > 1e-12:
        raise ValueError(f"layer_norm_epsilon {eps} is not supported: GPT models use 1e-5")
    act = cfg.get("activation_function", "gelu_new")
    if act not in TANH_GELUS:
        raise ValueError(f"activation_function {act!r} is not supported: GPT models use the tanh GELU "
                         f"({', '.join(TANH_GELUS)})")
    n_inner = cfg.get("n_inner")
    if n_inner is not None and n_inner != 4 * cfg["n_embd"]:
        raise ValueError(f"n_inner {n_inner} is not supported: the MLP width is 4 * n_embd = {4 * cfg['n_embd']}")
    if cfg.get("scale_attn_by_inverse_layer_idx") or cfg.get("scale_attn_weights") is False:
        raise ValueError("only the standard attention scaling 1/sqrt(head size) is supported")
    return GPTConfig(vocab_size=cfg["vocab_size"], block_size=cfg["n_positions"], n_layer=cfg["n_layer"],
                     n_head=cfg["n_head"], n_embd=cfg["n_embd"], dropout=float(cfg.get("resid_pdrop", 0.0)),
                     bias=True, tie_weights=bool(cfg.get("tie_word_embeddings", True)))


def gpt_state_from_hf(tensors: dict[str, np.ndarray], config: GPTConfig) -> dict[str, np.ndarray]:
    """Map Hugging Face GPT-2 tensor names and layouts to ours (see the module docstring)."""
    out = {}
    for name, arr in tensors.items():
        key = name[len("transformer."):] if name.startswith("transformer.") else name
        if key.endswith(SKIPPED_BUFFERS) or (key == "lm_head.weight" and config.tie_weights):
            continue
        if key.endswith(CONV1D_SUFFIXES):
            if arr.ndim != 2:
                raise ValueError(f"checkpoint tensor {name} should be a matrix, got shape {arr.shape}")
            arr = arr.T                                               # HF Conv1D (in, out) -> Linear (out, in)
        out[key] = arr
    if config.tie_weights and "wte.weight" in out:
        out["lm_head.weight"] = out["wte.weight"]
    return out


def _weight_files(path: Path) -> list[Path]:
    single, index = path / "model.safetensors", path / "model.safetensors.index.json"
    if single.exists():
        regular_file(single, "safetensors file")
        return [contained(path, single.name, path)]
    if index.exists():
        weight_map = check_hf_index(load_json(index), index)
        files = [contained(path, f, index) for f in sorted(set(weight_map.values()))]   # never outside `path`
        absent = [str(f) for f in files if not f.exists()]
        if absent:
            raise ValueError(f"{index} lists missing shard(s): {', '.join(absent)}")
        for f in files:
            regular_file(f, "safetensors shard")
        return files
    if (path / "pytorch_model.bin").is_file():
        raise ValueError(f"{path} holds pytorch_model.bin only; tinyllm reads safetensors (no pickle): "
                         "re-save it with save_pretrained(..., safe_serialization=True)")
    raise ValueError(f"{path} has no model.safetensors")


def load_tokenizer(path: str | Path) -> Any:
    """The tokenizer of a Hugging Face directory: ``tokenizer.json`` (see
    :func:`~tinyllm.models.hf_tokenizer.read_tokenizer_json`), else ``vocab.json`` + ``merges.txt``
    (byte-level BPE, GPT-2's layout), else None."""
    import tokenizers as hf_tok  # noqa: PLC0415  (Hugging Face's tokenizers library)

    from ..data.tokenizer_files import check_merges, check_vocab_json, library_call  # noqa: PLC0415
    from ..data.tokenizers import BPETokenizer  # noqa: PLC0415

    from .hf_tokenizer import read_tokenizer_json  # noqa: PLC0415

    p = Path(path)
    if (p / "tokenizer.json").exists():             # BPE, or what tinyllm export wrote (a character tokenizer)
        f = contained(p, "tokenizer.json", p)
        return read_tokenizer_json(load_json(f, "tokenizer.json"), str(f))
    vocab, merges = p / "vocab.json", p / "merges.txt"
    if not (vocab.exists() and merges.exists()):
        return None
    vocab, merges = contained(p, "vocab.json", p), contained(p, "merges.txt", p)
    check_vocab_json(vocab)
    check_merges(merges)
    tok = hf_tok.Tokenizer(library_call(merges, "vocab.json + merges.txt pair", hf_tok.models.BPE.from_file,
                                        str(vocab), str(merges)))
    tok.pre_tokenizer = hf_tok.pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = hf_tok.decoders.ByteLevel()
    if tok.token_to_id("<|endoftext|>") is not None:
        tok.add_special_tokens(["<|endoftext|>"])
    return BPETokenizer(tok)


def fitting_tokenizer(tokenizer: Any, vocab_size: int, where: Path) -> Any:
    """``tokenizer`` (or None) once its ids fit the model's ``vocab_size`` embeddings (ValueError otherwise:
    a prompt would index past them). Fewer tokens than embeddings is allowed (a padded vocabulary)."""
    if tokenizer is not None and tokenizer.vocab_size > vocab_size:
        raise ValueError(f"{where}: the tokenizer has {tokenizer.vocab_size:,} tokens but config.json's model "
                         f"has {vocab_size:,} embeddings; the tokenizer belongs to another model")
    return tokenizer


def read_hf_dir(path: str | Path, kind: str, check_config: Any,
                to_config: Any) -> tuple[Path, dict[str, Any], Any, dict[str, np.ndarray]]:
    """``(directory, config.json, our config, tensors)`` of a Hugging Face model directory of ``kind``
    (a registered model kind), every part checked (a ValueError naming the file otherwise):
    ``check_config`` validates config.json, ``to_config`` turns it into our config, and the sizes
    are checked before any weight is read."""
    from safetensors.numpy import load_file  # noqa: PLC0415

    from ..train.budget import check_model  # noqa: PLC0415  (train imports models: load on use)

    p = Path(path)
    if not p.is_dir():
        raise ValueError(f"pretrained model directory {p} does not exist")
    if not (p / "config.json").is_file():
        raise ValueError(f"{p} has no config.json (not a Hugging Face model directory)")
    config_path = contained(p, "config.json", p)
    cfg = _read_json(config_path, check_config)
    config = to_config(cfg)
    check_model(kind, config.to_dict(), where=f"{config_path}: ")     # before any weight is read
    tensors: dict[str, np.ndarray] = {}
    placed = _shard_contents(p)
    for f in _weight_files(p):
        try:
            shard = load_file(str(f))
        except Exception as exc:  # safetensors raises its own error types (bad header, bfloat16, ...)
            raise ValueError(f"cannot read {f}: {exc}") from None
        twice = sorted(set(shard) & set(tensors))
        if twice:
            raise ValueError(f"{f}: tensor {twice[0]} is in another shard as well")
        unlisted = sorted(set(shard) - placed.get(f, set())) if placed is not None else []
        if unlisted:
            raise ValueError(f"{f}: holds {', '.join(unlisted[:3])}{', ...' if len(unlisted) > 3 else ''}, "
                             "which model.safetensors.index.json does not place in it")
        tensors.update(check_finite(check_weight_dtypes(shard, f, int8=False, buffers=HF_BUFFERS), f))
    return p, cfg, config, tensors


def _shard_contents(path: Path) -> dict[Path, set[str]] | None:
    """shard file -> the tensor names the shard index places in it (None without an index)."""
    index = path / "model.safetensors.index.json"
    if (path / "model.safetensors").exists() or not index.exists():
        return None
    out: dict[Path, set[str]] = {}
    for name, shard in check_hf_index(load_json(index), index).items():
        out.setdefault(contained(path, shard, index), set()).add(name)
    return out


def read_gpt2_dir(path: str | Path) -> tuple[Path, dict[str, Any], GPTConfig, dict[str, np.ndarray]]:
    """``(directory, config.json, GPTConfig, tensors)`` of a Hugging Face GPT-2 directory (:func:`read_hf_dir`)."""
    return read_hf_dir(path, "gpt", check_hf_config, gpt_config_from_hf)


def gpt_from_tensors(tensors: dict[str, np.ndarray], config: GPTConfig, where: Path,
                     lm_head: bool = True) -> GPT:
    """A :class:`GPT` holding Hugging Face GPT-2 ``tensors`` (names and shapes checked). Without ``lm_head``
    (a head's layout, which has none) an untied output layer keeps its fresh initialisation."""
    state = gpt_state_from_hf(tensors, config)
    model = GPT(config)
    expected = model.state_dict()
    if not lm_head and "lm_head.weight" not in state:
        state["lm_head.weight"] = to_numpy(expected["lm_head.weight"])
    check_names_and_shapes(state, expected, where, "the weights do not match a GPT-2 of this config")
    model.load_state_dict(state)
    return model


def check_names_and_shapes(state: dict[str, Any], expected: dict[str, Any], where: Path, what: str) -> None:
    """ValueError unless ``state`` has exactly the names of ``expected``, each with its shape."""
    missing = [k for k in expected if k not in state]
    unexpected = [k for k in state if k not in expected]
    if missing or unexpected:
        raise ValueError(f"{where}: {what}: missing {missing[:5]}, unexpected {unexpected[:5]}")
    for k, arr in state.items():
        if tuple(arr.shape) != tuple(expected[k].shape):
            raise ValueError(f"{where}: tensor {k} has shape {tuple(arr.shape)} (in our (out, in) layout), "
                             f"config.json implies {tuple(expected[k].shape)}")


def load_pretrained(path: str | Path) -> tuple[GPT, Any]:
    """Load a local Hugging Face GPT-2 directory: ``(model, tokenizer or None)``. Nothing is downloaded.

    The model is built in the default dtype (``tinyllm.set_default_dtype``) and
    the weights are cast to it; it comes back in eval mode (call ``train()`` to fine-tune).
    A missing directory or file, another model type,
    or a tensor whose name or shape does not fit the config is a ValueError naming it.
    A directory of a GPT-2 with a task head is read by :func:`tinyllm.models.hf_heads.load_gpt2`.
    """
    p, _, config, tensors = read_gpt2_dir(path)
    model = gpt_from_tensors(tensors, config, p)
    model.eval()                                                      # as Hugging Face: dropout off until train()
    return model, fitting_tokenizer(load_tokenizer(p), config.vocab_size, p)


def gpt_hf_tensors(state: dict[str, Any], config: GPTConfig, lm_head: bool = True) -> dict[str, np.ndarray]:
    """GPT ``state`` (our names) in Hugging Face GPT-2's names and layouts: the inverse of
    :func:`gpt_state_from_hf`; the output layer only with ``lm_head`` and untied weights."""
    if not config.bias:
        raise ValueError("Hugging Face GPT-2 has biases: a model with bias=False cannot be saved in its layout")
    tensors = {}
    for name, arr in state.items():
        if name == "lm_head.weight" and (config.tie_weights or not lm_head):
            continue                                                  # tied: HF re-ties it to wte on load
        arr = to_numpy(arr)
        if name.endswith(CONV1D_SUFFIXES):
            arr = arr.T                                               # Linear (out, in) -> HF Conv1D (in, out)
        tensors[name if name == "lm_head.weight" else f"transformer.{name}"] = np.ascontiguousarray(arr)
    return tensors


def gpt_hf_config(c: GPTConfig, tokenizer: Any = None) -> dict[str, Any]:
    """The ``config.json`` of a GPT-2 of config ``c`` (GPT2LMHeadModel's; heads add their keys)."""
    eos = getattr(tokenizer, "eos_id", None)                          # None: no end-of-text token known
    return {"model_type": "gpt2", "architectures": ["GPT2LMHeadModel"], "vocab_size": c.vocab_size,
            "n_positions": c.block_size, "n_embd": c.n_embd, "n_layer": c.n_layer, "n_head": c.n_head,
            "n_inner": None, "activation_function": "gelu_new", "layer_norm_epsilon": 1e-5,
            "resid_pdrop": c.dropout, "embd_pdrop": c.dropout, "attn_pdrop": c.dropout,
            "tie_word_embeddings": c.tie_weights, "bos_token_id": eos, "eos_token_id": eos}


def write_hf_dir(path: str | Path, tensors: dict[str, np.ndarray], hf_config: dict[str, Any],
                 tokenizer: Any = None) -> None:
    """config.json, model.safetensors and (given a tokenizer) tokenizer.json in ``path``
    (a character tokenizer in the ``tokenizers`` library's format: :mod:`tinyllm.models.hf_tokenizer`)."""
    from safetensors.numpy import save_file  # noqa: PLC0415

    p = Path(path)
    p.mkdir(parents=True, exist_ok=True)
    save_file({k: np.ascontiguousarray(v) for k, v in tensors.items()}, str(p / "model.safetensors"),
              metadata={"format": "pt"})
    (p / "config.json").write_text(json.dumps(hf_config, indent=2) + "\n", encoding="utf-8")
    if tokenizer is not None:
        (p / "tokenizer.json").write_text(tokenizer_json(tokenizer), encoding="utf-8")


def save_pretrained(model: GPT, path: str | Path, tokenizer: Any = None) -> None:
    """Write ``model`` as a Hugging Face GPT-2 directory that ``GPT2LMHeadModel.from_pretrained``
    (and :func:`load_pretrained`) reads: config.json, model.safetensors, tokenizer.json if given.
    A GPT with a task head is written by :func:`tinyllm.models.hf_heads.save_hf`."""
    if not isinstance(model, GPT):
        raise TypeError(f"save_pretrained writes GPT models, got {type(model).__name__}")
    tensors = gpt_hf_tensors(model.state_dict(), model.config)
    write_hf_dir(path, tensors, gpt_hf_config(model.config, tokenizer), tokenizer)
