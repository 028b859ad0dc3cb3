"""bench/quantize.py --trained-gpt2 runs (at its --quick size, on a small text): a model is trained, and
float32 and int8 perplexities of the same validation tokens come out finite and close."""
from __future__ import annotations

import importlib.util
import math
import subprocess
import sys
from pathlib import Path

BENCH = Path(__file__).resolve().parent.parent / "bench" / "quantize.py"


def _bench():
    spec = importlib.util.spec_from_file_location("bench_quantize", BENCH)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_trained_mode_trains_then_compares_float32_and_int8(tmp_path: Path) -> None:
    text = tmp_path / "t.txt"
    text.write_text("First Citizen:\nBefore we proceed any further, hear me speak.\n\n" * 60)
    r = _bench().trained_gpt2(str(text), seconds=0.5, train_len=32, batch=4, val_tokens=256, quick=True)
    assert r["steps"] >= 1 and r["shape"]["n_layer"] == 2 and r["val_tokens"] > 0
    assert math.isfinite(r["ppl_float32"]) and math.isfinite(r["ppl_int8"])
    assert abs(r["ppl_change"]) < 0.05 * r["ppl_float32"]


def test_trained_mode_without_the_corpus_says_so(tmp_path: Path) -> None:
    out = subprocess.run([sys.executable, str(BENCH), "--trained-gpt2", "--skip-gpt2", "--shakespeare",
                          str(tmp_path / "absent.txt")], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0 and "skipped, no Tiny Shakespeare" in out.stdout, out.stdout + out.stderr
