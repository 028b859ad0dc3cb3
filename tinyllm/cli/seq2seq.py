"""``tinyllm generate --source/--input`` and ``tinyllm eval --pairs``: using a seq2seq run."""
from __future__ import annotations

from pathlib import Path

import click


def holds_seq2seq(ckpt: str, latest: bool) -> bool:
    """Whether ``ckpt`` names a seq2seq checkpoint (its config.json says so; the full load checks the rest)."""
    from ..checkpoint import CONFIG_FILE, CheckpointError, find_checkpoint  # noqa: PLC0415
    from ..data import DataError  # noqa: PLC0415
    from ..validate import load_json  # noqa: PLC0415
    try:
        config = load_json(find_checkpoint(ckpt, "latest" if latest else "best") / CONFIG_FILE)
    except (CheckpointError, DataError, OSError, ValueError):
        return False                     # not a tinyllm checkpoint: the GPT path reports it
    return isinstance(config, dict) and isinstance(config.get("model"), dict) \
        and config["model"].get("kind") == "seq2seq"


def evaluate_pairs(ckpt: str, data: str, beam: int, alpha: float, batch_size: int, latest: bool) -> None:
    """Decode every source of a pairs file and print the error rates (and BLEU/chrF with sacrebleu)."""
    import time  # noqa: PLC0415

    from ..data.pairs import read_pairs  # noqa: PLC0415
    from ..train.seq2seq_eval import corpus_scores, error_rates, restore_seq2seq, translate  # noqa: PLC0415

    if beam < 1:
        raise ValueError(f"--beam must be at least 1, got {beam}")
    pairs = read_pairs(data)
    r = restore_seq2seq(ckpt, prefer="latest" if latest else "best")
    start = time.perf_counter()
    hyps = translate(r.model, r.src_vocab, r.tgt_vocab, [s for s, _ in pairs], beam=beam, alpha=alpha,
                     batch_size=batch_size)
    refs = [t for _, t in pairs]
    rates = error_rates([r.tgt_vocab.pieces(h) for h in hyps], [r.tgt_vocab.pieces(t) for t in refs])
    unit = "character" if r.tgt_vocab.split == "char" else "symbol"
    click.echo(f"{ckpt} on {data}: {len(pairs)} pairs, {'greedy' if beam == 1 else f'beam {beam}'}, "
               f"{time.perf_counter() - start:.1f} s")
    click.echo(f"{unit} error rate   {rates['token_error_rate']:.2%}")
    click.echo(f"sequence error rate  {rates['sequence_error_rate']:.2%}")
    if r.tgt_vocab.split == "char":          # BLEU counts n-grams of words: here of characters
        hyps, refs = [" ".join(h) for h in hyps], [" ".join(t) for t in refs]
    for name, value in corpus_scores(hyps, refs).items():
        click.echo(f"{name:<20} {value:.2f}")


def decode_sources(ckpt: str, source: str | None, input_file: str | None, beam: int, alpha: float,
                   max_new_tokens: int, latest: bool) -> None:
    """Print one decoded output per source (``--source`` text, or each line of ``--input``)."""
    from ..train.seq2seq_eval import restore_seq2seq, translate  # noqa: PLC0415

    if source is not None and input_file is not None:
        raise ValueError("give --source TEXT or --input FILE, not both")
    if beam < 1:
        raise ValueError(f"--beam must be at least 1, got {beam}")
    if max_new_tokens < 1:
        raise ValueError(f"--max-new-tokens must be at least 1 for seq2seq decoding, got {max_new_tokens}")
    if input_file is not None:
        from ..data.labeled import read_data_text  # noqa: PLC0415
        sources = [line for line in read_data_text(Path(input_file)).splitlines() if line.strip()]
        if not sources:
            raise ValueError(f"--input '{input_file}' has no sources")
    else:
        sources = [source]
    restored = restore_seq2seq(ckpt, prefer="latest" if latest else "best")
    for out in translate(restored.model, restored.src_vocab, restored.tgt_vocab, sources, beam=beam,
                         max_new_tokens=max_new_tokens, alpha=alpha):
        click.echo(out)
