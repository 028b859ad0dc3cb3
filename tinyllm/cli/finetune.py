"""``tinyllm finetune``: a classifier head on a pre-trained model, or LM training on prompt/response pairs."""
from __future__ import annotations

from typing import Any

import click
from click.core import ParameterSource

from .common import ENGINE_OPTIONS, OPTIMIZATION_OPTIONS, add_options, given, option_names

EPILOG = """\b
Examples:
  tinyllm finetune --ckpt runs/tiny --data reviews.csv --task classify
  tinyllm finetune --ckpt runs/bert --data reviews.jsonl --task classify --freeze-backbone --out runs/probe
  tinyllm finetune --ckpt runs/tiny --data pairs.jsonl --task lm --iters 200 --out runs/tiny-chat
  tinyllm finetune --task classify --out runs/tiny-classify --resume --data reviews.csv
  tinyllm finetune --ckpt runs/bert --data ner.conll --task tag --crf
  tinyllm finetune --ckpt path/to/hf-bert --data squad.json --task qa --stride 64
  tinyllm finetune --ckpt runs/tiny --data pairs.jsonl --task lm --lora-r 8 --lora-targets q,v
\b
classify: rows of text and label, as CSV/TSV with a header "text,label" or JSONL
{"text": ..., "label": ...}. lm: JSONL {"prompt": ..., "response": ...}; the loss
counts the response tokens only. tag: CoNLL-style "token tag" lines (blank line
between sentences) or JSONL {"tokens": [...], "tags": [...]}. qa: SQuAD v1.1 JSON
or JSONL {"context", "question", "answer", "answer_start"}. --ckpt also takes a
Hugging Face GPT-2 or BERT directory. The source checkpoint (its best/) is only read;
the fine-tuned run goes to --out (default: <source run>-<task>), with the same
checkpoints, Ctrl-C, --resume and --early-stop as tinyllm train."""


@click.command("finetune", epilog=EPILOG, short_help="Fine-tune: classifier head or LM on pairs.")
@click.option("--ckpt", type=click.Path(), default=None, help="The pre-trained run or checkpoint directory.")
@click.option("--data", default=None, help="Labeled .csv/.tsv/.jsonl (classify) or prompt/response .jsonl (lm).")
@click.option("--task", type=click.Choice(["classify", "lm", "tag", "qa"]), required=True,
              help="What to fine-tune for.")
@click.option("--freeze-backbone", is_flag=True, help="classify: train the new head only (a linear probe).")
@click.option("--pooling", type=click.Choice(["cls", "last", "mean", "pooler"]), default=None,
              help="classify: how a sequence becomes one vector (default: last for GPT, cls for BERT).")
@click.option("--crf", is_flag=True,
              help="tag: score tag sequences with a CRF (BIO/BIOES constraints when the tags fit).")
@click.option("--stride", type=int, default=None, help="qa: context tokens shared by consecutive windows (default 32).")
@click.option("--lora-r", type=int, default=None,
              help="Train rank-r LoRA adapters (and the task's new head) only; the adapter is saved in OUT/adapter.")
@click.option("--lora-alpha", type=float, default=None, help="LoRA scale numerator: updates x alpha/r (default 2r).")
@click.option("--lora-dropout", type=float, default=0.0, show_default=True, help="Dropout on the adapters' input.")
@click.option("--lora-targets", default="c_attn,c_proj", show_default=True,
              help="Layers to adapt, by name: c_attn, c_proj, attn.c_proj, c_fc, or q,k,v / query,key,value "
                   "for the thirds of the packed attention projection; on a BERT also its Hugging Face names "
                   "attention.output.dense, intermediate.dense, output.dense (both outputs), dense (all three).")
@add_options(OPTIMIZATION_OPTIONS)
@add_options(ENGINE_OPTIONS)
@click.option("--out", type=click.Path(), default=None, help="Run directory of the fine-tuned model.")
@click.option("--resume", is_flag=True, help="Continue the fine-tuning run in --out.")
@click.option("--force", is_flag=True, help="Replace a run already in --out.")
@click.pass_context
def finetune_command(ctx: click.Context, ckpt: str | None, data: str | None, task: str, freeze_backbone: bool,
                     pooling: str | None, crf: bool, stride: int | None, out: str | None, resume: bool,
                     force: bool, lora_r: int | None, lora_alpha: float | None, lora_dropout: float,
                     lora_targets: str, **_: Any) -> None:
    """Fine-tune a pre-trained checkpoint: classify text, or continue LM training on pairs."""
    from ..train.finetune import finetune  # noqa: PLC0415

    if resume and force:
        raise ValueError("--resume continues the run in --out and --force replaces it: use one of them")
    settings = given(ctx, option_names(OPTIMIZATION_OPTIONS + ENGINE_OPTIONS))
    lora = None
    if lora_r is not None:
        from ..compress.adapter import lora_settings  # noqa: PLC0415
        lora = lora_settings(lora_r, lora_alpha, lora_dropout, lora_targets)
    elif any(ctx.get_parameter_source(n) == ParameterSource.COMMANDLINE
             for n in ("lora_alpha", "lora_dropout", "lora_targets")):
        raise ValueError("--lora-alpha, --lora-dropout and --lora-targets need --lora-r (the adapters' rank)")
    finetune(ckpt, data, task, settings, out=out, resume=resume, force=force, freeze_backbone=freeze_backbone,
             pooling=pooling, head_options={"crf": crf, "stride": stride}, lora=lora)
