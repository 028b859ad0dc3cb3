"""``tinyllm quantize``: an int8 (Q8_0) copy of a checkpoint, for inference."""
from __future__ import annotations

import click

EPILOG = """\b
Examples:
  tinyllm quantize --ckpt runs/tiny --out runs/tiny-int8
  tinyllm generate --ckpt runs/tiny-int8 --prompt "ROMEO:"
  tinyllm eval --ckpt runs/tiny-int8 --data shakespeare
\b
Every Linear and embedding weight becomes int8 in blocks of 32 inputs with one
float16 scale per block (llama.cpp's Q8_0: 8.5 bits per weight); biases,
LayerNorms and activations stay float32. A LoRA run's adapters are merged
first. generate, eval, info and the Python API (tinyllm.train.restore_model)
read the result like any checkpoint; it cannot be fine-tuned further (fine-tune
the float checkpoint)."""


@click.command("quantize", epilog=EPILOG, short_help="int8-quantize a checkpoint for inference.")
@click.option("--ckpt", required=True, type=click.Path(),
              help="The run (its best/), a checkpoint, or a Hugging Face GPT-2 / BERT directory.")
@click.option("--out", required=True, type=click.Path(), help="Run directory for the quantized checkpoint.")
@click.option("--force", is_flag=True, help="Replace what is already in --out.")
def quantize_command(ckpt: str, out: str, force: bool) -> None:
    """Write an int8 (Q8_0) copy of a checkpoint: about 0.27x the size, generation reads 4x fewer bytes."""
    from ..compress.quantize import quantize_checkpoint  # noqa: PLC0415

    r = quantize_checkpoint(ckpt, out, force=force)
    click.echo(f"quantized  {len(r['weights'])} weight matrices to int8 (Q8_0, blocks of 32, float16 scales)")
    click.echo(f"size       {r['source_bytes']:,} -> {r['bytes']:,} bytes ({r['ratio']:.3f}x)")
    click.echo(f"checkpoint {r['checkpoint']}")
