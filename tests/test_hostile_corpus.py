"""Corpora bigger than memory: chunked encoding into a cached token file, with bounded memory.

The memory test runs in a fresh process (its peak RSS is its own): encoding a
~50 MB corpus must cost far less than the 400 MB an int64 array of its ids
(let alone the 1.8 GB of a Python list) would.
"""
from __future__ import annotations

import hashlib
import json
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from tinyllm.data import BPETokenizer, CharTokenizer, DataError, TokenFile, UnknownCharactersError, encode_corpus
from tinyllm.data.encoding import corpus_key
from tinyllm.data.text import iter_text
from tinyllm.train import pretrain
from tinyllm.train.metrics import Progress

TEXT = "ROMEO:\nBut soft, what light through yonder window breaks?\n\nJULIET:\nO Romeo, Romeo!\n\n" * 300
QUIET = {"progress": Progress(echo=lambda s: None, enabled=False)}


def sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture
def corpus(tmp_path: Path) -> Path:
    p = tmp_path / "corpus" / "text.txt"
    p.parent.mkdir()
    p.write_text(TEXT)
    return p


@pytest.mark.parametrize("kind", ["char", "bpe"])
def test_chunked_encoding_gives_the_ids_of_the_whole_text(corpus: Path, tmp_path: Path, kind: str) -> None:
    tok = CharTokenizer.from_text(iter_text(corpus, 500)) if kind == "char" else BPETokenizer.train([TEXT], 300)
    whole = tok.encode(TEXT)
    ids, chars, cached = encode_corpus(corpus, tok, cache=tmp_path / "c", chunk_chars=500)
    assert cached is None and ids.dtype == np.uint16 and ids.tolist() == whole and chars == len(TEXT)
    on_disk, chars2, cached = encode_corpus(corpus, tok, cache=tmp_path / "c", in_memory_bytes=0, chunk_chars=500)
    assert isinstance(on_disk, TokenFile) and on_disk.read().tolist() == whole and chars2 == len(TEXT)
    assert cached.parent == tmp_path / "c" and cached.name == f"{corpus_key(corpus, tok)}.bin"


def test_the_token_cache_is_reused_replaced_and_never_beside_the_corpus(corpus: Path, tmp_path: Path) -> None:
    tok = CharTokenizer.from_text(TEXT)
    before = {p.name for p in corpus.parent.iterdir()}, sha(corpus)
    _, _, cached = encode_corpus(corpus, tok, cache=tmp_path / "c", in_memory_bytes=0)
    stamp = cached.stat().st_mtime_ns
    _, _, again = encode_corpus(corpus, tok, cache=tmp_path / "c", in_memory_bytes=0)
    assert again == cached and cached.stat().st_mtime_ns == stamp          # reused, not written again
    assert ({p.name for p in corpus.parent.iterdir()}, sha(corpus)) == before
    other = CharTokenizer.from_text(TEXT + "#")
    _, _, other_cache = encode_corpus(corpus, other, cache=tmp_path / "c", in_memory_bytes=0)
    assert other_cache != cached                                            # another tokenizer: another file
    Path(str(cached) + ".json").write_text("[1]")                           # a damaged cache is encoded again
    ids, _, _ = encode_corpus(corpus, tok, cache=tmp_path / "c", in_memory_bytes=0)
    assert ids.read().tolist() == tok.encode(TEXT)


def test_a_failed_encoding_leaves_no_cache_file(corpus: Path, tmp_path: Path) -> None:
    tok = CharTokenizer(sorted(set(TEXT) - {"J"}))                           # 'J' first appears mid-corpus
    with pytest.raises(UnknownCharactersError, match=f"'J' \\(position {TEXT.index('J')}\\)"):
        encode_corpus(corpus, tok, what="data 'text.txt'", cache=tmp_path / "c", in_memory_bytes=0, chunk_chars=64)
    assert list((tmp_path / "c").iterdir()) == []


def test_training_on_a_cached_corpus_and_resuming_it(corpus: Path, tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("TINYLLM_CACHE", str(tmp_path / "cache"))
    monkeypatch.setattr("tinyllm.data.encoding.IN_MEMORY_BYTES", 0)
    small = {"data": str(corpus), "n_layer": 1, "n_head": 2, "n_embd": 8, "block_size": 8, "batch_size": 2,
             "iters": 4, "warmup": 1, "eval_interval": 2, "eval_iters": 1, "sample_tokens": 0}
    out = tmp_path / "run"
    pretrain({**small, "iters": 2}, out=str(out), **QUIET)
    assert len(list((tmp_path / "cache" / "tokens").glob("*.bin"))) == 1
    result = pretrain({"iters": 4, "data": str(corpus)}, out=str(out), resume=True, **QUIET).result
    assert result.iteration == 4
    unbroken = pretrain(small, out=str(tmp_path / "unbroken"), **QUIET).result
    assert result.best_val_loss == unbroken.best_val_loss                  # resume on the cache is exact


def test_encoding_memory_is_bounded_by_a_chunk(tmp_path: Path) -> None:
    corpus = tmp_path / "big.txt"
    line = "the quick brown fox jumps over the lazy dog; ROMEO and JULIET speak.\n"
    with open(corpus, "w") as f:
        for _ in range(50_000_000 // (len(line) * 1000)):
            f.write(line * 1000)
    n = corpus.stat().st_size
    script = textwrap.dedent(f"""
        import json, resource
        from tinyllm.data import CharTokenizer, encode_corpus
        from tinyllm.data.text import iter_text
        base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        tok = CharTokenizer.from_text(iter_text({str(corpus)!r}))
        ids, chars, cached = encode_corpus({str(corpus)!r}, tok, cache={str(tmp_path / 'cache')!r})
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        print(json.dumps({{"extra_kb": peak - base, "tokens": len(ids), "cached": str(cached)}}))
    """)
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    report = json.loads(out.stdout.strip().splitlines()[-1])
    assert report["tokens"] == n and report["cached"] != "None"
    int64_mb = 8 * n / 2 ** 20
    assert report["extra_kb"] / 1024 < int64_mb / 4, (report, int64_mb)   # ~400 MB as int64; here tens of MB


def test_a_directory_or_device_as_corpus_is_refused(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="not a regular file"):
        encode_corpus("/dev/zero", CharTokenizer(list("ab")))
    with pytest.raises(DataError, match="has no .txt files"):
        encode_corpus(tmp_path, CharTokenizer(list("ab")))
