"""Checkpoints: save and load a training run safely (no pickle, atomic writes).

A *run directory* (``tinyllm train --out DIR``) holds two checkpoints, each a
directory of plain files::

    DIR/
      latest/            written at every evaluation, at the end, and on Ctrl-C
      best/              the checkpoint with the lowest validation loss so far
      metrics.jsonl      one JSON record per logged step
    DIR/latest/
      config.json        model kind + model config + training config (JSON)
      tokenizer.json     the tokenizer, in its own save format
      model.safetensors  the weights (``safetensors``: raw arrays, no code)
      optimizer.safetensors + optimizer.json
                         the optimizer's arrays, and everything else it keeps
      state.json         iteration, best val loss, RNG and data-batcher states
      manifest.json      size and sha256 of every file above, written LAST

**Atomic writes.** A checkpoint is first written into a fresh temporary
directory inside the run directory (``latest.tmp-XXXX/``); every file is
fsync'ed, then the manifest is written, and only then does the new directory
take the place of the old one: ``latest`` is renamed to ``latest.old``, the
temporary directory is renamed to ``latest``, and ``latest.old`` is removed.
A process killed at any moment therefore leaves one of:

* the old ``latest`` untouched (killed while writing the temporary directory),
* only ``latest.old`` (killed between the two renames): loading uses it,
* the new ``latest`` and a stale ``latest.old`` (killed before the cleanup).

Every case loads a complete checkpoint. Loading verifies the manifest, so a
file truncated or edited afterwards is reported as "checkpoint DIR is
incomplete or corrupt: ..." instead of surfacing as a strange shape error.

**No pickle.** Arrays are stored with ``safetensors`` and everything else as
JSON; loading never executes code from the file.
"""
from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import safetensors.numpy as st

from .checkpoint_io import _fsync_dir, _write_arrays, _write_file, join_arrays, split_arrays, to_json
from .validate import (
    FileError,
    check_char_tokenizer,
    check_ckpt_config,
    check_finite,
    check_weight_dtypes,
    check_hf_tokenizer,
    check_manifest,
    check_optimizer,
    check_pair_vocabs,
    check_state,
    contained,
    parse_json,
    read_file,
    regular_file,
)

FORMAT = "tinyllm-checkpoint"
FORMAT_VERSION = 1
CHECKPOINT_NAMES = ("latest", "best")

CONFIG_FILE = "config.json"
TOKENIZER_FILE = "tokenizer.json"
WEIGHTS_FILE = "model.safetensors"
OPTIMIZER_ARRAYS_FILE = "optimizer.safetensors"
OPTIMIZER_FILE = "optimizer.json"
STATE_FILE = "state.json"
MANIFEST_FILE = "manifest.json"


class CheckpointError(ValueError):
    """A checkpoint that is missing, incomplete, corrupt, or does not fit what it is used for."""


class CheckpointNotFoundError(CheckpointError):
    """No checkpoint where one was expected."""


class CheckpointFileError(FileError, CheckpointError):
    """A checkpoint file holding a value of the wrong type or range: ``"FILE: what is wrong"``."""


@dataclass
class Checkpoint:
    """Everything one checkpoint directory holds, loaded and verified.

    Attributes:
        path: the checkpoint directory that was read.
        config: ``config.json``: ``{"model": {"kind", "config"}, "train": {...}, ...}``.
        weights: parameter name -> NumPy array (``model.safetensors``).
        tokenizer_json: the tokenizer's JSON text, or None if the run saved none.
        optimizer: the optimizer's ``state_dict()`` (arrays back in place), or None.
        state: ``state.json``: iteration, best val loss, RNG and batcher states, ...
    """

    path: Path
    config: dict
    weights: dict[str, np.ndarray]
    tokenizer_json: str | None = None
    optimizer: dict | None = None
    state: dict = field(default_factory=dict)

    @property
    def iteration(self) -> int:
        """How many optimizer steps the saved model has taken."""
        return int(self.state.get("iteration", 0))

    @property
    def model_kind(self) -> str:
        return str(self.config.get("model", {}).get("kind", "?"))

    @property
    def model_config(self) -> dict:
        return dict(self.config.get("model", {}).get("config", {}))


# ----------------------------------------------------------------------------- saving

def _aside(run_dir: Path, name: str) -> Path:
    return run_dir / f"{name}.old"


def recover(run_dir: str | os.PathLike, name: str) -> None:
    """Finish or undo a save that a crash interrupted, and remove its leftovers.

    Killed between the two renames, a run has ``name.old`` but no ``name``:
    the old checkpoint is renamed back. A stale ``name.old`` beside a complete
    ``name`` and unfinished ``name.tmp-*`` directories are removed.
    """
    run_dir = Path(run_dir)
    current, old = run_dir / name, _aside(run_dir, name)
    if not current.exists() and old.is_dir():
        os.rename(old, current)
        _fsync_dir(run_dir)
    if old.exists():
        shutil.rmtree(old, ignore_errors=True)
    for tmp in run_dir.glob(f"{name}.tmp-*"):
        shutil.rmtree(tmp, ignore_errors=True)


def _real_location(run_dir: Path, name: str) -> tuple[Path, str]:
    """(directory, name) where checkpoint ``run_dir/name`` really lives.

    ``run_dir/name`` may be a symlink to a checkpoint directory elsewhere (to
    pin a run's ``latest``, say): the save then replaces the link's *target*
    with the same atomic rename dance, next to it, and the link stays as it was.
    """
    link = run_dir / name
    if link.is_symlink() and link.is_dir():
        real = link.resolve()
        return real.parent, real.name
    return run_dir, name


def save_checkpoint(run_dir: str | os.PathLike, name: str, *, config: dict, weights: dict[str, Any],
                    tokenizer_json: str | None = None, optimizer: dict | None = None,
                    state: dict | None = None) -> Path:
    """Write checkpoint ``run_dir/name`` atomically (see the module docstring); return its path.

    Args:
        run_dir: the run directory (created if missing).
        name: the checkpoint's name, e.g. "latest" or "best".
        config: JSON-able: model kind and config, training config.
        weights: parameter name -> array (NumPy or CuPy), e.g. ``model.state_dict()``.
        tokenizer_json: the tokenizer serialized (``tokenizer.to_json()``).
        optimizer: the optimizer's ``state_dict()``; its arrays go to safetensors, the rest to JSON.
        state: JSON-able training state (iteration, RNG states, batcher state, ...).
    """
    shown = Path(run_dir) / name
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    run_dir, name = _real_location(run_dir, name)
    recover(run_dir, name)
    tmp = Path(tempfile.mkdtemp(dir=run_dir, prefix=f"{name}.tmp-"))
    try:
        files: dict[str, dict] = {}
        _, weight_arrays = split_arrays(dict(weights))
        files[WEIGHTS_FILE] = _write_arrays(tmp / WEIGHTS_FILE, weight_arrays)
        files[CONFIG_FILE] = _write_file(tmp / CONFIG_FILE, to_json(config).encode("utf-8"))
        if tokenizer_json is not None:
            files[TOKENIZER_FILE] = _write_file(tmp / TOKENIZER_FILE, tokenizer_json.encode("utf-8"))
        if optimizer is not None:
            tree, arrays = split_arrays(optimizer)
            files[OPTIMIZER_ARRAYS_FILE] = _write_arrays(tmp / OPTIMIZER_ARRAYS_FILE, arrays)
            files[OPTIMIZER_FILE] = _write_file(tmp / OPTIMIZER_FILE, to_json(tree).encode("utf-8"))
        files[STATE_FILE] = _write_file(tmp / STATE_FILE, to_json(state or {}).encode("utf-8"))
        manifest = {"format": FORMAT, "version": FORMAT_VERSION, "files": files}
        _write_file(tmp / MANIFEST_FILE, to_json(manifest).encode("utf-8"))  # LAST: marks it complete
        _fsync_dir(tmp)

        current, old = run_dir / name, _aside(run_dir, name)
        if current.exists():
            os.rename(current, old)          # from here until the next rename, loading uses name.old
        os.rename(tmp, current)
        _fsync_dir(run_dir)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    shutil.rmtree(_aside(run_dir, name), ignore_errors=True)
    return shown


# ----------------------------------------------------------------------------- loading

def _corrupt(path: Path, why: str) -> CheckpointError:
    return CheckpointError(f"checkpoint {path} is incomplete or corrupt: {why}")


def is_checkpoint_dir(path: str | os.PathLike) -> bool:
    """Whether ``path`` looks like one tinyllm checkpoint (its manifest or its state file is there).

    A Hugging Face model directory (``config.json`` + ``model.safetensors``) is not one.
    """
    p = Path(path)
    return p.is_dir() and ((p / MANIFEST_FILE).exists() or (p / STATE_FILE).exists())


def find_checkpoint(path: str | os.PathLike, prefer: str = "latest") -> Path:
    """The checkpoint directory ``path`` stands for.

    Args:
        path: a checkpoint directory itself, or a run directory.
        prefer: in a run directory, which checkpoint to use ("latest" or "best");
            the other one is used if it is the only one there.

    Raises:
        CheckpointNotFoundError: nothing that looks like a checkpoint is there.
    """
    p = Path(path)
    if not p.exists():
        raise CheckpointNotFoundError(f"checkpoint directory '{path}' does not exist")
    if not p.is_dir():
        raise CheckpointNotFoundError(f"'{path}' is a file, not a checkpoint or run directory")
    if is_checkpoint_dir(p):
        return p
    order = [prefer] + [n for n in CHECKPOINT_NAMES if n != prefer]
    for name in order:
        for candidate in (p / name, _aside(p, name)):  # name.old: a save was killed between renames
            if candidate.is_dir() and is_checkpoint_dir(candidate):
                return candidate
    raise CheckpointNotFoundError(f"no checkpoint in '{path}' (expected {'/ or '.join(CHECKPOINT_NAMES)}/ "
                                  "written by tinyllm train)")


def _verified_path(ckpt: Path, manifest: dict, name: str, required: bool = True) -> tuple[Path, int] | None:
    """(path, size) of ``ckpt/name`` once its place and size agree with the manifest (None: not listed)."""
    entry = manifest["files"].get(name)
    if entry is None:
        if required:
            raise _corrupt(ckpt, f"{name} is not listed in {MANIFEST_FILE}")
        return None
    p = contained(ckpt, name, ckpt / MANIFEST_FILE)     # a symlink out of the checkpoint is refused
    if not p.exists():
        raise _corrupt(ckpt, f"{name} is missing")
    size = regular_file(p, "checkpoint file").st_size
    if size != entry["size"]:                           # checked before reading: no huge read of a wrong file
        raise _corrupt(ckpt, f"{name} has {size} bytes, the manifest says {entry['size']} (truncated?)")
    return p, size


def _check_sha(ckpt: Path, manifest: dict, name: str, digest: str) -> None:
    if digest != manifest["files"][name]["sha256"]:
        raise _corrupt(ckpt, f"{name} does not match its sha256 in {MANIFEST_FILE}")


def _read_verified(ckpt: Path, manifest: dict, name: str, required: bool = True) -> bytes | None:
    """The bytes of ``ckpt/name`` after checking them against the manifest's size and sha256."""
    found = _verified_path(ckpt, manifest, name, required)
    if found is None:
        return None
    data = read_file(found[0], "checkpoint file", max_bytes=found[1])
    _check_sha(ckpt, manifest, name, hashlib.sha256(data).hexdigest())
    return data


def _load_arrays(ckpt: Path, manifest: dict, name: str) -> dict[str, np.ndarray]:
    """The arrays of safetensors file ``ckpt/name``, hashed in blocks and then loaded from the file
    (never the whole file as bytes next to the arrays made from it)."""
    path, _ = _verified_path(ckpt, manifest, name)
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 24), b""):
            h.update(block)
    _check_sha(ckpt, manifest, name, h.hexdigest())
    try:
        arrays = dict(st.load_file(str(path)))
    except Exception as exc:  # safetensors raises its own error types for a bad header
        raise _corrupt(ckpt, f"{name} is not a valid safetensors file ({exc})") from None
    return check_finite(arrays, path)


def _parse_json(ckpt: Path, name: str, data: bytes, check: Any = None) -> Any:
    """Parse a checkpoint's JSON file strictly and run its schema ``check(obj, path)`` on it."""
    try:
        obj = parse_json(data, ckpt / name, name)
    except FileError as exc:
        raise _corrupt(ckpt, exc.what) from None
    if check is not None:
        try:
            check(obj, ckpt / name)
        except FileError as exc:
            raise CheckpointFileError(exc.path, exc.what) from None
    return obj


def _check_tokenizer_json(obj: Any, path: Path) -> None:
    """A saved tokenizer: a character tokenizer's JSON, a seq2seq run's pair of symbol vocabularies,
    or the outline of a Hugging Face tokenizer.json."""
    if isinstance(obj, dict) and obj.get("kind") == "char":
        check_char_tokenizer(obj, path)
    elif isinstance(obj, dict) and obj.get("kind") == "seq2seq-pair":
        check_pair_vocabs(obj, path)
    else:
        check_hf_tokenizer(obj, path)


def read_manifest(ckpt: str | os.PathLike) -> dict:
    """The verified-format manifest of checkpoint directory ``ckpt``."""
    ckpt = Path(ckpt)
    mpath = ckpt / MANIFEST_FILE
    if not mpath.exists():
        raise _corrupt(ckpt, f"{MANIFEST_FILE} is missing (the save did not finish)")
    try:
        data = read_file(contained(ckpt, MANIFEST_FILE, ckpt), "checkpoint manifest")   # a symlink out is refused
    except FileError as exc:
        raise CheckpointFileError(exc.path, exc.what) from None
    manifest = _parse_json(ckpt, MANIFEST_FILE, data)
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        raise _corrupt(ckpt, f"{MANIFEST_FILE} is not a tinyllm checkpoint manifest")
    _parse_json(ckpt, MANIFEST_FILE, data, check_manifest)
    if manifest.get("version", 0) > FORMAT_VERSION:
        raise CheckpointError(f"checkpoint {ckpt} was written by a newer tinyllm (format version "
                              f"{manifest['version']}); upgrade tinyllm to read it")
    return manifest


def _config_and_state(ckpt: Path, manifest: dict) -> tuple[dict, dict]:
    config = _parse_json(ckpt, CONFIG_FILE, _read_verified(ckpt, manifest, CONFIG_FILE), check_ckpt_config)
    state = _parse_json(ckpt, STATE_FILE, _read_verified(ckpt, manifest, STATE_FILE), check_state)
    return config, state


def load_checkpoint(path: str | os.PathLike, prefer: str = "latest", with_optimizer: bool = True) -> Checkpoint:
    """Load and verify a checkpoint (see :func:`find_checkpoint` for ``path`` and ``prefer``).

    Every file is checked against the manifest's size and sha256 before it is
    parsed, and every JSON file against its schema (:mod:`tinyllm.validate`).
    Raises :class:`CheckpointError` with a one-line message otherwise.
    """
    ckpt = find_checkpoint(path, prefer)
    manifest = read_manifest(ckpt)
    config, state = _config_and_state(ckpt, manifest)
    weights = check_weight_dtypes(_load_arrays(ckpt, manifest, WEIGHTS_FILE), ckpt / WEIGHTS_FILE)
    tok = _read_verified(ckpt, manifest, TOKENIZER_FILE, required=False)
    if tok is not None:
        _parse_json(ckpt, TOKENIZER_FILE, tok, _check_tokenizer_json)
    optimizer = None
    if with_optimizer and OPTIMIZER_FILE in manifest["files"]:
        tree = _parse_json(ckpt, OPTIMIZER_FILE, _read_verified(ckpt, manifest, OPTIMIZER_FILE), check_optimizer)
        arrays = _load_arrays(ckpt, manifest, OPTIMIZER_ARRAYS_FILE)
        try:
            optimizer = join_arrays(tree, arrays)
        except KeyError as exc:
            raise _corrupt(ckpt, f"{OPTIMIZER_FILE} refers to array {exc} that is not saved") from None
    return Checkpoint(path=ckpt, config=config, weights=weights,
                      tokenizer_json=tok.decode("utf-8") if tok is not None else None,
                      optimizer=optimizer, state=state)


def load_state_json(path: str | os.PathLike, prefer: str = "latest") -> tuple[Path, dict, dict]:
    """Only (checkpoint dir, config, state) of a checkpoint, verified: cheap, for ``tinyllm info``."""
    ckpt = find_checkpoint(path, prefer)
    config, state = _config_and_state(ckpt, read_manifest(ckpt))
    return ckpt, config, state


# ----------------------------------------------------------------------------- run directories

RUN_MARKERS = ("latest", "best", "latest.old", "best.old", "metrics.jsonl")


def run_of(path: str | os.PathLike) -> Path:
    """The run directory of a checkpoint directory (the parent of its latest/ or best/), else ``path``."""
    p = Path(path)
    return p.parent if p.name in CHECKPOINT_NAMES else p


def holds_run(path: str | os.PathLike) -> bool:
    """Whether directory ``path`` already holds a training run (checkpoints or metrics)."""
    p = Path(path)
    return p.is_dir() and any((p / m).exists() for m in RUN_MARKERS)


def clear_run(path: str | os.PathLike) -> None:
    """Remove a run's checkpoints, metrics and plots from ``path`` (``--force``); other files stay."""
    p = Path(path)
    for name in CHECKPOINT_NAMES:
        for d in [p / name, _aside(p, name), *p.glob(f"{name}.tmp-*")]:
            if d.is_symlink():
                d.unlink()                   # a link the user made: remove it, never what it points to
            elif d.is_dir():
                shutil.rmtree(d)
    for f in ("metrics.jsonl", "loss.png"):
        (p / f).unlink(missing_ok=True)
