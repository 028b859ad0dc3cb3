"""int8 (Q8_0) weight quantization: the format's error bound, the kernels against the reference,
quantized models against float ones, quantized checkpoints on disk and from the command line."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from hypothesis import given
from hypothesis import strategies as hs

import tinyllm
from tinyllm.decoding import generate
from gradcases import grad_case
from tinyllm import backend
from tinyllm.checkpoint import CheckpointError, save_checkpoint
from tinyllm.cli import cli
from tinyllm.compress import q8
from tinyllm.compress.quantize import (QuantizedEmbedding, QuantizedLinear, QuantizedLinearFunction, load_quantized,
                                       quantize_checkpoint, quantize_model)
from tinyllm.gradcheck import gradcheck
from tinyllm.models import GPT, GPTConfig, SequenceClassifier, build_model
from tinyllm.nn.lora import apply_lora, lora_layers
from tinyllm.train.restore import restore_model

CFG = {"vocab_size": 37, "block_size": 16, "n_layer": 2, "n_head": 2, "n_embd": 40}   # 40: a partial block


# ----------------------------------------------------------------------------- the format

@given(out=hs.integers(1, 5), n_in=hs.integers(1, 100), seed=hs.integers(0, 2 ** 16),
       zeros=hs.booleans(), spread=hs.sampled_from([1e-6, 1.0, 1e3]))
def test_round_trip_error_is_at_most_half_a_step_per_block(out, n_in, seed, zeros, spread) -> None:
    rng = np.random.default_rng(seed)
    w = (rng.standard_t(3, size=(out, n_in)) * spread).astype(np.float32)
    if zeros:
        w[:, :min(n_in, 32)] = 0                                       # an all-zero block
    q, d = q8.quantize(w)
    assert q.dtype == np.int8 and q.shape == w.shape and np.abs(q.astype(int)).max() <= 127
    assert d.dtype == np.float16 and d.shape == (out, -(-n_in // 32))
    step = q8.expand_scales(d.astype(np.float64), n_in)
    err = np.abs(w.astype(np.float64) - q8.dequantize(q, d, np.float64))
    assert (err <= step / 2 * (1 + 1e-6) + 1e-45).all()
    amax = np.abs(np.pad(w, ((0, 0), (0, d.shape[1] * 32 - n_in)))).reshape(out, -1, 32).max(axis=2)
    assert (d.astype(np.float32) >= amax / 127).all()                   # rounded up: nothing clips
    np.testing.assert_allclose(d.astype(np.float32), amax / 127, rtol=1e-3, atol=6e-8)


def test_quantize_refuses_what_it_cannot_represent() -> None:
    with pytest.raises(ValueError, match="2-D"):
        q8.quantize(np.zeros(5))
    with pytest.raises(ValueError, match="NaN"):
        q8.quantize(np.array([[1.0, np.nan]]))


@pytest.mark.parametrize("n,k,m", [(1, 768, 64), (1, 40, 7), (3, 33, 5), (16, 96, 17), (2, 1, 3)])
def test_cpu_kernel_equals_the_reference(n: int, k: int, m: int) -> None:
    pytest.importorskip("numba")
    from tinyllm.kernels.cpu.int8 import q8_matmul
    rng = np.random.default_rng(k)
    q, d = q8.quantize(rng.normal(size=(m, k)).astype(np.float32))
    x = rng.normal(size=(n, k)).astype(np.float32)
    want = q8.matmul_reference(x.astype(np.float64), q, d)
    got = q8_matmul(x, q, d)
    assert got.dtype == np.float32 and got.shape == (n, m)
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5 * np.abs(want).max())
    np.testing.assert_allclose(q8.matmul(x, q, d), want, rtol=1e-5, atol=1e-5 * np.abs(want).max())


def test_cuda_kernel_equals_the_reference() -> None:
    try:
        cp = backend._import_cupy()
    except backend.BackendError:
        pytest.skip("no CuPy / CUDA GPU")
    from tinyllm.kernels.cuda.int8 import q8_matmul
    rng = np.random.default_rng(0)
    for n, k, m in ((1, 768, 300), (4, 40, 9)):
        q, d = q8.quantize(rng.normal(size=(m, k)).astype(np.float32))
        x = rng.normal(size=(n, k)).astype(np.float32)
        want = q8.matmul_reference(x.astype(np.float64), q, d)
        got = cp.asnumpy(q8_matmul(cp.asarray(x), cp.asarray(q), cp.asarray(d.astype(np.float32))))
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5 * np.abs(want).max())


@grad_case("QuantizedLinearFunction")
def test_quantized_linear_gradient_matches_finite_differences() -> None:
    tinyllm.set_default_dtype("float64")
    rng = np.random.default_rng(0)
    q, d = q8.quantize(rng.normal(size=(6, 40)))
    x = tinyllm.Tensor(rng.normal(size=(2, 3, 40)), requires_grad=True)
    b = tinyllm.Tensor(rng.normal(size=6), requires_grad=True)
    assert gradcheck(lambda x, b: QuantizedLinearFunction.apply(x, b, q=q, scale=d.astype(np.float64)), x, b)
    assert gradcheck(lambda x: QuantizedLinearFunction.apply(x, q=q, scale=d.astype(np.float64)), x)


# ----------------------------------------------------------------------------- models

def _logits(model, idx):
    return model(idx)[0].data.copy()


@pytest.mark.parametrize("kind", ["gpt", "bert"])
def test_quantized_model_logits_are_close_to_float(kind: str) -> None:
    model = build_model(kind, CFG)
    model.eval()
    idx = np.random.default_rng(0).integers(4, 37, (2, 12))
    ref = _logits(model, idx)
    names = quantize_model(model)
    assert "wte.weight" in names and "wpe.weight" in names and "h.1.mlp.c_fc.weight" in names
    assert "lm_head.weight" not in names or kind == "bert"              # GPT's tied head: one int8 matrix
    assert isinstance(model.wte, QuantizedEmbedding) and isinstance(model.h[0].attn.c_attn, QuantizedLinear)
    assert all(p.dtype == np.int8 for n, p in model.named_parameters() if n in names)
    got = _logits(model, idx)
    assert np.abs(got - ref).max() <= 0.02 * np.abs(ref).max()
    if kind == "gpt":
        assert model.lm_head.weight is model.wte.weight
        a = generate(model, idx[:1, :4], 8, greedy=True)
        b = generate(model, idx[:1, :4], 8, greedy=True, use_cache=False)
        np.testing.assert_array_equal(a, b)                             # the KV cache stays float32


def test_classifier_and_lora_models_quantize() -> None:
    clf = SequenceClassifier(GPT(GPTConfig(**CFG)), 3)
    clf.eval()
    idx = np.random.default_rng(1).integers(0, 37, (3, 9))
    ref = _logits(clf, idx)
    quantize_model(clf)
    assert np.abs(_logits(clf, idx) - ref).max() <= 0.02 * np.abs(ref).max() + 1e-6
    lm = GPT(GPTConfig(**CFG))
    apply_lora(lm, ("q", "v"), r=2)
    for _, layer in lora_layers(lm):
        layer.lora_B.data[...] = 0.3
    lm.eval()
    ref = _logits(lm, idx)
    quantize_model(lm)                                                  # merges the adapters first
    assert not lora_layers(lm)
    assert np.abs(_logits(lm, idx) - ref).max() <= 0.02 * np.abs(ref).max()


# ----------------------------------------------------------------------------- checkpoints

def _run(tmp_path: Path) -> tuple[Path, GPT]:
    from tinyllm.data import CharTokenizer
    model = GPT(GPTConfig(**CFG))
    tok = CharTokenizer.from_text("".join(chr(65 + i) for i in range(37)))
    save_checkpoint(tmp_path / "run", "best", config={"model": {"kind": "gpt", "config": model.config.to_dict()},
                                                      "task": {"name": "pretrain"}},
                    weights=model.state_dict(), tokenizer_json=tok.to_json(), state={"iteration": 3})
    return tmp_path / "run", model


def test_quantized_checkpoint_round_trip_and_size(tmp_path: Path) -> None:
    run, model = _run(tmp_path)
    r = quantize_checkpoint(run, tmp_path / "q")
    assert r["ratio"] < 0.4                                            # tiny model: LayerNorms and biases weigh
    restored = restore_model(tmp_path / "q")
    quantize_model(model)
    model.eval()
    idx = np.arange(12)[None] % 37
    np.testing.assert_allclose(_logits(restored.model, idx), _logits(model, idx), rtol=1e-6, atol=1e-6)
    with pytest.raises(ValueError, match="int8-quantized already"):
        quantize_checkpoint(tmp_path / "q", tmp_path / "q2")
    with pytest.raises(ValueError, match="not empty"):
        quantize_checkpoint(run, tmp_path / "q")


def test_load_quantized_validates_the_metadata_and_every_array() -> None:
    model = GPT(GPTConfig(**CFG))
    names = quantize_model(model)
    good = {k: backend.to_numpy(v).copy() for k, v in model.state_dict().items()}
    meta = {"format": "q8_0", "block_size": 32, "weights": names}
    load_quantized(GPT(GPTConfig(**CFG)), good, meta)                  # the good case loads
    bad_cases = [
        ({"format": "q4"}, good, "quantization section"),
        ({**meta, "block_size": 64}, good, "quantization section"),
        ({**meta, "weights": "wte.weight"}, good, "list of distinct names"),
        ({**meta, "weights": names + ["nope.weight"]}, good, "does not have"),
        ({**meta, "weights": names[1:]}, good, "not in the quantization section"),
        (meta, {**good, "wte.weight": good["wte.weight"].astype(np.float32)}, "expected int8"),
        (meta, {**good, "wte.weight": np.full_like(good["wte.weight"], -128)}, "-128"),
        (meta, {**good, "wte.weight_scale": good["wte.weight_scale"][:, :1]}, "scales of"),
        (meta, {**good, "wte.weight_scale": -good["wte.weight_scale"]}, "scales of"),
        (meta, {k: v for k, v in good.items() if k != "h.0.mlp.c_fc.weight_scale"}, "missing"),
    ]
    for m, w, message in bad_cases:
        with pytest.raises(CheckpointError, match=message):
            load_quantized(GPT(GPTConfig(**CFG)), w, m)
    nan = {**good, "h.0.attn.c_attn.weight_scale": good["h.0.attn.c_attn.weight_scale"] * np.nan}
    with pytest.raises(CheckpointError, match="finite"):
        load_quantized(GPT(GPTConfig(**CFG)), nan, meta)


def test_cli_quantize_then_eval_generate_info_and_refusals(tmp_path: Path) -> None:
    corpus = tmp_path / "c.txt"
    corpus.write_text("ROMEO:\nBut soft, what light through yonder window breaks?\n\n" * 30)
    small = ["--n-layer", "1", "--n-head", "2", "--n-embd", "32", "--block-size", "16", "--batch-size", "4",
             "--iters", "4", "--eval-interval", "2", "--eval-iters", "2", "--sample-tokens", "0", "--warmup", "1"]
    runner = CliRunner()
    assert runner.invoke(cli, ["train", "--data", str(corpus), "--out", str(tmp_path / "run"), *small]).exit_code == 0
    res = runner.invoke(cli, ["quantize", "--ckpt", str(tmp_path / "run"), "--out", str(tmp_path / "q")])
    assert res.exit_code == 0 and "weight matrices to int8" in res.output, res.output
    outs = []
    for ck in ("run", "q"):
        res = runner.invoke(cli, ["eval", "--ckpt", str(tmp_path / ck), "--data", str(corpus), "--max-batches", "2"])
        assert res.exit_code == 0, res.output
        outs.append(float(res.output.split("loss")[1].split()[0]))
    assert abs(outs[0] - outs[1]) < 0.01
    res = runner.invoke(cli, ["generate", "--ckpt", str(tmp_path / "q"), "--prompt", "RO", "--max-new-tokens", "5"])
    assert res.exit_code == 0, res.output
    res = runner.invoke(cli, ["info", "--ckpt", str(tmp_path / "q"), "--json"])
    assert json.loads(res.output)["trainable_parameters"] == 0
    res = runner.invoke(cli, ["finetune", "--ckpt", str(tmp_path / "q"), "--data", str(corpus), "--task", "lm"])
    assert res.exit_code == 1 and "int8-quantized, for inference only" in res.output
    res = runner.invoke(cli, ["quantize", "--help"])
    assert "Examples:" in res.output and "tinyllm quantize" in res.output


def test_quantize_and_prune_a_hugging_face_directory(tmp_path: Path) -> None:
    pytest.importorskip("tokenizers")
    from tinyllm.compress.prune import prune_checkpoint
    from tinyllm.data import BPETokenizer
    from tinyllm.models.hf import save_pretrained
    bpe = BPETokenizer.train(["the cat sat on the mat", "the dog sat on the log"] * 20, vocab_size=280)
    model = GPT(GPTConfig(vocab_size=bpe.vocab_size, block_size=16, n_layer=1, n_head=2, n_embd=32))
    save_pretrained(model, tmp_path / "hf")
    bpe.save(tmp_path / "hf" / "tokenizer.json")
    r = quantize_checkpoint(tmp_path / "hf", tmp_path / "q")
    assert r["ratio"] < 0.35
    q = restore_model(tmp_path / "q")
    assert q.checkpoint.config["task"]["name"] == "huggingface" and q.tokenizer.encode("the cat") == bpe.encode("the cat")
    model.eval()
    idx = np.array([bpe.encode("the dog sat on")])
    ref = _logits(model, idx)
    assert np.abs(_logits(q.model, idx) - ref).max() <= 0.02 * np.abs(ref).max()
    p = prune_checkpoint(tmp_path / "hf", tmp_path / "p", 0.5)
    assert abs(p["sparsity"] - 0.5) < 1e-3 and restore_model(tmp_path / "p").model(idx)[0].shape == ref.shape
