"""The tinyllm command line: every command, end to end, on tiny models."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from tinyllm.checkpoint import load_checkpoint
from tinyllm.cli import cli

TEXT = ("ROMEO:\nBut soft, what light through yonder window breaks?\n\n"
        "JULIET:\nO Romeo, Romeo, wherefore art thou Romeo?\n\n") * 40
SMALL = ["--n-layer", "1", "--n-head", "2", "--n-embd", "16", "--block-size", "16", "--batch-size", "4",
         "--iters", "8", "--warmup", "2", "--eval-interval", "4", "--eval-iters", "2", "--sample-tokens", "0",
         "--lr", "1e-2", "--min-lr", "1e-3"]
COMMANDS = ["train", "generate", "eval", "finetune", "gradcheck", "info"]


def run(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(cli, [str(a) for a in args])
    assert "Traceback" not in result.output, result.output
    return result.exit_code, result.output


@pytest.fixture
def corpus(tmp_path: Path) -> Path:
    p = tmp_path / "corpus.txt"
    p.write_text(TEXT, encoding="utf-8")
    return p


@pytest.fixture
def trained(tmp_path: Path, corpus: Path) -> Path:
    out = tmp_path / "run"
    code, output = run("train", "--data", corpus, "--out", out, *SMALL)
    assert code == 0, output
    return out


def test_top_level_help_lists_every_command_with_examples() -> None:
    code, out = run("--help")
    assert code == 0
    for command in COMMANDS:
        assert command in out
    assert "tinyllm train" in out and "TINYLLM_DEBUG" in out


@pytest.mark.parametrize("command", COMMANDS)
def test_every_command_has_complete_help_with_examples(command: str) -> None:
    code, out = run(command, "--help")
    assert code == 0
    assert "Examples:" in out and f"tinyllm {command}" in out
    options = [line.split()[0] for line in out.splitlines() if line.strip().startswith("--")]
    for line in out.split("Options:")[1].split("Examples:")[0].splitlines():
        if line.strip().startswith("--") and len(line.split()) == 1:
            pytest.fail(f"option without help text in `tinyllm {command} --help`: {line.strip()}")
    assert options


def test_train_help_names_every_spec_option() -> None:
    _, out = run("train", "--help")
    for flag in ("--model", "--data", "--tokenizer", "--vocab-size", "--n-layer", "--n-head", "--n-embd",
                 "--block-size", "--dropout", "--preset", "--iters", "--batch-size", "--grad-accum", "--lr",
                 "--min-lr", "--warmup", "--weight-decay", "--beta2", "--grad-clip", "--eval-interval",
                 "--eval-iters", "--out", "--resume", "--force", "--seed", "--backend", "--dtype", "--early-stop",
                 "--config"):
        assert flag in out, flag


def test_train_prints_progress_evals_curve_and_writes_the_run(trained: Path) -> None:
    assert (trained / "latest" / "manifest.json").exists() and (trained / "best" / "manifest.json").exists()
    records = [json.loads(line) for line in (trained / "metrics.jsonl").read_text().splitlines()]
    assert records[-1]["iter"] == 8 and records[-1]["val_loss"] is not None


def test_train_output_and_sample(tmp_path: Path, corpus: Path) -> None:
    code, out = run("train", "--data", corpus, "--out", tmp_path / "r", *SMALL[:-6], "--sample-tokens", "30")
    assert code == 0, out
    assert "iter 4/8 | loss" in out and "| val " in out and "tok/s" in out
    assert "train loss" in out and "val loss" in out          # the sparklines
    assert "sample (temperature 0.8, top-k 40):" in out
    assert "tinyllm generate --ckpt" in out


def test_default_out_is_a_new_directory_under_runs(tmp_path: Path, corpus: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    for _ in range(2):                                      # twice: two runs, no clash
        code, out = run("train", "--data", corpus, *SMALL, "--iters", "2", "--eval-interval", "2")
        assert code == 0, out
    runs = sorted((tmp_path / "runs").iterdir())
    assert len(runs) == 2 and all(r.name.startswith("gpt-default-") for r in runs)


def test_config_file_then_flags_override_it(tmp_path: Path, corpus: Path) -> None:
    cfg = tmp_path / "run.toml"
    cfg.write_text(f'data = "{corpus}"\nn-layer = 1\nn_head = 2\nn-embd = 16\nblock-size = 16\nbatch-size = 4\n'
                   'iters = 6\nwarmup = 1\neval-interval = 3\neval-iters = 1\nsample-tokens = 0\nlr = 0.005\n')
    code, out = run("train", "--config", cfg, "--iters", "3", "--out", tmp_path / "r")
    assert code == 0, out
    train = load_checkpoint(tmp_path / "r").config["train"]
    assert train["iters"] == 3 and train["lr"] == 0.005 and train["n_embd"] == 16


def test_generate_streams_a_continuation(trained: Path) -> None:
    code, out = run("generate", "--ckpt", trained, "--prompt", "ROMEO:", "--max-new-tokens", "12", "--seed", "3")
    assert code == 0, out
    assert out.startswith("ROMEO:") and len(out.rstrip("\n")) >= len("ROMEO:") + 6
    code2, out2 = run("generate", "--ckpt", trained, "--prompt", "ROMEO:", "--max-new-tokens", "12", "--seed", "3")
    assert out2 == out                                      # seeded: reproducible
    code, out = run("generate", "--ckpt", trained, "--prompt", "O", "--greedy", "--num-samples", "2",
                    "--max-new-tokens", "5", "--top-k", "3", "--top-p", "0.9", "--latest")
    assert code == 0 and out.count("--- sample") == 2


def test_eval_reports_loss_and_perplexity(trained: Path, corpus: Path) -> None:
    code, out = run("eval", "--ckpt", trained, "--data", corpus, "--max-batches", "3")
    assert code == 0, out
    assert "loss" in out and "perplexity" in out


def test_finetune_classify_eval_confusion_and_info(tmp_path: Path, trained: Path) -> None:
    data = tmp_path / "labels.jsonl"
    data.write_text("".join(json.dumps({"text": "Romeo is here" if i % 2 else "Juliet is there",
                                        "label": "r" if i % 2 else "j"}) + "\n" for i in range(30)))
    out = tmp_path / "clf"
    code, output = run("finetune", "--ckpt", trained, "--data", data, "--task", "classify", "--out", out,
                       "--iters", "6", "--eval-interval", "3", "--freeze-backbone", "--pooling", "mean")
    assert code == 0, output
    assert "val acc" in output and "backbone frozen" in output
    code, output = run("eval", "--ckpt", out, "--data", data)
    assert code == 0, output
    assert "accuracy" in output and "confusion matrix" in output and "true \\ predicted" in output
    code, output = run("info", "--ckpt", out)
    assert code == 0, output
    assert "classify (j, r)" in output and "backbone.wte" in output and "classifier" in output
    code, output = run("generate", "--ckpt", out, "--prompt", "x")
    assert code == 1 and "needs a GPT or SEQ2SEQ checkpoint" in output


def test_finetune_lm_then_resume_extends(tmp_path: Path, trained: Path) -> None:
    data = tmp_path / "pairs.jsonl"
    data.write_text("".join(json.dumps({"prompt": "ROMEO:\n", "response": "Juliet?\n"}) + "\n" for _ in range(10)))
    out = tmp_path / "chat"
    code, output = run("finetune", "--ckpt", trained, "--data", data, "--task", "lm", "--out", out, "--iters", "4",
                       "--eval-interval", "2")
    assert code == 0, output
    code, output = run("finetune", "--task", "lm", "--out", out, "--resume", "--iters", "6", "--data", data)
    assert code == 0, output
    assert load_checkpoint(out).iteration == 6


def test_info_shows_config_parameters_flops_and_state(trained: Path) -> None:
    code, out = run("info", "--ckpt", trained)
    assert code == 0, out
    for text in ("model        gpt:", "tokenizer    char", "parameters", "h (1 blocks)", "h.0.attn", "FLOPs/token",
                 "iteration    8 of 8", "best"):
        assert text in out, text
    code, out = run("info", "--ckpt", trained, "--json")
    facts = json.loads(out)
    assert facts["iteration"] == 8 and facts["flops_per_token"] > 0 and facts["parameters"] > 0


def test_gradcheck_runs_the_chosen_cases_and_lists_them() -> None:
    code, out = run("gradcheck", "MatMul", "softmax", "nn.Linear")
    assert code == 0, out
    lines = out.splitlines()
    assert lines[0].split() == ["op", "shapes", "max", "abs", "err", "max", "rel", "err", "result"]
    assert sum(line.endswith("pass") for line in lines) == 3 and "3/3 passed (float64)" in out
    code, out = run("gradcheck", "CrossEntropy", "--dtype", "float32", "--seed", "3")
    assert code == 0 and "1/1 passed (float32)" in out
    code, out = run("gradcheck", "--list")
    assert code == 0 and "nn.TransformerBlock" in out and "models.GPT" in out


def test_gradcheck_all_cases_cover_the_op_registry() -> None:
    from tinyllm.gradcheck_cases import all_cases, registered_ops
    missing = [op for op in registered_ops() if op not in all_cases()]
    assert not missing, f"ops without a gradcheck case in tinyllm/gradcheck_cases.py: {missing}"


def test_gradcheck_exit_status_is_1_when_a_case_fails(monkeypatch: pytest.MonkeyPatch) -> None:
    import tinyllm.functional as F
    real = F.Gelu.backward
    monkeypatch.setattr(F.Gelu, "backward", lambda self, g: tuple(1.01 * x for x in real(self, g)))  # a wrong backward
    code, out = run("gradcheck", "Gelu", "Softmax")
    assert code == 1 and "FAIL" in out and "1/2 passed" in out


def test_the_installed_console_script_runs(tmp_path: Path, corpus: Path) -> None:
    exe = Path(sys.executable).with_name("tinyllm")
    if not exe.exists():
        pytest.skip("the tinyllm console script is not installed beside this Python")
    out = tmp_path / "r"
    proc = subprocess.run([str(exe), "train", "--data", str(corpus), "--out", str(out), *SMALL, "--iters", "2",
                           "--eval-interval", "2"], capture_output=True, text=True, timeout=120,
                          env={**os.environ, "PYTHONWARNINGS": "error::RuntimeWarning"})
    assert proc.returncode == 0, proc.stderr
    assert "iter 2/2" in proc.stdout and (out / "latest").is_dir()
    proc = subprocess.run([str(exe), "--version"], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0 and "tinyllm" in proc.stdout


def test_bpe_tokenizer_and_token_file_data(tmp_path: Path, corpus: Path) -> None:
    from tinyllm.data import BPETokenizer, tokenize_file
    code, out = run("train", "--data", corpus, "--tokenizer", "bpe", "--vocab-size", "300", "--out", tmp_path / "bpe",
                    *SMALL, "--iters", "2", "--eval-interval", "2")
    assert code == 0, out
    assert "tokenizer  bpe" in out
    tok = BPETokenizer.train([TEXT], 280)
    tok.save(tmp_path / "tok.json")
    tokenize_file(corpus, tmp_path / "ids.bin", tok)
    code, out = run("train", "--data", tmp_path / "ids.bin", "--tokenizer", tmp_path / "tok.json",
                    "--out", tmp_path / "bin", *SMALL, "--iters", "2", "--eval-interval", "2")
    assert code == 0, out
    assert "ids.bin" in out and load_checkpoint(tmp_path / "bin").config["model"]["config"]["vocab_size"] == 280
    code, out = run("eval", "--ckpt", tmp_path / "bin", "--data", tmp_path / "ids.bin", "--max-batches", "2")
    assert code == 0 and "perplexity" in out


def test_generate_and_info_accept_a_hugging_face_gpt2_directory(tmp_path: Path) -> None:
    from tinyllm.data import BPETokenizer
    from tinyllm.decoding import generate
    from tinyllm.models import GPT, GPTConfig
    from tinyllm.models.hf import save_pretrained
    tok = BPETokenizer.train([TEXT], 270)
    model = GPT(GPTConfig(vocab_size=tok.vocab_size, block_size=32, n_layer=1, n_head=2, n_embd=16))
    save_pretrained(model, tmp_path / "gpt2", tok)
    code, out = run("generate", "--ckpt", tmp_path / "gpt2", "--prompt", "ROMEO", "--max-new-tokens", "5", "--greedy")
    assert code == 0, out
    ids = tok.encode("ROMEO")
    expected = tok.decode(generate(model, [ids], 5, greedy=True)[0].tolist())
    assert out == expected + "\n"
    code, out = run("info", "--ckpt", tmp_path / "gpt2")
    assert code == 0 and "tokenizer    bpe, 270 tokens" in out
