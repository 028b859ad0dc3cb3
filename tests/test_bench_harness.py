"""The separate-process benchmark harness (bench/harness.py) end to end, at tiny shapes.

Each benchmark runs as a user would start it (``python bench/train.py ...``)
and writes its results as JSON; the tests read them back. The torch side is
left out where torch is not installed.
"""
import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
HAS_TORCH = importlib.util.find_spec("torch") is not None
CONTENDERS = ["tinyllm", "torch"] if HAS_TORCH else ["tinyllm"]


def bench_module(name: str):
    """A module of bench/ (not a package), imported as bench/'s scripts import each other."""
    sys.path.insert(0, str(ROOT / "bench"))
    try:
        return importlib.import_module(name)
    finally:
        sys.path.remove(str(ROOT / "bench"))


def run_bench(tmp_path: Path, script: str, *args: str) -> dict:
    out = tmp_path / "result.json"
    proc = subprocess.run([sys.executable, str(ROOT / "bench" / script), *args, "--rounds", "1", "--warmup", "1",
                           "--steps", "2", "--contenders", *CONTENDERS, "--json", str(out)],
                          capture_output=True, text=True, timeout=300, check=False)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(out.read_text())


def test_train_runs_each_contender_in_its_own_process(tmp_path):
    res = run_bench(tmp_path, "train.py", "--config", "tiny", "--no-peak", "--import-numpy-first")
    rec = res["configs"]["tiny"]
    pids = set()
    for name in CONTENDERS:
        (child,) = rec["results"][name]
        assert child["per_s"] > 0 and child["peak_rss_mib"] > 10
        assert len(child["losses"]) == 3 and child["units_per_step"] == 2 * 16
        assert rec["summary"][name]["per_s"]["median"] == child["per_s"]
        pids.add(child["pid"])
    assert len(pids) == len(CONTENDERS)                      # fresh processes, not the same one twice
    assert rec["results"]["tinyllm"][0]["numpy_first"] is True
    if HAS_TORCH:
        s = rec["summary"]
        assert s["ratio"] == pytest.approx(s["tinyllm"]["per_s"]["median"] / s["torch"]["per_s"]["median"])
        assert s["n_params"][0] == s["n_params"][1]
        assert s["max_loss_diff"] < 1e-4                     # same weights, same batches
        assert "torch_threads" in rec["results"]["torch"][0]


def test_generate_compares_greedy_tokens(tmp_path):
    # the tiny context holds 16 tokens, the prompt 8: the last 3 of 12 new tokens slide the window
    res = run_bench(tmp_path, "generate.py", "--config", "tiny", "--tokens", "12", "--batch", "2")
    child = res["results"]["tinyllm"][0]
    assert len(child["tokens"]) == 2 and len(child["tokens"][0]) == 12
    if HAS_TORCH:
        assert res["summary"]["tokens_agree"][:2] == [24, 24]


def test_quick_sets_a_short_run():
    generate, harness = bench_module("generate"), bench_module("harness")
    ap = __import__("argparse").ArgumentParser()
    harness.add_arguments(ap)
    harness.add_quick(ap, rounds=2, warmup=1, steps=3)
    args = harness.parse(ap, ["--quick", "--steps", "40"])
    assert (args.rounds, args.warmup, args.steps) == (2, 1, 3)
    assert harness.parse(ap, []).steps == 40
    assert generate.CONFIGS["gpt2"]["n_embd"] == 768


def test_spread_and_ratio():
    harness = bench_module("harness")
    s = harness.spread([4.0, 1.0, 3.0, 2.0])
    assert (s["median"], s["min"], s["max"], s["q1"], s["q3"]) == (2.5, 1.0, 4.0, 1.75, 3.25)
    a = harness.Contender("a", [], [{"per_s": 2.0, "peak_rss_mib": 1.0, "env": {}}])
    b = harness.Contender("b", [], [{"per_s": 4.0, "peak_rss_mib": 1.0, "env": {"OMP_X": "1"}}])
    summary = harness.summarize([a, b])
    assert summary["ratio"] == 0.5 and summary["env_differs"] is True


def test_a_third_contender_is_compared_with_the_first_two_round_by_round():
    harness = bench_module("harness")
    rows = lambda *v: [{"per_s": x, "peak_rss_mib": 1.0, "env": {}} for x in v]  # noqa: E731
    a, b, c = (harness.Contender(n, [], rows(*v)) for n, v in
               (("tinyllm", (2.0, 4.0)), ("torch", (2.0, 2.0)), ("tinyllm-np", (1.0, 4.0))))
    summary = harness.summarize([a, b, c])
    assert summary["ratio"] == 1.5
    assert summary["tinyllm-np"]["ratios"]["tinyllm"] == {"of_medians": 2.5 / 3.0, "per_round": [0.5, 1.0]}
    assert summary["tinyllm-np"]["ratios"]["torch"]["per_round"] == [0.5, 2.0]
    assert harness.CHILD_OF["tinyllm-np"] == ("tinyllm", ["--import-numpy-first"])
