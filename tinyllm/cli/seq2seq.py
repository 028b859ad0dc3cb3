"""``tinyllm generate --source/--input``, ``tinyllm eval`` and ``tinyllm info`` of a seq2seq run."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

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

    from ..data.pairs import encode_all, read_pairs  # noqa: PLC0415
    from ..train.seq2seq_eval import corpus_scores, error_rates, restore_seq2seq, translate  # noqa: PLC0415

    if beam < 1:
        raise ValueError(f"--beam must be at least 1, got {beam}")
    r = restore_seq2seq(ckpt, prefer="latest" if latest else "best")
    pairs, limit = read_pairs(data), r.model.config.source_length
    lengths = [len(ids) for ids in encode_all(r.src_vocab, [s for s, _ in pairs], "a source")]
    left_out = sum(n > limit for n in lengths)
    pairs = [p for p, n in zip(pairs, lengths) if n <= limit]
    if not pairs:
        raise ValueError(f"no source of '{data}' fits the model's source length {limit}")
    start = time.perf_counter()
    hyps = translate(r.model, r.src_vocab, r.tgt_vocab, [s for s, _ in pairs], beam=beam, alpha=alpha,
                     batch_size=batch_size)
    refs = [t for _, t in pairs]
    rates = error_rates([r.tgt_vocab.units(h) for h in hyps], [r.tgt_vocab.units(t) for t in refs])
    unit = r.tgt_vocab.unit
    click.echo(f"{ckpt} on {data}: {len(pairs)} pairs"
               + (f" ({left_out} with sources longer than {limit} tokens left out)" if left_out else "")
               + f", {'greedy' if beam == 1 else f'beam {beam}'}, {time.perf_counter() - start:.1f} s")
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


def describe_run(ckpt: str, as_json: bool) -> None:
    """``tinyllm info`` of a seq2seq run: both stacks, each side's tokenizer and length, the options."""
    from ..checkpoint import load_state_json  # noqa: PLC0415
    from ..train.seq2seq import options  # noqa: PLC0415
    from ..train.seq2seq_eval import restore_seq2seq  # noqa: PLC0415
    from .info import echo_training_state, parameter_table  # noqa: PLC0415  (info calls this module)

    r = restore_seq2seq(ckpt, prefer="latest")
    ck, model, c = r.checkpoint, r.model, r.model.config
    state, best = ck.state, ck.state
    if ck.path.name == "latest" and (ck.path.parent / "best").exists():
        best = load_state_json(ck.path.parent, prefer="best")[2]

    def side(vocab: Any, length: int) -> dict[str, Any]:
        return {"kind": vocab.split, "vocab_size": vocab.vocab_size, "max_length": length}

    facts = {
        "checkpoint": str(ck.path), "model": ck.config["model"], "task": ck.config.get("task", {}),
        "tokenizer": {"source": side(r.src_vocab, c.source_length), "target": side(r.tgt_vocab, c.block_size)},
        "options": {"norm": "pre" if c.norm_first else "post", "positions": c.positions,
                    "share_embeddings": c.share_embeddings, "tie_weights": c.tie_weights},
        "parameters": model.num_parameters(),
        "encoder_parameters": sum(b.num_parameters() for b in model.encoder),
        "decoder_parameters": sum(b.num_parameters() for b in model.decoder),
        "flops_per_token": model.flops_per_token(),
        "iteration": state.get("iteration"), "last_val_loss": state.get("last_val_loss"),
        "best_val_loss": best.get("best_val_loss"), "best_iteration": best.get("iteration"),
        "train": ck.config.get("train"),
    }
    if as_json:
        click.echo(json.dumps(facts, indent=2))
        return
    src, tgt = facts["tokenizer"]["source"], facts["tokenizer"]["target"]
    click.echo(f"checkpoint   {facts['checkpoint']}")
    click.echo("task         seq2seq" + (f", data {facts['task']['data']}" if facts["task"].get("data") else ""))
    click.echo(f"model        seq2seq: encoder {c.n_layer} blocks + decoder {c.n_layer} blocks (with "
               f"cross-attention), {c.n_head} heads, {c.n_embd} wide, {c.activation} MLP, dropout {c.dropout:g}")
    click.echo(f"options      {options(c)}, label smoothing {c.label_smoothing:g}")
    click.echo(f"source       {src['kind']} tokenizer, {src['vocab_size']:,} ids, longest {src['max_length']} tokens")
    click.echo(f"target       {tgt['kind']} tokenizer, {tgt['vocab_size']:,} ids, longest {tgt['max_length']} "
               f"tokens (EOS included)")
    click.echo(f"parameters   {facts['parameters']:,} (encoder blocks {facts['encoder_parameters']:,}, "
               f"decoder blocks {facts['decoder_parameters']:,})")
    for name, n, note in parameter_table(model):
        click.echo(f"  {name:<28} {n:>12,}" + (f"  {note}" if note else ""))
    click.echo(f"FLOPs/token  {facts['flops_per_token']:,} (training, forward + backward, "
               f"target length {c.block_size})")
    echo_training_state(facts)
