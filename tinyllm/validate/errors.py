"""The exceptions for bad input, at the bottom of the package so that every layer can raise them."""
from __future__ import annotations

import os
from pathlib import Path


class DataError(ValueError):
    """Bad or missing data: a file, a corpus, a token id, a batch shape.

    Re-exported as :class:`tinyllm.data.DataError`; a ``ValueError``, so
    library users can catch it either way.
    """


class FileError(DataError):
    """A file that is missing, unreadable, not what it should be, or holds a bad value.

    The message is ``"<path>: <what is wrong>"``; ``path`` keeps the file's path.
    """

    def __init__(self, path: str | os.PathLike, what: str) -> None:
        self.path, self.what = Path(path), " ".join(str(what).split())
        super().__init__(f"{path}: {' '.join(str(what).split())}")
