"""``tinyllm prune``: magnitude pruning of a checkpoint, with the masks kept for fine-tuning."""
from __future__ import annotations

import click

EPILOG = """\b
Examples:
  tinyllm prune --ckpt runs/tiny --out runs/tiny-50 --sparsity 0.5
  tinyllm prune --ckpt runs/tiny --out runs/tiny-g30 --sparsity 0.3 --global
  tinyllm prune --ckpt runs/tiny --out runs/tiny-24 --structured 2:4
  tinyllm finetune --ckpt runs/tiny-50 --data pairs.jsonl --task lm    # pruned weights stay zero
\b
The Linear weights (not the embeddings, nor an output layer tied to them) with
the smallest |w| become zero: per layer (default), over all layers at once
(--global), or N of every M consecutive inputs kept (--structured N:M, sparsity
1 - N/M). The masks are saved with the checkpoint, so a following finetune
multiplies the weights by them after every optimizer step."""


@click.command("prune", epilog=EPILOG, short_help="Magnitude-prune a checkpoint.")
@click.option("--ckpt", required=True, type=click.Path(),
              help="The run (its best/), a checkpoint, or a Hugging Face GPT-2 / BERT directory.")
@click.option("--out", required=True, type=click.Path(), help="Run directory for the pruned checkpoint.")
@click.option("--sparsity", type=float, default=None, help="Fraction of weights to zero, in [0, 1) (default 0.5).")
@click.option("--structured", default=None, metavar="N:M", help="Keep N of every M consecutive inputs (e.g. 2:4).")
@click.option("--global", "global_", is_flag=True, help="One magnitude threshold over all layers, not one per layer.")
@click.option("--force", is_flag=True, help="Replace what is already in --out.")
def prune_command(ckpt: str, out: str, sparsity: float | None, structured: str | None, global_: bool,
                  force: bool) -> None:
    """Zero the smallest weights of a checkpoint and print the sparsity of each layer."""
    from ..compress.prune import parse_structured, prune_checkpoint  # noqa: PLC0415

    nm = parse_structured(structured)
    if nm is not None:
        if global_:
            raise ValueError("--structured N:M prunes within groups of each row; it has no --global form")
        if sparsity is not None and abs(sparsity - (1 - nm[0] / nm[1])) > 1e-9:
            raise ValueError(f"--structured {structured} means sparsity {1 - nm[0] / nm[1]:g}; "
                             f"leave out --sparsity {sparsity:g}")
    r = prune_checkpoint(ckpt, out, 0.5 if sparsity is None else sparsity, "global" if global_ else "layer", nm,
                         force=force)
    click.echo(f"{'layer':<28} {'shape':>12} {'zeros':>10} {'sparsity':>9}")
    for row in r["layers"]:
        shape = "x".join(str(d) for d in row["shape"])
        click.echo(f"{row['layer']:<28} {shape:>12} {row['zeros']:>10,} {row['sparsity']:>8.1%}")
    click.echo(f"total sparsity {r['sparsity']:.1%} of the pruned layers; checkpoint {r['checkpoint']}")
