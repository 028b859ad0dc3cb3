"""The ``tokenizer.json`` of an exported directory, and reading one back whatever model it holds.

A tokenizer of the ``tokenizers`` library (byte-level BPE, WordPiece) is written as it is. A
character tokenizer (tinyllm's default) has no such model, so it is written as the equivalent
one: a ``WordLevel`` vocabulary of single characters behind a pre-tokenizer that cuts every
character apart (``Split`` on ``[\\s\\S]``), its special tokens as added tokens, the ``Fuse``
decoder. ``transformers.PreTrainedTokenizerFast`` runs it with the same ids, and
:func:`read_tokenizer_json` turns it back into a :class:`~tinyllm.data.CharTokenizer`.
"""
from __future__ import annotations

from typing import Any

import tokenizers as hf

from ..data import BPETokenizer, CharTokenizer
from ..validate import FileError, check_hf_tokenizer

CHAR_SPLIT = "[\\s\\S]"                     # one piece per character, newlines included


def tokenizer_json(tokenizer: Any) -> str:
    """The Hugging Face ``tokenizer.json`` text of a tinyllm tokenizer (see the module docstring)."""
    if not isinstance(tokenizer, CharTokenizer):
        return tokenizer.to_json()
    specials = tokenizer.special_tokens
    vocab = {tokenizer.decode([i]) if i < len(tokenizer.chars) else specials[i - len(tokenizer.chars)]: i
             for i in range(tokenizer.vocab_size)}
    tok = hf.Tokenizer(hf.models.WordLevel(vocab, unk_token=None))
    tok.pre_tokenizer = hf.pre_tokenizers.Split(hf.Regex(CHAR_SPLIT), behavior="isolated")
    tok.decoder = hf.decoders.Fuse()
    if specials:
        tok.add_special_tokens(specials)
    return tok.to_str()


def char_tokenizer_of(obj: dict, source: str) -> CharTokenizer | None:
    """The character tokenizer a ``tokenizer.json`` written by :func:`tokenizer_json` holds; None for a
    file of any other shape (another model, another pre-tokenizer)."""
    model, pre = obj.get("model"), obj.get("pre_tokenizer")
    if not (isinstance(model, dict) and model.get("type") == "WordLevel" and isinstance(pre, dict)
            and pre.get("type") == "Split" and pre.get("pattern") == {"Regex": CHAR_SPLIT}):
        return None
    vocab, added = model.get("vocab"), obj.get("added_tokens") or []
    if not isinstance(vocab, dict) or not isinstance(added, list):
        raise FileError(source, "a character vocabulary must map tokens to ids")
    specials = {a["content"] for a in added if isinstance(a, dict) and a.get("special") and isinstance(
        a.get("content"), str)}
    order = sorted(vocab.items(), key=lambda kv: kv[1] if isinstance(kv[1], int) else -1)
    if [i for _, i in order] != list(range(len(order))):
        raise FileError(source, "the character vocabulary's ids must be 0 .. size - 1")
    chars = [t for t, _ in order if t not in specials]
    names = [t for t, _ in order if t in specials]
    if [t for t, _ in order] != chars + names:
        raise FileError(source, "the special tokens must come after every character")
    try:
        return CharTokenizer(chars, names)
    except Exception as exc:  # DataError: a multi-character entry, a repeat
        raise FileError(source, str(exc)) from None


def read_tokenizer_json(obj: dict, source: str) -> Any:
    """A tinyllm tokenizer from a parsed ``tokenizer.json``: a character tokenizer written by
    :func:`tokenizer_json`, a WordPiece tokenizer, or byte-level BPE (FileError/DataError otherwise)."""
    check_hf_tokenizer(obj, source)                 # an object with a model object: any other JSON is refused
    char = char_tokenizer_of(obj, source)
    if char is not None:
        return char
    model = obj.get("model")
    if isinstance(model, dict) and model.get("type") == "WordPiece":
        from .hf_wordpiece import WordPieceTokenizer  # noqa: PLC0415  (it imports this module)
        return WordPieceTokenizer.from_json(obj, source)
    return BPETokenizer.from_json(obj, source)
