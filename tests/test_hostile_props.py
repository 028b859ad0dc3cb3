"""Property: whatever JSON a file holds, each loader succeeds or raises one one-line user error.

"User error" means a ``ValueError`` (``DataError``, ``CheckpointError``,
``FileError``, ``BudgetError`` are all ones), whose message is one line: the
CLI prints exactly that as ``error: ...``. Any other exception (``TypeError``,
``AttributeError``, ``KeyError``, ``OverflowError``, ``RecursionError``, ...)
would be an ``internal error`` and fails the property.

Each loader gets two kinds of documents: random JSON values (the whole file a
list, a string, a number, ...) and a valid document with one field, at any
depth, replaced by a random value or deleted.
"""
from __future__ import annotations

import copy
import hashlib
import json
import shutil
import tempfile
from pathlib import Path
from typing import Any, Callable

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tinyllm.checkpoint import load_checkpoint
from tinyllm.data import CharTokenizer, TokenFile, load_labeled, load_pairs, load_tokenizer, write_token_file
from tinyllm.train import pretrain
from tinyllm.train.metrics import Progress

TEXT = "ROMEO:\nBut soft, what light through yonder window breaks?\n\n" * 30
SMALL = {"n_layer": 1, "n_head": 2, "n_embd": 8, "block_size": 8, "batch_size": 2, "iters": 2, "warmup": 1,
         "eval_interval": 2, "eval_iters": 1, "sample_tokens": 0}

scalars = (st.none() | st.booleans() | st.integers(-(2 ** 70), 2 ** 70) | st.sampled_from([10 ** 400, -1, 0, 2 ** 63])
           | st.floats(allow_nan=True, allow_infinity=True) | st.text(max_size=6))
json_values = st.recursive(scalars, lambda c: st.lists(c, max_size=3) | st.dictionaries(st.text(max_size=5), c,
                                                                                          max_size=3), max_leaves=8)


@st.composite
def mutated(draw: Callable, doc: Any) -> Any:
    """``doc`` with one value somewhere inside replaced by a random one, or deleted."""
    doc = copy.deepcopy(doc)
    node = doc
    while isinstance(node, (dict, list)) and node:
        key = draw(st.sampled_from(list(node) if isinstance(node, dict) else list(range(len(node)))))
        child = node[key]
        if isinstance(child, (dict, list)) and child and draw(st.booleans()):
            node = child
            continue
        if draw(st.booleans()):
            del node[key]
        else:
            node[key] = draw(json_values)
        break
    return doc


def documents(doc: Any) -> st.SearchStrategy:
    return st.one_of(json_values, mutated(doc), mutated(doc).flatmap(mutated))


def user_error_or_success(call: Callable[[], Any]) -> None:
    try:
        call()
    except ValueError as exc:                       # DataError, CheckpointError, FileError, BudgetError
        assert "\n" not in str(exc) and str(exc), repr(exc)


def dumps(obj: Any) -> bytes:
    return json.dumps(obj).encode()                 # NaN and Infinity are written as such: the loader must refuse


# ----------------------------------------------------------------------------- a trained run to damage

@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("props")
    (root / "corpus.txt").write_text(TEXT)
    pretrain({**SMALL, "data": str(root / "corpus.txt")}, out=str(root / "run"), progress=Progress(echo=lambda s: None, enabled=False))
    return root / "run"


def _with_file(run: Path, name: str, data: bytes, fix_manifest: bool = True) -> Path:
    """A copy of ``run`` whose latest/``name`` holds ``data`` (and a manifest that agrees)."""
    dest = Path(tempfile.mkdtemp()) / "run"
    shutil.copytree(run, dest)
    latest = dest / "latest"
    (latest / name).write_bytes(data)
    if fix_manifest and name != "manifest.json":
        manifest = json.loads((latest / "manifest.json").read_text())
        manifest["files"][name] = {"size": len(data), "sha256": hashlib.sha256(data).hexdigest()}
        (latest / "manifest.json").write_text(json.dumps(manifest))
    shutil.rmtree(dest / "best")
    return dest


def _saved(run: Path, name: str) -> Any:
    return json.loads((run / "latest" / name).read_text())


@pytest.mark.parametrize("name", ["config.json", "state.json", "manifest.json", "tokenizer.json", "optimizer.json"])
def test_checkpoint_files(run: Path, name: str) -> None:
    """Loading, restoring and resuming a checkpoint whose file ``name`` holds anything."""
    from tinyllm.train.restore import restore_model

    @settings(max_examples=12)
    @given(documents(_saved(run, name)))
    def check(doc: Any) -> None:
        damaged = _with_file(run, name, dumps(doc))
        metrics = (damaged / "metrics.jsonl").read_bytes()
        try:
            user_error_or_success(lambda: load_checkpoint(damaged))
            user_error_or_success(lambda: restore_model(damaged, prefer="latest"))
            user_error_or_success(lambda: pretrain({"iters": 2}, out=str(damaged), resume=True,
                                                   progress=Progress(echo=lambda s: None, enabled=False)))
            if name == "state.json" and doc != _saved(run, name):
                assert (damaged / "metrics.jsonl").read_bytes() == metrics or _resumable(doc)
        finally:
            shutil.rmtree(damaged.parent, ignore_errors=True)
    check()


def _resumable(state: Any) -> bool:
    """A state that a resume may legitimately accept (then metrics.jsonl is rewritten up to its iteration)."""
    return isinstance(state, dict) and isinstance(state.get("iteration"), int) and state["iteration"] >= 0


@settings(max_examples=20)
@given(documents({"kind": "char", "version": 1, "chars": list("abc"), "special_tokens": ["[PAD]"]}))
def test_tokenizer_file(doc: Any) -> None:
    with tempfile.TemporaryDirectory() as d:
        (Path(d) / "tok.json").write_bytes(dumps(doc))
        user_error_or_success(lambda: load_tokenizer(Path(d) / "tok.json"))


@settings(max_examples=20)
@given(documents({"model": {"type": "BPE", "vocab": {"a": 0, "b": 1, "ab": 2}, "merges": ["a b"]},
                  "added_tokens": [{"id": 3, "content": "<|endoftext|>", "special": True}]}))
def test_hf_tokenizer_json(doc: Any) -> None:
    with tempfile.TemporaryDirectory() as d:
        (Path(d) / "tokenizer.json").write_bytes(dumps(doc))
        user_error_or_success(lambda: load_tokenizer(Path(d) / "tokenizer.json"))


@settings(max_examples=20)
@given(st.data())
def test_token_file_metadata(data: st.DataObject) -> None:
    with tempfile.TemporaryDirectory() as d:
        tok = CharTokenizer(list("abcd"))
        path = Path(d) / "ids.bin"
        write_token_file(path, np.arange(4).repeat(8), tok.vocab_size, tok)
        meta = json.loads(Path(str(path) + ".json").read_text())
        Path(str(path) + ".json").write_bytes(dumps(data.draw(documents(meta))))

        def use() -> None:
            tf = TokenFile(path)
            tf.check_tokenizer(tok)
            tf[np.arange(len(tf))]
        user_error_or_success(use)


@settings(max_examples=20)
@given(documents({"preset": "tiny", "n_layer": 1, "n_head": 2, "n_embd": 8, "lr": 0.01, "data": "tiny",
                  "batch_size": 4, "dropout": 0.1, "out": "runs/x", "resume": False}))
def test_run_config_file(doc: Any) -> None:
    from tinyllm.cli.train import FILE_KEYS
    from tinyllm.train.budget import check_settings
    from tinyllm.train.config import read_config_file, resolve

    def use() -> None:
        settings_ = read_config_file(Path(d) / "run.json", FILE_KEYS)
        for key in ("out", "resume", "force"):
            settings_.pop(key, None)
        check_settings(resolve(settings_))
    with tempfile.TemporaryDirectory() as d:
        (Path(d) / "run.json").write_bytes(dumps(doc))
        user_error_or_success(use)


@pytest.fixture(scope="module")
def hf_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from tinyllm.data import BPETokenizer
    from tinyllm.models import GPT, GPTConfig
    from tinyllm.models.hf import save_pretrained
    d = tmp_path_factory.mktemp("hf") / "m"
    bpe = BPETokenizer.train([TEXT], 270)
    save_pretrained(GPT(GPTConfig(vocab_size=bpe.vocab_size, block_size=8, n_layer=1, n_head=2, n_embd=8)), d, bpe)
    return d


@pytest.mark.parametrize("name", ["config.json", "model.safetensors.index.json"])
def test_hf_files(hf_dir: Path, name: str) -> None:
    from tinyllm.models.hf import load_pretrained
    valid = (json.loads((hf_dir / name).read_text()) if name == "config.json" else
             {"metadata": {"total_size": 1}, "weight_map": {"transformer.wte.weight": "model-1.safetensors"}})

    @settings(max_examples=12)
    @given(documents(valid))
    def check(doc: Any) -> None:
        with tempfile.TemporaryDirectory() as d:
            dest = Path(d) / "m"
            shutil.copytree(hf_dir, dest)
            if name != "config.json":
                (dest / "model.safetensors").rename(dest / "model-1.safetensors")
            (dest / name).write_bytes(dumps(doc))
            user_error_or_success(lambda: load_pretrained(dest))
    check()


@settings(max_examples=20)
@given(st.lists(documents({"text": "a good film", "label": "pos", "prompt": "Q", "response": "A"}), min_size=1,
                max_size=4))
def test_jsonl_rows(rows: list) -> None:
    with tempfile.TemporaryDirectory() as d:
        path = Path(d) / "rows.jsonl"
        path.write_bytes(b"\n".join(dumps(r) for r in rows) + b"\n")
        user_error_or_success(lambda: load_labeled(path))
        user_error_or_success(lambda: load_pairs(path))
