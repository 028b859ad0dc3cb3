"""``tinyllm finetune``: adapt a pre-trained checkpoint to a task.

Two tasks:

* ``classify`` - a :class:`~tinyllm.models.SequenceClassifier`: the checkpoint's
  model (GPT, BERT, any registered kind) as the backbone, a new linear head on top, trained with
  cross-entropy on labeled text (CSV/TSV/JSONL). ``freeze_backbone`` trains the
  head alone (a linear probe). Reports validation accuracy.
* ``lm`` - the checkpoint's model (a kind that can generate: GPT) keeps training as a language model on
  prompt/response pairs (JSONL), with the loss on the response tokens only
  (prompt targets are -100). Reports validation loss.

The run goes to its own directory, with the same checkpoints, resume and
early stopping as ``tinyllm train``; the source checkpoint is only read.
"""
from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from .. import __version__
from ..checkpoint import CheckpointError, CheckpointNotFoundError, clear_run, load_checkpoint
from ..data import DataError, load_labeled, load_pairs, train_val_split
from ..optim import configure_adamw
from .config import TrainConfig
from .data import ExampleSource, chunk, classification_arrays, pair_arrays, tokenizer_from_json
from ..distributed import get_comm, is_main
from .loop import Trainer, TrainResult
from .metrics import Progress
from .pretrain import check_out_dir, describe_model, report_end, resume_hint, resumed_config, setup_engine
from ..validate import check_run_settings
from .budget import check_training
from .restore import RUN_FORMAT, build_from_config, check_resume, check_tokenizer_fits
from .tasks import HEAD_TASKS, task_module
from .tasks.sources import load_source

TASKS = ("classify", "lm", *HEAD_TASKS)

# Fine-tuning starts from trained weights: fewer steps, a smaller learning rate.
FINETUNE_DEFAULTS: dict[str, Any] = dict(iters=300, batch_size=16, lr=3e-4, min_lr=3e-5, warmup=20,
                                         weight_decay=0.01, eval_interval=50, eval_iters=50, log_interval=10)


def _inside(path: Path, other: Path) -> bool:
    path, other = path.resolve(), other.resolve()
    return path == other or other in path.parents


def finetune(ckpt_path: str | None, data: str | None, task: str, settings: dict[str, Any], out: str | None = None,
             resume: bool = False, force: bool = False, freeze_backbone: bool = False, pooling: str | None = None,
             progress: Progress | None = None, head_options: dict[str, Any] | None = None,
             lora: dict | None = None) -> TrainResult:
    """Fine-tune the model in ``ckpt_path`` on ``data`` for ``task``, writing run directory ``out``.

    Args:
        ckpt_path: the pre-trained run (its ``best`` checkpoint is used) or checkpoint directory.
        data: labeled examples (classify) or prompt/response pairs (lm).
        task: "classify" or "lm".
        settings: training settings the user gave (iters, lr, batch_size, ...).
        out: the new run directory (default ``<source run>-<task>``); never the source's.
        resume: continue the fine-tuning run in ``out``.
        force: replace a run already in ``out``.
        freeze_backbone, pooling: classifier options (see SequenceClassifier).
        head_options: tag / qa options (``crf``, ``stride``; see ``train/tasks``).
        lora: LoRA settings (``tinyllm.compress.adapter.lora_settings``): train low-rank adapters
            (and a classifier's head) only; the adapter is also saved alone in ``out/adapter``.
    """
    from ..models import registry  # noqa: PLC0415  (the engine is imported when a run starts)

    head_options = {**(head_options or {}), "freeze_backbone": freeze_backbone}
    progress = progress or Progress()
    if task not in TASKS:
        raise ValueError(f"--task must be one of {', '.join(TASKS)}, got {task!r}")
    check_run_settings(settings, "settings", ranges=False)   # types first: a Python caller may pass anything
    if lora is not None and (resume or freeze_backbone):
        raise ValueError("--lora-* options start a new LoRA run (not with --resume, which keeps the run's own, "
                         "nor with --freeze-backbone, which LoRA implies)")
    if resume:
        if out is None:
            raise ValueError("--resume needs --out DIR, the fine-tuning run to continue")
        try:
            own = load_checkpoint(out, prefer="latest")
        except CheckpointNotFoundError:
            raise CheckpointError(f"--resume: no checkpoint to resume from in '{out}'") from None
        check_resume(own, out)
        saved_task = own.config.get("task", {})
        if saved_task.get("name") != task:
            raise CheckpointError(f"'{out}' holds a {saved_task.get('name')} run, not a {task} fine-tuning run")
        given = {**{k: v for k, v in settings.items() if k != "data"}, **({} if data is None else {"data": data})}
        cfg = resumed_config(own.config["train"], given, Path(out))   # the data given again, never read from the run
        run_dir, weights, section = Path(out), own.weights, own.config["model"]
        tokenizer = tokenizer_from_json(own.tokenizer_json or "", str(own.path))
        task_info = saved_task
    else:
        if ckpt_path is None or data is None:
            raise ValueError("finetune needs --ckpt (the pre-trained run) and --data")
        src = load_source(ckpt_path)                                   # a tinyllm run or a Hugging Face directory
        if "quantization" in src.config:
            raise CheckpointError(f"'{ckpt_path}' is int8-quantized, for inference only: fine-tune the float "
                                  "checkpoint it was made from")
        src_kind = src.config["model"]["kind"]
        if src_kind not in registry.names():
            raise CheckpointError(f"finetune needs a pre-trained {' or '.join(k.upper() for k in registry.names())} "
                                  f"checkpoint; '{ckpt_path}' holds a {src_kind}")
        if task == "lm" and registry.get(src_kind).objective != "next-token":
            lms = [n.upper() for n in registry.names() if registry.get(n).objective == "next-token"]
            raise ValueError(f"--task lm continues next-token training and needs a {' or '.join(lms)} "
                             f"checkpoint; this one is a {src_kind.upper()}")
        src_run = src.path.parent if src.path.name in ("latest", "best") else src.path
        run_dir = Path(out) if out is not None else src_run.with_name(f"{src_run.name}-{task}")
        if _inside(run_dir, src_run) or _inside(src_run, run_dir):
            raise ValueError(f"--out '{run_dir}' would overlap the source checkpoint's directory '{src_run}'; "
                             "fine-tuning writes to a directory of its own")
        check_out_dir(run_dir, force)
        tokenizer = tokenizer_from_json(src.tokenizer_json or "", str(src.path))
        check_tokenizer_fits(tokenizer, src.config["model"], src.path)
        shape = src.config["model"]["config"]
        base = {**FINETUNE_DEFAULTS, **settings, "data": data, "model": src_kind, "tokenizer": "checkpoint",
                "n_layer": shape["n_layer"], "n_head": shape["n_head"], "n_embd": shape["n_embd"],
                "block_size": shape["block_size"], "dropout": shape.get("dropout", 0.0)}
        cfg = TrainConfig(**base)
        cfg.validate()
        weights = src.weights
        section = {"kind": src_kind, "config": shape, **{k: v for k, v in src.config["model"].items()
                                                         if k == "pruning"}}   # pruned: keep the masks
        task_info = {"name": task, "source": str(src.path)}
        if lora is not None:
            from ..compress.adapter import base_sha256  # noqa: PLC0415
            task_info["source_weights_sha256"] = base_sha256(src.path)    # a checkpoint's or a HF directory's
            task_info["source_path"] = str(Path(src.path).resolve())         # shown by info, never opened

    setup_engine(cfg)
    if task == "classify":
        texts, labels, names = load_labeled(cfg.data)
        if resume and names != task_info.get("labels"):
            raise DataError(f"the labels in '{cfg.data}' ({', '.join(names)}) differ from the run's "
                            f"({', '.join(task_info.get('labels', []))})")
        arrays = classification_arrays(texts, labels, tokenizer, cfg.block_size, cfg.model)
    elif task in HEAD_TASKS:
        arrays, task_info, what = task_module(task).prepare(cfg.data, tokenizer, cfg.block_size, cfg.model, task_info,
                                                            head_options)
    else:
        arrays = pair_arrays(load_pairs(cfg.data), tokenizer, cfg.block_size)
    n = len(arrays["idx"])
    if n < 2:
        raise DataError(f"'{cfg.data}' has {n} example; fine-tuning needs at least 2 (some for validation)")
    train_rows, val_rows = train_val_split(n, cfg.val_fraction, cfg.seed)
    train_arrays = {k: v[train_rows] for k, v in arrays.items()}
    val_arrays = {k: v[val_rows] for k, v in arrays.items()}

    check_training(section["kind"], section["config"], cfg)
    pruning = section.get("pruning")
    if resume:
        model = build_from_config(section)
    elif task == "classify":
        from ..models import SequenceClassifier  # noqa: PLC0415
        from ..models.heads import classifier_options  # noqa: PLC0415
        backbone = build_from_config(section)
        backbone.load_state_dict(weights, strict=True)
        head = classifier_options(section["kind"], pooling, tokenizer)    # GPT: Hugging Face's GPT-2 head
        model = SequenceClassifier(backbone, len(names), pooling, freeze_backbone=freeze_backbone, **head)
        section = {"kind": "classifier", "config": {"backbone": section["kind"], "backbone_config": section["config"],
                                                     "num_classes": len(names), "pooling": model.pooling,
                                                     "freeze_backbone": bool(freeze_backbone), **head}}
        task_info = {**task_info, "labels": names}
    elif task in HEAD_TASKS:
        backbone = build_from_config(section)
        backbone.load_state_dict(weights, strict=True)
        model, section = task_module(task).build(backbone, section["kind"], section["config"], task_info, head_options)
    else:
        model = build_from_config(section)
        model.load_state_dict(weights, strict=True)
    if pruning is not None and "pruning" not in section:     # the classifier keeps its backbone's masks
        section = {**section, "pruning": pruning}
    if lora is not None:
        from ..compress.adapter import add_lora  # noqa: PLC0415
        add_lora(model, lora)
        section = {**section, "lora": lora}

    optimizer = configure_adamw(model, cfg.lr, cfg.weight_decay, betas=(0.9, cfg.beta2))
    from ..compress.prune import keep_pruned  # noqa: PLC0415
    optimizer = keep_pruned(model, optimizer)                 # a pruned model: pruned weights stay zero
    schedule = cfg.schedule()
    source = ExampleSource(train_arrays, cfg.batch_size, cfg.seed, shard=get_comm().shard)
    val_batches = chunk(val_arrays, cfg.batch_size)[:cfg.eval_iters]
    ckpt_config = {"format": RUN_FORMAT, "tinyllm_version": __version__, "model": section, "train": cfg.to_dict(),
                   "task": task_info}
    if not resume:
        if force and is_main():
            clear_run(run_dir)
        run_dir.mkdir(parents=True, exist_ok=True)
    seq_len = arrays["idx"].shape[1]
    trainer = Trainer(model, optimizer, schedule, source, val_batches, cfg, run_dir, ckpt_config, tokenizer.to_json(),
                      source.batch_size * seq_len, progress, accuracy=task == "classify",
                      resume_hint=resume_hint(f"tinyllm finetune --task {task}", run_dir, cfg.data))
    if resume:
        trainer.resume(own)

    backbone = model if task == "lm" else model.backbone
    progress.line(f"run        {run_dir}" + (f" (resuming at iteration {trainer.iteration})" if resume else
                                              f" (from {task_info['source']})"))
    what = (f"{n} labeled examples, {len(task_info['labels'])} classes ({', '.join(task_info['labels'][:8])}"
            f"{' ...' if len(task_info['labels']) > 8 else ''})" if task == "classify" else
            what if task in HEAD_TASKS else f"{n} prompt/response pairs")
    progress.line(f"data       {cfg.data}: {what}; train {len(train_rows)} / val {len(val_rows)}")
    progress.line(f"model      {describe_model(backbone, cfg.model)}"
                  + (f" + classifier head ({model.pooling} pooling"
                     f"{', backbone frozen' if model.freeze_backbone else ''})" if task == "classify" else
                     f" + {type(model).__name__} head" if task in HEAD_TASKS else ""))
    if section.get("lora"):
        from ..nn.lora import trainable_count  # noqa: PLC0415
        k, total = trainable_count(model)
        progress.line(f"lora       r={section['lora']['r']} alpha={section['lora']['alpha']:g} on "
                      f"{','.join(section['lora']['targets'])}: {k:,} of {total:,} parameters trained")
    progress.line(f"training   {cfg.iters:,} iters x {source.batch_size} examples, "
                  f"AdamW lr {cfg.lr:g} -> {cfg.min_lr:g}")
    start = time.perf_counter()
    result = trainer.fit()
    result.seconds = time.perf_counter() - start
    report_end(progress, run_dir, result)
    if section.get("lora"):
        from ..compress.adapter import save_run_adapter  # noqa: PLC0415
        where = save_run_adapter(model, run_dir, section, task_info.get("source_weights_sha256", ""),
                                 task_info.get("source_path", task_info.get("source")))
        progress.line(f"adapter    {where} (LoRA tensors{'' if task == 'lm' else ' and the head'} alone)")
    return result
