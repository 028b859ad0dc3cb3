"""The training package: settings, batch sources, the loop, pre-training, fine-tuning, evaluation."""
from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest

from tinyllm.checkpoint import load_checkpoint
from tinyllm.data import CharTokenizer, DataError
from tinyllm.decoding import TextStreamer, generate
from tinyllm.train import PRESETS, TrainConfig, TrainingDiverged, pretrain, read_config_file, resolve, restore_model
from tinyllm.train.config import DEFAULT_PRESET
from tinyllm.train.data import ExampleSource, LMSource, MLMSource, tokenizer_from_json
from tinyllm.train.evaluate import evaluate_classifier, evaluate_lm, format_confusion
from tinyllm.train.finetune import finetune
from tinyllm.train.metrics import MetricsLog, Progress, format_duration, read_metrics, sparkline

TEXT = ("ROMEO:\nBut soft, what light through yonder window breaks?\n\n"
        "JULIET:\nO Romeo, Romeo, wherefore art thou Romeo?\n\n") * 40

# A model small enough for tests: a second or two per run.
SMALL = dict(preset="tiny", n_layer=1, n_head=2, n_embd=16, block_size=16, batch_size=4, iters=12, warmup=2,
             eval_interval=4, eval_iters=2, log_interval=2, sample_tokens=0, lr=1e-2, min_lr=1e-3)


def quiet() -> Progress:
    lines: list[str] = []
    p = Progress(echo=lines.append, enabled=False)
    p.lines = lines  # type: ignore[attr-defined]
    return p


@pytest.fixture
def corpus(tmp_path: Path) -> Path:
    p = tmp_path / "corpus.txt"
    p.write_text(TEXT, encoding="utf-8")
    return p


# ----------------------------------------------------------------------------- settings

def test_presets_define_a_model_and_default_is_the_no_argument_run() -> None:
    cfg = resolve({})
    assert cfg.preset == DEFAULT_PRESET == "default"
    nano = resolve({"preset": "nano"})
    assert (nano.n_layer, nano.n_head, nano.n_embd, nano.block_size) == (4, 4, 128, 64)
    small = resolve({"preset": "small"})
    assert (small.n_layer, small.n_head, small.n_embd, small.block_size) == (6, 6, 384, 256)
    for name in PRESETS:
        resolve({"preset": name}).validate()
    assert resolve({"preset": "nano", "iters": 7}).iters == 7  # explicit settings beat the preset


@pytest.mark.parametrize("settings,message", [
    ({"lr": 0.0}, "lr must be a positive number"),
    ({"lr": -1e-3}, "lr must be a positive number"),
    ({"batch_size": 0}, "batch_size must be a positive integer"),
    ({"iters": -5}, "iters must be a positive integer"),
    ({"n_embd": 100, "n_head": 3}, r"n_embd \(100\) must be divisible by n_head \(3\)"),
    ({"dropout": 1.5}, r"dropout must be a number in \[0, 1\)"),
    ({"preset": "huge"}, "preset must be one of"),
    ({"min_lr": 1.0}, "min_lr .* must not exceed lr"),
    ({"colour": "red"}, "unknown training setting 'colour'"),
])
def test_bad_settings_are_one_line_errors(settings: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        resolve(settings)


def test_config_files_toml_and_json(tmp_path: Path) -> None:
    keys = tuple(f for f in TrainConfig.__dataclass_fields__)
    toml = tmp_path / "run.toml"
    toml.write_text('preset = "nano"\nbatch-size = 8\nearly_stop = 2\n')
    assert read_config_file(toml, keys) == {"preset": "nano", "batch_size": 8, "early_stop": 2}
    js = tmp_path / "run.json"
    js.write_text(json.dumps({"lr": 0.01, "n-layer": 2}))
    assert read_config_file(js, keys) == {"lr": 0.01, "n_layer": 2}
    bad = tmp_path / "bad.toml"
    bad.write_text("n_layers = 3\n")
    with pytest.raises(ValueError, match="unknown key 'n_layers'"):
        read_config_file(bad, keys)
    broken = tmp_path / "broken.toml"
    broken.write_text("lr = = 3\n")
    with pytest.raises(ValueError, match="not valid TOML"):
        read_config_file(broken, keys)
    with pytest.raises(ValueError, match="does not exist"):
        read_config_file(tmp_path / "missing.toml", keys)


# ----------------------------------------------------------------------------- metrics and text

def test_sparkline_and_durations() -> None:
    assert sparkline([3.0, 2.0, 1.5, 1.2]) == "█▄▂▁"
    assert sparkline([]) == "" and sparkline([1.0, 1.0]) == "▁▁"
    assert len(sparkline(list(range(500)), width=40)) == 40
    assert format_duration(75.3) == "1:15" and format_duration(3725) == "1:02:05"


def test_metrics_log_drops_records_after_the_resumed_iteration(tmp_path: Path) -> None:
    log = MetricsLog(tmp_path / "m.jsonl")
    for it in (10, 20, 30):
        log.write({"iter": it, "loss": 1.0 / it, "val_loss": float("nan")})
    resumed = MetricsLog(tmp_path / "m.jsonl", resume_iter=20)
    assert [r["iter"] for r in resumed.records] == [10, 20]
    assert read_metrics(tmp_path / "m.jsonl")[0]["val_loss"] is None  # NaN is written as null


def test_text_streamer_holds_back_split_utf8_characters() -> None:
    class Bytes:
        def decode(self, ids):
            return bytes(ids).decode("utf-8", errors="replace")
    s = TextStreamer(Bytes())
    pieces = [s.push(b) for b in "é!".encode()]
    assert pieces == ["", "é", "!"]


# ----------------------------------------------------------------------------- batch sources

def test_sources_resume_exactly_from_their_state() -> None:
    tok = CharTokenizer.from_text(TEXT, special_tokens=("[PAD]", "[CLS]", "[SEP]", "[MASK]"))
    ids = np.asarray(tok.encode(TEXT))
    for make in (lambda: LMSource(ids, 8, 3, seed=1), lambda: MLMSource(ids, 8, 3, 1, tok, 0.3),
                 lambda: ExampleSource({"x": np.arange(10), "y": np.arange(10) * 2}, 4, seed=1)):
        a, b = make(), make()
        for _ in range(3):
            a.next()
        state = json.loads(json.dumps(a.state_dict()))  # survives JSON
        b.load_state_dict(state)
        for _ in range(4):
            x, y = a.next(), b.next()
            assert all(np.array_equal(x[k], y[k]) for k in x)


def test_example_source_visits_every_row_once_per_epoch() -> None:
    src = ExampleSource({"x": np.arange(12)}, 4, seed=0)
    seen = np.concatenate([src.next()["x"] for _ in range(3)])
    assert sorted(seen.tolist()) == list(range(12))


# ----------------------------------------------------------------------------- pre-training end to end

def test_pretrain_learns_writes_a_run_and_resumes_longer(tmp_path: Path, corpus: Path) -> None:
    out = tmp_path / "run"
    outcome = pretrain({**SMALL, "data": str(corpus), "iters": 24, "sample_tokens": 20}, out=str(out), progress=quiet())
    recs = read_metrics(out / "metrics.jsonl")
    assert [r["iter"] for r in recs] == list(range(2, 25, 2))
    assert set(recs[0]) >= {"iter", "loss", "val_loss", "lr", "tokens_per_sec", "elapsed"}
    vals = [r["val_loss"] for r in recs if r["val_loss"] is not None]
    assert len(vals) == 6 and vals[-1] < vals[0] - 0.3       # it learns
    assert outcome.result.best_val_loss == min(vals)
    assert isinstance(outcome.sample, str) and len(outcome.sample) == 20
    best = load_checkpoint(out, prefer="best")
    assert best.state["best_val_loss"] == min(vals)
    cfg = load_checkpoint(out).config
    assert cfg["model"]["kind"] == "gpt" and cfg["model"]["config"]["n_embd"] == 16
    assert cfg["train"]["iters"] == 24 and cfg["task"]["name"] == "pretrain"
    assert tokenizer_from_json(load_checkpoint(out).tokenizer_json).vocab_size == cfg["model"]["config"]["vocab_size"]
    with pytest.raises(ValueError, match="give --data again"):       # a path read from the run is not opened
        pretrain({"iters": 28}, out=str(out), resume=True, progress=quiet())
    more = pretrain({"iters": 28, "data": str(corpus)}, out=str(out), resume=True, progress=quiet())
    assert more.result.iteration == 28
    with pytest.raises(ValueError, match="differs from the run"):
        pretrain({"lr": 0.5}, out=str(out), resume=True, progress=quiet())


def test_early_stopping_after_patience_evaluations(tmp_path: Path, corpus: Path) -> None:
    # lr so small that float32 weights do not change: the val loss never improves after the first eval
    outcome = pretrain({**SMALL, "data": str(corpus), "iters": 200, "lr": 1e-12, "min_lr": 0.0, "early_stop": 2,
                        "eval_interval": 2}, out=str(tmp_path / "r"), progress=quiet())
    assert outcome.result.stopped_early and outcome.result.iteration == 6   # evals at 2 (best), 4, 6


def test_a_non_finite_loss_stops_training_and_keeps_the_last_good_checkpoint(
        tmp_path: Path, corpus: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import tinyllm.optim as optim

    real = optim.make_schedule

    def explode_after_8(*args, **kwargs):           # a sane run that turns absurd (lr 1e6) at iteration 8
        sched = real(*args, **kwargs)
        return lambda it: sched(it) if it < 8 else 1e6
    monkeypatch.setattr(optim, "make_schedule", explode_after_8)
    out = tmp_path / "r"
    with pytest.raises(TrainingDiverged, match=r"diverged at iteration (9|1\d): .*last good checkpoint is .*latest"):
        pretrain({**SMALL, "data": str(corpus), "iters": 40, "grad_clip": 0.0}, out=str(out), progress=quiet())
    latest = load_checkpoint(out)
    assert latest.iteration == 8                     # the checkpoint before the blow-up, intact and finite
    assert all(np.isfinite(w).all() for w in latest.weights.values())


def test_bert_pretraining_reports_masked_accuracy(tmp_path: Path, corpus: Path) -> None:
    out = tmp_path / "bert"
    p = quiet()
    pretrain({**SMALL, "model": "bert", "data": str(corpus), "dropout": 0.1}, out=str(out), progress=p)
    assert any("val acc" in line for line in p.lines)  # type: ignore[attr-defined]
    r = restore_model(out)
    assert r.kind == "bert" and r.tokenizer.mask_id is not None
    report = evaluate_lm(r, str(corpus), batch_size=4, max_batches=3)
    assert 0 < report.tokens and math.isfinite(report.loss)


def test_corpus_shorter_than_a_block_is_a_data_error(tmp_path: Path) -> None:
    short = tmp_path / "short.txt"
    short.write_text("to be or not")
    with pytest.raises(DataError, match="fewer than one block"):
        pretrain({**SMALL, "data": str(short)}, out=str(tmp_path / "r"), progress=quiet())
    assert not (tmp_path / "r").exists()


# ----------------------------------------------------------------------------- fine-tuning and evaluation

@pytest.fixture
def pretrained(tmp_path: Path, corpus: Path) -> Path:
    out = tmp_path / "base"
    pretrain({**SMALL, "data": str(corpus)}, out=str(out), progress=quiet())
    return out


def test_finetune_classify_then_evaluate(tmp_path: Path, pretrained: Path) -> None:
    data = tmp_path / "labels.csv"
    rows = ["text,label"] + [f"{'Romeo is here' if i % 2 else 'Juliet is there'},{'r' if i % 2 else 'j'}" for i in range(40)]
    data.write_text("\n".join(rows) + "\n")
    result = finetune(str(pretrained), str(data), "classify", {"iters": 30, "eval_interval": 10, "lr": 3e-3,
                                                               "warmup": 2}, progress=quiet())
    out = pretrained.with_name("base-classify")
    assert result.iteration == 30 and (out / "best").exists()
    assert load_checkpoint(pretrained).iteration == 12           # the source is untouched
    r = restore_model(out)
    assert r.kind == "classifier" and r.labels == ["j", "r"]
    report = evaluate_classifier(r, str(data))
    assert report.examples == 40 and report.confusion.sum() == 40 and report.accuracy > 0.9
    assert format_confusion(report)[0].startswith("true \\ predicted")


def test_finetune_lm_on_pairs_learns_the_responses(tmp_path: Path, pretrained: Path) -> None:
    data = tmp_path / "pairs.jsonl"
    data.write_text("".join(json.dumps({"prompt": "ROMEO:\n", "response": "Juliet?\n"}) + "\n" for _ in range(12)))
    out = tmp_path / "chat"
    result = finetune(str(pretrained), str(data), "lm", {"iters": 40, "eval_interval": 10, "lr": 1e-2, "warmup": 2},
                      out=str(out), progress=quiet())
    assert result.best_val_loss < 1.0
    r = restore_model(out)
    assert r.kind == "gpt"
    ids = r.tokenizer.encode("ROMEO:\n")
    text = r.tokenizer.decode(generate(r.model, [ids], 7, greedy=True)[0, len(ids):].tolist())
    assert text == "Juliet?"


def test_finetune_never_writes_into_the_source(pretrained: Path, tmp_path: Path) -> None:
    data = tmp_path / "pairs.jsonl"
    data.write_text(json.dumps({"prompt": "a", "response": "Romeo"}) + "\n" * 1 + json.dumps(
        {"prompt": "b", "response": "Juliet"}) + "\n")
    with pytest.raises(ValueError, match="overlap the source"):
        finetune(str(pretrained), str(data), "lm", {}, out=str(pretrained / "sub"), progress=quiet())


def test_progress_rewrites_one_line_on_a_terminal_and_stays_quiet_in_logs() -> None:
    import io
    tty = io.StringIO()
    p = Progress(stream=tty, enabled=True)
    p.status("iter 1/10  loss 4.0000")
    p.status("iter 2/10  loss 3.5")
    p.line("iter 2/10 | val 3.4")
    text = tty.getvalue()
    assert text.startswith("\riter 1/10  loss 4.0000\riter 2/10  loss 3.5   ") and text.endswith("iter 2/10 | val 3.4\n")
    log = io.StringIO()
    q = Progress(stream=log, enabled=False)
    q.status("iter 1/10")
    q.line("done")
    assert log.getvalue() == "done\n"
