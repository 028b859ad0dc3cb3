"""Checkpoints: round trips, verification on load, and atomicity under crashes at every step of a save."""
from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest

import tinyllm.checkpoint as ck
from tinyllm.checkpoint import (CheckpointError, CheckpointNotFoundError, clear_run, find_checkpoint, holds_run,
                                join_arrays, load_checkpoint, save_checkpoint, split_arrays)


MODEL_CONFIG = {"vocab_size": 3, "block_size": 8, "n_layer": 1, "n_head": 1, "n_embd": 4}


def _payload(value: float) -> dict:
    w = np.full((3, 4), value, dtype=np.float32)
    return dict(config={"model": {"kind": "gpt", "config": MODEL_CONFIG}, "train": {"lr": 0.1}},
                weights={"wte.weight": w, "lm_head.weight": w, "b": np.arange(4, dtype=np.float32)},
                tokenizer_json='{"kind": "char", "chars": ["a"]}',
                optimizer={"type": "AdamW", "step": int(value), "param_groups": [{"lr": 0.1, "betas": [0.9, 0.99]}],
                           "state": {"group0.exp_avg": np.full(16, value), "group0.step": np.arange(3)}},
                state={"iteration": int(value), "best_val_loss": None, "rng": {"seed": 1}})


def test_round_trip_keeps_every_array_and_value(tmp_path: Path) -> None:
    save_checkpoint(tmp_path, "latest", **_payload(7.0))
    c = load_checkpoint(tmp_path)
    assert c.path == tmp_path / "latest"
    assert c.iteration == 7 and c.model_kind == "gpt" and c.model_config == MODEL_CONFIG
    assert np.array_equal(c.weights["wte.weight"], np.full((3, 4), 7.0, np.float32))
    assert c.weights["wte.weight"].dtype == np.float32
    assert np.array_equal(c.optimizer["state"]["group0.step"], np.arange(3))
    assert c.optimizer["param_groups"] == [{"lr": 0.1, "betas": [0.9, 0.99]}]
    assert c.tokenizer_json == '{"kind": "char", "chars": ["a"]}'
    assert c.state["rng"] == {"seed": 1}
    files = json.loads((tmp_path / "latest" / "manifest.json").read_text())["files"]
    assert set(files) == {"model.safetensors", "config.json", "tokenizer.json", "optimizer.safetensors",
                          "optimizer.json", "state.json"}


def test_split_and_join_arrays_are_inverse() -> None:
    tree = {"a": [1, np.arange(3), {"b": np.ones((2, 2))}], "c": np.float32(2.5), "d": "x"}
    json_tree, arrays = split_arrays(tree)
    json.dumps(json_tree)  # JSON-able
    assert json_tree["c"] == 2.5 and set(arrays) == {"a/1", "a/2/b"}
    back = join_arrays(json_tree, arrays)
    assert np.array_equal(back["a"][1], np.arange(3)) and np.array_equal(back["a"][2]["b"], np.ones((2, 2)))


def test_saving_replaces_the_old_checkpoint_and_leaves_no_temporaries(tmp_path: Path) -> None:
    save_checkpoint(tmp_path, "latest", **_payload(1.0))
    save_checkpoint(tmp_path, "latest", **_payload(2.0))
    assert load_checkpoint(tmp_path).iteration == 2
    assert sorted(p.name for p in tmp_path.iterdir()) == ["latest"]


def test_best_and_latest_are_found_by_preference(tmp_path: Path) -> None:
    save_checkpoint(tmp_path, "best", **_payload(1.0))
    save_checkpoint(tmp_path, "latest", **_payload(2.0))
    assert load_checkpoint(tmp_path, prefer="best").iteration == 1
    assert load_checkpoint(tmp_path, prefer="latest").iteration == 2
    assert load_checkpoint(tmp_path / "best").iteration == 1
    (tmp_path / "other").mkdir()
    save_checkpoint(tmp_path / "other", "best", **_payload(3.0))
    assert load_checkpoint(tmp_path / "other", prefer="latest").iteration == 3  # falls back to the one there


@pytest.mark.parametrize("damage", ["truncate", "flip", "delete", "manifest", "garbage_manifest"])
def test_a_damaged_checkpoint_is_a_clear_error(tmp_path: Path, damage: str) -> None:
    save_checkpoint(tmp_path, "latest", **_payload(1.0))
    d = tmp_path / "latest"
    weights = d / "model.safetensors"
    if damage == "truncate":
        weights.write_bytes(weights.read_bytes()[:-10])
    elif damage == "flip":
        data = bytearray(weights.read_bytes())
        data[-1] ^= 0xFF
        weights.write_bytes(bytes(data))
    elif damage == "delete":
        (d / "state.json").unlink()
    elif damage == "manifest":
        (d / "manifest.json").unlink()
    else:
        (d / "manifest.json").write_text("{not json")
    with pytest.raises(CheckpointError, match=r"checkpoint .*latest is incomplete or corrupt: "):
        load_checkpoint(tmp_path)


def test_missing_checkpoints_are_reported(tmp_path: Path) -> None:
    with pytest.raises(CheckpointNotFoundError, match="does not exist"):
        find_checkpoint(tmp_path / "nope")
    with pytest.raises(CheckpointNotFoundError, match="no checkpoint in"):
        find_checkpoint(tmp_path)
    (tmp_path / "f").write_text("x")
    with pytest.raises(CheckpointNotFoundError, match="is a file"):
        find_checkpoint(tmp_path / "f")


class Crash(BaseException):
    """Stands for the process dying (not an Exception, like SIGKILL it is never handled)."""


def _crash_on_call(monkeypatch: pytest.MonkeyPatch, target: object, name: str, n: int) -> None:
    real = getattr(target, name)
    calls = {"n": 0}

    def wrapper(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == n:
            raise Crash
        return real(*args, **kwargs)
    monkeypatch.setattr(target, name, wrapper)


@pytest.mark.parametrize("where,n", [("_write_file", k) for k in range(1, 6)] + [("_write_arrays", 1),
                                                                                 ("_write_arrays", 2), ("rename", 1),
                                                                                 ("rename", 2), ("rmtree", 1)])
def test_a_crash_at_any_step_of_a_save_leaves_a_complete_checkpoint(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                                     where: str, n: int) -> None:
    save_checkpoint(tmp_path, "latest", **_payload(1.0))
    with monkeypatch.context() as m:
        if where in ("_write_file", "_write_arrays"):
            _crash_on_call(m, ck, where, n)                   # JSON file n of 5 (the manifest is the 5th), array file n of 2
        elif where == "rename":
            _crash_on_call(m, ck.os, "rename", n)             # 1: latest -> latest.old, 2: tmp -> latest
        else:
            _crash_on_call(m, ck.shutil, "rmtree", n)         # removing latest.old after the swap
        with pytest.raises(Crash):
            save_checkpoint(tmp_path, "latest", **_payload(2.0))
    loaded = load_checkpoint(tmp_path)                        # never corrupt: the old one or the new one
    assert loaded.iteration in (1, 2)
    assert np.array_equal(loaded.weights["b"], np.arange(4, dtype=np.float32))
    save_checkpoint(tmp_path, "latest", **_payload(3.0))      # the next save cleans up after the crash
    assert load_checkpoint(tmp_path).iteration == 3
    assert sorted(p.name for p in tmp_path.iterdir()) == ["latest"]


def test_killed_between_renames_the_old_checkpoint_is_used(tmp_path: Path) -> None:
    save_checkpoint(tmp_path, "latest", **_payload(4.0))
    os.rename(tmp_path / "latest", tmp_path / "latest.old")   # the state right after the first rename
    assert load_checkpoint(tmp_path).iteration == 4


def test_no_pickle_is_ever_loaded(tmp_path: Path) -> None:
    save_checkpoint(tmp_path, "latest", **_payload(1.0))
    for f in (tmp_path / "latest").iterdir():
        assert not f.read_bytes().startswith(b"\x80"), f"{f.name} looks like a pickle"
    with pytest.raises((TypeError, ValueError)):
        save_checkpoint(tmp_path, "x", config={"model": {}}, weights={"w": np.array([object()])})


def test_holds_run_and_clear_run(tmp_path: Path) -> None:
    assert not holds_run(tmp_path)
    (tmp_path / "notes.txt").write_text("mine")
    assert not holds_run(tmp_path)
    save_checkpoint(tmp_path, "latest", **_payload(1.0))
    (tmp_path / "metrics.jsonl").write_text("{}\n")
    assert holds_run(tmp_path)
    clear_run(tmp_path)
    assert not holds_run(tmp_path) and (tmp_path / "notes.txt").read_text() == "mine"
