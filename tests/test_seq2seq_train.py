"""Seq2seq data, batches, training through the shared loop (exact resume), and the CLI."""
from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from tinyllm.checkpoint import load_checkpoint
from tinyllm.cli import cli
from tinyllm.data import DataError
from tinyllm.data.pairs import SymbolVocab, pair_vocabs_from_json, pair_vocabs_to_json, read_pairs
from tinyllm.train.seq2seq import PairSource, make_batch
from tinyllm.train.seq2seq_eval import edit_distance, error_rates

TINY = ["--model", "seq2seq", "--n-layer", "1", "--n-head", "2", "--n-embd", "16", "--block-size", "8",
        "--batch-size", "8", "--eval-interval", "4", "--eval-iters", "2", "--warmup", "2", "--lr", "3e-3"]


def run(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(cli, [str(a) for a in args])
    return result.exit_code, result.output


@pytest.fixture
def pairs_file(tmp_path: Path) -> Path:
    r = random.Random(0)
    path = tmp_path / "copy.tsv"
    words = ["".join(r.choice("abcde") for _ in range(r.randint(2, 6))) for _ in range(120)]
    path.write_text("".join(f"{w}\t{' '.join(w.upper())}\n" for w in words), encoding="utf-8")
    return path


@pytest.mark.parametrize("text, message", [
    ("ab\tcd\nab cd\n", "line 2: expected 'source<TAB>target'"), ("ab\t\n", "line 1: the target is empty"),
    ("a\tb\tc\n", "line 1: .*2 tabs"),
])
def test_a_bad_tsv_row_is_one_error_naming_file_and_line(tmp_path, text, message) -> None:
    path = tmp_path / "p.tsv"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(DataError, match=f"p.tsv, {message}"):
        read_pairs(path)


@pytest.mark.parametrize("line, message", [("{", "not valid JSON"), ('{"source": "a"}', "expected an object"),
                                           ('{"source": 1, "target": "b"}', "source and target must be strings")])
def test_a_bad_jsonl_row_is_one_error_naming_file_and_line(tmp_path, line, message) -> None:
    path = tmp_path / "p.jsonl"
    path.write_text('{"source": "a", "target": "b"}\n\n' + line + "\n", encoding="utf-8")
    with pytest.raises(DataError, match=f"p.jsonl, line 3: {message}"):
        read_pairs(path)


def test_jsonl_and_tsv_give_the_same_pairs(tmp_path) -> None:
    (tmp_path / "a.tsv").write_text("hello\tHH AH0 L OW1\n", encoding="utf-8")
    (tmp_path / "a.jsonl").write_text(json.dumps({"source": "hello", "target": "HH AH0 L OW1"}) + "\n",
                                      encoding="utf-8")
    assert read_pairs(tmp_path / "a.tsv") == read_pairs(tmp_path / "a.jsonl") == [("hello", "HH AH0 L OW1")]


def test_symbol_vocabularies_round_trip_and_name_unknown_symbols() -> None:
    src = SymbolVocab.from_texts(["hello", "world"], "char")
    tgt = SymbolVocab.from_texts(["HH AH0 L OW1"], "symbols")
    assert tgt.decode(tgt.encode("HH L OW1")) == "HH L OW1" and src.decode(src.encode("word")) == "word"
    again = pair_vocabs_from_json(pair_vocabs_to_json(src, tgt))
    assert (again[0].symbols, again[1].symbols) == (src.symbols, tgt.symbols)
    with pytest.raises(DataError, match="'AA1'"):
        tgt.encode("HH AA1")
    with pytest.raises(DataError, match="symbol vocabulary"):
        pair_vocabs_from_json(json.dumps({"kind": "seq2seq-pair", "source": {"kind": "symbols", "symbols": [1]},
                                          "target": tgt.to_dict()}))


def test_batches_are_shifted_targets_with_bos_eos_and_padding() -> None:
    b = make_batch([[5, 6, 7], [8]], [[3, 4], [9, 10, 11]])
    np.testing.assert_array_equal(b["src"], [[5, 6, 7], [8, 0, 0]])
    np.testing.assert_array_equal(b["src_mask"], [[True, True, True], [True, False, False]])
    np.testing.assert_array_equal(b["tgt_in"], [[1, 3, 4, 0], [1, 9, 10, 11]])
    np.testing.assert_array_equal(b["targets"], [[3, 4, 2, -100], [9, 10, 11, 2]])


def test_pair_batches_group_similar_lengths_cover_every_pair_and_resume_exactly() -> None:
    rng = np.random.default_rng(0)
    src = [list(range(3, 3 + n)) for n in rng.integers(1, 30, size=400)]
    tgt = [s[:] for s in src]
    a = PairSource(src, tgt, batch_size=10, seed=1)
    first_epoch = [a.next() for _ in range(40)]
    widths = [b["src"].shape[1] for b in first_epoch]
    padding = sum(int((~b["src_mask"]).sum()) for b in first_epoch) / sum(b["src_mask"].size for b in first_epoch)
    assert padding < 0.1                                       # random batches of 1..29 would be ~45% padding
    assert sorted(int(n) for b in first_epoch for n in b["src_mask"].sum(1)) == sorted(len(s) for s in src)
    state = json.loads(json.dumps(a.state_dict()))
    expected = [a.next() for _ in range(5)]
    b = PairSource(src, tgt, batch_size=10, seed=1)
    b.load_state_dict(state)
    for x, y in zip(expected, [b.next() for _ in range(5)]):
        np.testing.assert_array_equal(x["src"], y["src"])
    assert len(set(widths)) > 5
    with pytest.raises(DataError, match="400 pairs in batches of 10"):
        PairSource(src[:50], tgt[:50], 10, 1).load_state_dict(state)


def test_error_rates() -> None:
    assert edit_distance(list("kitten"), list("sitting")) == 3
    rates = error_rates([["a", "b"], ["c"]], [["a", "b"], ["c", "d"]])
    assert rates == {"token_error_rate": 0.25, "sequence_error_rate": 0.5}


def test_train_generate_eval_and_an_exact_resume(tmp_path, pairs_file) -> None:
    whole, half = tmp_path / "whole", tmp_path / "half"
    common = [*TINY, "--data", pairs_file, "--tgt-tokenizer", "symbols", "--label-smoothing", "0.1"]
    code, out = run("train", *common, "--iters", "2", "--out", whole)
    assert code == 0, out
    assert "SEQ2SEQ 1+1 layers" in out and "target symbols" in out
    killed = subprocess.run([sys.executable, "-c", "from tinyllm.cli import main; main()", "train", *map(str, common),
                             "--iters", "8", "--dropout", "0.1", "--out", str(half)], capture_output=True, text=True,
                             env={**os.environ, "TINYLLM_KILL_AFTER_CHECKPOINT": "4"}, timeout=300)
    assert killed.returncode == -signal.SIGKILL, killed.stdout + killed.stderr
    code, out = run("train", *common, "--iters", "8", "--dropout", "0.1", "--out", whole, "--force")
    assert code == 0, out
    code, out = run("train", "--out", half, "--resume", "--data", pairs_file)
    assert code == 0 and "resuming at iteration 4" in out, out
    a, b = load_checkpoint(whole, prefer="latest"), load_checkpoint(half, prefer="latest")
    assert a.iteration == b.iteration == 8
    for name in a.weights:
        np.testing.assert_array_equal(a.weights[name], b.weights[name])
    assert a.state["data"] == b.state["data"] and a.state["rng"] == b.state["rng"]

    code, out = run("generate", "--ckpt", whole, "--source", "abc", "--beam", "3")
    assert code == 0 and set(out.split()) <= set("ABCDE"), out
    code, out = run("eval", "--ckpt", whole, "--data", pairs_file)
    assert code == 0 and "symbol error rate" in out and "sequence error rate" in out, out


@pytest.mark.parametrize("args, message", [
    (["--source", "xyz"], "symbol 'x'"), (["--source", "ab", "--beam", "0"], "--beam"), ([], "--source TEXT"),
])
def test_generate_refuses_bad_input_with_one_line(tmp_path, pairs_file, args, message) -> None:
    run_dir = tmp_path / "r"
    assert run("train", *TINY, "--data", pairs_file, "--iters", "1", "--out", run_dir)[0] == 0
    result = CliRunner().invoke(cli, ["generate", "--ckpt", str(run_dir), *args])
    assert result.exit_code == 1 and message in result.output and "Traceback" not in result.output


def test_train_needs_pairs_and_names_a_bad_tokenizer(tmp_path, pairs_file) -> None:
    code, out = run("train", *TINY, "--iters", "1", "--out", tmp_path / "x")
    assert code == 1 and "--data PAIRS" in out
    code, out = run("train", *TINY, "--data", pairs_file, "--tokenizer", "words", "--iters", "1", "--out", tmp_path / "y")
    assert code == 1 and "--tokenizer for seq2seq must be one of char, symbols, bpe" in out
    assert not (tmp_path / "y" / "latest").exists()


def test_the_copy_task_example_learns_to_copy(capsys) -> None:
    """examples/copy_task.py --quick: fresh random sequences copied exactly (>= 90%) after a few seconds."""
    import importlib.util
    spec = importlib.util.spec_from_file_location("copy_task", Path(__file__).parents[1] / "examples" / "copy_task.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    assert module.main(["--quick"]) == 0, capsys.readouterr().out
