"""``tinyllm info``: what a checkpoint holds - config, tokenizer, parameters, FLOPs, training state."""
from __future__ import annotations

import json
from typing import Any

import click

from .common import echo_safe

EPILOG = """\b
Examples:
  tinyllm info --ckpt runs/tiny
  tinyllm info --ckpt runs/tiny/latest
  tinyllm info --ckpt runs/tiny --json     # everything as JSON, for scripts"""


def count_unique(module: Any, seen: set[int]) -> int:
    """Parameters of ``module`` not already counted (tied weights count once, where first seen)."""
    n = 0
    for _, p in module.named_parameters():
        if id(p) not in seen:
            seen.add(id(p))
            n += int(p.size)
    return n


def parameter_table(model: Any, prefix: str = "", seen: set[int] | None = None) -> list[tuple[str, int, str]]:
    """(name, parameters, note) per top-level module; a list of blocks is one row plus its first block's parts.

    A classifier's backbone is broken down the same way, under ``backbone.``.
    """
    seen = set() if seen is None else seen
    rows: list[tuple[str, int, str]] = []
    for name, child in model.named_children():
        if not list(child.named_parameters()):
            continue                                                      # dropout, activations
        if name == "backbone":
            rows.extend(parameter_table(child, "backbone.", seen))
            continue
        name = prefix + name
        children = list(child.named_children())
        if children and all(n.isdigit() for n, _ in children):           # a ModuleList of blocks
            counts = [count_unique(block, seen) for _, block in children]
            rows.append((f"{name} ({len(children)} blocks)", sum(counts), f"{counts[0]:,} each"))
            first = children[0][1]
            for part, sub in first.named_children():
                if list(sub.named_parameters()):
                    rows.append((f"  {name}.0.{part}", sum(int(p.size) for _, p in sub.named_parameters()), ""))
        else:
            before = len(seen)
            n = count_unique(child, seen)
            tied = n == 0 and len(list(child.named_parameters())) > 0 and len(seen) == before
            rows.append((name, n, "tied to the token embedding" if tied else ""))
    return rows


@click.command("info", epilog=EPILOG, short_help="Describe a checkpoint.")
@click.option("--ckpt", required=True, type=click.Path(), help="Run or checkpoint directory.")
@click.option("--json", "as_json", is_flag=True, help="Print the facts as one JSON object.")
def info_command(ckpt: str, as_json: bool) -> None:
    """Describe a checkpoint: model config, tokenizer, parameters by module, FLOPs/token, training state."""
    from ..checkpoint import load_state_json  # noqa: PLC0415
    from ..train.restore import restore_model  # noqa: PLC0415
    from .seq2seq import describe_run, holds_seq2seq  # noqa: PLC0415

    if holds_seq2seq(ckpt, latest=True):
        return describe_run(ckpt, as_json)
    restored = restore_model(ckpt, prefer="latest")
    ck = restored.checkpoint
    model, tok = restored.model, restored.tokenizer
    lm = getattr(model, "backbone", model)
    config = ck.config if ck else {"model": {"kind": restored.kind, "config": lm.config.to_dict()},
                                   "task": {"name": "huggingface", "labels": restored.labels}}
    state = ck.state if ck else {}
    best_state = None
    if ck is not None and ck.path.name == "latest" and (ck.path.parent / "best").exists():
        _, _, best_state = load_state_json(ck.path.parent, prefer="best")
    facts = {
        "checkpoint": str(ck.path) if ck else str(ckpt),
        "model": config["model"],
        "task": config.get("task", {}),
        "tokenizer": {"kind": tok.kind, "vocab_size": tok.vocab_size, "special_tokens": tok.special_tokens},
        "parameters": model.num_parameters(),
        "trainable_parameters": model.num_parameters(trainable_only=True),
        "non_embedding_parameters": lm.num_parameters(non_embedding=True),
        "flops_per_token": lm.flops_per_token(),
        "iteration": state.get("iteration"),
        "best_val_loss": (best_state or state).get("best_val_loss"),
        "last_val_loss": state.get("last_val_loss"),
        "best_iteration": (best_state or {}).get("iteration"),
        "train": config.get("train"),
    }
    lora = config["model"].get("lora")
    if lora:                    # a LoRA run: what trains, and which base (named, never opened: it comes from a file)
        task = config.get("task", {})
        facts["lora"] = {**lora, "base": task.get("source_path", task.get("source")),
                         "base_sha256": task.get("source_weights_sha256")}
    if as_json:
        click.echo(json.dumps(facts, indent=2))
        return
    echo_safe(f"checkpoint   {facts['checkpoint']}")
    task = facts["task"]
    labels = f" ({', '.join(task['labels'])})" if task.get("labels") else ""
    echo_safe(f"task         {task.get('name', '?')}" + labels
               + (f", from {task['source']}" if task.get("source") else ""))
    click.echo(f"model        {restored.kind}: " + ", ".join(f"{k}={v}" for k, v in lm.config.to_dict().items()))
    click.echo(f"tokenizer    {tok.kind}, {tok.vocab_size:,} tokens"
               + (f", special {' '.join(tok.special_tokens)}" if tok.special_tokens else ""))
    click.echo(f"parameters   {facts['parameters']:,} ({facts['non_embedding_parameters']:,} non-embedding; "
               f"{facts['trainable_parameters']:,} trainable)")
    if lora:
        click.echo(f"lora         r={lora['r']} alpha={lora['alpha']:g} on {','.join(lora['targets'])}: "
                   f"{facts['trainable_parameters']:,} of {facts['parameters']:,} parameters trained "
                   f"({facts['trainable_parameters'] / max(facts['parameters'], 1):.2%})")
        digest = facts["lora"]["base_sha256"]
        echo_safe(f"lora base    {facts['lora']['base']} (weights SHA-256 {str(digest)[:12]}...); "
                   "this run's checkpoints hold the full weights")
    for name, n, note in parameter_table(model):
        click.echo(f"  {name:<28} {n:>12,}" + (f"  {note}" if note else ""))
    click.echo(f"FLOPs/token  {facts['flops_per_token']:,} (training, forward + backward, context "
               f"{lm.config.block_size})")
    if ck is not None:
        echo_training_state(facts)


def echo_training_state(facts: dict[str, Any]) -> None:
    """The iteration, validation losses and training settings lines of ``facts``."""
    click.echo(f"iteration    {facts['iteration']}" + (f" of {facts['train']['iters']}" if facts["train"] else ""))
    def fmt(v: Any) -> str:
        return f"{v:.4f}" if isinstance(v, (int, float)) else "n/a"
    click.echo(f"val loss     last {fmt(facts['last_val_loss'])}, best {fmt(facts['best_val_loss'])}"
               + (f" (iteration {facts['best_iteration']})" if facts["best_iteration"] is not None else ""))
    if facts["train"]:
        t = facts["train"]
        echo_safe(f"training     lr {t['lr']:g} -> {t['min_lr']:g}, batch {t['batch_size']}x{t['grad_accum']}, "
                   f"data {t['data']}, {t['backend']} {t['dtype']}, seed {t['seed']}")
