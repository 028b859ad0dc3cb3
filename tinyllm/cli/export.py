"""``tinyllm export``: a run or checkpoint as a Hugging Face directory (``save_pretrained``'s layout)."""
from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

import click

EPILOG = """\b
Examples:
  tinyllm export --ckpt runs/tiny --out hf/tiny              # GPT2LMHeadModel
  tinyllm export --ckpt runs/tiny-clf --out hf/tiny-clf      # GPT2ForSequenceClassification
  tinyllm export --ckpt runs/bert-ner --out hf/bert-ner      # BertForTokenClassification
\b
Layouts: a GPT as GPT2LMHeadModel, a BERT as BertForMaskedLM, and with a head
GPT2For... / BertFor... SequenceClassification, TokenClassification (a CRF
tagger: its emission layer, plus crf.safetensors with the CRF's scores, which
transformers ignores and tinyllm reads back), QuestionAnswering. The directory
holds config.json, model.safetensors and tokenizer.json (a character tokenizer
as a WordLevel model of single characters); transformers' from_pretrained and
every tinyllm command that takes --ckpt read it. A LoRA run is written with its
adapters merged into the weights. A seq2seq, quantized or pruned run has no such
layout and is refused."""


def refuse_unexportable(restored: Any) -> None:
    """ValueError naming why a restored checkpoint has no Hugging Face layout, if it has none."""
    ck = restored.checkpoint
    if ck is None:
        return
    section, where = ck.config["model"], ck.path
    if "quantization" in ck.config:
        raise ValueError(f"{where} is int8-quantized; Hugging Face's layouts hold float weights: export the "
                         "checkpoint it was quantized from")
    if "pruning" in section:
        raise ValueError(f"{where} is pruned (its masks are part of the model): export the checkpoint it was "
                         "pruned from")
    if restored.kind == "seq2seq" or section.get("kind") == "seq2seq":
        raise ValueError(f"{where} is a seq2seq (encoder-decoder) run; tinyllm exports GPT and BERT models "
                         "(bare or with a head) only")


def labels_of(restored: Any) -> list[str] | None:
    """The class or tag names of a restored head (config.json's id2label)."""
    task = restored.checkpoint.config.get("task", {}) if restored.checkpoint is not None else {}
    return task.get("tags") or task.get("labels") or restored.labels


# What an export (or save_pretrained) writes: --force replaces a directory of these names only
EXPORT_FILES = ("config.json", "model.safetensors", "model.safetensors.index.json", "crf.safetensors",
                "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "vocab.txt", "vocab.json",
                "merges.txt", "generation_config.json")


def write_atomically(out: Path, force: bool, write: Any) -> None:
    """``write(tmp)`` into a new directory beside ``out``, then rename it to ``out``: a failure leaves
    ``out`` as it was. A non-empty ``out`` is replaced only with ``force``, and only when it holds
    nothing but what an export writes (never a run, a checkpoint or the user's own files)."""
    if out.exists() and not out.is_dir():
        raise ValueError(f"--out {out} exists and is not a directory")
    if out.is_dir() and any(out.iterdir()) and not force:
        raise ValueError(f"--out {out} is not empty; pass --force to replace it")
    foreign = sorted(p.name for p in out.iterdir() if p.name not in EXPORT_FILES and not (
        p.name.startswith("model-") and p.name.endswith(".safetensors"))) if out.is_dir() else []
    if foreign:
        raise ValueError(f"--out {out} holds {', '.join(foreign[:4])}{', ...' if len(foreign) > 4 else ''}, "
                         "which an export does not write; --force replaces an exported directory only: "
                         "choose another --out")
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
    try:
        write(tmp)
        os.chmod(tmp, 0o755)                                   # mkdtemp makes it private
        old = out.with_name(f".{out.name}.old")
        if out.exists():
            shutil.rmtree(old, ignore_errors=True)
            os.rename(out, old)
            os.rename(tmp, out)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.rename(tmp, out)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)                 # only left when something failed


@click.command("export", epilog=EPILOG, short_help="Write a run as a Hugging Face directory.")
@click.option("--ckpt", required=True, type=click.Path(),
              help="A run (its best/), a checkpoint directory, or a Hugging Face directory.")
@click.option("--out", required=True, type=click.Path(), help="The directory to write.")
@click.option("--latest", is_flag=True, help="Export the run's latest checkpoint instead of its best.")
@click.option("--force", is_flag=True, help="Replace what is already in --out.")
def export_command(ckpt: str, out: str, latest: bool, force: bool) -> None:
    """Write a GPT or BERT checkpoint, with any head, as a save_pretrained-style directory."""
    from ..compress.source import check_out  # noqa: PLC0415
    from ..models.hf_heads import save_hf  # noqa: PLC0415
    from ..train.restore import restore_model  # noqa: PLC0415

    restored = restore_model(ckpt, prefer="latest" if latest else "best")
    refuse_unexportable(restored)
    model, labels = restored.model, labels_of(restored)
    if restored.checkpoint is not None and "lora" in restored.checkpoint.config["model"]:
        from ..nn.lora import unwrap_lora  # noqa: PLC0415
        unwrap_lora(model)                                     # the adapters folded in: W + (alpha / r) B A
    source = restored.checkpoint.path if restored.checkpoint is not None else Path(ckpt)
    target = check_out(out, source, force=True)               # never the source, inside it or around it
    layout: list[str] = []
    try:
        write_atomically(target, force, lambda tmp: layout.append(save_hf(model, tmp, restored.tokenizer, labels)))
    except TypeError as exc:                                   # a model kind with no Hugging Face layout
        raise ValueError(str(exc)) from None
    click.echo(f"exported   {layout[0]} ({restored.kind}" + (f", labels {', '.join(labels)}" if labels else "")
               + ")")
    click.echo(f"directory  {target}  (config.json, model.safetensors"
               + (", crf.safetensors" if (target / "crf.safetensors").exists() else "")
               + (", tokenizer.json" if (target / "tokenizer.json").exists() else "") + ")")
