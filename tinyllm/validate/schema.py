"""One schema per file kind: the type and range of every field tinyllm reads from it.

A schema is a function ``check_<kind>(obj, path)`` that walks the parsed JSON
with :class:`Fields` and raises :class:`~tinyllm.validate.files.FileError`
(``"<path>: <key> must be ..., got ..."``) at the first bad value. It checks
what later code relies on (types, ranges, required keys) so that nothing past
it can fail with a ``TypeError``, ``AttributeError`` or ``OverflowError`` on
a hostile file; rules that need more context (an unknown key, ``n_embd``
divisible by ``n_head``) stay with the code that knows them and raise their
own one-line errors.

``LIMITS`` caps the sizes a config may ask for. They are far above what
tinyllm can train in reasonable time, and far below what would overflow an
array shape; :mod:`tinyllm.train.budget` then checks that the memory is there.
"""
from __future__ import annotations

import math
import os
from typing import Any

import numpy as np

from .errors import FileError
from .fields import BIG, Fields, _kind

LIMITS: dict[str, int] = {
    "vocab_size": 1 << 21,      # 2,097,152: every Unicode code point fits, and any real BPE vocabulary
    "block_size": 1 << 20,
    "n_layer": 1024,
    "n_head": 1024,
    "n_embd": 1 << 16,
    "type_vocab_size": 1 << 10,
    "num_classes": 1 << 16,
}


# ----------------------------------------------------------------------------- models

def check_model_config(kind: Any, obj: Any, path: str | os.PathLike, where: str = "model.config") -> None:
    """A GPT, BERT or classifier config (as in a checkpoint's ``config.json``)."""
    f = Fields(obj, path, where)
    if kind == "classifier":
        backbone = f.string("backbone", max_len=64)
        check_model_config(backbone, f.obj.get("backbone_config"), path, f.name("backbone_config"))
        f.int("num_classes", 2, LIMITS["num_classes"])
        f.string("pooling", none=True, default=None)
        f.boolean("freeze_backbone", default=False)
        f.boolean("bias", default=True)
        f.int("pad_id", 0, LIMITS["vocab_size"], default=None, none=True)
        return
    if kind != "classifier" and isinstance(obj, dict) and "backbone_config" in obj:
        # a head over a backbone (a tagger, a span extractor): the backbone is checked as any model
        # is; the head's own keys by its task module when it is built
        backbone = f.string("backbone", max_len=64)
        check_model_config(backbone, f.obj.get("backbone_config"), path, f.name("backbone_config"))
        f.boolean("freeze_backbone", default=False)
        _check_tag_keys(f)
        return
    if not isinstance(kind, str) or not kind.isidentifier():
        raise FileError(path, f"the model kind must be a name such as gpt, bert or classifier, got {_kind(kind)}")
    if kind not in ("gpt", "bert"):
        # A kind registered by a plugin (tinyllm.models.registry): its config class validates the
        # rest when it is built; the transformer's sizes, where it has them, are capped here all the same.
        for key in ("vocab_size", "block_size", "n_layer", "n_head", "n_embd"):
            if key in f.obj:
                f.int(key, 1, LIMITS[key])
        for key, cap in (("src_vocab_size", "vocab_size"), ("src_block_size", "block_size")):   # seq2seq; 0: same
            if key in f.obj:
                f.int(key, 0, LIMITS[cap])
        return
    for key in ("vocab_size", "block_size", "n_layer", "n_head", "n_embd"):
        f.int(key, 1, LIMITS[key])
    f.number("dropout", 0.0, 1.0, default=0.0, below_hi=True)
    f.boolean("bias", default=True)
    f.boolean("tie_weights", default=True)
    if kind == "bert":
        f.int("type_vocab_size", 1, LIMITS["type_vocab_size"], default=2)
        f.int("pad_id", 0, LIMITS["vocab_size"], default=0)
        f.number("eps", 0.0, 1.0, default=1e-12, above_lo=True, below_hi=True)


def _check_tag_keys(f: Fields) -> None:
    """A tagger's keys, where present (its model config and its run's task section hold them):
    2 or more distinct tag names, whether a CRF scores them, and its scheme."""
    tags = f.strings("tags", default=None, max_items=LIMITS["num_classes"], max_len=256)
    if tags is not None and (len(tags) < 2 or len(set(tags)) != len(tags)):
        raise f.fail("tags", "a list of 2 or more distinct tag names", tags)
    f.boolean("crf", default=False)
    f.string("scheme", choices=("BIO", "BIOES"), default=None, none=True)


def check_weight_dtypes(arrays: dict[str, Any], path: str | os.PathLike, int8: bool = True,
                        buffers: tuple[str, ...] = ()) -> dict[str, Any]:
    """Refuse a weight file holding a tensor of integers where weights are floats; returns ``arrays``.

    Weights are floating point; the only others are pruning masks (bool), int8-quantized matrices
    (with ``int8``) and the buffers whose names end in one of ``buffers``. An int32 tensor in place of
    a float32 one of the same size would otherwise be read as numbers it never held.
    """
    for name, a in arrays.items():
        kind = getattr(a, "dtype", None)
        if kind is None or kind.kind in "fb" or (int8 and kind == np.int8) or name.endswith(buffers):
            continue
        raise FileError(path, f"tensor '{name}' is {kind}; weights are floating point")
    return arrays


def check_finite(arrays: dict[str, Any], path: str | os.PathLike) -> dict[str, Any]:
    """Refuse a tensor file in which a floating-point tensor holds NaN or an infinity; returns ``arrays``.

    No trained weight or optimizer moment is ever non-finite: such a value comes from a damaged file
    (or a run that diverged), and would only turn every output into NaN later on.
    """
    for name, a in arrays.items():
        if getattr(a, "dtype", None) is not None and a.dtype.kind == "f" and not np.isfinite(a).all():
            raise FileError(path, f"tensor '{name}' holds NaN or infinite values")
    return arrays


# ----------------------------------------------------------------------------- run settings

# Every TrainConfig field (and the command-only keys of a --config file): (kind, low, high, may be null).
RUN_SETTINGS: dict[str, tuple[str, float, float, bool]] = {
    "model": ("str", 0, 0, False), "preset": ("str", 0, 0, False), "data": ("str", 0, 0, False),
    "tokenizer": ("str", 0, 0, False), "tgt_tokenizer": ("str", 0, 0, False),
    "backend": ("str", 0, 0, False), "dtype": ("str", 0, 0, False),
    "out": ("str", 0, 0, False), "resume": ("bool", 0, 0, False), "force": ("bool", 0, 0, False),
    "n_layer": ("int", 1, LIMITS["n_layer"], True), "n_head": ("int", 1, LIMITS["n_head"], True),
    "n_embd": ("int", 1, LIMITS["n_embd"], True), "block_size": ("int", 1, LIMITS["block_size"], True),
    "vocab_size": ("int", 1, LIMITS["vocab_size"], False),
    "iters": ("int", 1, 10 ** 12, False), "batch_size": ("int", 1, 1 << 20, False),
    "grad_accum": ("int", 1, 1 << 20, False), "warmup": ("int", 0, 10 ** 12, False),
    "eval_interval": ("int", 1, 10 ** 12, False), "eval_iters": ("int", 1, 1 << 20, False),
    "early_stop": ("int", 0, 10 ** 12, False), "log_interval": ("int", 1, 10 ** 12, False),
    "seed": ("int", 0, (1 << 63) - 1, False), "sample_tokens": ("int", 0, 1 << 20, False),
    "dropout": ("num", 0, 1, False), "val_fraction": ("num", 0, 1, False), "mlm_prob": ("num", 0, 1, False),
    "label_smoothing": ("num", 0, 1, False),
    "tgt_vocab_size": ("int", 0, LIMITS["vocab_size"], False),
    "src_block_size": ("int", 0, LIMITS["block_size"], False),
    "tgt_block_size": ("int", 0, LIMITS["block_size"], False),
    "norm": ("str", 0, 0, False), "positions": ("str", 0, 0, False),
    "share_embeddings": ("bool", 0, 0, False), "tie_weights": ("bool", 0, 0, False),
    "lr": ("num", 0, math.inf, False), "min_lr": ("num", 0, math.inf, False),
    "weight_decay": ("num", 0, math.inf, False), "beta2": ("num", 0, 1, False),
    "grad_clip": ("num", 0, math.inf, False),
}


def check_run_settings(obj: Any, path: str | os.PathLike, where: str = "", ranges: bool = True,
                       resolved: bool = False) -> dict:
    """Training settings (a ``--config`` file, or a checkpoint's ``train`` section): types and ranges.

    Only the keys present are checked (an unknown key is left to the caller,
    which names the keys it knows); returns ``obj``. With ``ranges=False`` only
    the types are (numbers within what a float holds), and the
    ranges are left to the settings' own validation. With ``resolved`` (a
    checkpoint's settings, every preset value filled in) no value may be null.
    """
    f = Fields(obj, path, where)
    for key in f.obj:
        kind, lo, hi, none = RUN_SETTINGS.get(str(key), ("any", 0, 0, True))
        none = none and not resolved
        if not ranges:
            lo, hi = (-(10 ** 300), 10 ** 300) if kind == "int" else (-math.inf, math.inf)
        if kind == "str":
            f.string(key)
        elif kind == "bool":
            f.boolean(key)
        elif kind == "int":
            f.int(key, int(lo), int(hi), none=none)
        elif kind == "num":
            f.number(key, lo, hi)
    return obj


# ----------------------------------------------------------------------------- checkpoints

def check_ckpt_config(obj: Any, path: str | os.PathLike) -> None:
    """A tinyllm checkpoint's ``config.json``: model kind and config, training settings, task."""
    f = Fields(obj, path)
    model = f.object("model")
    kind = model.string("kind", max_len=64)
    check_model_config(kind, model.obj.get("config"), path)
    _check_compression(model)
    train = f.object("train", default=None)     # every run writes it; a checkpoint saved from Python may not
    if train is not None:
        check_run_settings(train.obj, path, "train", resolved=True)
    task = f.object("task", default=None) or Fields({}, path, "task")
    task.string("name", default=None)
    task.string("data", default=None)
    task.string("source", default=None)
    task.string("source_path", default=None)
    task.string("source_weights_sha256", default=None, max_len=64)
    labels = task.strings("labels", default=None, max_items=LIMITS["num_classes"])
    _check_tag_keys(task)
    task.int("stride", 0, LIMITS["block_size"], default=None)          # qa: context tokens windows share
    task.int("max_answer", 1, LIMITS["block_size"], default=None)      # qa: the longest answer in tokens
    if kind == "classifier" and labels is not None and len(labels) != model.obj["config"]["num_classes"]:
        raise FileError(path, f"task.labels has {len(labels)} names but the classifier has "
                              f"{model.obj['config']['num_classes']} classes")


def _check_compression(model: Fields) -> None:
    """A model section's ``lora`` (a LoRA fine-tuning run's adapters) and ``pruning`` (a pruned run's
    masked layers) entries, where present: what building the model reads from them."""
    lora = model.object("lora", default=None)
    if lora is not None:
        lora.int("r", 1, 1 << 16)
        lora.number("alpha", 0.0, 1e30, above_lo=True, default=None, none=True)
        lora.number("dropout", 0.0, 1.0, below_hi=True, default=0.0)
        targets = lora.obj.get("targets")
        if not isinstance(targets, str):
            targets = lora.strings("targets", max_items=64, max_len=128)
        if not targets:
            raise lora.fail("targets", "a non-empty list of layer names", targets)
    pruning = model.object("pruning", default=None)
    if pruning is not None:
        pruning.strings("layers", max_items=1 << 16, max_len=256)
        pruning.number("sparsity", 0.0, 1.0, default=None, none=True)


def check_manifest(obj: Any, path: str | os.PathLike) -> dict[str, dict]:
    """A checkpoint's ``manifest.json``; returns its ``files`` table (name -> {size, sha256})."""
    f = Fields(obj, path)
    f.string("format")
    f.int("version", 0, 1 << 31)
    files = f.object("files")
    for name in files.obj:
        entry = files.object(name)
        entry.int("size", 0, BIG)
        sha = entry.string("sha256")
        if len(sha) != 64 or any(c not in "0123456789abcdef" for c in sha):
            raise entry.fail("sha256", "64 lowercase hex digits", sha)
    return files.obj


def check_optimizer(obj: Any, path: str | os.PathLike) -> None:
    """A checkpoint's ``optimizer.json``: param groups (objects of numbers, shapes), state (array references)."""
    f = Fields(obj, path)
    f.string("type", default=None, max_len=64)
    groups = f.obj.get("param_groups")
    if not isinstance(groups, list) or any(not isinstance(g, dict) for g in groups):
        raise f.fail("param_groups", "a list of objects", groups)
    for i, g in enumerate(groups):
        group = Fields(g, path, f"param_groups.{i}")
        group.int("num_params", 0, BIG, default=None)
        shapes = g.get("shapes", [])
        if not isinstance(shapes, list) or any(not isinstance(sh, list) or any(
                isinstance(n, bool) or not isinstance(n, int) or not 0 <= n < BIG for n in sh) for sh in shapes):
            raise group.fail("shapes", "a list of shapes (lists of integers)", shapes)
    f.object("state")
    _check_tree(obj, f, "state", numbers=True)


def _check_tree(value: Any, f: Fields, key: str, depth: int = 0, numbers: bool = False) -> None:
    """Objects, lists, strings and integers below 2**256 (and finite floats if ``numbers``), 8 levels at most."""
    if depth > 8:
        raise f.fail(key, "at most 8 levels deep", value)
    if isinstance(value, dict):
        for v in value.values():
            _check_tree(v, f, key, depth + 1, numbers)
    elif isinstance(value, list):
        for v in value:
            _check_tree(v, f, key, depth + 1, numbers)
    elif isinstance(value, bool) or value is None or isinstance(value, str):
        return
    elif numbers and isinstance(value, float) and math.isfinite(value):
        return
    elif not isinstance(value, int) or not -(1 << 256) < value < (1 << 256):
        raise FileError(f.path, f"'{f.name(key)}' holds {_kind(value)}, which is not a usable value there")


def _bit_generator(f: Fields, key: str) -> None:
    """A NumPy bit generator state: it must load into a fresh generator of its kind."""
    g = f.object(key)
    g.string("bit_generator", max_len=64)
    _check_tree(g.obj, f, key)
    name = g.obj["bit_generator"]
    if name not in ("PCG64", "PCG64DXSM", "MT19937", "Philox", "SFC64"):
        raise g.fail("bit_generator", "a NumPy bit generator (PCG64, ...)", name)
    try:
        getattr(np.random, name)().state = g.obj
    except (TypeError, ValueError, KeyError, OverflowError, IndexError) as exc:
        raise FileError(f.path, f"'{f.name(key)}' is not a usable {name} state ({exc})") from None


def _check_data_state(f: Fields) -> None:
    """The batch source's position: an LMBatcher's, an MLM source's or an ExampleSource's."""
    for key in ("step", "epoch", "offset"):
        f.int(key, 0, BIG, default=None)
    for key in ("block_size", "batch_size", "n_tokens", "n"):
        f.int(key, 0, BIG, default=None)
    f.int("seed", -BIG, (1 << 63), default=None)
    for key in ("rng", "mask_rng"):
        if key in f.obj:
            _bit_generator(f, key)
    if "batcher" in f.obj:
        _check_data_state(f.object("batcher"))


def check_state(obj: Any, path: str | os.PathLike) -> dict:
    """A checkpoint's ``state.json``: iteration, losses, generator and data states."""
    f = Fields(obj, path)
    f.int("iteration", 0, BIG, default=None)
    for key in ("best_val_loss", "last_val_loss", "lr"):
        f.number(key, none=True, default=None)
    f.int("evals_since_best", 0, BIG, default=None)
    f.number("elapsed", 0.0, default=None)
    rng = f.object("rng", default=None)
    if rng is not None:
        rng.int("seed", -BIG, 1 << 63, default=None, none=True)
        if "numpy" in rng.obj:
            _bit_generator(rng, "numpy")
        if "cupy" in rng.obj:
            _check_tree(rng.obj["cupy"], rng, "cupy")
    data = f.object("data", default=None)
    if data is not None:
        _check_data_state(data)
    return obj


def check_metrics_rows(rows: list[Any], path: str | os.PathLike) -> None:
    """``metrics.jsonl`` records: objects whose ``iter`` is an integer (what resuming filters on)."""
    for i, row in enumerate(rows, start=1):
        if isinstance(row, dict):                 # other lines are skipped by the reader
            Fields(row, path, f"line {i}").number("iter", default=0)


# ----------------------------------------------------------------------------- Hugging Face files

def _check_hf_head_keys(f: Fields) -> None:
    """The keys of a Hugging Face config.json that a task head reads: its labels, the padding token a
    GPT-2 classifier skips, the head's dropout."""
    f.int("num_labels", 1, LIMITS["num_classes"], default=None)
    labels = f.object("id2label", default=None, none=True)
    if labels is not None:
        if len(labels.obj) > LIMITS["num_classes"]:
            raise f.fail("id2label", f"an object of at most {LIMITS['num_classes']} labels", labels.obj)
        for key in labels.obj:
            labels.string(key, max_len=256)
    f.int("pad_token_id", 0, LIMITS["vocab_size"], default=None, none=True)
    f.number("classifier_dropout", 0.0, 1.0, default=None, none=True, below_hi=True)


def check_hf_config(obj: Any, path: str | os.PathLike) -> None:
    """A Hugging Face GPT-2 ``config.json`` (the fields tinyllm reads)."""
    f = Fields(obj, path)
    f.string("model_type")
    for ours, key in (("vocab_size", "vocab_size"), ("block_size", "n_positions"), ("n_embd", "n_embd"),
                      ("n_layer", "n_layer"), ("n_head", "n_head")):
        f.int(key, 1, LIMITS[ours])
    f.number("layer_norm_epsilon", 0.0, 1.0, default=1e-5)
    f.string("activation_function", default="gelu_new")
    f.int("n_inner", 1, 4 * LIMITS["n_embd"], default=None, none=True)
    f.number("resid_pdrop", 0.0, 1.0, default=0.0, below_hi=True)
    for key in ("tie_word_embeddings", "scale_attn_by_inverse_layer_idx", "scale_attn_weights"):
        f.boolean(key, default=None)
    _check_hf_head_keys(f)


def check_hf_bert_config(obj: Any, path: str | os.PathLike) -> None:
    """A Hugging Face BERT ``config.json`` (the fields tinyllm reads; what it cannot honour is refused later)."""
    f = Fields(obj, path)
    f.string("model_type")
    for ours, key in (("vocab_size", "vocab_size"), ("block_size", "max_position_embeddings"),
                      ("n_embd", "hidden_size"), ("n_layer", "num_hidden_layers"), ("n_head", "num_attention_heads")):
        f.int(key, 1, LIMITS[ours])
    f.int("intermediate_size", 1, 4 * LIMITS["n_embd"], default=None, none=True)
    f.int("type_vocab_size", 1, LIMITS["type_vocab_size"], default=2)
    _check_hf_head_keys(f)
    f.number("layer_norm_eps", 0.0, 1.0, default=1e-12, above_lo=True, below_hi=True)
    for key in ("hidden_dropout_prob", "attention_probs_dropout_prob"):
        f.number(key, 0.0, 1.0, default=0.1, below_hi=True)
    for key in ("hidden_act", "position_embedding_type"):
        f.string(key, default=None)
    f.strings("architectures", default=None, max_items=16)


def check_hf_index(obj: Any, path: str | os.PathLike) -> dict[str, str]:
    """``model.safetensors.index.json``: its ``weight_map`` (tensor name -> shard file name)."""
    f = Fields(obj, path)
    f.object("metadata", default=None, none=True)
    weight_map = f.object("weight_map")
    if not weight_map.obj:
        raise FileError(path, "'weight_map' lists no tensors")
    for name in weight_map.obj:
        weight_map.string(name)
    return weight_map.obj


# ----------------------------------------------------------------------------- tokenizers and token files

def check_char_tokenizer(obj: Any, path: str | os.PathLike) -> tuple[list[str], list[str]]:
    """A character tokenizer's JSON: ``(chars, special_tokens)``, each char one character."""
    f = Fields(obj, path)
    f.int("version", 0, 1 << 31, default=None)
    chars = f.strings("chars", max_items=LIMITS["vocab_size"])
    specials = f.strings("special_tokens", default=[], max_items=1024)
    bad = next((c for c in chars if len(c) != 1), None)
    if bad is not None:
        raise FileError(path, f"every entry of 'chars' must be one character, got {_kind(bad)}")
    return chars, specials


def check_hf_tokenizer(obj: Any, path: str | os.PathLike) -> str:
    """The outline of a Hugging Face ``tokenizer.json`` (the library checks the rest); returns the model type."""
    f = Fields(obj, path)
    model = f.object("model")
    kind = model.string("type", max_len=64)
    added = f.obj.get("added_tokens", [])
    if not isinstance(added, list) or any(not isinstance(t, dict) for t in added):
        raise f.fail("added_tokens", "a list of objects", added)
    return kind


def check_pair_vocabs(obj: Any, path: str | os.PathLike) -> None:
    """A sequence-to-sequence run's tokenizer: the source and target symbol vocabularies or BPE tokenizers."""
    f = Fields(obj, path)
    for side in ("source", "target"):
        vocab = f.object(side)
        if vocab.string("kind", ("symbols", "bpe")) == "bpe":
            check_hf_tokenizer(vocab.object("tokenizer").obj, path)
            continue
        vocab.strings("symbols", max_items=LIMITS["vocab_size"])
        vocab.string("split", default=None, none=True, max_len=16)


def check_token_meta(obj: Any, path: str | os.PathLike) -> dict:
    """The JSON sidecar of a ``.bin`` token file."""
    f = Fields(obj, path)
    f.string("format")
    f.int("version", 0, 1 << 31, default=1)
    f.string("dtype", ("uint16", "uint32"))
    f.int("count", 0, BIG)
    f.int("vocab_size", 1, 1 << 32)
    tok = f.object("tokenizer", default=None, none=True)
    if tok is not None:
        tok.string("kind", max_len=64)
        tok.string("hash", max_len=256)
    return obj
