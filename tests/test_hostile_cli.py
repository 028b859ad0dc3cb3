"""The command line on hostile input: exit status 1, one line ``error: ...``, never ``internal error``,
and nothing the user had is changed (a failed resume leaves the run as it was)."""
from __future__ import annotations

import hashlib
import json
import os
import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner

from test_cli_errors import SMALL, TEXT, digest, fails
from tinyllm.cli import cli


@pytest.fixture(scope="module")
def base_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("hostile")
    (root / "corpus.txt").write_text(TEXT)
    result = CliRunner().invoke(cli, ["train", "--data", str(root / "corpus.txt"), "--out", str(root / "run"), *SMALL])
    assert result.exit_code == 0, result.output
    return root / "run"


@pytest.fixture
def run_dir(base_run: Path, tmp_path: Path) -> Path:
    dest = tmp_path / "run"
    shutil.copytree(base_run, dest)
    return dest


def put(run: Path, name: str, obj: object, ckpt: str = "latest") -> None:
    """Replace ``run/ckpt/name`` and make the manifest agree: a consistent but hostile checkpoint."""
    data = obj if isinstance(obj, bytes) else json.dumps(obj).encode()
    (run / ckpt / name).write_bytes(data)
    manifest = json.loads((run / ckpt / "manifest.json").read_text())
    manifest["files"][name] = {"size": len(data), "sha256": hashlib.sha256(data).hexdigest()}
    (run / ckpt / "manifest.json").write_text(json.dumps(manifest))


def _config(run: Path, **model) -> dict:
    cfg = json.loads((run / "latest" / "config.json").read_text())
    cfg["model"]["config"].update(model)
    return cfg


@pytest.mark.parametrize("edit,message", [
    (lambda c: [c], "config.json: the file must be a JSON object, got a list"),
    (lambda c: {**c, "model": "gpt"}, "'model' must be a JSON object"),
    (lambda c: {**c, "train": "fast"}, "'train' must be a JSON object"),
    (lambda c: {**c, "model": {**c["model"], "config": {**c["model"]["config"], "n_layer": "4"}}},
     "'model.config.n_layer' must be an integer"),
    (lambda c: {**c, "model": {**c["model"], "config": {**c["model"]["config"], "n_embd": 10 ** 9}}},
     "'model.config.n_embd' must be an integer in [1, 65536]"),
    (lambda c: {**c, "model": {**c["model"], "config": {**c["model"]["config"], "n_layer": 1024, "n_embd": 8192,
                                                        "n_head": 8}}}, "of memory"),
])
@pytest.mark.parametrize("command", [["generate", "--prompt", "R"], ["info"], ["eval", "--data", "tiny"]])
def test_hostile_checkpoint_config(run_dir: Path, edit, message: str, command: list) -> None:
    for ckpt in ("latest", "best"):
        put(run_dir, "config.json", edit(json.loads((run_dir / ckpt / "config.json").read_text())), ckpt)
    fails([command[0], "--ckpt", run_dir, *command[1:]], message, run_dir)


@pytest.mark.parametrize("state_edit,message", [({"iteration": -5}, "'iteration' must be an integer"),
                                                ({"rng": "x"}, "'rng' must be a JSON object"),
                                                ({"data": [1]}, "'data' must be a JSON object"),
                                                ({"iteration": 10 ** 30}, "got a huge integer")])
def test_a_failed_resume_changes_nothing(run_dir: Path, state_edit: dict, message: str) -> None:
    state = json.loads((run_dir / "latest" / "state.json").read_text())
    put(run_dir, "state.json", {**state, **state_edit})
    fails(["train", "--out", run_dir, "--resume", "--iters", "8"], message, run_dir)   # run_dir digest unchanged


def test_resume_with_a_damaged_metrics_file_changes_nothing(run_dir: Path) -> None:
    with open(run_dir / "metrics.jsonl", "a") as f:
        f.write(json.dumps({"iter": "three"}) + "\n")
    fails(["train", "--out", run_dir, "--resume", "--iters", "8"], "metrics.jsonl: 'line", run_dir)


def test_a_symlinked_latest_keeps_working_through_a_resumed_run(run_dir: Path, base_run: Path, tmp_path: Path) -> None:
    pinned = tmp_path / "pinned"
    (run_dir / "latest").rename(pinned)
    (run_dir / "latest").symlink_to(pinned)
    result = CliRunner().invoke(cli, ["train", "--out", str(run_dir), "--resume", "--iters", "8",
                                      "--data", str(base_run.parent / "corpus.txt")])
    assert result.exit_code == 0, result.output                                # saves at 6 and 8: twice
    assert (run_dir / "latest").is_symlink() and json.loads((pinned / "state.json").read_text())["iteration"] == 8


@pytest.mark.parametrize("recorded", ["/dev/zero", "../../../etc/passwd", "corpus.txt"])
def test_a_resumed_run_never_opens_the_data_path_its_config_names(run_dir: Path, recorded: str) -> None:
    config = json.loads((run_dir / "latest" / "config.json").read_text())
    config["train"]["data"] = recorded
    put(run_dir, "config.json", config)
    fails(["train", "--out", run_dir, "--resume", "--iters", "8"], "give --data again", run_dir)


def test_a_resumed_run_takes_its_data_again_and_no_other(run_dir: Path, base_run: Path, tmp_path: Path) -> None:
    other = tmp_path / "other.txt"
    other.write_text(TEXT[::-1])
    fails(["train", "--out", run_dir, "--resume", "--iters", "8", "--data", other], "differs from the run", run_dir)
    result = CliRunner().invoke(cli, ["train", "--out", str(run_dir), "--resume", "--iters", "8",
                                      "--data", str(base_run.parent / "corpus.txt")])
    assert result.exit_code == 0, result.output


@pytest.mark.parametrize("flags,message", [(["--n-layer", "1000000"], "--n-layer 1,000,000 is more than"),
                                           (["--n-embd", "1000000000", "--n-head", "1"], "--n-embd"),
                                           (["--batch-size", "1000000000"], "--batch-size"),
                                           (["--eval-iters", "1000000000"], "--eval-iters"),
                                           (["--n-layer", "300", "--n-embd", "4096", "--n-head", "4"], "of memory"),
                                           (["--tokenizer", "bpe", "--vocab-size", str(10 ** 12)], "--vocab-size"),
                                           (["--seed", str(10 ** 30)], "--seed")])
def test_sizes_too_big_are_refused_before_anything_is_written(tmp_path: Path, flags: list, message: str) -> None:
    (tmp_path / "c.txt").write_text(TEXT)
    fails(["train", "--data", tmp_path / "c.txt", "--out", tmp_path / "r", *SMALL, *flags], message, tmp_path)
    assert not (tmp_path / "r").exists()


@pytest.mark.parametrize("args,message", [(["--max-new-tokens", str(10 ** 12)], "--max-new-tokens"),
                                          (["--num-samples", str(10 ** 9)], "--num-samples")])
def test_generation_counts_are_capped(run_dir: Path, args: list, message: str) -> None:
    fails(["generate", "--ckpt", run_dir, *args], message, run_dir)


def test_fifos_devices_and_directories_given_as_files(tmp_path: Path) -> None:
    os.mkfifo(tmp_path / "fifo.txt")
    for data in (tmp_path / "fifo.txt", "/dev/zero"):
        fails(["train", "--data", data, "--out", tmp_path / "r", *SMALL], "not a regular file")
        fails(["train", "--config", data, "--out", tmp_path / "r"], "not a regular file")
    (tmp_path / "f").write_text("x")
    fails(["info", "--ckpt", tmp_path / "f"], "is a file, not a checkpoint")


@pytest.mark.parametrize("text,message", [("[" * 100_000, "not valid JSON"), ('{"lr": NaN}', "'lr' must be a finite"),
                                          ("[1, 2]", "must hold a table"), ('{"n_layer": "2"}', "'n_layer' must be")])
def test_hostile_config_file(tmp_path: Path, text: str, message: str) -> None:
    (tmp_path / "run.json").write_text(text)
    fails(["train", "--config", tmp_path / "run.json", "--out", tmp_path / "r"], message, tmp_path)


def test_hugging_face_shard_outside_the_directory(tmp_path: Path) -> None:
    from tinyllm.data import BPETokenizer
    from tinyllm.models import GPT, GPTConfig
    from tinyllm.models.hf import save_pretrained
    bpe = BPETokenizer.train([TEXT], 270)
    d = tmp_path / "hf"
    save_pretrained(GPT(GPTConfig(vocab_size=bpe.vocab_size, block_size=8, n_layer=1, n_head=2, n_embd=8)), d, bpe)
    (tmp_path / "outside").mkdir()
    (d / "model.safetensors").rename(tmp_path / "outside" / "x.safetensors")
    for shard in ("../outside/x.safetensors", "/etc/passwd"):
        (d / "model.safetensors.index.json").write_text(json.dumps({"weight_map": {"transformer.wte.weight": shard}}))
        before = digest(tmp_path)
        fails(["generate", "--ckpt", d, "--prompt", "the"], "refusing to read it")
        assert digest(tmp_path) == before


def test_an_allocation_that_fails_at_the_first_step_is_a_one_line_error(tmp_path: Path, monkeypatch) -> None:
    from tinyllm.train.loop import Trainer

    def step(self):
        raise MemoryError("Unable to allocate 74.5 GiB for an array with shape (100000, 100000)")
    monkeypatch.setattr(Trainer, "step", step)
    (tmp_path / "c.txt").write_text(TEXT)
    line = fails(["train", "--data", tmp_path / "c.txt", "--out", tmp_path / "r", *SMALL], "out of memory")
    assert "74.5 GiB" in line and "--batch-size" in line


@pytest.mark.parametrize("command", [["generate", "--prompt", "R", "--max-new-tokens", "3"], ["info"]])
def test_a_checkpoint_without_training_settings_is_still_usable(run_dir: Path, command: list) -> None:
    """A checkpoint saved from Python may lack the 'train' section every run writes: inference still works."""
    for ckpt in ("latest", "best"):
        cfg = json.loads((run_dir / ckpt / "config.json").read_text())
        put(run_dir, "config.json", {k: v for k, v in cfg.items() if k != "train"}, ckpt)
    result = CliRunner().invoke(cli, [command[0], "--ckpt", str(run_dir), *command[1:]])
    assert result.exit_code == 0, result.output
