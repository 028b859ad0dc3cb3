"""The data layer: text in, NumPy integer arrays out.

Reading order for a student, following one batch from disk to the model:

* ``text.py``       - read a UTF-8 corpus (file or directory), whole or streamed
* ``corpora.py``    - built-in corpora by name; the shipped excerpt; a verified download
* ``tokenizers.py`` - CharTokenizer and byte-level BPETokenizer behind one interface

Everything here returns NumPy arrays on the host and knows nothing of
autograd; the training loop moves each batch to the backend once per step.
Bad input raises :class:`DataError` with a one-line message for the user.
"""
from .corpora import (DEFAULT_CORPUS, SHAKESPEARE_SHA256, SHAKESPEARE_URL, cache_dir, download,
                      fetch_shakespeare, resolve_corpus)
from .errors import DataError, UnknownCharactersError
from .text import iter_text, load_text
from .tokenizers import (BERT_SPECIALS, CLS, EOS, GPT_SPECIALS, MASK, PAD, SEP, BPETokenizer, CharTokenizer,
                         Tokenizer, load_tokenizer)
