"""Magnitude pruning: which weights go, N:M groups, masks kept through fine-tuning, checkpoints, the CLI."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from hypothesis import given
from hypothesis import strategies as hs

from tinyllm.checkpoint import CheckpointError, load_checkpoint
from tinyllm.optim import configure_adamw
from tinyllm.cli import cli
from tinyllm.compress.prune import (KeepPruned, attach_masks, keep_pruned, magnitude_masks, masked_layers,
                                    parse_structured, prunable, prune_model)
from tinyllm.models import GPT, GPTConfig, SequenceClassifier
from tinyllm.train.restore import build_from_config

CFG = {"vocab_size": 29, "block_size": 16, "n_layer": 2, "n_head": 2, "n_embd": 16}


def _weights(seed: int, shapes=((6, 8), (3, 12), (5, 4))) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    return {f"l{i}": rng.normal(size=s) * (i + 1) for i, s in enumerate(shapes)}


@given(seed=hs.integers(0, 2 ** 16), sparsity=hs.floats(0.0, 0.95))
def test_per_layer_masks_drop_exactly_the_smallest_of_each_layer(seed: int, sparsity: float) -> None:
    ws = _weights(seed)
    masks = magnitude_masks(ws, sparsity)
    for name, w in ws.items():
        m = masks[name]
        assert m.dtype == bool and m.shape == w.shape
        assert (~m).sum() == round(sparsity * w.size)
        if (~m).any() and m.any():
            assert np.abs(w[~m]).max() <= np.abs(w[m]).min()


@given(seed=hs.integers(0, 2 ** 16), sparsity=hs.floats(0.0, 0.95))
def test_global_masks_use_one_threshold_over_all_layers(seed: int, sparsity: float) -> None:
    ws = _weights(seed)
    masks = magnitude_masks(ws, sparsity, scope="global")
    pruned = np.concatenate([np.abs(ws[n][~masks[n]]) for n in ws])
    kept = np.concatenate([np.abs(ws[n][masks[n]]) for n in ws])
    assert pruned.size == round(sparsity * (pruned.size + kept.size))
    if pruned.size and kept.size:
        assert pruned.max() <= kept.min()


def test_n_of_m_keeps_the_largest_n_in_every_group() -> None:
    w = np.random.default_rng(0).normal(size=(5, 12))
    mask = magnitude_masks({"w": w}, 0.0, structured=(2, 4))["w"]
    groups, kept = np.abs(w).reshape(5, 3, 4), mask.reshape(5, 3, 4)
    assert (kept.sum(axis=2) == 2).all()
    assert (np.where(kept, groups, np.inf).min(axis=2) >= np.where(kept, -np.inf, groups).max(axis=2)).all()
    with pytest.raises(ValueError, match="multiple of 4"):
        magnitude_masks({"w": np.ones((2, 6))}, 0.0, structured=(2, 4))
    assert parse_structured("2:4") == (2, 4) and parse_structured(None) is None
    for bad in ("4:2", "2-4", "0:4", "a:b"):
        with pytest.raises(ValueError, match="structured"):
            parse_structured(bad)
    for bad in (1.0, -0.1, True, "0.5"):
        with pytest.raises(ValueError, match="sparsity"):
            magnitude_masks({"w": w}, bad)


def test_what_is_pruned_and_the_report() -> None:
    model = SequenceClassifier(GPT(GPTConfig(**CFG)), 3)
    names = [n for n, _ in prunable(model)]
    assert names == ["h.0.attn.c_attn", "h.0.attn.c_proj", "h.0.mlp.c_fc", "h.0.mlp.c_proj", "h.1.attn.c_attn",
                     "h.1.attn.c_proj", "h.1.mlp.c_fc", "h.1.mlp.c_proj"]            # not lm_head (= wte), not the head
    rows = prune_model(model, 0.3)
    assert [r["layer"] for r in rows] == names
    for r in rows:
        assert r["zeros"] == round(0.3 * np.prod(r["shape"])) and abs(r["sparsity"] - 0.3) < 0.01
    assert len(masked_layers(model)) == 8


def test_keep_pruned_zeroes_the_pruned_weights_after_every_step() -> None:
    model = GPT(GPTConfig(**CFG))
    prune_model(model, 0.5)
    opt = configure_adamw(model, lr=0.1, weight_decay=0.0)
    wrapped = keep_pruned(model, opt)
    assert isinstance(wrapped, KeepPruned) and wrapped.param_groups is opt.param_groups
    assert keep_pruned(GPT(GPTConfig(**CFG)), opt) is opt                          # nothing pruned: unchanged
    idx = np.random.default_rng(0).integers(0, 29, (2, 8))
    for _ in range(2):
        _, loss = model(idx, idx)
        loss.backward()
        wrapped.step()
        wrapped.zero_grad()
    for _, layer in masked_layers(model):
        mask = layer.weight_mask.data
        assert (layer.weight.data[~mask] == 0).all() and (layer.weight.data[mask] != 0).mean() > 0.99


def test_masks_rebuild_from_the_config_and_bad_entries_are_refused() -> None:
    section = {"kind": "gpt", "config": CFG, "pruning": {"layers": ["h.0.mlp.c_fc"]}}
    model = build_from_config(section)
    assert [n for n, _ in masked_layers(model)] == ["h.0.mlp.c_fc"]
    assert "h.0.mlp.c_fc.weight_mask" in model.state_dict()
    for bad in ({"layers": "h.0.mlp.c_fc"}, {"layers": ["h.9.mlp.c_fc"]}, {"layers": ["lm_head"]}, [1],
                {"layers": ["h.0.mlp.c_fc", "h.0.mlp.c_fc"]}):
        with pytest.raises(CheckpointError):
            attach_masks(GPT(GPTConfig(**CFG)), bad)


def test_cli_prune_then_finetune_keeps_the_zeros(tmp_path: Path) -> None:
    corpus = tmp_path / "c.txt"
    corpus.write_text("ROMEO:\nBut soft, what light through yonder window breaks?\n\n" * 30)
    small = ["--n-layer", "1", "--n-head", "2", "--n-embd", "16", "--block-size", "16", "--batch-size", "4",
             "--iters", "4", "--eval-interval", "2", "--eval-iters", "2", "--sample-tokens", "0", "--warmup", "1"]
    runner = CliRunner()
    assert runner.invoke(cli, ["train", "--data", str(corpus), "--out", str(tmp_path / "run"), *small]).exit_code == 0
    res = runner.invoke(cli, ["prune", "--ckpt", str(tmp_path / "run"), "--out", str(tmp_path / "p"),
                              "--structured", "2:4"])
    assert res.exit_code == 0 and "h.0.mlp.c_fc" in res.output and "total sparsity 50.0%" in res.output, res.output
    pairs = tmp_path / "p.jsonl"
    pairs.write_text("".join(json.dumps({"prompt": "ROMEO:\n", "response": "But soft\n"}) + "\n" for _ in range(8)))
    res = runner.invoke(cli, ["finetune", "--ckpt", str(tmp_path / "p"), "--data", str(pairs), "--task", "lm",
                              "--out", str(tmp_path / "ft"), "--iters", "4", "--eval-interval", "2", "--lr", "1e-2"])
    assert res.exit_code == 0, res.output
    before, after = load_checkpoint(tmp_path / "p").weights, load_checkpoint(tmp_path / "ft").weights
    for name in ("h.0.attn.c_attn", "h.0.mlp.c_proj"):
        mask = after[name + ".weight_mask"]
        np.testing.assert_array_equal(mask, before[name + ".weight_mask"])
        assert (after[name + ".weight"][~mask] == 0).all()
        assert not np.array_equal(after[name + ".weight"], before[name + ".weight"])   # the rest trained
    res = runner.invoke(cli, ["eval", "--ckpt", str(tmp_path / "ft"), "--data", str(corpus), "--max-batches", "1"])
    assert res.exit_code == 0, res.output
    res = runner.invoke(cli, ["prune", "--ckpt", str(tmp_path / "run"), "--out", str(tmp_path / "x"),
                              "--structured", "2:4", "--global"])
    assert res.exit_code == 1 and "no --global form" in res.output
    res = runner.invoke(cli, ["prune", "--ckpt", str(tmp_path / "run"), "--out", str(tmp_path / "x"),
                              "--sparsity", "1.5"])
    assert res.exit_code == 1 and "error: sparsity must be" in res.output
