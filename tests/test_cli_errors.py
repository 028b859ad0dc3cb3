"""Bad input: one line `error: ...`, a non-zero exit status, no traceback, and nothing on disk changed."""
from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from tinyllm.cli import cli

TEXT = ("ROMEO:\nBut soft, what light through yonder window breaks?\n\n"
        "JULIET:\nO Romeo, Romeo, wherefore art thou Romeo?\n\n") * 40
SMALL = ["--n-layer", "1", "--n-head", "2", "--n-embd", "16", "--block-size", "16", "--batch-size", "4",
         "--iters", "4", "--warmup", "1", "--eval-interval", "2", "--eval-iters", "1", "--sample-tokens", "0"]


def digest(path: Path) -> dict[str, str]:
    """sha256 of every file under ``path`` (or of ``path`` itself), by relative name."""
    if path.is_file():
        return {path.name: hashlib.sha256(path.read_bytes()).hexdigest()}
    if not path.exists():
        return {}
    return {str(p.relative_to(path)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(path.rglob("*")) if p.is_file()}


def fails(args: list, message: str, *watch: Path, code: int = 1) -> str:
    """Run the CLI, expecting `error: ...message...` on one line, exit ``code``, and ``watch`` untouched."""
    before = [digest(p) for p in watch]
    result = CliRunner().invoke(cli, [str(a) for a in args])
    out = result.output
    assert "Traceback" not in out, out
    assert result.exit_code == code, out
    error_lines = [line for line in out.splitlines() if line.startswith("error: ")]
    assert len(error_lines) == 1, out
    assert message.lower() in error_lines[0].lower(), out
    assert [digest(p) for p in watch] == before, "files changed"
    return error_lines[0]


@pytest.fixture(scope="module")
def base_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("base")
    corpus = root / "corpus.txt"
    corpus.write_text(TEXT)
    result = CliRunner().invoke(cli, ["train", "--data", str(corpus), "--out", str(root / "run"), *SMALL])
    assert result.exit_code == 0, result.output
    return root / "run"


@pytest.fixture
def run_dir(base_run: Path, tmp_path: Path) -> Path:
    """A private copy of a small trained run, free to damage."""
    dest = tmp_path / "run"
    shutil.copytree(base_run, dest)
    return dest


@pytest.fixture
def corpus(tmp_path: Path) -> Path:
    p = tmp_path / "corpus.txt"
    p.write_text(TEXT)
    return p


# ----------------------------------------------------------------------------- data files

def test_missing_data_file(tmp_path: Path) -> None:
    fails(["train", "--data", tmp_path / "nope.txt", "--out", tmp_path / "r", *SMALL],
          f"data path '{tmp_path / 'nope.txt'}' does not exist")
    assert not (tmp_path / "r").exists()


def test_empty_data_file(tmp_path: Path) -> None:
    empty = tmp_path / "empty.txt"
    empty.write_text("")
    fails(["train", "--data", empty, "--out", tmp_path / "r", *SMALL], "is empty", empty)


def test_non_utf8_data_file(tmp_path: Path) -> None:
    bad = tmp_path / "latin1.txt"
    bad.write_bytes("caf\xe9 au lait\n".encode("latin-1") * 50)
    fails(["train", "--data", bad, "--out", tmp_path / "r", *SMALL], "is not UTF-8 text (byte 0xe9 at offset 3)", bad)


def test_binary_data_file(tmp_path: Path) -> None:
    binary = tmp_path / "image.txt"
    binary.write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" * 20)
    fails(["train", "--data", binary, "--out", tmp_path / "r", *SMALL], "image.txt", binary)


def test_corpus_shorter_than_one_block(tmp_path: Path) -> None:
    short = tmp_path / "short.txt"
    short.write_text("to be or not to be")
    fails(["train", "--data", short, "--out", tmp_path / "r", *SMALL, "--block-size", "64"],
          "fewer than one block", short)
    assert not (tmp_path / "r").exists()


def test_unknown_corpus_name(tmp_path: Path) -> None:
    fails(["train", "--data", "shakespear", "--out", tmp_path / "r", *SMALL], "no corpus named 'shakespear'")


# ----------------------------------------------------------------------------- settings

@pytest.mark.parametrize("flags,message", [
    (["--n-embd", "100", "--n-head", "3"], "n_embd (100) must be divisible by n_head (3)"),
    (["--lr", "0"], "lr must be a positive number, got 0.0"),
    (["--lr", "-0.001"], "lr must be a positive number"),
    (["--batch-size", "0"], "batch_size must be a positive integer, got 0"),
    (["--iters", "-3"], "iters must be a positive integer, got -3"),
    (["--iters", "0"], "iters must be a positive integer"),
    (["--dropout", "1"], "dropout must be a number in [0, 1)"),
])
def test_bad_settings(tmp_path: Path, corpus: Path, flags: list, message: str) -> None:
    fails(["train", "--data", corpus, "--out", tmp_path / "r", *SMALL, *flags], message, corpus)
    assert not (tmp_path / "r").exists()


def test_bad_config_file_key(tmp_path: Path, corpus: Path) -> None:
    cfg = tmp_path / "run.toml"
    cfg.write_text("n_layers = 2\n")
    fails(["train", "--config", cfg, "--data", corpus], "unknown key 'n_layers'", cfg)


def test_resume_and_force_together(run_dir: Path) -> None:
    fails(["train", "--out", run_dir, "--resume", "--force"], "use one of them", run_dir)


# ----------------------------------------------------------------------------- run directories and checkpoints

def test_output_directory_holding_another_run_is_refused_without_force(run_dir: Path, corpus: Path) -> None:
    fails(["train", "--data", corpus, "--out", run_dir, *SMALL], "already holds a run", run_dir, corpus)
    result = CliRunner().invoke(cli, ["train", "--data", str(corpus), "--out", str(run_dir), *SMALL, "--iters", "2",
                                      "--eval-interval", "2", "--force"])
    assert result.exit_code == 0, result.output


def test_resume_without_a_checkpoint(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    fails(["train", "--out", tmp_path / "empty", "--resume"], "no checkpoint to resume from", tmp_path / "empty")
    fails(["train", "--resume"], "--resume needs --out")


def test_resume_with_different_settings_is_refused(run_dir: Path) -> None:
    fails(["train", "--out", run_dir, "--resume", "--n-embd", "32"], "differs from the run", run_dir)


@pytest.mark.parametrize("command", [["generate", "--prompt", "x"], ["eval", "--data", "tiny"], ["info"],
                                     ["finetune", "--task", "lm", "--data", "x.jsonl"]])
def test_missing_checkpoint_directory(tmp_path: Path, command: list) -> None:
    fails([command[0], "--ckpt", tmp_path / "nope", *command[1:]], "does not exist")


def test_truncated_checkpoint(run_dir: Path) -> None:
    weights = run_dir / "best" / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:100])
    line = fails(["generate", "--ckpt", run_dir, "--prompt", "R"], "is incomplete or corrupt", run_dir)
    assert "model.safetensors" in line and "truncated" in line
    fails(["info", "--ckpt", run_dir / "best"], "incomplete or corrupt", run_dir)


def test_checkpoint_without_manifest(run_dir: Path) -> None:
    (run_dir / "latest" / "manifest.json").unlink()
    fails(["train", "--out", run_dir, "--resume"], "manifest.json is missing", run_dir)


def _transplant(run_dir: Path, donor: Path, name: str) -> None:
    """Put the donor's file into run_dir/latest and make the manifest agree (a consistent but wrong checkpoint)."""
    data = (donor / "latest" / name).read_bytes()
    (run_dir / "latest" / name).write_bytes(data)
    manifest = json.loads((run_dir / "latest" / "manifest.json").read_text())
    manifest["files"][name] = {"size": len(data), "sha256": hashlib.sha256(data).hexdigest()}
    (run_dir / "latest" / "manifest.json").write_text(json.dumps(manifest))


def test_checkpoint_with_weights_of_a_different_model(run_dir: Path, base_run: Path, corpus: Path,
                                                      tmp_path: Path) -> None:
    other = tmp_path / "other"
    r = CliRunner().invoke(cli, ["train", "--data", str(corpus), "--out", str(other), *SMALL, "--n-embd", "32",
                                 "--iters", "2", "--eval-interval", "2"])
    assert r.exit_code == 0, r.output
    _transplant(run_dir, other, "model.safetensors")
    fails(["generate", "--ckpt", run_dir / "latest", "--prompt", "R"], "the weights do not fit its gpt config",
          run_dir)
    fails(["train", "--out", run_dir, "--resume", "--data", base_run.parent / "corpus.txt"], "has shape", run_dir)


def test_checkpoint_with_a_different_tokenizer(run_dir: Path, base_run: Path, tmp_path: Path) -> None:
    other = tmp_path / "other"
    (other / "latest").mkdir(parents=True)
    (other / "latest" / "tokenizer.json").write_text(json.dumps({"kind": "char", "version": 1, "chars": list("abc"),
                                                                 "special_tokens": []}))
    _transplant(run_dir, other, "tokenizer.json")
    fails(["generate", "--ckpt", run_dir / "latest", "--prompt", "a"], "the tokenizer comes from a different run",
          run_dir)
    fails(["train", "--out", run_dir, "--resume", "--data", base_run.parent / "corpus.txt"], "different run", run_dir)


def test_token_file_written_by_another_tokenizer(run_dir: Path, tmp_path: Path) -> None:
    from tinyllm.data import CharTokenizer, write_token_file
    tok = CharTokenizer(list("abcdefgh"))
    ids = tmp_path / "ids.bin"
    write_token_file(ids, np.arange(8).repeat(50), tok.vocab_size, tok)
    fails(["eval", "--ckpt", run_dir, "--data", ids], "written by another tokenizer", run_dir, ids)


def test_token_file_without_tokenizer(tmp_path: Path) -> None:
    from tinyllm.data import CharTokenizer, write_token_file
    tok = CharTokenizer(list("abcdefgh"))
    ids = tmp_path / "ids.bin"
    write_token_file(ids, np.arange(8).repeat(50), tok.vocab_size, tok)
    fails(["train", "--data", ids, "--out", tmp_path / "r", *SMALL], "pass --tokenizer PATH", ids)


# ----------------------------------------------------------------------------- fine-tuning data

def test_labeled_file_with_a_bad_row(run_dir: Path, tmp_path: Path) -> None:
    data = tmp_path / "labels.csv"
    data.write_text("text,label\nRomeo,r\nJuliet,j\n,r\nRomeo,r\n")
    fails(["finetune", "--ckpt", run_dir, "--data", data, "--task", "classify", "--out", tmp_path / "ft"],
          "labels.csv line 4: empty text", run_dir, data)
    assert not (tmp_path / "ft").exists()


def test_finetune_output_inside_the_source_is_refused(run_dir: Path, tmp_path: Path) -> None:
    data = tmp_path / "pairs.jsonl"
    data.write_text(json.dumps({"prompt": "R", "response": "Romeo"}) + "\n")
    fails(["finetune", "--ckpt", run_dir, "--data", data, "--task", "lm", "--out", run_dir],
          "overlap the source", run_dir)


# ----------------------------------------------------------------------------- engine and prompts

def test_cupy_backend_without_cupy_or_gpu(tmp_path: Path, corpus: Path) -> None:
    from tinyllm import backend
    try:
        backend.set_backend("cupy")
    except backend.BackendError:
        pass
    else:
        backend.set_backend("numpy")
        pytest.skip("CuPy and a GPU are available here")
    fails(["train", "--data", corpus, "--out", tmp_path / "r", *SMALL, "--backend", "cupy"], "pip install", corpus)
    assert not (tmp_path / "r").exists()


def test_prompt_outside_the_char_vocabulary(run_dir: Path) -> None:
    fails(["generate", "--ckpt", run_dir, "--prompt", "Romeo ☃"],
          "prompt has characters outside the tokenizer's vocabulary: '☃' (position 6)", run_dir)


@pytest.mark.parametrize("flags,message", [(["--temperature", "0"], "temperature must be a positive number"),
                                           (["--top-k", "0"], "top_k must be an integer >= 1"),
                                           (["--top-p", "1.5"], "top_p must be in (0, 1]")])
def test_bad_sampling_options(run_dir: Path, flags: list, message: str) -> None:
    fails(["generate", "--ckpt", run_dir, "--prompt", "R", *flags], message, run_dir)


def test_unknown_gradcheck_names_list_the_valid_ones() -> None:
    line = fails(["gradcheck", "Softmaks"], "unknown gradcheck case Softmaks; valid names:")
    assert "Softmax" in line and "nn.Linear" in line


# ----------------------------------------------------------------------------- the handler itself

def test_an_internal_error_names_itself_and_hints_at_debug(run_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import tinyllm.train.restore as restore_module
    monkeypatch.setattr(restore_module, "load_checkpoint", lambda *a, **k: 1 + "x")   # a genuine bug: TypeError
    result = CliRunner().invoke(cli, ["info", "--ckpt", str(run_dir)])
    assert result.exit_code == 2 and "Traceback" not in result.output
    assert "error: internal error: TypeError: unsupported operand" in result.output
    assert "TINYLLM_DEBUG=1" in result.output
    monkeypatch.setenv("TINYLLM_DEBUG", "1")
    result = CliRunner().invoke(cli, ["info", "--ckpt", str(run_dir)])
    assert isinstance(result.exception, TypeError)                             # the traceback is not hidden


def test_errors_from_the_installed_entry_point(tmp_path: Path) -> None:
    exe = Path(sys.executable).with_name("tinyllm")
    if not exe.exists():
        pytest.skip("the tinyllm console script is not installed beside this Python")
    proc = subprocess.run([str(exe), "train", "--data", str(tmp_path / "missing.txt"), "--out", str(tmp_path / "r")],
                          capture_output=True, text=True, timeout=120, env={**os.environ})
    assert proc.returncode == 1
    assert proc.stderr.strip() == f"error: data path '{tmp_path / 'missing.txt'}' does not exist"
    assert "Traceback" not in proc.stdout + proc.stderr and not (tmp_path / "r").exists()


def test_a_diverging_run_stops_with_the_iteration_and_keeps_its_last_good_checkpoint(tmp_path: Path,
                                                                                     corpus: Path) -> None:
    from tinyllm.checkpoint import load_checkpoint
    out = tmp_path / "r"
    line = fails(["train", "--data", corpus, "--out", out, *SMALL, "--iters", "40", "--eval-interval", "1",
                  "--lr", "1e6", "--min-lr", "1", "--warmup", "0", "--grad-clip", "0"], "training diverged at iteration")
    assert "Try a smaller --lr" in line
    if (out / "latest").exists():                      # checkpoints written before the blow-up stay intact
        latest = load_checkpoint(out)
        assert f"iteration {latest.iteration + 1}:" in line
        assert all(np.isfinite(w).all() for w in latest.weights.values())


@pytest.mark.parametrize("args,message", [
    (["train", "--seed", "nan"], "invalid value for '--seed': 'nan' is not a valid integer"),
    (["generate", "--ckpt", "x", "--top-k", "1e308"], "invalid value for '--top-k'"),
    (["train", "--no-such-flag"], "no such option '--no-such-flag'"),
    (["no-such-command"], "no such command 'no-such-command'"),
    (["--no-such-flag"], "no such option '--no-such-flag'"),
    (["info"], "missing option '--ckpt'"),
])
def test_usage_errors_are_one_line_and_exit_1(args: list, message: str) -> None:
    line = fails(args, message)
    assert "--help" in line and "Usage:" not in line
