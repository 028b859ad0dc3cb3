"""``tinyllm generate``: sample text from a trained GPT, streamed as it is made."""
from __future__ import annotations

import click

from .common import use_engine

EPILOG = """\b
Examples:
  tinyllm generate --ckpt runs/tiny --prompt "ROMEO:"
  tinyllm generate --ckpt runs/tiny --prompt "To be" --greedy --max-new-tokens 100
  tinyllm generate --ckpt runs/tiny --prompt "KING" --temperature 0.7 --top-k 20 --num-samples 3 --seed 1
  tinyllm generate --ckpt path/to/gpt2 --prompt "Hello, I'm a language model,"   # a Hugging Face GPT-2 dir
  tinyllm generate --ckpt runs/g2p --source "hello" --beam 5              # a seq2seq run: decode a source
  tinyllm generate --ckpt runs/g2p --input words.txt                      # one source per line
\b
--ckpt takes a run directory (its best/ checkpoint; --latest for latest/), a
checkpoint directory, or a local Hugging Face GPT-2 directory (config.json,
model.safetensors, tokenizer.json). Tokens stream to the terminal as they are
made, using a KV cache."""


@click.command("generate", epilog=EPILOG, short_help="Sample text from a GPT, streamed.")
@click.option("--ckpt", required=True, type=click.Path(), help="Run, checkpoint or Hugging Face GPT-2 directory.")
@click.option("--prompt", default="\n", show_default="a newline", help="Text to continue.")
@click.option("--max-new-tokens", type=int, default=200, show_default=True, help="Tokens to add.")
@click.option("--temperature", type=float, default=0.8, show_default=True,
              help="Divide the logits by this; lower is more conservative.")
@click.option("--top-k", type=int, default=None, help="Sample among the k most likely tokens only.")
@click.option("--top-p", type=float, default=None,
              help="Sample among the smallest set of tokens with probability >= p.")
@click.option("--greedy", is_flag=True, help="Always take the most likely token (deterministic).")
@click.option("--seed", type=int, default=None, help="Seed for reproducible samples.")
@click.option("--num-samples", type=int, default=1, show_default=True, help="Independent samples to draw.")
@click.option("--latest", is_flag=True, help="Use the run's latest checkpoint instead of its best.")
@click.option("--backend", type=click.Choice(["numpy", "cupy"]), default="numpy", show_default=True)
@click.option("--source", default=None, help="seq2seq: the source to decode (e.g. a word for G2P).")
@click.option("--input", "input_file", type=click.Path(dir_okay=False), default=None,
              help="seq2seq: a file of sources, one per line; one output line each.")
@click.option("--beam", type=int, default=1, show_default=True, help="seq2seq: beam size (1: greedy).")
@click.option("--length-penalty", type=float, default=0.6, show_default=True,
              help="seq2seq: alpha of the length penalty ((5 + n) / 6) ** alpha (Wu et al. 2016).")
def generate_command(ckpt: str, prompt: str, max_new_tokens: int, temperature: float, top_k: int | None,
                     top_p: float | None, greedy: bool, seed: int | None, num_samples: int, latest: bool,
                     backend: str, source: str | None = None, input_file: str | None = None, beam: int = 1,
                     length_penalty: float = 0.6) -> None:
    """Continue a prompt with a trained GPT, streaming tokens as they are sampled; or decode
    sources with a seq2seq model (--source / --input, greedy or --beam N)."""
    from .seq2seq import decode_sources, holds_seq2seq  # noqa: PLC0415
    if source is not None or input_file is not None or holds_seq2seq(ckpt, latest):
        if source is None and input_file is None:
            raise ValueError(f"'{ckpt}' holds a seq2seq model: give --source TEXT or --input FILE")
        use_engine(backend, None)
        decode_sources(ckpt, source, input_file, beam, length_penalty, max_new_tokens, latest)
        return
    from ..decoding import check_sampling_args, generate_stream, stream_text  # noqa: PLC0415
    from ..models import registry  # noqa: PLC0415
    from ..train.budget import check_flags  # noqa: PLC0415
    from ..train.data import encode_text  # noqa: PLC0415
    from ..train.restore import restore_model  # noqa: PLC0415

    check_sampling_args(temperature, top_k, top_p, greedy)
    check_flags(max_new_tokens=max_new_tokens, num_samples=num_samples, top_k=top_k)
    if max_new_tokens < 0:
        raise ValueError(f"--max-new-tokens must be >= 0, got {max_new_tokens}")
    if seed is not None and not 0 <= seed < 2 ** 63 - num_samples:
        raise ValueError(f"--seed must be an integer in [0, 2**63), got {seed}")
    if num_samples < 1:
        raise ValueError(f"--num-samples must be at least 1, got {num_samples}")
    use_engine(backend, None)
    restored = restore_model(ckpt, prefer="latest" if latest else "best")
    kind = registry.get(restored.kind) if restored.kind in registry.names() else None
    if kind is None or not kind.can_generate:
        decoders = " or ".join(n.upper() for n in registry.names() if registry.get(n).can_generate)
        held = "classifier" if kind is None else f"{kind.name.upper()} ({kind.summary}) model"
        raise ValueError(f"generate needs a {decoders} checkpoint; '{ckpt}' holds a {held}")
    tok = restored.tokenizer
    ids = encode_text(tok, prompt, "prompt")
    if not ids:
        raise ValueError("the prompt encodes to no tokens; give at least one character")

    def write(piece: str) -> None:
        click.echo(piece, nl=False)

    for i in range(num_samples):
        if num_samples > 1:
            click.echo(f"--- sample {i + 1} ---")
        click.echo(prompt, nl=False)
        sample_seed = None if seed is None else seed + i
        try:
            stream = generate_stream(restored.model, [ids], max_new_tokens, temperature=temperature, top_k=top_k,
                                     top_p=top_p, greedy=greedy, seed=sample_seed)
            stream_text(stream, tok, write)
        finally:
            click.echo()                # the text so far ends its line; an error is printed below it
