"""LoRA: gradients of the adapted layer, what trains, merging, the adapter on disk, the command line."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from hypothesis import given
from hypothesis import strategies as hs

import tinyllm
from tinyllm.optim import configure_adamw
from tinyllm.checkpoint import save_checkpoint
from tinyllm.cli import cli
from tinyllm.compress.adapter import (ADAPTER_CONFIG, AdapterError, load_adapter, lora_settings, save_adapter,
                                      sha256_file)
from tinyllm.gradcheck import gradcheck
from tinyllm.models import BERT, GPT, BertConfig, GPTConfig, SequenceClassifier
from tinyllm.nn import Linear, functional_call
from tinyllm.nn.lora import LoRALinear, apply_lora, lora_layers, merge_lora, trainable_count, unmerge_lora

CFG = dict(vocab_size=23, block_size=16, n_layer=2, n_head=2, n_embd=16)


def _randomize_b(model, seed: int = 1, std: float = 0.5) -> None:
    """B starts at zero (the adapted model equals the base): give it values so the adapters matter."""
    rng = np.random.default_rng(seed)
    for _, layer in lora_layers(model):
        layer.lora_B.data[...] = rng.normal(0, std, layer.lora_B.shape)


# ----------------------------------------------------------------------------- the layer

@given(n_in=hs.integers(1, 6), parts=hs.sampled_from([1, 3]), rows=hs.integers(1, 4), r=hs.integers(1, 3),
       pick=hs.sets(hs.integers(0, 2), min_size=1), seed=hs.integers(0, 2 ** 16))
def test_lora_linear_gradients_match_finite_differences(n_in, parts, rows, r, pick, seed) -> None:
    tinyllm.set_default_dtype("float64")
    slices = tuple(s for s in pick if s < parts) or (0,)
    layer = LoRALinear(Linear(n_in, parts * rows), r=r, alpha=2.0, slices=slices, parts=parts)
    rng = np.random.default_rng(seed)
    layer.lora_B.data[...] = rng.normal(size=layer.lora_B.shape)
    names = [n for n, _ in layer.named_parameters()]
    weights = [tinyllm.Tensor(p.data.copy(), requires_grad=True) for _, p in layer.named_parameters()]
    x = tinyllm.Tensor(rng.normal(size=(2, 3, n_in)), requires_grad=True)
    assert gradcheck(lambda x, *ws: functional_call(layer, dict(zip(names, ws)), x), x, *weights)


def test_lora_linear_is_the_formula_and_starts_as_the_base() -> None:
    tinyllm.set_default_dtype("float64")
    base = Linear(5, 6)
    x = np.random.default_rng(0).normal(size=(4, 5))
    plain = base(tinyllm.Tensor(x)).data.copy()
    layer = LoRALinear(base, r=2, alpha=6.0, slices=(2,), parts=3)
    assert layer.weight is base.weight and layer.bias is base.bias
    np.testing.assert_array_equal(layer(tinyllm.Tensor(x)).data, plain)          # B = 0: the base exactly
    bound = 1 / np.sqrt(5)
    assert np.abs(layer.lora_A.data).max() <= bound and np.abs(layer.lora_A.data).std() > bound / 4
    layer.lora_B.data[...] = np.random.default_rng(1).normal(size=layer.lora_B.shape)
    a, b = layer.lora_A.data[0], layer.lora_B.data[0]
    want = plain.copy()
    want[:, 4:6] += 3.0 * x @ a.T @ b.T                                          # scale = alpha / r, rows of v
    np.testing.assert_allclose(layer(tinyllm.Tensor(x)).data, want, rtol=1e-12, atol=1e-12)


def test_lora_linear_matches_torch() -> None:
    torch = pytest.importorskip("torch")
    tinyllm.set_default_dtype("float64")
    layer = LoRALinear(Linear(7, 5), r=3, alpha=4.0)
    layer.lora_B.data[...] = np.random.default_rng(2).normal(size=layer.lora_B.shape)
    x = np.random.default_rng(3).normal(size=(2, 7))
    w, bias, a, b = (torch.tensor(t.data, requires_grad=True) for t in (layer.weight, layer.bias, layer.lora_A,
                                                                          layer.lora_B))
    xt = torch.tensor(x)
    yt = xt @ w.T + bias + (4.0 / 3) * (xt @ a[0].T) @ b[0].T
    yt.sum().backward()
    xs = tinyllm.Tensor(x)
    y = layer(xs)
    y.sum().backward()
    np.testing.assert_allclose(y.data, yt.detach().numpy(), rtol=1e-12)
    np.testing.assert_allclose(layer.lora_A.grad, a.grad.numpy(), rtol=1e-10)
    np.testing.assert_allclose(layer.lora_B.grad, b.grad.numpy(), rtol=1e-10)


def test_bad_layer_arguments_are_refused() -> None:
    with pytest.raises(ValueError, match="rank"):
        LoRALinear(Linear(4, 4), r=0)
    with pytest.raises(ValueError, match="alpha"):
        LoRALinear(Linear(4, 4), r=2, alpha=float("nan"))
    with pytest.raises(ValueError, match="parts"):
        LoRALinear(Linear(4, 4), r=2, parts=3)
    with pytest.raises(ValueError, match="slices"):
        LoRALinear(Linear(4, 6), r=2, slices=(3,), parts=3)
    with pytest.raises(TypeError):
        LoRALinear(LoRALinear(Linear(4, 4), r=1), r=1)


# ----------------------------------------------------------------------------- applying it to models

def test_targets_by_name_and_packed_qkv_thirds() -> None:
    model = GPT(GPTConfig(**CFG))
    names = apply_lora(model, "q,v,attn.c_proj", r=2)
    assert names == ["h.0.attn.c_attn", "h.0.attn.c_proj", "h.1.attn.c_attn", "h.1.attn.c_proj"]
    assert model.h[0].attn.c_attn.slices == (0, 2) and model.h[0].attn.c_attn.lora_B.shape == (2, 16, 2)
    assert not isinstance(model.h[0].mlp.c_proj, LoRALinear)
    model = GPT(GPTConfig(**CFG))
    assert apply_lora(model, ("c_proj",), r=2) == ["h.0.attn.c_proj", "h.0.mlp.c_proj", "h.1.attn.c_proj",
                                                    "h.1.mlp.c_proj"]
    bert = BERT(BertConfig(**CFG))
    assert len(apply_lora(bert, ("query", "value"), r=2)) == 2                   # BERT's names for q and v
    with pytest.raises(ValueError, match="matches no Linear"):
        apply_lora(GPT(GPTConfig(**CFG)), ("c_attn", "dense"), r=2)
    with pytest.raises(ValueError, match="cannot be combined"):
        apply_lora(GPT(GPTConfig(**CFG)), ("c_attn", "q"), r=2)
    with pytest.raises(ValueError, match="already has"):
        apply_lora(model, ("c_proj",), r=2)


def test_only_adapters_and_the_new_head_get_gradients_and_optimizer_state() -> None:
    model = SequenceClassifier(GPT(GPTConfig(**CFG)), 3)
    apply_lora(model.backbone, ("c_attn", "c_proj"), r=2)
    _randomize_b(model)
    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    assert trainable == {n for n, _ in model.named_parameters() if "lora_" in n or n.startswith("classifier.")}
    k, total = trainable_count(model)
    assert k == sum(model.state_dict()[n].size for n in trainable) and k < total / 4
    before = {n: p.data.copy() for n, p in model.named_parameters()}
    opt = configure_adamw(model, lr=1e-2, weight_decay=0.1)
    in_opt = {id(p) for g in opt.param_groups for p in g["params"]}
    assert in_opt == {id(p) for n, p in model.named_parameters() if n in trainable}
    idx = np.random.default_rng(0).integers(0, 23, (4, 6))
    _, loss = model(idx, np.array([0, 1, 2, 0]))
    loss.backward()
    assert {n for n, p in model.named_parameters() if p.grad is not None} == trainable
    opt.step()
    for n, p in model.named_parameters():
        assert np.array_equal(p.data, before[n]) != (n in trainable), n


@pytest.mark.parametrize("dtype,tol", [("float64", 1e-12), ("float32", 1e-5)])
def test_merged_logits_equal_unmerged_and_merging_twice_changes_nothing(dtype: str, tol: float) -> None:
    tinyllm.set_default_dtype(dtype)
    model = GPT(GPTConfig(**CFG))
    w0 = model.h[0].attn.c_attn.weight.data.copy()
    apply_lora(model, ("q", "v", "c_proj", "c_fc"), r=4, alpha=8)
    _randomize_b(model, std=0.05)
    model.eval()
    idx = np.random.default_rng(0).integers(0, 23, (2, 10))
    unmerged = model(idx)[0].data.copy()
    merge_lora(model)
    merged = model(idx)[0].data.copy()
    w_merged = model.h[0].attn.c_attn.weight.data.copy()
    merge_lora(model)
    np.testing.assert_array_equal(model.h[0].attn.c_attn.weight.data, w_merged)
    assert np.abs(merged - unmerged).max() <= tol * max(1.0, np.abs(unmerged).max())
    unmerge_lora(model)
    np.testing.assert_allclose(model.h[0].attn.c_attn.weight.data, w0, atol=tol)
    assert np.abs(model(idx)[0].data - unmerged).max() <= tol * max(1.0, np.abs(unmerged).max())


# ----------------------------------------------------------------------------- the adapter on disk

def _base(tmp_path: Path, name: str = "base", seed: int = 0) -> tuple[Path, GPT]:
    tinyllm.manual_seed(seed)
    model = GPT(GPTConfig(**CFG))
    save_checkpoint(tmp_path / name, "best", config={"model": {"kind": "gpt", "config": model.config.to_dict()}},
                    weights=model.state_dict())
    return tmp_path / name, model


def _adapter(tmp_path: Path, base_dir: Path, model: GPT) -> tuple[Path, np.ndarray]:
    settings = lora_settings(2, 4.0, 0.0, "q,v")
    base_weights = model.state_dict()
    apply_lora(model, settings["targets"], settings["r"], settings["alpha"])
    _randomize_b(model)
    model.eval()
    logits = model(np.arange(8)[None] % 23)[0].data.copy()
    out = save_adapter(model, tmp_path / "adapter", settings, {"kind": "gpt", "config": model.config.to_dict()},
                       base_weights, sha256_file(base_dir / "best" / "model.safetensors"))
    return out, logits


def test_adapter_round_trip_onto_its_base(tmp_path: Path) -> None:
    base_dir, model = _base(tmp_path)
    out, logits = _adapter(tmp_path, base_dir, model)
    files = sorted(p.name for p in out.iterdir())
    assert files == ["adapter.safetensors", ADAPTER_CONFIG]
    assert (out / "adapter.safetensors").stat().st_size < (base_dir / "best" / "model.safetensors").stat().st_size / 3
    loaded = load_adapter(out, base_dir)
    np.testing.assert_allclose(loaded(np.arange(8)[None] % 23)[0].data, logits, rtol=1e-5, atol=1e-6)
    merge_lora(loaded)
    np.testing.assert_allclose(loaded(np.arange(8)[None] % 23)[0].data, logits, rtol=1e-4, atol=1e-5)


def test_adapter_refuses_another_base_and_a_bad_config(tmp_path: Path) -> None:
    base_dir, model = _base(tmp_path)
    out, _ = _adapter(tmp_path, base_dir, model)
    other, _ = _base(tmp_path, "other", seed=1)
    with pytest.raises(AdapterError, match="SHA-256"):
        load_adapter(out, other)
    cfg = json.loads((out / ADAPTER_CONFIG).read_text())
    good = json.dumps(cfg)
    cfg["base"]["shapes"]["wte.weight"] = [23, 17]
    (out / ADAPTER_CONFIG).write_text(json.dumps(cfg))
    with pytest.raises(AdapterError, match="differs at wte.weight"):
        load_adapter(out, base_dir)
    for path, value, message in ((("lora", "r"), -1, "rank"), (("lora", "targets"), 5, "lora section"),
                                 (("format",), "x", "not a tinyllm LoRA"), (("tensors",), {"a": [1.5]}, "sizes"),
                                 (("base", "weights_sha256"), 7, "weights_sha256")):
        cfg = json.loads(good)
        node = cfg
        for key in path[:-1]:
            node = node[key]
        node[path[-1]] = value
        (out / ADAPTER_CONFIG).write_text(json.dumps(cfg))
        with pytest.raises(AdapterError, match=message):
            load_adapter(out, base_dir)
    (out / ADAPTER_CONFIG).write_text("{not json")
    with pytest.raises(AdapterError, match="not valid JSON"):
        load_adapter(out, base_dir)


# ----------------------------------------------------------------------------- the command line

def run(*args) -> tuple[int, str]:
    result = CliRunner().invoke(cli, [str(a) for a in args])
    assert "Traceback" not in result.output, result.output
    return result.exit_code, result.output


def test_cli_finetune_lm_with_lora_then_eval_info_and_the_adapter(tmp_path: Path) -> None:
    corpus = tmp_path / "c.txt"
    corpus.write_text("ROMEO:\nBut soft, what light through yonder window breaks?\n\n" * 30)
    small = ["--n-layer", "1", "--n-head", "2", "--n-embd", "16", "--block-size", "16", "--batch-size", "4",
             "--iters", "4", "--eval-interval", "2", "--eval-iters", "2", "--sample-tokens", "0", "--warmup", "1"]
    code, out = run("train", "--data", corpus, "--out", tmp_path / "run", *small)
    assert code == 0, out
    pairs = tmp_path / "p.jsonl"
    pairs.write_text("".join(json.dumps({"prompt": "ROMEO:\n", "response": "But soft\n"}) + "\n" for _ in range(8)))
    code, out = run("finetune", "--ckpt", tmp_path / "run", "--data", pairs, "--task", "lm", "--out",
                    tmp_path / "ft", "--iters", "4", "--eval-interval", "2", "--lr", "1e-2", "--lora-r", "4",
                    "--lora-targets", "q,v")
    assert code == 0, out
    assert "lora       r=4 alpha=8 on q,v: 256 of" in out and "adapter" in out
    code, out = run("info", "--ckpt", tmp_path / "ft")
    assert code == 0 and "256 trainable" in out, out
    code, out = run("eval", "--ckpt", tmp_path / "ft", "--data", corpus, "--max-batches", "2")
    assert code == 0 and "perplexity" in out, out
    model = load_adapter(tmp_path / "ft" / "adapter", tmp_path / "run")
    assert len(lora_layers(model)) == 1 and trainable_count(model)[0] == 256
    code, out = run("finetune", "--ckpt", tmp_path / "run", "--data", pairs, "--task", "lm", "--out",
                    tmp_path / "ft2", "--lora-r", "2", "--lora-targets", "nothing")
    assert code == 1 and "error: LoRA target nothing matches no Linear" in out
    code, out = run("finetune", "--ckpt", tmp_path / "run", "--data", pairs, "--task", "lm", "--lora-alpha", "4")
    assert code == 1 and "need --lora-r" in out
