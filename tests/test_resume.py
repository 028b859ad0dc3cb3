"""Resume is exact: a run killed (SIGKILL) or interrupted (Ctrl-C) and resumed ends bit-identical
to the same run left alone. Each run is a real `tinyllm train` process."""
from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from tinyllm.checkpoint import load_checkpoint

TEXT = ("ROMEO:\nBut soft, what light through yonder window breaks?\n\n"
        "JULIET:\nO Romeo, Romeo, wherefore art thou Romeo?\n\n") * 40
ITERS = 40
# Dropout on, so the backend's random generator is part of what must be restored.
ARGS = ["--n-layer", "1", "--n-head", "2", "--n-embd", "16", "--block-size", "16", "--batch-size", "4",
        "--iters", str(ITERS), "--warmup", "4", "--eval-iters", "1", "--log-interval", "1", "--sample-tokens", "0",
        "--lr", "1e-2", "--min-lr", "1e-3", "--dropout", "0.1", "--seed", "7"]
CMD = [sys.executable, "-c", "from tinyllm.cli import main; main()", "train"]


def start(out: Path, corpus: Path, *extra: str, env: dict | None = None) -> subprocess.Popen:
    return subprocess.Popen([*CMD, "--data", str(corpus), "--out", str(out), *ARGS, *extra],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            env={**os.environ, **(env or {})})


def finish(proc: subprocess.Popen, timeout: float = 120) -> tuple[int, str]:
    out, _ = proc.communicate(timeout=timeout)
    assert "Traceback" not in out, out
    return proc.returncode, out


def assert_same_final_state(a: Path, b: Path) -> None:
    ca, cb = load_checkpoint(a, prefer="latest"), load_checkpoint(b, prefer="latest")
    assert ca.iteration == cb.iteration == ITERS
    assert ca.weights.keys() == cb.weights.keys()
    for name in ca.weights:
        assert np.array_equal(ca.weights[name], cb.weights[name]), f"{name} differs"
    for name in ca.optimizer["state"]:
        assert np.array_equal(ca.optimizer["state"][name], cb.optimizer["state"][name]), f"optimizer {name} differs"
    assert ca.state["rng"] == cb.state["rng"] and ca.state["data"] == cb.state["data"]


def metric_losses(run: Path) -> list[tuple]:
    import json
    recs = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    return [(r["iter"], r["loss"], r["lr"]) for r in recs]


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> Path:
    p = tmp_path_factory.mktemp("data") / "corpus.txt"
    p.write_text(TEXT)
    return p


@pytest.fixture(scope="module")
def reference(tmp_path_factory: pytest.TempPathFactory, corpus: Path) -> Path:
    """The run left alone from start to finish."""
    out = tmp_path_factory.mktemp("ref") / "run"
    code, output = finish(start(out, corpus, "--eval-interval", "10"))
    assert code == 0, output
    return out


def test_sigkill_after_a_checkpoint_then_resume_is_bit_identical(tmp_path: Path, corpus: Path,
                                                                  reference: Path) -> None:
    out = tmp_path / "run"
    code, output = finish(start(out, corpus, "--eval-interval", "10",
                                env={"TINYLLM_KILL_AFTER_CHECKPOINT": str(ITERS // 2)}))
    assert code == -signal.SIGKILL, output                     # killed, as planned, right after iteration 20
    assert load_checkpoint(out).iteration == ITERS // 2
    code, output = finish(start(out, corpus, "--eval-interval", "10", "--resume"))
    assert code == 0, output
    assert f"resuming at iteration {ITERS // 2}" in output
    assert_same_final_state(reference, out)
    assert metric_losses(out) == metric_losses(reference)    # the metrics file tells one continuous run


def test_sigkill_at_a_random_moment_never_corrupts_latest(tmp_path: Path, corpus: Path, reference: Path) -> None:
    out = tmp_path / "run"
    proc = start(out, corpus, "--eval-interval", "1")         # a checkpoint every step: kills land mid-save
    deadline = time.time() + 60
    while not (out / "latest").exists() and proc.poll() is None and time.time() < deadline:
        time.sleep(0.01)
    time.sleep(random.Random(0).uniform(0.05, 0.3))
    proc.send_signal(signal.SIGKILL)
    finish(proc)
    killed_at = load_checkpoint(out).iteration               # complete and verified, whatever the moment
    assert 1 <= killed_at <= ITERS
    code, output = finish(start(out, corpus, "--eval-interval", "1", "--resume"))
    assert code == 0, output
    assert_same_final_state(reference, out)


def test_ctrl_c_saves_exits_cleanly_and_resumes_exactly(tmp_path: Path, corpus: Path, reference: Path) -> None:
    out = tmp_path / "run"
    proc = start(out, corpus, "--eval-interval", "10")
    deadline = time.time() + 60
    metrics = out / "metrics.jsonl"
    while proc.poll() is None and time.time() < deadline:
        if metrics.exists() and metrics.read_text().count("\n") >= 2:   # training is under way
            break
        time.sleep(0.005)
    if proc.poll() is not None:
        pytest.skip("the run finished before it could be interrupted")
    proc.send_signal(signal.SIGINT)
    code, output = finish(proc)
    assert code == 130, output
    it = load_checkpoint(out).iteration
    assert f"interrupted at iteration {it}: saved {out / 'latest'}; continue with: tinyllm train --out {out} --resume" \
        in output
    assert 2 <= it < ITERS
    code, output = finish(start(out, corpus, "--eval-interval", "10", "--resume"))
    assert code == 0, output
    assert_same_final_state(reference, out)
