"""WordPiece tokenizers of Hugging Face BERT directories, run by the ``tokenizers`` library.

A directory has either ``tokenizer.json`` (a WordPiece model, with BERT's
normalizer and pre-tokenizer) or the older ``vocab.txt`` (one piece per line,
``##`` marking a word-inner piece), lower-cased unless ``tokenizer_config.json``
says ``"do_lower_case": false``.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import tokenizers as hf

from ..data.tokenizers import LibraryTokenizer
from ..validate import contained, load_json, read_file

UNK = "[UNK]"


class WordPieceTokenizer(LibraryTokenizer):
    """BERT's WordPiece tokenizer behind tinyllm's :class:`~tinyllm.data.Tokenizer` interface.

    ``encode`` adds no [CLS] / [SEP]: the callers do, as for every tinyllm tokenizer.
    """

    kind = "wordpiece"

    def __init__(self, tokenizer: hf.Tokenizer) -> None:
        self._tok = tokenizer
        vocab = tokenizer.get_vocab(with_added_tokens=True)
        self._specials = [t for t in ("[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]") if t in vocab]

    @classmethod
    def from_json(cls, obj: dict, source: str = "<json>") -> "WordPieceTokenizer":
        """From a parsed ``tokenizer.json`` holding a WordPiece model."""
        model = obj.get("model")
        if not isinstance(model, dict) or model.get("type") != "WordPiece":
            raise ValueError(f"tokenizer file '{source}' does not hold a WordPiece model")
        try:
            return cls(hf.Tokenizer.from_str(json.dumps(obj)))
        except Exception as exc:  # the library raises a bare Exception on a malformed file
            raise ValueError(f"tokenizer file '{source}' is not a valid tokenizer.json ({exc})") from None

    @classmethod
    def from_vocab(cls, path: str | Path, lowercase: bool = True) -> "WordPieceTokenizer":
        """From a ``vocab.txt`` with BERT's normalizer (accents stripped when lower-casing) and pre-tokenizer."""
        try:
            text = read_file(path, "vocab.txt").decode("utf-8")
        except UnicodeDecodeError as exc:
            raise ValueError(f"{path}: not UTF-8 text ({exc.reason})") from None
        lines = text.splitlines()
        vocab = {tok: i for i, tok in enumerate(lines)}
        if len(vocab) != len(lines):                # a repeated line: the ids after it would not be line numbers
            seen: set[str] = set()
            twice = next(t for t in lines if t in seen or seen.add(t))
            raise ValueError(f"{path} lists the token {twice!r} more than once")
        if UNK not in vocab:
            raise ValueError(f"{path} has no {UNK} token")
        tok = hf.Tokenizer(hf.models.WordPiece(vocab, unk_token=UNK))
        tok.normalizer = hf.normalizers.BertNormalizer(lowercase=lowercase)
        tok.pre_tokenizer = hf.pre_tokenizers.BertPreTokenizer()
        tok.decoder = hf.decoders.WordPiece()
        return cls(tok)


def load_wordpiece(path: str | Path) -> Any:
    """The tokenizer of a Hugging Face BERT directory (WordPiece, or another that tinyllm export wrote),
    or None when it has neither file."""
    from .hf_tokenizer import read_tokenizer_json  # noqa: PLC0415  (it imports this module)

    p = Path(path)
    if (p / "tokenizer.json").exists():             # WordPiece, or what tinyllm export wrote (BPE, characters)
        obj = load_json(contained(p, "tokenizer.json", p), "tokenizer.json")
        if not isinstance(obj, dict):
            raise ValueError(f"{p / 'tokenizer.json'} does not hold a JSON object")
        return read_tokenizer_json(obj, str(p / "tokenizer.json"))
    if (p / "vocab.txt").exists():
        lower: Any = True
        if (p / "tokenizer_config.json").exists():
            conf = load_json(contained(p, "tokenizer_config.json", p), "tokenizer_config.json")
            lower = conf.get("do_lower_case", True) if isinstance(conf, dict) else None
            if not isinstance(lower, bool):
                raise ValueError(f"{p / 'tokenizer_config.json'}: do_lower_case must be true or false, got {lower!r}")
        return WordPieceTokenizer.from_vocab(contained(p, "vocab.txt", p), lowercase=lower)
    return None
