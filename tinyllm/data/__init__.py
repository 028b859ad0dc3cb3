"""The data layer: text in, NumPy integer arrays out.

Reading order for a student, following one batch from disk to the model:

* ``text.py``       - read a UTF-8 corpus (file or directory), whole or streamed
* ``corpora.py``    - built-in corpora by name; the shipped excerpt; a verified download
* ``tokenizers.py`` - CharTokenizer and byte-level BPETokenizer behind one interface
  (``tokenizer_files.py``: GPT-2's vocab.json / merges.txt and tokenizer.json, checked)
* ``tokenfile.py``  - tokenize once into a memory-mapped ``.bin`` file
* ``encoding.py``   - encode a corpus of any size in chunks (into memory, or a cached token file)
* ``slicing.py``    - fixed-length blocks, train/val split, padding and masks, collate
* ``batching.py``   - seeded, resumable random-window batches for LM training
* ``labeled.py``    - (text, label) and (prompt, response) files for fine-tuning
* ``masking.py``    - BERT's masked-language-model transform

Everything here returns NumPy arrays on the host and knows nothing of
autograd; the training loop moves each batch to the backend once per step.
Bad input raises :class:`DataError` with a one-line message for the user.
"""
from .batching import LMBatcher, eval_batches
from .encoding import encode_corpus
from .corpora import (DEFAULT_CORPUS, SHAKESPEARE_SHA256, SHAKESPEARE_URL, cache_dir, download,
                      fetch_shakespeare, resolve_corpus)
from .errors import DataError, UnknownCharactersError
from .labeled import encode_pair, load_labeled, load_pairs, train_val_split
from .masking import mask_tokens, special_tokens_mask
from .slicing import IGNORE_INDEX, blocks_to_xy, collate, make_blocks, pad_batch, split_train_val
from .text import iter_text, load_text
from .tokenfile import TokenFile, token_dtype, tokenize_file, write_token_file
from .tokenizers import (BERT_SPECIALS, CLS, EOS, GPT_SPECIALS, MASK, PAD, SEP, BPETokenizer, CharTokenizer,
                         Tokenizer, load_tokenizer)

__all__ = [
    "BERT_SPECIALS", "BPETokenizer", "CLS", "CharTokenizer", "DEFAULT_CORPUS", "DataError", "EOS", "GPT_SPECIALS",
    "IGNORE_INDEX", "LMBatcher", "MASK", "PAD", "SEP", "SHAKESPEARE_SHA256", "SHAKESPEARE_URL", "TokenFile",
    "Tokenizer", "UnknownCharactersError", "blocks_to_xy", "cache_dir", "collate", "download", "encode_corpus",
    "encode_pair",
    "eval_batches", "fetch_shakespeare", "iter_text", "load_labeled", "load_pairs", "load_text", "load_tokenizer",
    "make_blocks", "mask_tokens", "pad_batch", "resolve_corpus", "special_tokens_mask", "split_train_val",
    "token_dtype", "tokenize_file", "train_val_split", "write_token_file",
]
