"""Data-parallel training under ``mpiexec -n 2`` (skipped without mpi4py and an mpiexec).

Each test runs real processes: the worker scenarios of ``distributed_worker.py``
and the ``tinyllm train`` command itself, on a model small enough that a run
takes a second or two.
"""
from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("mpi4py")
from tinyllm.checkpoint import load_checkpoint  # noqa: E402
from tinyllm.distributed.launch import find_mpiexec, mpiexec_command  # noqa: E402
from tinyllm.train.metrics import read_metrics  # noqa: E402

try:
    MPIEXEC = find_mpiexec()
except ValueError:
    pytest.skip("no mpiexec (pip install 'tinyllm[mpi]')", allow_module_level=True)

WORKER = Path(__file__).with_name("distributed_worker.py")
TIMEOUT = 60          # seconds any run may take before the test calls it a hang
TEXT = ("ROMEO:\nBut soft, what light through yonder window breaks?\n\n"
        "JULIET:\nO Romeo, Romeo, wherefore art thou Romeo?\n\n") * 40
ARGS = ["--n-layer", "1", "--n-head", "2", "--n-embd", "16", "--block-size", "16", "--batch-size", "3",
        "--iters", "6", "--warmup", "2", "--eval-interval", "5", "--eval-iters", "3", "--log-interval", "1",
        "--sample-tokens", "0", "--lr", "1e-2", "--min-lr", "1e-3", "--dropout", "0", "--seed", "3",
        "--dtype", "float64"]
ENV = {**os.environ, "OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1", "TINYLLM_MPI_EXIT_TIMEOUT": "3"}


def run(cmd: list[str], env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(cmd, capture_output=True, text=True, timeout=TIMEOUT, env={**ENV, **(env or {})})


def mpi(n: int, args: list[str], env: dict | None = None) -> subprocess.CompletedProcess:
    cmd = mpiexec_command(n, args, MPIEXEC)
    return run(cmd, env)


def train(out: Path, corpus: Path, *extra: str, nproc: int = 1, env: dict | None = None):
    args = ["train", "--data", str(corpus), "--out", str(out), *ARGS, *extra]
    if nproc == 1:
        return run([sys.executable, "-c", "from tinyllm.cli import main; main()", *args], env)
    return mpi(nproc, args, env)


def weights(run_dir: Path) -> dict:
    return {k: np.asarray(v) for k, v in load_checkpoint(run_dir, prefer="latest").weights.items()}


def assert_close_weights(a: Path, b: Path, tol: float = 1e-12) -> None:
    wa, wb = weights(a), weights(b)
    assert wa.keys() == wb.keys()
    for k in wa:
        np.testing.assert_allclose(wa[k], wb[k], rtol=0, atol=tol, err_msg=k)


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> Path:
    p = tmp_path_factory.mktemp("corpus") / "corpus.txt"
    p.write_text(TEXT, encoding="utf-8")
    return p


@pytest.mark.parametrize("case", ["broadcast", "mean"])
def test_worker_scenarios_on_two_ranks(case: str) -> None:
    """broadcast: every rank starts from rank 0's weights and optimizer state; mean: rank r's
    gradient r becomes (world-1)/2 on all, twice in a row, with parameters lacking a gradient."""
    res = run([MPIEXEC, "-n", "2", sys.executable, str(WORKER), case])
    assert res.returncode == 0, res.stdout + res.stderr
    assert sorted(re.findall(r"OK \d+", res.stdout)) == ["OK 0", "OK 1"]   # the ranks' lines may interleave


@pytest.mark.parametrize("how", ["kill", "exit"])
def test_a_rank_that_dies_or_exits_ends_the_others_without_a_hang(how: str) -> None:
    t0 = time.perf_counter()
    res = run([MPIEXEC, "-n", "2", sys.executable, str(WORKER), how])
    assert res.returncode != 0
    assert "OK" not in res.stdout
    assert time.perf_counter() - t0 < TIMEOUT / 2
    if how == "exit":                                           # it waited its 3 s, then ended the other
        assert "aborting them" in res.stderr


def test_an_error_every_rank_meets_is_one_plain_error_each(tmp_path: Path) -> None:
    res = mpi(2, ["train", "--data", str(tmp_path / "missing.txt"), "--out", str(tmp_path / "run")])
    assert res.returncode == 1
    assert res.stderr.count("error: data path") == 2 and "Abort" not in res.stderr


def test_two_ranks_equal_one_rank_with_grad_accum_2_then_resume_on_one(tmp_path: Path, corpus: Path) -> None:
    """2 ranks x batch b == 1 rank x batch b x grad-accum 2 (float64, 1e-12) after 5 steps, and the
    2-rank run, crashed there and resumed on 1 rank, continues as the single-process run does."""
    crash = {"TINYLLM_KILL_AFTER_CHECKPOINT": "5"}              # rank 0 dies right after saving step 5
    one, two = tmp_path / "one", tmp_path / "two"
    r1 = train(one, corpus, "--grad-accum", "2", env=crash)
    r2 = train(two, corpus, nproc=2, env=crash)
    assert r1.returncode != 0 and r2.returncode != 0            # both were killed ...
    assert load_checkpoint(two, prefer="latest").iteration == 5  # ... after writing iteration 5
    assert_close_weights(one, two)
    assert r2.stdout.count("iter 5/6") == 1                     # one rank prints
    r1 = train(one, corpus, "--resume")
    r2 = train(two, corpus, "--resume")                         # 1 process now: grad-accum 2 per step
    assert r1.returncode == 0 and r2.returncode == 0, r2.stdout + r2.stderr
    assert load_checkpoint(two, prefer="latest").iteration == 6
    assert_close_weights(one, two)
    records = [read_metrics(run_dir / "metrics.jsonl") for run_dir in (one, two)]
    assert len(records[1]) == 6                                 # one writer, no duplicate records
    for a, b in zip(*records):                                  # losses (all-reduced) and sharded evaluation
        assert a["iter"] == b["iter"] and a["loss"] == pytest.approx(b["loss"], abs=1e-12)
        assert (a["val_loss"] is None) == (b["val_loss"] is None)
        assert a["val_loss"] is None or a["val_loss"] == pytest.approx(b["val_loss"], abs=1e-12)


def test_ctrl_c_stops_every_rank_after_the_same_step_and_saves_once(tmp_path: Path, corpus: Path) -> None:
    out = tmp_path / "run"
    args = ["train", "--data", str(corpus), "--out", str(out), *ARGS, "--iters", "100000", "--eval-interval",
            "100000"]
    proc = subprocess.Popen(mpiexec_command(2, args, MPIEXEC), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, env=ENV)
    metrics = out / "metrics.jsonl"
    deadline = time.monotonic() + TIMEOUT
    while time.monotonic() < deadline and not (metrics.exists() and metrics.read_text().count("\n") >= 2):
        time.sleep(0.1)
    proc.send_signal(signal.SIGINT)                             # mpiexec passes it on to both ranks
    stdout, stderr = proc.communicate(timeout=TIMEOUT)
    assert proc.returncode == 130, stdout + stderr
    assert stderr.count("interrupted at iteration") == 1, stderr   # rank 0 alone reports it
    saved = load_checkpoint(out, prefer="latest")
    assert f"interrupted at iteration {saved.iteration}:" in stderr


def test_nproc_starts_mpiexec_itself_with_accumulation_and_early_stopping(tmp_path: Path, corpus: Path) -> None:
    """lr 1e-300: the weights, so the validation loss, never change; both ranks stop at the second
    evaluation (they judge the same all-reduced loss). Each step is 2 ranks x 2 micro-batches of 3."""
    res = train(tmp_path / "run", corpus, "--iters", "8", "--eval-interval", "2", "--early-stop", "1",
                "--lr", "1e-300", "--min-lr", "1e-300", "--grad-accum", "2", "--nproc", "2")
    assert res.returncode == 0, res.stdout + res.stderr
    assert "8 iters x 12 x 16 tokens" in res.stdout and "2 processes" in res.stdout
    assert res.stdout.count("early stop: no val improvement in 1 evaluations") == 1
    assert load_checkpoint(tmp_path / "run", prefer="latest").iteration == 4
