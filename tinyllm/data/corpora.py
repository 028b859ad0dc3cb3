"""Built-in corpora, by name, and the one download the data layer ever makes.

``resolve_corpus(name_or_path)`` turns what a user typed into the path of a
text file or directory:

* ``"tiny"`` (the default corpus) - ``corpora/shakespeare_excerpt.txt``,
  shipped inside the package so that everything works offline. It is the
  first 249,547 characters (cut after a complete speech) of Tiny Shakespeare,
  Andrej Karpathy's 1.1 MB concatenation of Shakespeare's plays from the
  char-rnn project. Shakespeare's plays are in the public domain.
* ``"shakespeare"`` - the full Tiny Shakespeare (1,115,394 characters),
  downloaded once into the user cache directory (``$TINYLLM_CACHE``, else
  ``$XDG_CACHE_HOME/tinyllm``, else ``~/.cache/tinyllm``) and checked against a
  pinned SHA-256 every time it is used.
* anything else - a path to a text file or a directory of ``.txt`` files
  (write ``./tiny`` for a local file that happens to be called ``tiny``).

The download is careful because networks are not: it writes to a temporary
file beside the target and renames it into place only after the byte count
and the checksum are right, so a partial or corrupt file is never used; it
retries transient failures a few times with bounded timeouts; and when it
gives up it says what went wrong and where to put the file by hand.
"""
from __future__ import annotations

import hashlib
import http.client
import os
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

from .errors import DataError

CORPORA_DIR = Path(__file__).resolve().parent / "corpora"
TINY_CORPUS = CORPORA_DIR / "shakespeare_excerpt.txt"
DEFAULT_CORPUS = "tiny"

SHAKESPEARE_URL = "https://raw.githubusercontent.com/karpathy/char-rnn/master/data/tinyshakespeare/input.txt"
SHAKESPEARE_SHA256 = "86c4e6aa9db7c042ec79f339dcb96d42b0075e16b8fc2e86bf0ca57e2dc565ed"
SHAKESPEARE_FILE = "tinyshakespeare.txt"

BUILTIN = ("tiny", "shakespeare")
MAX_DOWNLOAD_BYTES = 64 << 20  # far above any built-in corpus: stops a wrong URL from filling the disk


def cache_dir() -> Path:
    """Where downloaded corpora are kept: $TINYLLM_CACHE, $XDG_CACHE_HOME/tinyllm or ~/.cache/tinyllm."""
    if os.environ.get("TINYLLM_CACHE"):
        return Path(os.environ["TINYLLM_CACHE"]).expanduser()
    if os.environ.get("XDG_CACHE_HOME"):
        return Path(os.environ["XDG_CACHE_HOME"]).expanduser() / "tinyllm"
    return Path.home() / ".cache" / "tinyllm"


def sha256_file(path: str | os.PathLike) -> str:
    """The hex SHA-256 of a file, read in blocks."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


class _FetchFailed(Exception):
    """One download attempt failed; ``retry`` says whether another attempt could succeed."""

    def __init__(self, reason: str, retry: bool = True) -> None:
        super().__init__(reason)
        self.retry = retry


def _fetch_once(url: str, dest: Path, sha256: str, timeout: float, max_bytes: int) -> None:
    """Download ``url`` to a temporary file, check length and hash, rename it to ``dest``."""
    try:
        fd, tmp = tempfile.mkstemp(dir=dest.parent, prefix=dest.name + ".", suffix=".part")
    except OSError as exc:
        raise _FetchFailed(f"cannot write to '{dest.parent}' ({exc.strerror})", retry=False) from None
    try:
        h, received = hashlib.sha256(), 0
        with os.fdopen(fd, "wb") as out:
            request = urllib.request.Request(url, headers={"User-Agent": "tinyllm"})
            with urllib.request.urlopen(request, timeout=timeout) as resp:  # timeout bounds every socket wait
                expected = resp.headers.get("Content-Length")
                while block := resp.read(1 << 16):
                    received += len(block)
                    if received > max_bytes:
                        raise _FetchFailed(f"the server sent more than {max_bytes} bytes", retry=False)
                    h.update(block)
                    out.write(block)
            if expected is not None and expected.isdigit() and received != int(expected):
                raise _FetchFailed(f"short read: got {received} of {expected} bytes")
            out.flush()
            os.fsync(out.fileno())
        if h.hexdigest() != sha256:
            raise _FetchFailed(f"checksum mismatch: the {received} bytes received have sha256 "
                               f"{h.hexdigest()[:16]}..., expected {sha256[:16]}...")
        os.replace(tmp, dest)
    except urllib.error.HTTPError as exc:
        transient = exc.code >= 500 or exc.code in (408, 429)
        raise _FetchFailed(f"HTTP error {exc.code} {exc.reason}", retry=transient) from None
    except http.client.IncompleteRead as exc:
        raise _FetchFailed(f"short read: the connection closed after {received + len(exc.partial)} bytes") from None
    except urllib.error.URLError as exc:
        raise _FetchFailed(f"network error: {exc.reason}") from None
    except (TimeoutError, OSError, http.client.HTTPException) as exc:
        raise _FetchFailed(f"network error: {exc.__class__.__name__}: {exc}") from None
    finally:
        Path(tmp).unlink(missing_ok=True)  # gone already after a successful rename


def download(url: str, dest: str | os.PathLike, sha256: str, *, timeout: float = 30.0, retries: int = 3,
             backoff: float = 1.0, max_bytes: int = MAX_DOWNLOAD_BYTES) -> Path:
    """Download ``url`` to ``dest`` and verify its SHA-256, or raise a DataError saying why not.

    Args:
        url: an http:// or https:// address.
        dest: the file to create; it is replaced only by a complete, verified download.
        sha256: the expected hex digest.
        timeout: seconds any single network wait (connect, each read) may take.
        retries: attempts in all; an HTTP 4xx error (e.g. 404) is not retried.
        backoff: seconds to wait before the second attempt, doubled after each.
        max_bytes: refuse a response larger than this.
    """
    if urllib.parse.urlparse(url).scheme not in ("http", "https"):
        raise DataError(f"download URL must start with http:// or https://, got '{url}'")
    dest = Path(dest)
    try:
        dest.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise DataError(f"cannot create the cache directory '{dest.parent}' ({exc.strerror})") from None
    reason, attempts = "", 0
    for attempts in range(1, max(retries, 1) + 1):
        try:
            _fetch_once(url, dest, sha256, timeout, max_bytes)
            return dest
        except _FetchFailed as exc:
            reason = str(exc)
            if not exc.retry:
                break
        if attempts < retries:
            time.sleep(backoff * 2 ** (attempts - 1))
    raise DataError(f"could not download {url} ({reason}; {attempts} attempt{'s' * (attempts > 1)}); "
                    f"download it yourself and save it as {dest} (sha256 {sha256})")


def fetch_shakespeare(url: str | None = None, cache: str | os.PathLike | None = None, *,
                      timeout: float = 30.0, retries: int = 3, backoff: float = 1.0) -> Path:
    """The path of the full Tiny Shakespeare, downloading it into the cache if needed.

    A cached copy is used only if its SHA-256 matches; otherwise it is
    downloaded again (from ``url``, else ``$TINYLLM_SHAKESPEARE_URL``, else
    the char-rnn repository).
    """
    dest = Path(cache) if cache is not None else cache_dir()
    dest = dest / SHAKESPEARE_FILE
    if dest.is_file() and sha256_file(dest) == SHAKESPEARE_SHA256:
        return dest
    url = url or os.environ.get("TINYLLM_SHAKESPEARE_URL") or SHAKESPEARE_URL
    return download(url, dest, SHAKESPEARE_SHA256, timeout=timeout, retries=retries, backoff=backoff)


def resolve_corpus(name_or_path: str | os.PathLike | None = None, *, url: str | None = None,
                   cache: str | os.PathLike | None = None, timeout: float = 30.0) -> str:
    """The path of a corpus given by built-in name ("tiny", "shakespeare") or by path.

    Args:
        name_or_path: a built-in name, a text file, a directory of .txt files,
            or None for the default corpus ("tiny").
        url, cache, timeout: passed to :func:`fetch_shakespeare` for "shakespeare".

    Raises:
        DataError: an unknown name that is not an existing path either, or a
            failed download.
    """
    name = DEFAULT_CORPUS if name_or_path is None else str(name_or_path)
    if name == "tiny":
        if not TINY_CORPUS.is_file():
            raise DataError(f"the built-in corpus file '{TINY_CORPUS}' is missing; reinstall tinyllm")
        return str(TINY_CORPUS)
    if name == "shakespeare":
        return str(fetch_shakespeare(url, cache, timeout=timeout))
    if Path(name).exists():
        return name
    if any(sep in name for sep in ("/", "\\")) or Path(name).suffix:
        raise DataError(f"data path '{name}' does not exist")
    raise DataError(f"no corpus named '{name}' and no such file or directory "
                    f"(built-in corpora: {', '.join(BUILTIN)})")
