"""``tinyllm eval``: loss and perplexity of a language model, or accuracy of a classifier, on a data file."""
from __future__ import annotations

from pathlib import Path

import click

from .common import echo_safe, use_engine

EPILOG = """\b
Examples:
  tinyllm eval --ckpt runs/tiny --data shakespeare          # loss and perplexity on a corpus
  tinyllm eval --ckpt runs/tiny --data held_out.txt --max-batches 50
  tinyllm eval --ckpt runs/tiny-classify --data test.csv    # accuracy and confusion matrix
  tinyllm eval --ckpt runs/bert-tag --data test.conll        # entity precision / recall / F1
  tinyllm eval --ckpt runs/bert-qa --data dev.json           # SQuAD exact match and F1
\b
Language models are scored on every consecutive window of the file (BERT:
on a fixed 15% of masked tokens); classifiers on every labeled row."""


@click.command("eval", epilog=EPILOG, short_help="Loss/perplexity or accuracy on a data file.")
@click.option("--ckpt", required=True, type=click.Path(), help="Run or checkpoint directory.")
@click.option("--data", required=True,
              help="Text/.bin/corpus name (language models) or .csv/.tsv/.jsonl (classifiers).")
@click.option("--batch-size", type=int, default=16, show_default=True, help="Sequences per batch.")
@click.option("--max-batches", type=int, default=None, help="Language models: evaluate at most this many batches.")
@click.option("--latest", is_flag=True, help="Use the run's latest checkpoint instead of its best.")
@click.option("--backend", type=click.Choice(["numpy", "cupy"]), default="numpy", show_default=True)
@click.option("--beam", type=int, default=1, show_default=True, help="seq2seq: beam size (1: greedy).")
@click.option("--length-penalty", type=float, default=0.6, show_default=True, help="seq2seq: length penalty alpha.")
def eval_command(ckpt: str, data: str, batch_size: int, max_batches: int | None, latest: bool, backend: str,
                 beam: int = 1, length_penalty: float = 0.6) -> None:
    """Score a checkpoint on a data file: loss/perplexity (LMs), accuracy (classifiers), or for seq2seq
    (a pairs file) token and sequence error rates, and BLEU/chrF when sacrebleu is installed."""
    from .seq2seq import evaluate_pairs, holds_seq2seq  # noqa: PLC0415
    if holds_seq2seq(ckpt, latest):
        use_engine(backend, None)
        return evaluate_pairs(ckpt, data, beam, length_penalty, batch_size, latest)
    from ..models import registry  # noqa: PLC0415
    from ..train.evaluate import evaluate_classifier, evaluate_lm, format_confusion  # noqa: PLC0415
    from ..train.budget import check_flags  # noqa: PLC0415
    from ..train.restore import check_inference, restore_model  # noqa: PLC0415
    from ..train.tasks import HEAD_KINDS, evaluate_head  # noqa: PLC0415

    check_flags(batch_size=batch_size, max_batches=max_batches)
    if batch_size < 1:
        raise ValueError(f"--batch-size must be at least 1, got {batch_size}")
    if max_batches is not None and max_batches < 1:
        raise ValueError(f"--max-batches must be at least 1, got {max_batches}")
    use_engine(backend, None)
    restored = restore_model(ckpt, prefer="latest" if latest else "best")
    check_inference(restored, batch_size)
    where = restored.checkpoint.path if restored.checkpoint else Path(ckpt)
    if restored.kind in HEAD_KINDS:                                   # a tagger or a span extractor
        echo_safe(f"{where} on {data}:")
        for line in evaluate_head(restored, data, batch_size):
            echo_safe(line)
    elif restored.kind == "classifier":
        report = evaluate_classifier(restored, data, batch_size)
        echo_safe(f"{where} on {data}: {report.examples} examples")
        click.echo(f"accuracy  {report.accuracy:.2%}")
        click.echo("confusion matrix:")
        for line in format_confusion(report):
            echo_safe("  " + line)
    else:
        report = evaluate_lm(restored, data, batch_size, max_batches)
        masked = registry.get(restored.kind).objective == "masked-lm"
        what = "masked tokens" if masked else "tokens"
        click.echo(f"{where} on {data}: {report.tokens:,} {what}")
        click.echo(f"loss        {report.loss:.4f}")
        click.echo(f"perplexity  {report.perplexity:.2f}")
        click.echo(f"accuracy    {report.accuracy:.2%} ({'masked' if masked else 'next'}-token)")
