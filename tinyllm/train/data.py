"""From what the user typed (``--data``, ``--tokenizer``) to batches the loop can use.

The training loop sees only *batch sources*: objects with ``next()``, which
returns a dict of NumPy arrays that are exactly the model's keyword
arguments (``model(**batch) -> (logits, loss)``), and ``state_dict()`` /
``load_state_dict()`` (JSON-able, for exact resume):

* :class:`LMSource`       GPT pre-training: ``{"idx": x, "targets": y}``, random windows
* :class:`MLMSource`      BERT pre-training: the same windows, 15% of tokens masked
* :class:`ExampleSource`  fine-tuning: shuffled rows of fixed arrays (labels, pairs)

Validation sets are lists of such dicts, made once, the same at every
evaluation so that validation losses are comparable.

**Sharding.** Every source takes ``shard=(rank, world)`` (default ``(0, 1)``).
The ``world`` ranks of a data-parallel run all read the same global stream of
micro-batches and rank ``r`` keeps micro-batch ``r`` of each consecutive
``world``: call ``k`` of ``next()`` on rank ``r`` returns micro-batch
``k * world + r`` of the single-process stream. So ``world`` ranks each
accumulating ``a`` micro-batches per step see exactly the micro-batches of one
process accumulating ``a * world`` (the same computation, summed in another
order), and the saved position, the same on every rank, is a position in the
global stream: a run resumes on any number of ranks.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..data import (
    BERT_SPECIALS,
    GPT_SPECIALS,
    BPETokenizer,
    CharTokenizer,
    DataError,
    LMBatcher,
    TokenFile,
    Tokenizer,
    UnknownCharactersError,
    encode_corpus,
    eval_batches,
    iter_text,
    load_tokenizer,
    mask_tokens,
    resolve_corpus,
    special_tokens_mask,
    split_train_val,
)
from ..data.slicing import check_enough_tokens
from .config import TrainConfig

Batch = dict[str, np.ndarray]


# ----------------------------------------------------------------------------- tokenizers

def tokenizer_from_json(text: str, source: str = "checkpoint") -> Tokenizer:
    """Rebuild a tokenizer from the JSON text it saved (char or BPE)."""
    try:
        obj = json.loads(text)
    except json.JSONDecodeError as exc:
        raise DataError(f"tokenizer in {source} is not valid JSON ({exc})") from None
    if isinstance(obj, dict) and obj.get("kind") == CharTokenizer.kind:
        return CharTokenizer.from_json(obj, source)
    if isinstance(obj, dict) and isinstance(obj.get("model"), dict) and obj["model"].get("type") == "WordPiece":
        from ..models.hf_wordpiece import WordPieceTokenizer  # noqa: PLC0415  (a Hugging Face BERT's)
        try:
            return WordPieceTokenizer.from_json(obj, source)
        except ValueError as exc:
            raise DataError(str(exc)) from None
    if isinstance(obj, dict) and "model" in obj:
        return BPETokenizer.from_json(obj, source)
    raise DataError(f"tokenizer in {source} is neither a character tokenizer nor a tokenizer.json")


def build_tokenizer(spec: str, text: str, vocab_size: int, model_kind: str) -> Tokenizer:
    """A tokenizer for a new run.

    Args:
        spec: "char" (the corpus's characters), "bpe" (byte-level BPE trained on
            the corpus) or the path of a saved tokenizer.
        text: the training corpus (for "char" and "bpe").
        vocab_size: BPE's vocabulary size.
        model_kind: "bert" adds [PAD] [CLS] [SEP] [MASK]; "gpt" gets <|endoftext|> with BPE.
    """
    specials = BERT_SPECIALS if model_kind == "bert" else ()
    if spec == "char":
        return CharTokenizer.from_text(text, special_tokens=specials)
    if spec == "bpe":
        return BPETokenizer.train([text] if isinstance(text, str) else text, vocab_size,
                                  special_tokens=specials or GPT_SPECIALS)
    if not Path(spec).exists():
        raise DataError(f"--tokenizer must be 'char', 'bpe' or the path of a saved tokenizer; '{spec}' does not exist")
    tok = load_tokenizer(spec)
    if model_kind == "bert" and tok.mask_id is None:
        raise DataError(f"tokenizer '{spec}' has no [MASK] token, which BERT's masked-LM training needs")
    return tok


def encode_text(tokenizer: Tokenizer, text: str, what: str) -> list[int]:
    """``tokenizer.encode(text)`` with unknown characters reported as coming from ``what``."""
    try:
        return tokenizer.encode(text)
    except UnknownCharactersError as exc:
        raise UnknownCharactersError(exc.chars, exc.positions, what=what) from None


# ----------------------------------------------------------------------------- language-model data

@dataclass
class LMData:
    """A tokenized corpus split into training and validation ids."""

    tokenizer: Tokenizer
    train: Any          # 1-D int array or TokenFile view
    val: Any
    description: str    # what was read, for the run's first lines


def load_lm_data(cfg: TrainConfig, tokenizer: Tokenizer | None = None) -> LMData:
    """Read ``cfg.data``, tokenize it (with ``tokenizer`` if given, e.g. a resumed run's) and split it.

    Raises:
        DataError: a missing/empty/binary file, a token file without its tokenizer,
            or a split too short for one block of ``cfg.block_size``.
    """
    if str(cfg.data).endswith(".bin") and Path(cfg.data).is_file():
        ids: Any = TokenFile(cfg.data)
        if tokenizer is None:
            if cfg.tokenizer in ("char", "bpe"):
                raise DataError(f"'{cfg.data}' holds token ids only: pass --tokenizer PATH, the tokenizer "
                                "that wrote it")
            tokenizer = load_tokenizer(cfg.tokenizer)
        ids.check_tokenizer(tokenizer)
        if ids.vocab_size > tokenizer.vocab_size:
            raise DataError(f"token file '{cfg.data}' has ids up to {ids.vocab_size - 1}, beyond the tokenizer's "
                            f"{tokenizer.vocab_size} tokens")
        description = f"{cfg.data}: {len(ids):,} tokens"
    else:
        path = resolve_corpus(cfg.data)
        if tokenizer is None:   # the corpus is streamed, never held whole (tinyllm/data/encoding.py)
            tokenizer = build_tokenizer(cfg.tokenizer, iter_text(path), cfg.vocab_size, cfg.model)
        ids, n_chars, cached = encode_corpus(path, tokenizer, f"data '{cfg.data}'")
        description = f"{path}: {n_chars:,} characters -> {len(ids):,} tokens" + (f" (cached in {cached})"
                                                                                   if cached else "")
    check_enough_tokens(len(ids), cfg.block_size, f"corpus '{cfg.data}'")
    train, val = split_train_val(ids, cfg.val_fraction)
    check_enough_tokens(len(train), cfg.block_size, f"the training part of '{cfg.data}'")
    check_enough_tokens(len(val), cfg.block_size, f"the validation part ({cfg.val_fraction:.0%}) of '{cfg.data}'")
    return LMData(tokenizer, train, val, description)


def check_shard(shard: Any) -> tuple[int, int]:
    """``shard`` as ``(rank, world)`` ints with ``0 <= rank < world``, or a ValueError."""
    try:
        rank, world = shard
    except (TypeError, ValueError):
        raise ValueError(f"shard must be a pair (rank, world), got {shard!r}") from None
    if any(isinstance(v, bool) or not isinstance(v, (int, np.integer)) for v in (rank, world)):
        raise ValueError(f"shard must hold two integers, got {shard!r}")
    if not 0 <= rank < world:
        raise ValueError(f"shard (rank {rank}, world {world}) needs 0 <= rank < world")
    return int(rank), int(world)


def _own_draw(draw: Any, shard: tuple[int, int]) -> Batch:
    """Draw ``world`` consecutive micro-batches with ``draw()``; keep this rank's."""
    rank, world = shard
    out = None
    for i in range(world):
        batch = draw()
        if i == rank:
            out = batch
    return out


class LMSource:
    """Next-token batches ``{"idx": x, "targets": y}`` (B, T) from random windows (GPT)."""

    def __init__(self, tokens: Any, block_size: int, batch_size: int, seed: int,
                 shard: tuple[int, int] = (0, 1)) -> None:
        self.batcher = LMBatcher(tokens, block_size, batch_size, seed)
        self.shard = check_shard(shard)

    def next(self) -> Batch:
        x, y = _own_draw(self.batcher.next, self.shard)
        return {"idx": x, "targets": y}

    def state_dict(self) -> dict:
        return {"batcher": self.batcher.state_dict()}

    def load_state_dict(self, state: dict) -> None:
        self.batcher.load_state_dict(state["batcher"])


def _mlm(x: np.ndarray, tokenizer: Tokenizer, rng: np.random.Generator, prob: float) -> Batch:
    special = special_tokens_mask(x, tokenizer.special_ids)
    inputs, labels = mask_tokens(x, mask_id=tokenizer.mask_id, vocab_size=tokenizer.vocab_size,
                                 special_mask=special, rng=rng, prob=prob)
    return {"idx": inputs, "targets": labels}


class MLMSource:
    """Masked-LM batches ``{"idx": masked x, "targets": originals at masked positions, else -100}`` (BERT).

    The windows come from an :class:`LMBatcher`; the masks from a second seeded
    generator, whose state is saved with the batcher's.
    """

    def __init__(self, tokens: Any, block_size: int, batch_size: int, seed: int, tokenizer: Tokenizer,
                 prob: float, shard: tuple[int, int] = (0, 1)) -> None:
        if tokenizer.mask_id is None:
            raise DataError("the tokenizer has no [MASK] token, which masked-LM training needs")
        self.batcher = LMBatcher(tokens, block_size, batch_size, seed)
        self.rng = np.random.default_rng([seed, 1])
        self.tokenizer, self.prob = tokenizer, prob
        self.shard = check_shard(shard)

    def _draw(self) -> Batch:
        x, _ = self.batcher.next()
        return _mlm(x, self.tokenizer, self.rng, self.prob)    # every rank masks every batch: same rng

    def next(self) -> Batch:
        return _own_draw(self._draw, self.shard)

    def state_dict(self) -> dict:
        return {"batcher": self.batcher.state_dict(), "mask_rng": self.rng.bit_generator.state}

    def load_state_dict(self, state: dict) -> None:
        self.batcher.load_state_dict(state["batcher"])
        self.rng.bit_generator.state = state["mask_rng"]


def lm_eval_set(cfg: TrainConfig, val: Any, tokenizer: Tokenizer, n_batches: int | None = None) -> list[Batch]:
    """The fixed validation batches: ``n_batches`` (default ``cfg.eval_iters``) seeded random windows.

    BERT's are masked with a generator seeded the same way every time.
    """
    n = cfg.eval_iters if n_batches is None else n_batches
    batches = list(eval_batches(val, cfg.block_size, cfg.batch_size, n_batches=n, seed=cfg.seed))
    if cfg.model == "bert":
        rng = np.random.default_rng([cfg.seed, 2])
        return [_mlm(x, tokenizer, rng, cfg.mlm_prob) for x, _ in batches]
    return [{"idx": x, "targets": y} for x, y in batches]


# ----------------------------------------------------------------------------- fine-tuning data

class ExampleSource:
    """Shuffled mini-batches of the rows of fixed arrays, epoch after epoch.

    Epoch ``e`` visits the rows in the order ``default_rng([seed, e]).permutation(n)``,
    so the position (epoch, offset) is all the state there is.
    """

    def __init__(self, arrays: Batch, batch_size: int, seed: int, shard: tuple[int, int] = (0, 1)) -> None:
        self.arrays = arrays
        self.shard = check_shard(shard)
        self.n = len(next(iter(arrays.values())))
        if self.n == 0:
            raise DataError("no training examples")
        self.batch_size = min(batch_size, self.n)
        self.seed = seed
        self.epoch, self.offset = 0, 0
        self._order = self._permutation()

    def _permutation(self) -> np.ndarray:
        return np.random.default_rng([self.seed, self.epoch]).permutation(self.n)

    def _rows(self) -> np.ndarray:
        if self.offset + self.batch_size > self.n:          # the rest of an epoch is dropped: equal batches
            self.epoch, self.offset = self.epoch + 1, 0
            self._order = self._permutation()
        rows = self._order[self.offset:self.offset + self.batch_size]
        self.offset += self.batch_size
        return rows

    def next(self) -> Batch:
        rows = _own_draw(self._rows, self.shard)             # only this rank's rows are gathered
        return {k: v[rows] for k, v in self.arrays.items()}

    def state_dict(self) -> dict:
        return {"epoch": self.epoch, "offset": self.offset, "n": self.n, "batch_size": self.batch_size}

    def load_state_dict(self, state: dict) -> None:
        if state.get("n") != self.n or state.get("batch_size") != self.batch_size:
            raise DataError(f"the saved data position is for {state.get('n')} examples in batches of "
                            f"{state.get('batch_size')}, this run has {self.n} in batches of {self.batch_size}")
        self.epoch, self.offset = int(state["epoch"]), int(state["offset"])
        self._order = self._permutation()


def chunk(arrays: Batch, batch_size: int) -> list[Batch]:
    """The rows of ``arrays`` in order, in batches of ``batch_size`` (the last may be smaller)."""
    n = len(next(iter(arrays.values())))
    return [{k: v[i:i + batch_size] for k, v in arrays.items()} for i in range(0, n, batch_size)]


def classification_arrays(texts: list[str], labels: np.ndarray, tokenizer: Tokenizer, block_size: int,
                          model_kind: str) -> Batch:
    """Token ids (N, T), attention mask (N, T) and labels (N,) for a classifier.

    BERT inputs are ``[CLS] text [SEP]``; GPT inputs are the text alone (the
    classifier reads its last real token). Texts longer than ``block_size``
    tokens keep their beginning. Padding uses the tokenizer's [PAD] id, or 0
    (masked out either way).
    """
    from ..data import pad_batch  # noqa: PLC0415

    seqs = []
    for i, text in enumerate(texts):
        ids = encode_text(tokenizer, text, f"example {i + 1}")
        if model_kind == "bert" and tokenizer.cls_id is not None:
            ids = [tokenizer.cls_id] + ids[:block_size - 2] + [tokenizer.sep_id]
        seqs.append(ids[:block_size])
    length = min(block_size, max(len(s) for s in seqs))
    pad = tokenizer.pad_id if tokenizer.pad_id is not None else 0
    idx, mask = pad_batch(seqs, length, pad_id=pad)
    return {"idx": idx, "attention_mask": mask, "labels": np.asarray(labels, dtype=np.int64)}


def pair_arrays(pairs: list[tuple[str, str]], tokenizer: Tokenizer, block_size: int) -> Batch:
    """``{"idx", "targets"}`` (N, T) for LM fine-tuning: loss on response tokens only (prompt targets -100)."""
    from ..data import collate, encode_pair  # noqa: PLC0415

    examples = []
    for i, (prompt, response) in enumerate(pairs):
        try:
            examples.append(encode_pair(tokenizer, prompt, response, max_length=block_size))
        except UnknownCharactersError as exc:
            raise UnknownCharactersError(exc.chars, exc.positions, what=f"pair {i + 1}") from None
    pad = tokenizer.pad_id if tokenizer.pad_id is not None else 0
    batch = collate(examples, pad_id=pad)
    return {"idx": batch["input_ids"], "targets": batch["labels"]}
