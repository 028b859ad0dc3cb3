"""``tinyllm train --model seq2seq --data pairs.tsv``: an encoder-decoder trained by teacher forcing.

Each pair (x, y) becomes one row of a batch::

    src     = x_1 .. x_S                     padded with PAD (src_mask False there)
    tgt_in  = BOS y_1 .. y_n                 what the decoder reads
    targets = y_1 .. y_n EOS                 what it must predict: tgt_in shifted left; -100 at padding

and the loss is the label-smoothed cross-entropy over the real target
positions. Batches hold pairs of similar lengths (:class:`PairSource`), so
little of each batch is padding. The loop, checkpoints, exact resume, early
stopping and metrics are :class:`~tinyllm.train.loop.Trainer`'s, as for every
other model kind.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from .. import __version__
from ..checkpoint import CheckpointError, CheckpointNotFoundError, clear_run, load_checkpoint
from ..data.errors import DataError
from ..data.pairs import (BOS_ID, EOS_ID, PAD_ID, TOKENIZERS, PairVocab, build_vocab, encode_all,
                          pair_vocabs_from_json, pair_vocabs_to_json, read_pairs)
from ..optim import configure_adamw
from .config import TrainConfig, resolve
from .loop import Trainer
from .metrics import Progress
from .restore import RUN_FORMAT

Batch = dict[str, np.ndarray]
POOL = 64          # batches' worth of pairs sorted by length together (the bucketing window)


def make_batch(src: list[list[int]], tgt: list[list[int]]) -> Batch:
    """Padded arrays ``{"src", "src_mask", "tgt_in", "targets"}`` of one batch of encoded pairs."""
    b = len(src)
    s, t = max(map(len, src)), max(map(len, tgt)) + 1
    out = {"src": np.full((b, s), PAD_ID, dtype=np.int64), "tgt_in": np.full((b, t), PAD_ID, dtype=np.int64),
           "targets": np.full((b, t), -100, dtype=np.int64)}
    for i, (x, y) in enumerate(zip(src, tgt)):
        out["src"][i, :len(x)] = x
        out["tgt_in"][i, :len(y) + 1] = [BOS_ID] + y                      # BOS y_1 .. y_n
        out["targets"][i, :len(y) + 1] = y + [EOS_ID]                     # y_1 .. y_n EOS
    out["src_mask"] = out["src"] != PAD_ID                                # (B, S)
    return out


class PairSource:
    """Batches of pairs of similar lengths, epoch after epoch (the loop's batch-source interface).

    Epoch ``e`` shuffles the pairs with ``default_rng([seed, e])``, sorts each
    window of ``POOL * batch_size`` of them by length, cuts the windows into
    batches and shuffles the batches: (epoch, batch index) is all the state.
    """

    def __init__(self, src: list[list[int]], tgt: list[list[int]], batch_size: int, seed: int) -> None:
        if not src or len(src) != len(tgt):
            raise DataError("no training pairs")
        self.src, self.tgt, self.n = src, tgt, len(src)
        self.batch_size, self.seed = min(batch_size, self.n), seed
        self.epoch, self.index = 0, 0
        self._plan = self._batches()

    def _batches(self) -> list[np.ndarray]:
        rng = np.random.default_rng([self.seed, self.epoch])
        order = rng.permutation(self.n)
        lengths = np.array([len(s) + len(t) for s, t in zip(self.src, self.tgt)])
        window = POOL * self.batch_size
        batches = []
        for w in range(0, self.n, window):
            chunk = order[w:w + window]
            chunk = chunk[np.argsort(lengths[chunk], kind="stable")]       # similar lengths side by side
            batches += [chunk[i:i + self.batch_size] for i in range(0, len(chunk), self.batch_size)]
        return [batches[i] for i in rng.permutation(len(batches))]

    def next(self) -> Batch:
        if self.index >= len(self._plan):
            self.epoch, self.index = self.epoch + 1, 0
            self._plan = self._batches()
        rows = self._plan[self.index]
        self.index += 1
        return make_batch([self.src[i] for i in rows], [self.tgt[i] for i in rows])

    def state_dict(self) -> dict:
        return {"epoch": self.epoch, "index": self.index, "n": self.n, "batch_size": self.batch_size}

    def load_state_dict(self, state: dict) -> None:
        if state.get("n") != self.n or state.get("batch_size") != self.batch_size:
            raise DataError(f"the saved data position is for {state.get('n')} pairs in batches of "
                            f"{state.get('batch_size')}, this run has {self.n} in batches of {self.batch_size}")
        epoch, index = state.get("epoch"), state.get("index")
        if not all(isinstance(v, int) and not isinstance(v, bool) and v >= 0 for v in (epoch, index)):
            raise DataError(f"the saved data position is not two counts: {state!r}")
        self.epoch, self.index = epoch, index
        self._plan = self._batches()


@dataclass
class PairData:
    """Encoded training and validation pairs and the tokenizers of both sides."""

    src_vocab: PairVocab
    tgt_vocab: PairVocab
    train: tuple[list[list[int]], list[list[int]]]
    val: tuple[list[list[int]], list[list[int]]]
    val_text: list[tuple[str, str]]
    description: str


def split_pairs(pairs: list[Any], val_fraction: float, seed: int) -> tuple[list[Any], list[Any]]:
    """A seeded random split: (train, val), at least one pair in each."""
    if len(pairs) < 2:
        raise DataError(f"need at least 2 pairs to hold some out for validation, got {len(pairs)}")
    order = np.random.default_rng([seed, 7]).permutation(len(pairs))
    n_val = min(len(pairs) - 1, max(1, round(len(pairs) * val_fraction)))
    return [pairs[i] for i in order[n_val:]], [pairs[i] for i in order[:n_val]]


def side_settings(cfg: TrainConfig) -> tuple[tuple[str, int, int], tuple[str, int, int]]:
    """(tokenizer, BPE vocabulary size, longest sequence) of the source and of the target side."""
    tgt_tok = cfg.tgt_tokenizer or cfg.tokenizer
    for name, tok in (("--tokenizer", cfg.tokenizer), ("--tgt-tokenizer", tgt_tok)):
        if tok not in TOKENIZERS:
            raise DataError(f"{name} for seq2seq must be one of {', '.join(TOKENIZERS)}, got {tok!r}")
    return ((cfg.tokenizer, cfg.vocab_size, cfg.src_block_size or cfg.block_size),
            (tgt_tok, cfg.tgt_vocab_size or cfg.vocab_size, cfg.tgt_block_size or cfg.block_size))


def load_pair_data(cfg: TrainConfig, vocabs: tuple[PairVocab, PairVocab] | None = None) -> PairData:
    """Read ``cfg.data``, split it, build each side's tokenizer (or take the saved ones), and keep the
    pairs whose source fits the source length and whose target, with EOS (or BOS), fits the target
    length; the rest are counted in the description.

    BPE merges are learned from the training pairs' side alone; a char or symbols vocabulary is the
    inventory of every pair's symbols (a validation pair never holds an unknown one).
    """
    pairs = read_pairs(cfg.data)
    (src_tok, src_vocab, src_len), (tgt_tok, tgt_vocab, tgt_len) = side_settings(cfg)
    train, val = split_pairs(pairs, cfg.val_fraction, cfg.seed)
    if vocabs is None:
        vocabs = tuple(build_vocab(tok, [p[side] for p in (train if tok == "bpe" else pairs)], size)
                       for side, tok, size in ((0, src_tok, src_vocab), (1, tgt_tok, tgt_vocab)))
    sv, tv = vocabs

    def enc(part: list[tuple[str, str]], what: str) -> tuple[list[tuple[str, str]], tuple[list, list]]:
        src = encode_all(sv, [s for s, _ in part], f"{what} source")
        tgt = encode_all(tv, [t for _, t in part], f"{what} target")
        keep = [i for i in range(len(part)) if len(src[i]) <= src_len and len(tgt[i]) < tgt_len]
        return [part[i] for i in keep], ([src[i] for i in keep], [tgt[i] for i in keep])

    train_kept, train_ids = enc(train, "a training")
    val_kept, val_ids = enc(val, "a validation")
    if not train_kept or not val_kept:
        raise DataError(f"no {'training' if not train_kept else 'validation'} pair of '{cfg.data}' fits the "
                        f"source length {src_len} and the target length {tgt_len} (EOS included)")
    dropped = len(pairs) - len(train_kept) - len(val_kept)
    description = (f"{cfg.data}: {len(pairs):,} pairs" + (f", {dropped:,} longer than the source/target "
                                                           f"lengths {src_len}/{tgt_len} left out" if dropped else ""))
    return PairData(sv, tv, train_ids, val_ids, val_kept, description)


def val_batches(data: PairData, cfg: TrainConfig) -> list[Batch]:
    """The fixed validation batches: up to ``eval_iters`` batches of the validation pairs, sorted by length."""
    src, tgt = data.val
    order = sorted(range(len(src)), key=lambda i: len(src[i]) + len(tgt[i]))[:cfg.eval_iters * cfg.batch_size]
    return [make_batch([src[i] for i in order[j:j + cfg.batch_size]], [tgt[i] for i in order[j:j + cfg.batch_size]])
            for j in range(0, len(order), cfg.batch_size)]


def model_config(cfg: TrainConfig, data: PairData) -> dict[str, Any]:
    """The Seq2SeqConfig of a run: shapes and options from the settings, vocabularies from the tokenizers."""
    (_, _, src_len), (_, _, tgt_len) = side_settings(cfg)
    if cfg.share_embeddings and data.src_vocab.to_dict() != data.tgt_vocab.to_dict():
        raise DataError("--share-embeddings needs one vocabulary for both sides: the same tokenizer, and the "
                        "same symbols on both sides (a copy task); these pairs give two")
    return dict(vocab_size=data.tgt_vocab.vocab_size, src_vocab_size=data.src_vocab.vocab_size,
                block_size=tgt_len, src_block_size=src_len, n_layer=cfg.n_layer, n_head=cfg.n_head,
                n_embd=cfg.n_embd, dropout=cfg.dropout, label_smoothing=cfg.label_smoothing,
                norm_first=cfg.norm == "pre", positions=cfg.positions, share_embeddings=cfg.share_embeddings,
                tie_weights=cfg.tie_weights, pad_id=PAD_ID, bos_id=BOS_ID, eos_id=EOS_ID)


def options(c: Any) -> str:
    """A Seq2SeqConfig's architecture options in words."""
    return (f"{'pre' if c.norm_first else 'post'}-LN, {c.positions} positions, "
            f"{'shared' if c.share_embeddings else 'separate'} embeddings, "
            f"output {'tied to' if c.tie_weights else 'separate from'} the target embedding")


def wants_seq2seq(settings: dict[str, Any], out: str | None, resume: bool) -> bool:
    """Whether ``tinyllm train`` is asked for a seq2seq run (``--model seq2seq``, or resuming one)."""
    if not resume or out is None:
        return settings.get("model") == "seq2seq"
    try:
        ckpt = load_checkpoint(out, prefer="latest", with_optimizer=False)
    except (CheckpointError, ValueError, OSError):
        return False                     # pretrain reports what is wrong with the run directory
    return ckpt.config.get("model", {}).get("kind") == "seq2seq"


def train_seq2seq(settings: dict[str, Any], out: str | None = None, resume: bool = False, force: bool = False,
                  progress: Progress | None = None) -> Any:
    """Train an encoder-decoder on ``settings["data"]`` (see :func:`tinyllm.train.pretrain.pretrain`)."""
    from ..models import registry  # noqa: PLC0415
    from .pretrain import (PretrainOutcome, check_out_dir, default_out, report_end,  # noqa: PLC0415
                           resume_hint, resumed_config, setup_engine)

    progress = progress or Progress()
    ckpt, vocabs = None, None
    if resume:
        run_dir = Path(out)
        try:
            ckpt = load_checkpoint(run_dir, prefer="latest")
        except CheckpointNotFoundError:
            raise CheckpointError(f"--resume: no checkpoint to resume from in '{out}'") from None
        cfg = resumed_config(ckpt.config["train"], settings, run_dir)
        vocabs = pair_vocabs_from_json(ckpt.tokenizer_json or "", str(ckpt.path))
    else:
        cfg = resolve(settings)
        run_dir = Path(out) if out is not None else default_out(cfg)
        check_out_dir(run_dir, force)
    if "data" not in settings and ckpt is None:
        raise DataError("seq2seq training needs --data PAIRS (a .tsv of source<TAB>target or a .jsonl)")
    setup_engine(cfg)
    data = load_pair_data(cfg, vocabs)
    kind = registry.get("seq2seq")
    model = kind.build(ckpt.config["model"]["config"] if ckpt else model_config(cfg, data))
    optimizer = configure_adamw(model, cfg.lr, cfg.weight_decay, betas=(0.9, cfg.beta2))
    source = PairSource(*data.train, cfg.batch_size, cfg.seed)
    ckpt_config = {"format": RUN_FORMAT, "tinyllm_version": __version__,
                   "model": {"kind": "seq2seq", "config": model.config.to_dict()},
                   "train": cfg.to_dict(), "task": {"name": "pretrain", "data": data.description}}
    if not resume:
        if force:
            clear_run(run_dir)
        run_dir.mkdir(parents=True, exist_ok=True)
    mean_len = int(np.mean([len(t) + 1 for t in data.train[1]]))
    trainer = Trainer(model, optimizer, cfg.schedule(), source, val_batches(data, cfg), cfg, run_dir, ckpt_config,
                      pair_vocabs_to_json(data.src_vocab, data.tgt_vocab), cfg.batch_size * mean_len, progress,
                      resume_hint=resume_hint("tinyllm train", run_dir, cfg.data))
    if ckpt is not None:
        trainer.resume(ckpt)
    c = model.config
    progress.line(f"run        {run_dir}" + (f" (resuming at iteration {trainer.iteration})" if resume else ""))
    progress.line(f"data       {data.description} (train {len(data.train[0]):,} / val {len(data.val[0]):,})")
    progress.line(f"tokenizer  source {data.src_vocab.split} ({c.source_vocab} ids), "
                  f"target {data.tgt_vocab.split} ({c.vocab_size} ids)")
    progress.line(f"model      SEQ2SEQ {c.n_layer}+{c.n_layer} layers, {c.n_head} heads, {c.n_embd} wide, "
                  f"longest source/target {c.source_length}/{c.block_size}, {options(c)}: "
                  f"{model.num_parameters():,} parameters")
    progress.line(f"training   {cfg.iters:,} iters x {cfg.batch_size * cfg.grad_accum} pairs, AdamW lr {cfg.lr:g}, "
                  f"label smoothing {cfg.label_smoothing:g}, {cfg.backend} {cfg.dtype}, seed {cfg.seed}")
    result = trainer.fit()
    report_end(progress, run_dir, result)
    from .seq2seq_eval import translate  # noqa: PLC0415
    shown = data.val_text[:3]
    for (s, t), hyp in zip(shown, translate(model, data.src_vocab, data.tgt_vocab, [s for s, _ in shown])):
        progress.line(f"  {s!r} -> {hyp!r}   (reference {t!r})")
    progress.line(f"\nnext: tinyllm generate --ckpt {run_dir} --source \"...\" --beam 5")
    return PretrainOutcome(run_dir, result, None)
