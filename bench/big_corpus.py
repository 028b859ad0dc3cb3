"""A corpus far bigger than a laptop's RAM budget trains in bounded memory.

Generates a text corpus of ``--gb`` gigabytes (default 2) on the fly in a
temporary directory, trains a small character-level GPT on it for a few
iterations in a fresh process (``tinyllm train``), and reports that process's
peak resident memory, next to the peak of the same run on a 1 MB corpus (the
model, the interpreter and the libraries): the difference is what the corpus
costs. The target is under 1 GB whatever the corpus size: the text is
streamed, encoded chunk by chunk into a cached uint16 token file, and read
back through a memory map (``tinyllm/data/encoding.py``).

    python bench/big_corpus.py            # 2 GB: a few minutes (most of it encoding)
    python bench/big_corpus.py --gb 0.2   # quicker

Everything it writes (corpus, token cache, runs) lives in the temporary
directory and is removed at the end (``--keep`` to look at it).
"""
from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

WORDS = ("the of and to in a is that for it as was with be by on not he I this are or his from at which but have an "
         "they you were her she there one all we can their has been if more when will would who so no ROMEO JULIET "
         "light window breaks soft what through yonder wherefore art thou love night day sweet death").split()


def write_corpus(path: Path, n_bytes: int, seed: int = 0) -> None:
    """Lines of random words: one 8 MB block of them, written rotated by a random offset each time."""
    rng = np.random.default_rng(seed)
    words = np.array([w + " " for w in WORDS])
    block = "".join(words[rng.integers(0, len(words), size=1_500_000)]).replace("the ", "the\n").encode()
    written = 0
    with open(path, "wb") as f:
        while written < n_bytes:
            k = block.find(b"\n", int(rng.integers(0, len(block) // 2))) + 1
            piece = (block[k:] + block[:k])[: n_bytes - written]
            f.write(piece)
            written += len(piece)


def train(corpus: Path, out: Path, cache: Path) -> tuple[int, float]:
    """Peak RSS (bytes) and seconds of one ``tinyllm train`` run on ``corpus`` in a fresh process."""
    args = [sys.executable, "-c", "from tinyllm.cli import main; main()", "train", "--data", str(corpus),
            "--out", str(out), "--n-layer", "2", "--n-head", "2", "--n-embd", "64", "--block-size", "64",
            "--batch-size", "8", "--iters", "5", "--eval-interval", "5", "--eval-iters", "2", "--warmup", "1",
            "--sample-tokens", "0"]
    env = {**os.environ, "TINYLLM_CACHE": str(cache)}
    script = ("import resource, subprocess, sys; r = subprocess.run(sys.argv[1:]); "
              "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss, r.returncode)")
    start = time.perf_counter()
    res = subprocess.run([sys.executable, "-c", script, *args], env=env, capture_output=True, text=True)
    seconds = time.perf_counter() - start
    *_, last = res.stdout.strip().splitlines()
    rss_kb, code = (int(x) for x in last.split())
    if code != 0:
        raise SystemExit(f"tinyllm train failed:\n{res.stdout[-2000:]}")
    return rss_kb * 1024, seconds


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--gb", type=float, default=2.0, help="corpus size in GB (default 2)")
    ap.add_argument("--keep", action="store_true", help="keep the temporary directory")
    ap.add_argument("--target-mb", type=float, default=1024, help="fail above this many MB over the baseline")
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="tinyllm-big-corpus-"))
    try:
        small, big = tmp / "small.txt", tmp / "big.txt"
        write_corpus(small, 1 << 20)
        t0 = time.perf_counter()
        write_corpus(big, int(args.gb * (1 << 30)))
        print(f"corpus      {big.stat().st_size / 2**30:.2f} GB written in {time.perf_counter() - t0:.0f} s")
        base_rss, base_s = train(small, tmp / "run-small", tmp / "cache")
        print(f"baseline    1 MB corpus: peak RSS {base_rss / 2**20:.0f} MB ({base_s:.0f} s)")
        rss, seconds = train(big, tmp / "run-big", tmp / "cache")
        extra = (rss - base_rss) / 2**20
        print(f"big corpus  {args.gb:g} GB corpus: peak RSS {rss / 2**20:.0f} MB ({seconds:.0f} s), "
              f"{extra:.0f} MB over the baseline (target < {args.target_mb:.0f} MB)")
        cache = sorted((tmp / "cache" / "tokens").glob("*.bin"))
        print(f"token cache {', '.join(f'{p.stat().st_size / 2**30:.2f} GB' for p in cache)} in {tmp / 'cache'}")
        if extra > args.target_mb:
            raise SystemExit("FAILED: the corpus cost more memory than the target")
        print("OK")
    finally:
        if args.keep:
            print(f"kept {tmp}")
        else:
            shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
