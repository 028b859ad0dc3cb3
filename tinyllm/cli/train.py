"""``tinyllm train``: pre-train a GPT (default) or a BERT from the command line."""
from __future__ import annotations

import dataclasses
from typing import Any

import click

from ..models import registry
from ..train.config import PRESETS, TrainConfig, read_config_file
from .common import ENGINE_OPTIONS, OPTIMIZATION_OPTIONS, add_options, given, option_names

MODEL_OPTIONS: list[tuple[str, Any, str]] = [
    ("--model", click.Choice(registry.names()),
     "; ".join(f"{name}: {registry.get(name).summary}" for name in registry.names()) + "."),
    ("--data", str, "Text file, directory of .txt files, .bin token file, or built-in corpus: tiny (default, "
                    "shipped), shakespeare (downloaded once)."),
    ("--tokenizer", str, "char (default), bpe (trained on the data), or the path of a saved tokenizer; "
                         "seq2seq: the source side's, char, symbols or bpe."),
    ("--vocab-size", int, "BPE vocabulary size."),
    ("--preset", click.Choice(list(PRESETS)), "Model size and schedule: " + "; ".join(
        f"{name} = {p['n_layer']}x{p['n_embd']}, {p['n_head']} heads, context {p['block_size']}, {p['iters']} iters"
        for name, p in PRESETS.items()) + ". Default: default."),
    ("--n-layer", int, "Transformer blocks."),
    ("--n-head", int, "Attention heads (must divide --n-embd)."),
    ("--n-embd", int, "Model width."),
    ("--block-size", int, "Context length in tokens."),
    ("--dropout", float, "Dropout probability."),
    ("--mlm-prob", float, "BERT: share of tokens masked (0.15)."),
    ("--sample-tokens", int, "GPT: tokens to sample at the end (0: none)."),
]
SEQ2SEQ_OPTIONS: list[tuple[str, Any, str]] = [
    ("--tgt-tokenizer", click.Choice(["char", "symbols", "bpe"]),
     "seq2seq: the target side's tokenizer (default: --tokenizer's, which is the source's: char, symbols = "
     "whitespace-separated, e.g. phonemes, or bpe trained on that side of the training pairs)."),
    ("--tgt-vocab-size", int, "seq2seq: the target side's BPE vocabulary size (default: --vocab-size)."),
    ("--src-block-size", int, "seq2seq: the longest source in tokens (default: --block-size)."),
    ("--tgt-block-size", int, "seq2seq: the longest target in tokens, EOS included (default: --block-size); "
                              "it bounds --max-new-tokens when decoding."),
    ("--norm", click.Choice(["pre", "post"]), "seq2seq: pre-LN (default) or post-LN (the paper's) blocks."),
    ("--positions", click.Choice(["sinusoidal", "learned"]), "seq2seq: position encoding (default: sinusoidal)."),
    ("--share-embeddings", click.BOOL, "seq2seq: one embedding table for source and target (needs one "
                                       "vocabulary; default: no)."),
    ("--tie-weights", click.BOOL, "seq2seq: the output projection is the target embedding (default: yes)."),
    ("--label-smoothing", float, "seq2seq: label smoothing of the cross-entropy (0.1 in the Transformer paper)."),
]
SEQ2SEQ_NAMES = option_names(SEQ2SEQ_OPTIONS)
SETTING_NAMES = option_names(MODEL_OPTIONS + SEQ2SEQ_OPTIONS + OPTIMIZATION_OPTIONS + ENGINE_OPTIONS)
FILE_KEYS = tuple({f.name for f in dataclasses.fields(TrainConfig)} | {"out", "resume", "force"})

EPILOG = """\b
Examples:
  tinyllm train                                    # char GPT on the built-in corpus, a few minutes
  tinyllm train --preset tiny --out runs/tiny      # about a minute
  tinyllm train --data shakespeare --preset nano   # nanoGPT's CPU config on Tiny Shakespeare
  tinyllm train --data my_texts/ --tokenizer bpe --vocab-size 2000 --out runs/mine
  tinyllm train --model bert --out runs/bert       # masked-language-model pre-training
  tinyllm train --model seq2seq --data pairs.tsv --tgt-tokenizer symbols --label-smoothing 0.1
  tinyllm train --model seq2seq --data en_de.tsv --tokenizer bpe --vocab-size 1000 --norm post \\
      --src-block-size 64 --tgt-block-size 80 --share-embeddings no
  tinyllm train --config run.toml --lr 1e-3        # a config file; flags override it
  tinyllm train --out runs/tiny --resume --iters 1200   # continue (and extend) a run
\b
A config file (TOML, or JSON by its .json suffix) takes the same names as the flags:
  preset = "nano"
  data = "shakespeare"
  batch-size = 32
  early_stop = 3
\b
Priority: flags > config file > preset > built-in defaults. The run directory gets
latest/ and best/ checkpoints, metrics.jsonl and (with matplotlib) loss.png.
Ctrl-C saves a checkpoint; --resume continues it exactly."""


@click.command("train", epilog=EPILOG, short_help="Pre-train a GPT or BERT on a corpus.")
@add_options(MODEL_OPTIONS)
@add_options(SEQ2SEQ_OPTIONS)
@add_options(OPTIMIZATION_OPTIONS)
@add_options(ENGINE_OPTIONS)
@click.option("--out", type=click.Path(), default=None,
              help="Run directory (default: a new runs/<model>-<preset>-<date>-<time>).")
@click.option("--resume", is_flag=True, default=None, help="Continue the run in --out from its latest checkpoint.")
@click.option("--force", is_flag=True, default=None, help="Replace a run already in --out.")
@click.option("--config", "config_file", type=click.Path(dir_okay=False), default=None,
              help="TOML or JSON file of settings (flag names, dashes or underscores).")
@click.option("--nproc", type=click.IntRange(min=1), default=None,
              help="Train data-parallel on N processes: starts mpiexec -n N itself (needs the [mpi] extra); "
                   "the run equals one process with --grad-accum multiplied by N.")
@click.pass_context
def train_command(ctx: click.Context, out: str | None, resume: bool | None, force: bool | None,
                  config_file: str | None, nproc: int | None = None, **_: Any) -> None:
    """Pre-train a language model: a GPT (next token) or a BERT (masked tokens).

    With no options it trains a small character-level GPT on the Shakespeare
    excerpt that ships with tinyllm (2-3 minutes on 2 idle CPU cores), prints
    its progress, the loss curve and a sample, and leaves the run in runs/.
    Options left out take their values from --preset (default: "default").
    """
    if nproc is not None:
        from ..distributed.launch import launch  # noqa: PLC0415
        ctx.exit(launch(nproc))
    from ..train import pretrain  # noqa: PLC0415  (import the engine only when a command runs)

    settings: dict[str, Any] = {}
    if config_file is not None:
        settings.update(read_config_file(config_file, FILE_KEYS))
    settings.update(given(ctx, SETTING_NAMES))
    flags = given(ctx, ["out", "resume", "force"])
    out = flags.get("out", settings.pop("out", None))
    resume = bool(flags.get("resume", settings.pop("resume", False)))
    force = bool(flags.get("force", settings.pop("force", False)))
    for key in ("out", "resume", "force"):
        settings.pop(key, None)
    if resume and force:
        raise ValueError("--resume continues the run in --out and --force replaces it: use one of them")
    misplaced = [k for k in SEQ2SEQ_NAMES if k in settings]
    if misplaced and not resume and settings.get("model", "gpt") != "seq2seq":
        raise ValueError(f"--{misplaced[0].replace('_', '-')} is a seq2seq option; add --model seq2seq")
    pretrain(settings, out=out, resume=resume, force=force)
