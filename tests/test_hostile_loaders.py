"""Loaders on hostile files: a tagger's tags, non-finite weights, a foreign tokenizer.json, a symlinked
manifest, and a generation error after streamed text. Each is one line ``error: ...``, exit status 1,
and the files stay as they were."""
from __future__ import annotations

import json
import shutil
import struct
from pathlib import Path

import pytest
from click.testing import CliRunner

from test_cli_errors import SMALL, TEXT, fails
from test_hostile_cli import put
from tinyllm.cli import cli

TAGGED = "Romeo B-PER\nsoft O\nJULIET B-PER\nwhat O\n\n" * 12
FT = ["--iters", "2", "--batch-size", "4", "--eval-interval", "1", "--eval-iters", "1", "--warmup", "1"]


def _ok(args: list) -> None:
    result = CliRunner().invoke(cli, [str(a) for a in args])
    assert result.exit_code == 0, result.output


@pytest.fixture(scope="module")
def made(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A GPT run, its Hugging Face export, and a CRF tagger fine-tuned from a BERT run."""
    root = tmp_path_factory.mktemp("loaders")
    (root / "corpus.txt").write_text(TEXT)
    (root / "tags.conll").write_text(TAGGED)
    _ok(["train", "--data", root / "corpus.txt", "--out", root / "gpt", *SMALL])
    _ok(["export", "--ckpt", root / "gpt", "--out", root / "hf"])
    _ok(["train", "--model", "bert", "--data", root / "corpus.txt", "--out", root / "bert", *SMALL])
    _ok(["finetune", "--ckpt", root / "bert", "--data", root / "tags.conll", "--task", "tag", "--crf",
         "--out", root / "crf", *FT])
    _ok(["export", "--ckpt", root / "crf", "--out", root / "hf-crf"])
    return root


@pytest.fixture
def copy(made: Path, tmp_path: Path):
    def take(name: str) -> Path:
        shutil.copytree(made / name, tmp_path / name)
        return tmp_path / name
    return take


def _edit_config(run: Path, edit) -> None:
    for ckpt in ("latest", "best"):
        cfg = json.loads((run / ckpt / "config.json").read_text())
        edit(cfg)
        put(run, "config.json", cfg, ckpt)


@pytest.mark.parametrize("where,value,message", [
    ("model", [None, "O", "B-PER"], "'model.config.tags' must be a list of at most"),
    ("model", [{}, "O", "B-PER"], "'model.config.tags' must be a list of at most"),
    ("model", ["O", "O", "B-PER"], "'model.config.tags' must be a list of 2 or more distinct"),
    ("model", ["O"], "'model.config.tags' must be a list of 2 or more distinct"),
    ("task", 10 ** 20, "'task.tags' must be a list"),
    ("task", ["O", 7], "'task.tags' must be a list"),
])
@pytest.mark.parametrize("command", [["info"], ["eval", "--data", "{data}"], ["export", "--out", "{out}"]])
def test_a_taggers_tags_are_checked(copy, made: Path, tmp_path: Path, where: str, value, message: str,
                                    command: list) -> None:
    run = copy("crf")

    def edit(cfg: dict) -> None:
        (cfg["model"]["config"] if where == "model" else cfg["task"])["tags"] = value
    _edit_config(run, edit)
    args = [a.format(data=made / "tags.conll", out=tmp_path / "out") for a in command]
    fails([args[0], "--ckpt", run, *args[1:]], message, run)
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("key,value,message", [("crf", "yes", "'model.config.crf' must be true or false"),
                                               ("scheme", "IOB9", "'model.config.scheme' must be one of BIO"),
                                               ("freeze_backbone", 1, "'model.config.freeze_backbone'")])
def test_a_taggers_crf_settings_are_checked(copy, key: str, value, message: str) -> None:
    run = copy("crf")
    _edit_config(run, lambda cfg: cfg["model"]["config"].__setitem__(key, value))
    fails(["info", "--ckpt", run], message, run)


@pytest.mark.parametrize("key,value", [("stride", "32"), ("stride", -1), ("max_answer", 0), ("max_answer", 1e9)])
def test_a_qa_runs_window_settings_are_checked(copy, key: str, value) -> None:
    run = copy("gpt")                 # the task section is read by the schema whatever the model
    _edit_config(run, lambda cfg: cfg.setdefault("task", {}).__setitem__(key, value))
    fails(["info", "--ckpt", run], f"'task.{key}' must be an integer", run)


def _poison(path: Path, value: float) -> None:
    """Write ``value`` over the first float32 of the first float32 tensor of a safetensors file."""
    data = bytearray(path.read_bytes())
    n = struct.unpack("<Q", data[:8])[0]
    header = json.loads(data[8:8 + n])
    name = next(k for k, v in header.items() if k != "__metadata__" and v["dtype"] == "F32")
    at = 8 + n + header[name]["data_offsets"][0]
    data[at:at + 4] = struct.pack("<f", value)
    path.write_bytes(bytes(data))


def _retype(path: Path, dtype: str) -> None:
    """Relabel the first float32 tensor of a safetensors file as ``dtype`` of the same size (I32, U32)."""
    data = path.read_bytes()
    n = struct.unpack("<Q", data[:8])[0]
    header = json.loads(data[8:8 + n])
    name = next(k for k, v in header.items() if k != "__metadata__" and v["dtype"] == "F32")
    header[name]["dtype"] = dtype
    text = json.dumps(header).encode()
    path.write_bytes(struct.pack("<Q", len(text)) + text + data[8 + n:])


@pytest.mark.parametrize("dtype", ["I32", "U32"])
@pytest.mark.parametrize("kind", ["run", "hf"])
def test_weights_of_integers_are_refused_when_loaded(copy, kind: str, dtype: str) -> None:
    d = copy("gpt" if kind == "run" else "hf")
    for where in (("latest", "best") if kind == "run" else (".",)):
        _retype(d / where / "model.safetensors", dtype)
        if kind == "run":
            put(d, "model.safetensors", (d / where / "model.safetensors").read_bytes(), where)
    fails(["generate", "--ckpt", d, "--prompt", "R", "--max-new-tokens", "2"], "weights are floating point", d)


@pytest.mark.parametrize("value", [float("nan"), float("inf"), -float("inf")])
@pytest.mark.parametrize("kind", ["run", "hf"])
def test_weights_that_are_not_finite_are_refused_when_loaded(copy, kind: str, value: float) -> None:
    if kind == "run":
        d = copy("gpt")
        for ckpt in ("latest", "best"):
            _poison(d / ckpt / "model.safetensors", value)
            put(d, "model.safetensors", (d / ckpt / "model.safetensors").read_bytes(), ckpt)
    else:
        d = copy("hf")
        _poison(d / "model.safetensors", value)
    fails(["generate", "--ckpt", d, "--prompt", "R", "--max-new-tokens", "2"], "holds NaN or infinite values", d)


@pytest.mark.parametrize("text,message", [
    ("null", "the file must be a JSON object, got null"),
    ("[]", "the file must be a JSON object, got a list"),
    ('{"model": 3}', "'model' must be a JSON object"),
])
@pytest.mark.parametrize("command", [["generate", "--prompt", "R"], ["eval", "--data", "{corpus}"],
                                     ["quantize", "--out", "{out}"]])
def test_a_hugging_face_tokenizer_json_that_is_not_a_tokenizer(copy, made: Path, tmp_path: Path, text: str,
                                                               message: str, command: list) -> None:
    d = copy("hf")
    (d / "tokenizer.json").write_text(text)
    args = [a.format(corpus=made / "corpus.txt", out=tmp_path / "out") for a in command]
    fails([args[0], "--ckpt", d, *args[1:]], f"tokenizer.json: {message}", d)
    assert not (tmp_path / "out").exists()


def test_a_tokenizer_with_more_tokens_than_the_model_has_embeddings(copy) -> None:
    d = copy("hf")
    tok = json.loads((d / "tokenizer.json").read_text())
    vocab = tok["model"]["vocab"]
    for ch in "éüß":
        vocab[ch] = len(vocab)
    (d / "tokenizer.json").write_text(json.dumps(tok))
    fails(["generate", "--ckpt", d, "--prompt", "R"], "the tokenizer has", d)


def test_a_manifest_symlinked_out_of_the_checkpoint_is_refused(copy, tmp_path: Path) -> None:
    run = copy("gpt")
    outside = tmp_path / "manifest.json"
    (run / "best" / "manifest.json").rename(outside)
    (run / "best" / "manifest.json").symlink_to(outside)
    fails(["generate", "--ckpt", run, "--prompt", "R"], "outside", run)


@pytest.mark.parametrize("seed", ["-1", str(2 ** 63)])
def test_a_generation_seed_out_of_range(made: Path, seed: str) -> None:
    fails(["generate", "--ckpt", made / "gpt", "--prompt", "R", "--seed", seed], "--seed must be", made / "gpt")


def test_an_error_after_streamed_text_is_on_a_line_of_its_own(copy) -> None:
    d = copy("hf")                                          # a tokenizer of 1 character: a model of 50 samples
    tok = json.loads((d / "tokenizer.json").read_text())    # ids past it at once
    tok["model"]["vocab"] = {"R": 0}
    tok["added_tokens"] = []
    (d / "tokenizer.json").write_text(json.dumps(tok))
    line = fails(["generate", "--ckpt", d, "--prompt", "R", "--max-new-tokens", "50", "--seed", "0"],
                 "outside the vocabulary", d)
    assert line.startswith("error: ")


@pytest.mark.parametrize("key,value,message", [
    ("num_labels", "3", "'num_labels' must be an integer"), ("num_labels", 3.5, "'num_labels' must be an integer"),
    ("num_labels", 2 ** 31, "'num_labels' must be an integer"),
    ("classifier_dropout", "0.1", "'classifier_dropout' must be a finite number"),
    ("classifier_dropout", 1.0, "'classifier_dropout' must be a finite number"),
    ("id2label", {"0": ["O"]}, "'id2label.0' must be a string"), ("pad_token_id", -1, "'pad_token_id'"),
])
@pytest.mark.parametrize("layout", ["hf", "hf-crf"])
def test_a_hugging_face_heads_settings_are_checked(copy, layout: str, key: str, value, message: str) -> None:
    d = copy(layout)
    cfg = json.loads((d / "config.json").read_text())
    cfg.pop("id2label", None) if key == "num_labels" else None      # num_labels counts when id2label is absent
    (d / "config.json").write_text(json.dumps({**cfg, key: value}))
    fails(["info", "--ckpt", d], f"config.json: {message}", d)


@pytest.mark.parametrize("section,message", [
    ({"lora": {"r": 2, "alpha": 4.0, "dropout": 0.0, "targets": -1}}, "'model.lora.targets' must be a list"),
    ({"lora": {"r": 2, "alpha": 4.0, "dropout": 0.0, "targets": None}}, "'model.lora.targets' must be a list"),
    ({"lora": {"r": 2, "alpha": 4.0, "dropout": 0.0, "targets": []}}, "'model.lora.targets' must be a non-empty"),
    ({"lora": {"r": 0, "targets": ["c_attn"]}}, "'model.lora.r' must be an integer"),
    ({"lora": {"r": 2, "alpha": -1, "targets": ["c_attn"]}}, "'model.lora.alpha' must be a finite number"),
    ({"lora": {"r": 2, "dropout": 1.0, "targets": ["c_attn"]}}, "'model.lora.dropout' must be a finite number"),
    ({"lora": "c_attn"}, "'model.lora' must be a JSON object"),
    ({"pruning": {"layers": [3]}}, "'model.pruning.layers' must be a list"),
    ({"pruning": {"layers": ["h.0.mlp.c_fc"], "sparsity": "half"}}, "'model.pruning.sparsity' must be a finite"),
])
def test_a_runs_lora_and_pruning_entries_are_checked(copy, section: dict, message: str) -> None:
    run = copy("gpt")
    _edit_config(run, lambda cfg: cfg["model"].update(section))
    fails(["info", "--ckpt", run], message, run)
    fails(["train", "--out", run, "--resume", "--iters", "6"], message, run)


def test_a_seq2seq_run_given_to_a_command_for_gpt_and_bert(tmp_path: Path) -> None:
    (tmp_path / "pairs.tsv").write_text("".join(f"{w}\t{w[::-1]}\n" for w in ("abc", "bca", "cab", "acb") * 8))
    _ok(["train", "--model", "seq2seq", "--data", tmp_path / "pairs.tsv", "--out", tmp_path / "s2s", *SMALL])
    for command in (["export", "--out", tmp_path / "hf"], ["quantize", "--out", tmp_path / "q"],
                    ["prune", "--out", tmp_path / "p"]):
        fails([command[0], "--ckpt", tmp_path / "s2s", *command[1:]], "holds a seq2seq (encoder-decoder) model",
              tmp_path / "s2s")
        assert not Path(command[-1]).exists()


def test_names_read_from_a_file_cannot_drive_the_terminal(copy, tmp_path: Path) -> None:
    run = copy("crf")
    _edit_config(run, lambda cfg: cfg["task"].update(source="bert\x1b]0;owned\x07\u202egnp.exe"))
    result = CliRunner().invoke(cli, ["info", "--ckpt", str(run)])
    assert result.exit_code == 0, result.output
    assert "\x1b" not in result.output and "\u202e" not in result.output and "\x07" not in result.output
    assert "from bert\\u001b]0;owned\\u0007\\u202egnp.exe" in result.output
    line = fails(["eval", "--ckpt", run, "--data", tmp_path / "no\x1b[2Jsuch.conll"], "does not exist")
    assert "\x1b" not in line and "no\\u001b[2Jsuch.conll" in line


def test_a_reader_that_leaves_early_ends_the_command_quietly(made: Path) -> None:
    import subprocess
    import sys
    proc = subprocess.Popen([sys.executable, "-c", "from tinyllm.cli import main; main()", "generate", "--ckpt", str(made / "gpt"),
                             "--max-new-tokens", "100000", "--seed", "0"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert proc.stdout.read(1)
    proc.stdout.close()                                     # `| head -c 1`
    err = proc.stderr.read().decode()
    assert proc.wait(timeout=120) == 1 and err.strip() == "", err


@pytest.mark.parametrize("key", ["block_size", "n_layer", "n_head", "n_embd"])
def test_a_runs_settings_hold_no_null_size(copy, key: str) -> None:
    run = copy("bert")                   # a preset's null is filled in before the settings are saved
    _edit_config(run, lambda cfg: cfg["train"].__setitem__(key, None))
    fails(["train", "--out", run, "--resume", "--iters", "6"], f"'train.{key}' must be an integer", run)


def test_a_vocab_txt_with_a_repeated_token(copy) -> None:
    d = copy("hf-crf")
    (d / "tokenizer.json").unlink()
    (d / "vocab.txt").write_text("[PAD]\n[UNK]\n[CLS]\n[SEP]\n[UNK]\na\n")
    fails(["info", "--ckpt", d], "vocab.txt lists the token '[UNK]' more than once", d)


def test_masking_without_a_mask_token_is_a_data_error() -> None:
    import numpy as np

    from tinyllm.data import DataError
    from tinyllm.data.masking import mask_tokens
    ids = np.zeros((2, 4), dtype=np.int64)
    with pytest.raises(DataError, match=r"no \[MASK\] token"):
        mask_tokens(ids, None, 10, np.zeros_like(ids, dtype=bool), np.random.default_rng(0))


@pytest.mark.parametrize("command", ["export", "quantize", "prune"])
@pytest.mark.parametrize("where", ["", "best", "latest", "sub"])
def test_out_inside_or_around_the_source_run_is_refused_even_with_force(copy, command: str, where: str) -> None:
    run = copy("gpt")
    fails([command, "--ckpt", run, "--out", run / where if where else run, "--force"], "would overlap", run)


def test_export_force_replaces_an_export_but_never_other_files(copy, made: Path, tmp_path: Path) -> None:
    mine = tmp_path / "mine"
    (mine / "sub").mkdir(parents=True)
    (mine / "notes.txt").write_text("precious")
    fails(["export", "--ckpt", made / "gpt", "--out", mine, "--force"], "which an export does not write", mine)
    other = copy("crf")                                 # another run: its checkpoints are not an export
    fails(["export", "--ckpt", made / "gpt", "--out", other, "--force"], "which an export does not write", other)
    again = copy("hf")
    _ok(["export", "--ckpt", made / "crf", "--out", again, "--force"])
    assert json.loads((again / "config.json").read_text())["architectures"] == ["BertForTokenClassification"]


@pytest.mark.parametrize("text", ['["a\\ud800"]', '{"\\uDC00": 1}', '[["\\ud83d"]]'])
def test_json_strings_may_not_hold_half_a_surrogate_pair(tmp_path: Path, text: str) -> None:
    from tinyllm.validate import FileError, parse_json
    assert parse_json('["\\ud83d\\ude00"]', tmp_path) == ["\U0001F600"]          # a whole pair is a character
    with pytest.raises(FileError, match="lone surrogate"):
        parse_json(text, tmp_path)


def test_a_label_with_a_lone_surrogate_is_refused(copy) -> None:
    run = copy("crf")
    for ckpt in ("latest", "best"):
        text = (run / ckpt / "config.json").read_text().replace('"B-PER"', '"B-P\\ud800ER"')
        put(run, "config.json", text.encode(), ckpt)
    fails(["info", "--ckpt", run], "config.json is not valid text (a string holds a lone surrogate", run)


def test_a_data_line_with_a_lone_surrogate_is_one_balanced_line(made: Path, tmp_path: Path) -> None:
    data = tmp_path / "d.jsonl"
    data.write_text('{"text": "Ro\\ud800me", "label": "a"}\n{"text": "Romeo", "label": "b"}\n' * 4)
    line = fails(["finetune", "--ckpt", made / "gpt", "--data", data, "--task", "classify", "--out", tmp_path / "o"],
                 "d.jsonl line 1: invalid JSON (not valid text (a string holds a lone surrogate", data)
    assert line.count("(") == line.count(")") and not (tmp_path / "o").exists()
