"""Corpora: reading text files and directories, built-in names, the verified download.

The download tests talk to a throwaway HTTP server on 127.0.0.1; the real
network is never touched.
"""
import hashlib
import http.server
import threading
from functools import partial
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tinyllm.data import (SHAKESPEARE_SHA256, BPETokenizer, CharTokenizer, DataError, cache_dir, download,
                          fetch_shakespeare, iter_text, load_text, resolve_corpus)
from tinyllm.data.corpora import TINY_CORPUS

FAST = dict(timeout=5.0, retries=3, backoff=0.0)


# ----------------------------------------------------------------------------- load_text / iter_text

def test_load_text_file_and_directory(tmp_path):
    (tmp_path / "d" / "sub").mkdir(parents=True)
    (tmp_path / "d" / "b.txt").write_text("second\n", encoding="utf-8")
    (tmp_path / "d" / "a.txt").write_text("first", encoding="utf-8")  # no final newline: one is added
    (tmp_path / "d" / "sub" / "c.txt").write_text("third\n", encoding="utf-8")
    (tmp_path / "d" / "notes.md").write_text("ignored", encoding="utf-8")
    (tmp_path / "d" / "empty.txt").write_bytes(b"")
    assert load_text(tmp_path / "d") == "first\nsecond\nthird\n"
    assert load_text(tmp_path / "d" / "a.txt") == "first"


def test_load_text_keeps_line_endings_and_drops_a_bom(tmp_path):
    (tmp_path / "x.txt").write_bytes(b"\xef\xbb\xbfline one\r\nline two\r\n")
    assert load_text(tmp_path / "x.txt") == "line one\r\nline two\r\n"


@pytest.mark.parametrize("content, message", [
    (b"", "data file '{p}' is empty"),
    (b"\x89PNG\r\n\x1a\n", "data file '{p}' is not UTF-8 text (byte 0x89 at offset 0)"),
    (b"caf\xc3\xa9 ok then \xff", "data file '{p}' is not UTF-8 text (byte 0xff at offset 14)"),
    (b"truncated \xe2\x82", "data file '{p}' is not UTF-8 text (byte 0xe2 at offset 10)"),
    (b"text then \x00\x01\x02", "data file '{p}' looks binary (NUL byte at offset 10), not UTF-8 text"),
])
def test_load_text_errors_name_the_problem(tmp_path, content, message):
    p = tmp_path / "data.bin"
    p.write_bytes(content)
    with pytest.raises(DataError) as info:
        load_text(p)
    assert str(info.value) == message.format(p=p)


def test_bad_byte_offset_is_exact_across_read_blocks(tmp_path, monkeypatch):
    import tinyllm.data.text as text_mod
    monkeypatch.setattr(text_mod, "READ_BYTES", 7)  # a 3-byte character straddles two reads
    p = tmp_path / "x.txt"
    p.write_bytes("ab€€€€".encode("utf-8") + b"\xc3(" + b"rest")
    with pytest.raises(DataError, match=r"byte 0xc3 at offset 14\)"):
        load_text(p)
    p.write_bytes("ab€€€€ fine".encode("utf-8"))
    assert load_text(p) == "ab€€€€ fine"


def test_missing_path_and_directory_without_text(tmp_path):
    with pytest.raises(DataError, match=r"data path '.*nope' does not exist"):
        load_text(tmp_path / "nope")
    (tmp_path / "d").mkdir()
    (tmp_path / "d" / "a.csv").write_text("x")
    with pytest.raises(DataError, match=r"directory '.*d' has no \.txt files"):
        load_text(tmp_path / "d")
    (tmp_path / "d" / "a.txt").write_bytes(b"")
    with pytest.raises(DataError, match="has only empty .txt files"):
        list(iter_text(tmp_path / "d"))


@given(st.lists(st.text(alphabet=st.sampled_from("ab \n\t\r"), max_size=50), min_size=1, max_size=4),
       st.integers(2, 40))
def test_iter_text_chunks_concatenate_to_the_whole(tmp_path_factory, parts, chunk_chars):
    d = tmp_path_factory.mktemp("corpus")
    for i, part in enumerate(parts):
        (d / f"{i:02d}.txt").write_text(part + "x", encoding="utf-8", newline="")
    chunks = list(iter_text(d, chunk_chars=chunk_chars))
    assert all(0 < len(c) <= chunk_chars for c in chunks)
    assert "".join(chunks) == load_text(d)


def test_streamed_tokenization_equals_whole_text_tokenization(tmp_path):
    text = TINY_CORPUS.read_text(encoding="utf-8")[:30000]
    (tmp_path / "c.txt").write_text(text, encoding="utf-8")
    bpe = BPETokenizer.train([text[:8000]], vocab_size=300)
    chunks = list(iter_text(tmp_path / "c.txt", chunk_chars=1000))
    assert len(chunks) > 25
    streamed = [i for c in chunks for i in bpe.encode(c)]
    assert streamed == bpe.encode(text)


# ----------------------------------------------------------------------------- built-in corpora

def test_tiny_corpus_ships_with_the_package():
    path = Path(resolve_corpus("tiny"))
    assert path == TINY_CORPUS and resolve_corpus() == str(path)
    text = load_text(path)
    assert 200_000 <= len(text.encode("utf-8")) <= 300_000
    assert text.startswith("First Citizen:\nBefore we proceed any further, hear me speak.")
    assert text.endswith("\n") and not text.endswith("\n\n")
    assert len(CharTokenizer.from_text(text).chars) > 50


def test_tiny_corpus_is_a_prefix_of_tiny_shakespeare(shakespeare_path):
    full = shakespeare_path.read_text(encoding="utf-8")
    assert full.startswith(load_text(TINY_CORPUS))


def test_resolve_corpus_paths_and_unknown_names(tmp_path):
    (tmp_path / "mine.txt").write_text("hello\n")
    assert resolve_corpus(tmp_path / "mine.txt") == str(tmp_path / "mine.txt")
    with pytest.raises(DataError, match="no corpus named 'wikipedia'.*built-in corpora: tiny, shakespeare"):
        resolve_corpus("wikipedia")


def test_cache_dir_follows_the_environment(monkeypatch, tmp_path):
    monkeypatch.setenv("TINYLLM_CACHE", str(tmp_path / "a"))
    assert cache_dir() == tmp_path / "a"
    monkeypatch.delenv("TINYLLM_CACHE")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert cache_dir() == tmp_path / "xdg" / "tinyllm"
    monkeypatch.delenv("XDG_CACHE_HOME")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert cache_dir() == tmp_path / "home" / ".cache" / "tinyllm"


# ----------------------------------------------------------------------------- downloads (local server only)

class _Handler(http.server.SimpleHTTPRequestHandler):
    """Serves a directory; "/short" promises 1000 bytes and sends 10; counts requests."""

    def log_message(self, *args):  # keep test output clean
        pass

    def do_GET(self):
        self.server.hits.append(self.path)
        if self.path == "/short":
            self.send_response(200)
            self.send_header("Content-Length", "1000")
            self.end_headers()
            self.wfile.write(b"0123456789")
            self.wfile.flush()
            self.close_connection = True
            return
        super().do_GET()


@pytest.fixture
def server(tmp_path):
    """A local HTTP server in a thread: (base URL, served directory, list of request paths)."""
    root = tmp_path / "served"
    root.mkdir()
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), partial(_Handler, directory=str(root)))
    httpd.hits = []
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}", root, httpd.hits
    httpd.shutdown()
    httpd.server_close()
    thread.join(5)


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def test_download_success_is_verified_and_atomic(server, tmp_path):
    url, root, hits = server
    data = b"To be, or not to be\n" * 1000
    (root / "c.txt").write_bytes(data)
    dest = tmp_path / "cache" / "c.txt"
    assert download(f"{url}/c.txt", dest, _sha(data), **FAST) == dest
    assert dest.read_bytes() == data and hits == ["/c.txt"]
    assert [p.name for p in dest.parent.iterdir()] == ["c.txt"]  # no temporary file left behind


def test_download_wrong_hash_is_retried_then_refused(server, tmp_path):
    url, root, hits = server
    (root / "c.txt").write_bytes(b"corrupted content")
    dest = tmp_path / "cache" / "c.txt"
    with pytest.raises(DataError) as info:
        download(f"{url}/c.txt", dest, _sha(b"the real content"), **FAST)
    msg = str(info.value)
    assert "checksum mismatch" in msg and "3 attempts" in msg and f"save it as {dest}" in msg
    assert len(hits) == 3
    assert not dest.exists() and list(dest.parent.iterdir()) == []


def test_download_short_read_is_refused(server, tmp_path):
    url, _, hits = server
    dest = tmp_path / "cache" / "c.txt"
    with pytest.raises(DataError, match="short read"):
        download(f"{url}/short", dest, _sha(b"x"), **FAST)
    assert len(hits) == 3 and not dest.exists()


def test_download_404_is_refused_without_retrying(server, tmp_path):
    url, _, hits = server
    with pytest.raises(DataError, match=r"HTTP error 404 .*1 attempt\)"):
        download(f"{url}/missing.txt", tmp_path / "c.txt", _sha(b"x"), **FAST)
    assert hits == ["/missing.txt"]


def test_download_without_a_server_is_refused(tmp_path):
    import socket
    with socket.socket() as s:  # a port that nothing listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with pytest.raises(DataError, match=r"network error.*download it yourself and save it as"):
        download(f"http://127.0.0.1:{port}/x.txt", tmp_path / "x.txt", _sha(b"x"), timeout=2.0, retries=2,
                 backoff=0.0)
    with pytest.raises(DataError, match="must start with http"):
        download("file:///etc/passwd", tmp_path / "x.txt", _sha(b"x"))


def test_shakespeare_download_cache_hit_and_corrupt_cache(server, tmp_path, shakespeare_path, monkeypatch):
    url, root, hits = server
    (root / "input.txt").write_bytes(shakespeare_path.read_bytes())
    cache = tmp_path / "cache"
    monkeypatch.setenv("TINYLLM_CACHE", str(cache))
    monkeypatch.setenv("TINYLLM_SHAKESPEARE_URL", f"{url}/input.txt")  # the environment override
    path = resolve_corpus("shakespeare")
    assert Path(path) == cache / "tinyshakespeare.txt" and len(hits) == 1
    assert _sha(Path(path).read_bytes()) == SHAKESPEARE_SHA256
    assert len(load_text(path)) == 1_115_394
    # A cache hit needs no server at all.
    monkeypatch.setenv("TINYLLM_SHAKESPEARE_URL", "http://127.0.0.1:9/unreachable")
    assert resolve_corpus("shakespeare") == path and len(hits) == 1
    # A cached file with the wrong hash is downloaded again, never used (URL as a parameter this time).
    Path(path).write_text("First Citizen:\nI have been tampered with.\n")
    assert fetch_shakespeare(url=f"{url}/input.txt", timeout=5.0, backoff=0.0) == Path(path)
    assert len(hits) == 2 and _sha(Path(path).read_bytes()) == SHAKESPEARE_SHA256


def test_shakespeare_bad_download_leaves_no_usable_file(server, tmp_path):
    url, root, hits = server
    (root / "input.txt").write_text("not shakespeare\n")
    with pytest.raises(DataError, match="checksum mismatch.*tinyshakespeare.txt"):
        fetch_shakespeare(url=f"{url}/input.txt", cache=tmp_path, timeout=5.0, retries=2, backoff=0.0)
    assert len(hits) == 2 and not (tmp_path / "tinyshakespeare.txt").exists()
