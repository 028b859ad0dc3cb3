"""Hostile and faulty files: path containment, strict JSON, schemas, size limits, symlinked checkpoints.

Each class of bad input must end in one :class:`~tinyllm.data.DataError` (or
``ValueError``) naming the file, never another exception, and never a read
outside the directory a path was named in.
"""
from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest
from safetensors import safe_open
from safetensors.numpy import load_file, save_file

from tinyllm.checkpoint import load_checkpoint, save_checkpoint
from tinyllm.data import BPETokenizer, CharTokenizer, DataError, TokenFile, load_tokenizer, write_token_file
from tinyllm.models import GPT, GPTConfig, build_model
from tinyllm.models.hf import load_pretrained, load_tokenizer as hf_tokenizer, save_pretrained
from tinyllm.train.budget import (BudgetError, check_flags, check_model, check_settings, estimate,
                                  parameter_count)
from tinyllm.train.config import TrainConfig
from tinyllm.validate import (FileError, Fields, contained, parse_json, read_file,
                              check_run_settings, check_state)

TEXT = "the cat sat on the mat. the dog sat on the log.\n" * 20


# ----------------------------------------------------------------------------- path containment

def test_contained_accepts_names_inside_and_refuses_every_way_out(tmp_path: Path) -> None:
    base = tmp_path / "model"
    (base / "sub").mkdir(parents=True)
    (base / "sub" / "a.bin").write_bytes(b"x")
    (tmp_path / "outside.bin").write_bytes(b"y")
    (base / "link.bin").symlink_to(tmp_path / "outside.bin")
    (base / "dirlink").symlink_to(tmp_path)
    (base / "inner.bin").symlink_to(base / "sub" / "a.bin")
    source = base / "index.json"
    assert contained(base, "sub/a.bin", source) == (base / "sub" / "a.bin").resolve()
    assert contained(base, "inner.bin", source) == (base / "sub" / "a.bin").resolve()   # a link that stays inside
    for name in ("../outside.bin", "/etc/passwd", str(tmp_path / "outside.bin"), "link.bin", "dirlink/outside.bin",
                 "sub/../../outside.bin", ".", "", "  ", "a\x00b", 5, None, ["x"]):
        with pytest.raises(FileError, match="index.json") as info:
            contained(base, name, source)
        assert "\n" not in str(info.value)


def _hf_dir(root: Path) -> tuple[Path, GPT]:
    bpe = BPETokenizer.train([TEXT], 280)
    model = GPT(GPTConfig(vocab_size=bpe.vocab_size, block_size=8, n_layer=1, n_head=2, n_embd=8))
    save_pretrained(model, root, bpe)
    return root, model


@pytest.mark.parametrize("shard", ["../outside/x.safetensors", "/etc/passwd", "link.safetensors",
                                   "OUTSIDE_ABS"])
def test_hf_shard_index_cannot_name_files_outside_the_directory(tmp_path: Path, shard: str) -> None:
    d, _ = _hf_dir(tmp_path / "m")
    (tmp_path / "outside").mkdir()
    (d / "model.safetensors").rename(tmp_path / "outside" / "x.safetensors")
    (d / "link.safetensors").symlink_to(tmp_path / "outside" / "x.safetensors")
    shard = str(tmp_path / "outside" / "x.safetensors") if shard == "OUTSIDE_ABS" else shard
    (d / "model.safetensors.index.json").write_text(json.dumps({"weight_map": {"transformer.wte.weight": shard}}))
    with pytest.raises(FileError, match=r"model.safetensors.index.json: .*outside .*refusing to read it"):
        load_pretrained(d)


def test_hf_shards_inside_the_directory_load(tmp_path: Path) -> None:
    d, model = _hf_dir(tmp_path / "m")
    (d / "shards").mkdir()
    (d / "model.safetensors").rename(d / "shards" / "part-1.safetensors")
    names = safe_open(str(d / "shards" / "part-1.safetensors"), "np").keys()
    (d / "model.safetensors.index.json").write_text(json.dumps({"weight_map": {
        n: "shards/part-1.safetensors" for n in names}}))
    loaded, _ = load_pretrained(d)
    assert np.array_equal(loaded.state_dict()["wte.weight"], model.state_dict()["wte.weight"])


def _two_shards(d: Path, misplace: bool) -> None:
    """Split ``d``'s weights into two shards: the first tensor written to both (or, with ``misplace``,
    put in the second shard while the index places it in the first)."""
    tensors = load_file(str(d / "model.safetensors"))
    (d / "model.safetensors").unlink()
    names = sorted(tensors)
    first, second = names[: len(names) // 2], names[len(names) // 2:]
    save_file({n: tensors[n] for n in first[misplace:]}, str(d / "a.safetensors"))
    save_file({n: tensors[n] for n in [first[0], *second]}, str(d / "b.safetensors"))
    index = {n: "a.safetensors" for n in first} | {n: "b.safetensors" for n in second}
    (d / "model.safetensors.index.json").write_text(json.dumps({"weight_map": index}))


@pytest.mark.parametrize("misplace,message", [(False, "is in another shard as well"),
                                              (True, "which model.safetensors.index.json does not place in it")])
def test_hf_shards_hold_what_the_index_says(tmp_path: Path, misplace: bool, message: str) -> None:
    d, _ = _hf_dir(tmp_path / "m")
    _two_shards(d, misplace)
    with pytest.raises(ValueError, match=message):
        load_pretrained(d)


def test_hf_tokenizer_files_are_contained_and_checked(tmp_path: Path) -> None:
    d, _ = _hf_dir(tmp_path / "m")
    (d / "tokenizer.json").rename(tmp_path / "elsewhere.json")
    (d / "tokenizer.json").symlink_to(tmp_path / "elsewhere.json")
    with pytest.raises(FileError, match="'tokenizer.json' resolves to .* outside"):
        hf_tokenizer(d)
    (d / "tokenizer.json").unlink()
    (d / "vocab.json").write_text(json.dumps({"a": 0, "b": "x"}))
    (d / "merges.txt").write_text("#version: 0.2\na b\n")
    with pytest.raises(FileError, match=r"vocab.json: the id of token \"b\" must be an integer"):
        hf_tokenizer(d)
    (d / "vocab.json").write_text(json.dumps({"a": 0, "b": 1, "ab": 2}))
    (d / "merges.txt").write_text("#version: 0.2\na b c\n")
    with pytest.raises(FileError, match="merges.txt: line 2: expected two tokens"):
        hf_tokenizer(d)
    (d / "merges.txt").write_text("#version: 0.2\nx y\n")            # tokens the vocabulary lacks: the library's error
    with pytest.raises(FileError, match="merges.txt: is not a valid vocab.json"):
        hf_tokenizer(d)
    (d / "merges.txt").write_text("#version: 0.2\na b\n")
    assert hf_tokenizer(d).encode("ab") == [2]


# ----------------------------------------------------------------------------- strict reading

def test_read_file_refuses_directories_fifos_devices_and_huge_files(tmp_path: Path) -> None:
    with pytest.raises(FileError, match="does not exist"):
        read_file(tmp_path / "nope")
    with pytest.raises(FileError, match="is a directory"):
        read_file(tmp_path)
    os.mkfifo(tmp_path / "fifo")
    with pytest.raises(FileError, match="not a regular file"):            # never opened: would block
        read_file(tmp_path / "fifo")
    with pytest.raises(FileError, match="not a regular file"):            # never read: would not end
        read_file("/dev/zero")
    (tmp_path / "big").write_bytes(b"x" * 2000)
    with pytest.raises(FileError, match="more than the 1000 bytes"):
        read_file(tmp_path / "big", max_bytes=1000)
    (tmp_path / "loop").symlink_to(tmp_path / "loop")
    with pytest.raises(FileError, match="loop"):
        read_file(tmp_path / "loop")


@pytest.mark.parametrize("raw,why", [(b"[" * 100_000, "nested too deeply"), (b"[" * 70 + b"]" * 70, "nested more"),
                                     (b'{"a": NaN}', "NaN"), (b"[Infinity]", "Infinity"),
                                     (b"1" * 5000, "4300 digits"), (b"\xff\xfe{}", "not UTF-8"),
                                     (b"{", "not valid JSON"), (b"", "not valid JSON")])
def test_parse_json_is_strict(tmp_path: Path, raw: bytes, why: str) -> None:
    with pytest.raises(FileError, match=why) as info:
        parse_json(raw, tmp_path / "f.json")
    assert str(info.value).startswith(str(tmp_path / "f.json") + ": ")
    assert parse_json(b'\xef\xbb\xbf{"a": [1, 2.5, "x", null, true]}', "f") == {"a": [1, 2.5, "x", None, True]}


def test_fields_name_the_key_and_the_file() -> None:
    f = Fields({"n": 3, "s": "x", "b": True, "big": 10 ** 400, "nan": float("nan"), "o": {"k": [1]}}, "cfg.json")
    assert f.int("n", 1, 5) == 3 and f.string("s") == "x" and f.boolean("b") is True
    assert f.int("missing", default=7) == 7
    for call, match in [(lambda: f.int("missing"), "cfg.json: missing key 'missing'"),
                        (lambda: f.int("b"), "'b' must be an integer in \\[0, .*got true"),
                        (lambda: f.int("s"), "got \"x\""), (lambda: f.int("n", 4, 5), "got 3"),
                        (lambda: f.number("big", 0, 1), "got a huge integer"),
                        (lambda: f.number("nan"), "got NaN"), (lambda: f.string("n"), "got 3"),
                        (lambda: f.object("o").int("k"), "'o.k' must be an integer"),
                        (lambda: Fields([1], "x.json"), "x.json: the file must be a JSON object, got a list")]:
        with pytest.raises(FileError, match=match):
            call()


def test_run_settings_schema_covers_every_training_setting() -> None:
    from dataclasses import fields

    from tinyllm.validate.schema import RUN_SETTINGS
    assert {f.name for f in fields(TrainConfig)} <= set(RUN_SETTINGS)
    check_run_settings(TrainConfig().to_dict(), "run.json")               # the defaults pass
    with pytest.raises(FileError, match="'n_layer' must be an integer in \\[1, 1024\\] or null, got 1000000"):
        check_run_settings({"n_layer": 10 ** 6}, "run.json")


def test_config_file_errors_name_the_file(tmp_path: Path) -> None:
    from tinyllm.train.config import read_config_file
    keys = ("lr", "n_layer", "data")
    for name, text, match in [("a.json", '{"lr": "x"}', "'lr' must be a finite number"),
                              ("b.json", "[" * 100_000, "not valid JSON"), ("c.toml", "lr = 1979-05-27", "got date"),
                              ("d.json", '{"n_layer": true}', "got true"), ("e.json", '{"data": 5}', "'data' must be")]:
        (tmp_path / name).write_text(text)
        with pytest.raises(ValueError, match=match):
            read_config_file(tmp_path / name, keys)
    with pytest.raises(ValueError, match="not a regular file"):
        read_config_file("/dev/zero", keys)


# ----------------------------------------------------------------------------- checkpoints

def _save(run: Path, name: str = "latest", **state) -> None:
    cfg = {"vocab_size": 3, "block_size": 4, "n_layer": 1, "n_head": 1, "n_embd": 4}
    save_checkpoint(run, name, config={"model": {"kind": "gpt", "config": cfg}, "train": {}},
                    weights=build_model("gpt", cfg).state_dict(), tokenizer_json=CharTokenizer(list("abc")).to_json(),
                    state={"iteration": 1, **state})


def test_state_schema_refuses_what_a_resume_cannot_use(tmp_path: Path) -> None:
    for state, match in [({"iteration": -5}, "'iteration' must be an integer"), ({"iteration": "3"}, "got \"3\""),
                         ({"rng": {"numpy": {"bit_generator": "PCG64", "state": "x"}}}, "not a usable PCG64 state"),
                         ({"data": {"rng": {"bit_generator": "Evil"}}}, "'data.rng.bit_generator' must be"),
                         ({"data": {"batcher": [1]}}, "'data.batcher' must be a JSON object"),
                         ({"best_val_loss": "low"}, "'best_val_loss' must be")]:
        with pytest.raises(FileError, match=match):
            check_state(state, "state.json")


def test_checkpoint_files_must_not_be_symlinks_out_of_the_checkpoint(tmp_path: Path) -> None:
    _save(tmp_path / "run")
    latest = tmp_path / "run" / "latest"
    (latest / "state.json").rename(tmp_path / "state.json")
    (latest / "state.json").symlink_to(tmp_path / "state.json")
    with pytest.raises(FileError, match="'state.json' resolves to .* outside"):
        load_checkpoint(tmp_path / "run")


def test_a_symlinked_latest_is_saved_through_twice(tmp_path: Path) -> None:
    run, pinned = tmp_path / "run", tmp_path / "pinned"
    _save(run)
    (run / "latest").rename(pinned)
    (run / "latest").symlink_to(pinned)
    for it in (2, 3):                                          # the second save used to fail: "Not a directory"
        _save(run, iteration=it)
        assert (run / "latest").is_symlink() and load_checkpoint(run).iteration == it
    assert load_checkpoint(pinned).iteration == 3
    assert sorted(p.name for p in tmp_path.iterdir()) == ["pinned", "run"]     # no leftovers beside the target


def test_token_file_with_ids_beyond_its_vocabulary_is_refused_when_opened(tmp_path: Path) -> None:
    tok = CharTokenizer(list("abcd"))
    path = tmp_path / "ids.bin"
    write_token_file(path, np.arange(4).repeat(10), tok.vocab_size, tok)
    np.array([0, 1, 2, 9] * 10, dtype=np.uint16).tofile(path)              # same size, one id too large
    with pytest.raises(FileError, match="holds token id 9 .* outside the vocabulary of 4"):
        TokenFile(path)
    write_token_file(path, np.arange(4).repeat(10), 6)                     # fits its own vocabulary of 6 ...
    with pytest.raises(DataError, match="beyond the tokenizer's 4 tokens"):
        TokenFile(path).check_tokenizer(tok)                               # ... but not this tokenizer's


def test_char_tokenizer_file_values_are_checked(tmp_path: Path) -> None:
    for obj, match in [({"kind": "char", "chars": [1, 2]}, "'chars' must be a list"),
                       ({"kind": "char", "chars": ["ab"]}, "must be one character"),
                       ({"kind": "char", "chars": ["a", "a"]}, "repeated characters"),
                       ({"kind": "char", "chars": ["a"], "special_tokens": [{}]}, "'special_tokens' must be")]:
        (tmp_path / "t.json").write_text(json.dumps(obj))
        with pytest.raises(FileError, match=match):
            load_tokenizer(tmp_path / "t.json")


# ----------------------------------------------------------------------------- the size budget

@pytest.mark.parametrize("kind,extra", [("gpt", {}), ("gpt", {"tie_weights": False}), ("bert", {})])
def test_parameter_count_matches_the_model(kind: str, extra: dict) -> None:
    cfg = {"vocab_size": 37, "block_size": 16, "n_layer": 2, "n_head": 2, "n_embd": 12, **extra}
    actual = build_model(kind, cfg).num_parameters()
    assert abs(parameter_count(kind, cfg) - actual) <= 0.01 * actual


def test_a_model_too_big_for_memory_is_refused_with_the_figures() -> None:
    huge = {"vocab_size": 50257, "block_size": 1024, "n_layer": 1024, "n_head": 16, "n_embd": 16384}
    with pytest.raises(BudgetError, match=r"needs about .* TB of memory \(3,.*parameters.* but only .* is there"):
        check_model("gpt", huge)
    with pytest.raises(BudgetError, match="n_layer 2,000 is more than tinyllm builds"):
        check_model("gpt", {**huge, "n_layer": 2000})
    small = {"vocab_size": 65, "block_size": 64, "n_layer": 2, "n_head": 4, "n_embd": 96}
    est = check_model("gpt", small, training=True, batch_size=16)
    assert est.parameters == build_model("gpt", small).num_parameters()
    assert estimate("gpt", small, 64).activation_bytes == 4 * estimate("gpt", small, 16).activation_bytes


def test_settings_and_flags_above_the_limits_are_refused() -> None:
    with pytest.raises(BudgetError, match="--n-layer 1,000,000 is more than tinyllm allows"):
        check_settings(TrainConfig(n_layer=10 ** 6))
    with pytest.raises(BudgetError, match="--max-new-tokens"):
        check_flags(max_new_tokens=10 ** 12)
    check_flags(max_new_tokens=100, top_k=None)
