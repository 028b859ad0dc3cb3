"""``tinyllm train``: pre-train a model of any registered kind on a corpus (GPT: next token, BERT: masked tokens).

:func:`pretrain` puts the pieces together, in the order a reader would:
settings -> engine (backend, dtype, seed) -> data and tokenizer -> model,
optimizer and schedule -> run directory -> :class:`~tinyllm.train.loop.Trainer`
-> loss curve and a sample. Everything that can be wrong with the input is
checked before the run directory is touched, so a bad flag never costs a
previous run anything.
"""
from __future__ import annotations

import shlex
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .. import __version__, backend
from ..data.corpora import BUILTIN
from ..checkpoint import CheckpointError, CheckpointNotFoundError, clear_run, holds_run, load_checkpoint
from ..distributed import get_comm, gpu_of_this_rank, is_main
from ..optim import configure_adamw
from ..validate import check_run_settings
from .config import TrainConfig, resolve
from .data import lm_eval_set, load_lm_data, tokenizer_from_json
from .loop import Trainer, TrainResult
from .metrics import Progress, format_duration, loss_curve_text, plot_losses
from .budget import check_settings, check_training
from .restore import RUN_FORMAT, check_resume, check_tokenizer_fits

# Settings a resumed run may change: how long it goes on and how it reports, not what it learns.
RESUMABLE_CHANGES = ("iters", "eval_interval", "eval_iters", "early_stop", "log_interval", "sample_tokens",
                     "backend")


@dataclass
class PretrainOutcome:
    run_dir: Path
    result: TrainResult
    sample: str | None


def setup_engine(cfg: TrainConfig) -> None:
    """Select the backend and dtype and seed every generator (raises BackendError without CuPy/GPU).

    (Host memory reuse for the step's large temporaries is set up once, at import,
    by :func:`tinyllm.backend.keep_freed_memory`.)
    """
    backend.set_backend(cfg.backend, device=gpu_of_this_rank(cfg.backend))
    backend.set_default_dtype(cfg.dtype)
    backend.manual_seed(cfg.seed)


def default_out(cfg: TrainConfig) -> Path:
    """``runs/<model>-<preset>-<YYYYmmdd-HHMMSS>`` (a new directory for every run)."""
    stamp = time.strftime("%Y%m%d-%H%M%S")
    base = Path("runs") / f"{cfg.model}-{cfg.preset}-{stamp}"
    out, n = base, 1
    while out.exists():
        n += 1
        out = base.with_name(f"{base.name}-{n}")
    return out


def check_out_dir(out: Path, force: bool) -> None:
    """Refuse to write a new run over another one unless ``force``."""
    if out.exists() and not out.is_dir():
        raise ValueError(f"--out '{out}' is a file, not a directory")
    if holds_run(out) and not force:
        raise ValueError(f"output directory '{out}' already holds a run; continue it with --resume, "
                         "replace it with --force, or choose another --out")


def resumed_config(ckpt_train: dict, settings: dict[str, Any], where: Path) -> TrainConfig:
    """The saved settings, with the changes a resumed run allows; other differences are errors."""
    saved = TrainConfig.from_dict(ckpt_train)
    merged = saved.to_dict()
    for key, value in settings.items():
        if key in RESUMABLE_CHANGES:
            merged[key] = value
        elif key == "data" and same_data(merged[key], value):
            merged[key] = value                                       # the path as given now
        elif key in merged and merged[key] != value:
            raise ValueError(f"--{key.replace('_', '-')} {value} differs from the run in '{where}' "
                             f"({key}={merged[key]}); a resumed run keeps its settings (only "
                             f"{', '.join('--' + k.replace('_', '-') for k in RESUMABLE_CHANGES)} may change)")
    if str(merged["data"]) not in BUILTIN and "data" not in settings:
        raise ValueError(f"the run in '{where}' was trained on '{merged['data']}': give --data again to "
                         "resume it (tinyllm does not open a path it read from a run's files)")
    cfg = TrainConfig(**merged)
    cfg.validate()
    return cfg


def resume_hint(command: str, run_dir: Path, data: Any) -> str:
    """The command that continues a run, shown after Ctrl-C: with ``--data`` again unless the data
    is a built-in corpus (a resumed run never reads a data path from its own files)."""
    again = "" if str(data) in BUILTIN else f" --data {shlex.quote(str(data))}"
    return f"{command} --out {shlex.quote(str(run_dir))} --resume{again}"


def same_data(saved: Any, given: Any) -> bool:
    """Whether ``given`` names the data a run recorded as ``saved``: the same text, or two paths of one
    existing file or directory."""
    if str(saved) == str(given):
        return True
    try:
        return Path(str(saved)).exists() and Path(str(given)).exists() and Path(str(saved)).samefile(str(given))
    except (OSError, ValueError):
        return False


def model_config(cfg: TrainConfig, tokenizer: Any, kind: Any) -> dict[str, Any]:
    """The model's config dict: the shape from the settings, the vocabulary from the tokenizer
    (and what else the kind's record takes from it, e.g. BERT's pad_id)."""
    shape = dict(vocab_size=tokenizer.vocab_size, block_size=cfg.block_size, n_layer=cfg.n_layer,
                 n_head=cfg.n_head, n_embd=cfg.n_embd, dropout=cfg.dropout)
    return {**shape, **kind.config_extras(tokenizer)}


def batch_source(kind: Any, tokens: Any, cfg: TrainConfig, tokenizer: Any, shard: tuple[int, int] = (0, 1)) -> Any:
    """The kind's pre-training batch source over ``tokens`` (its record names the class).

    A masked-LM source also takes the tokenizer (for [MASK] and the special
    tokens it never masks) and the share of tokens to mask. ``shard=(rank,
    world)``: this process's share of every global batch (data parallelism).
    """
    cls = kind.batch_source_class()
    if kind.objective == "masked-lm":
        return cls(tokens, cfg.block_size, cfg.batch_size, cfg.seed, tokenizer, cfg.mlm_prob, shard=shard)
    return cls(tokens, cfg.block_size, cfg.batch_size, cfg.seed, shard=shard)


def human(n: float) -> str:
    """``1234567 -> '1.23M'``, ``45600 -> '45.6K'``, ``512 -> '512'``."""
    for size, unit in ((1e9, "G"), (1e6, "M"), (1e3, "K")):
        if n >= size:
            return f"{n / size:.3g}{unit}"
    return f"{n:.0f}"


def describe_model(model: Any, kind: str) -> str:
    c = model.config
    return (f"{kind.upper()} {c.n_layer} layer{'s' * (c.n_layer > 1)}, {c.n_head} head{'s' * (c.n_head > 1)}, "
            f"{c.n_embd} wide, "
            f"context {c.block_size}: {human(model.num_parameters())} parameters, "
            f"{human(model.flops_per_token())} FLOPs/token")


def pretrain(settings: dict[str, Any], out: str | None = None, resume: bool = False, force: bool = False,
             progress: Progress | None = None) -> PretrainOutcome:
    """Train a model from ``settings`` (see :class:`TrainConfig`) into run directory ``out``.

    Args:
        settings: the settings the user gave (config file and flags), by name.
        out: the run directory (default: a new ``runs/...`` directory).
        resume: continue the run in ``out`` from its ``latest`` checkpoint.
        force: replace a run that is already in ``out``.
        progress: where to report.
    """
    from ..models import registry  # noqa: PLC0415  (the engine is imported when a run starts)
    from .seq2seq import train_seq2seq, wants_seq2seq  # noqa: PLC0415

    if wants_seq2seq(settings, out, resume):
        return train_seq2seq(settings, out, resume, force, progress)
    progress = progress or Progress()
    check_run_settings(settings, "settings", ranges=False)   # types first: a Python caller may pass anything
    ckpt = None
    if resume:
        if out is None:
            raise ValueError("--resume needs --out DIR, the run directory to continue")
        run_dir = Path(out)
        try:
            ckpt = load_checkpoint(run_dir, prefer="latest")
        except CheckpointNotFoundError:
            raise CheckpointError(f"--resume: no checkpoint to resume from in '{out}'") from None
        if ckpt.config.get("task", {}).get("name") != "pretrain":
            raise CheckpointError(f"'{out}' holds a fine-tuning run; continue it with tinyllm finetune --resume")
        check_resume(ckpt, run_dir)
        cfg = resumed_config(ckpt.config["train"], settings, run_dir)
        tokenizer = tokenizer_from_json(ckpt.tokenizer_json or "", str(ckpt.path))
        check_tokenizer_fits(tokenizer, ckpt.config["model"], ckpt.path)
    else:
        cfg = resolve(settings)
        run_dir = Path(out) if out is not None else default_out(cfg)
        check_out_dir(run_dir, force)
        tokenizer = None

    setup_engine(cfg)
    check_settings(cfg)
    data = load_lm_data(cfg, tokenizer)
    tokenizer = data.tokenizer
    kind = registry.get(cfg.model)
    mcfg = ckpt.config["model"]["config"] if ckpt else model_config(cfg, tokenizer, kind)
    check_training(cfg.model, mcfg, cfg)
    model = kind.build(mcfg)
    optimizer = configure_adamw(model, cfg.lr, cfg.weight_decay, betas=(0.9, cfg.beta2))
    schedule = cfg.schedule()
    source = batch_source(kind, data.train, cfg, tokenizer, shard=get_comm().shard)
    val_batches = lm_eval_set(cfg, data.val, tokenizer)

    ckpt_config = {"format": RUN_FORMAT, "tinyllm_version": __version__,
                   "model": {"kind": cfg.model, "config": model.config.to_dict()},
                   "train": cfg.to_dict(), "task": {"name": "pretrain", "data": data.description}}
    if not resume:
        if force and is_main():
            clear_run(run_dir)
        run_dir.mkdir(parents=True, exist_ok=True)
    trainer = Trainer(model, optimizer, schedule, source, val_batches, cfg, run_dir, ckpt_config,
                      tokenizer.to_json(), cfg.batch_size * cfg.block_size, progress,
                      accuracy=kind.objective == "masked-lm",
                      resume_hint=resume_hint("tinyllm train", run_dir, cfg.data))
    if ckpt is not None:
        trainer.resume(ckpt)

    progress.line(f"run        {run_dir}" + (f" (resuming at iteration {trainer.iteration})" if resume else ""))
    progress.line(f"data       {data.description} (train {len(data.train):,} / val {len(data.val):,})")
    progress.line(f"tokenizer  {tokenizer.kind}, {tokenizer.vocab_size:,} tokens")
    progress.line(f"model      {describe_model(model, cfg.model)}")
    world = get_comm().world
    global_batch = cfg.batch_size * trainer.grad_accum * world
    progress.line(f"training   {cfg.iters:,} iters x {global_batch} x {cfg.block_size} tokens, "
                  f"AdamW lr {cfg.lr:g} -> {cfg.min_lr:g} (warmup {cfg.warmup}, cosine), "
                  f"{cfg.backend} {cfg.dtype}, seed {cfg.seed}" + (f", {world} processes" if world > 1 else ""))
    if trainer.iteration >= cfg.iters:
        progress.line(f"the run is already complete ({trainer.iteration} of {cfg.iters} iterations); "
                      "give a larger --iters to train it longer")
    result = trainer.fit()
    report_end(progress, run_dir, result)
    sample = None
    if kind.can_generate and cfg.sample_tokens > 0:
        sample = print_sample(progress, model, tokenizer, cfg.sample_tokens, cfg.seed)
    progress.line(f"\nnext: tinyllm generate --ckpt {run_dir} --prompt \"...\"   |   tinyllm info --ckpt {run_dir}")
    return PretrainOutcome(run_dir, result, sample)


def report_end(progress: Progress, run_dir: Path, result: TrainResult) -> None:
    """The closing lines: time, best val loss, loss curves (sparklines) and loss.png."""
    best = f"{result.best_val_loss:.4f}" if result.best_val_loss is not None else "n/a"
    progress.line(f"done: {result.iteration} iterations in {format_duration(result.seconds)}, "
                  f"best val loss {best}; checkpoints in {run_dir}/latest and {run_dir}/best")
    for line in loss_curve_text(result.records):
        progress.line(line)
    if plot_losses(result.records, run_dir / "loss.png"):
        progress.line(f"loss curve written to {run_dir / 'loss.png'}")


def print_sample(progress: Progress, model: Any, tokenizer: Any, n_tokens: int, seed: int) -> str:
    """Stream ``n_tokens`` sampled tokens, starting from a newline, to the terminal; return the text."""
    from ..decoding import generate_stream, start_tokens, stream_text  # noqa: PLC0415
    progress.line("sample (temperature 0.8, top-k 40):")

    def write(piece: str) -> None:
        progress.stream.write(piece)
        progress.stream.flush()

    tokens = generate_stream(model, [start_tokens(tokenizer)], n_tokens, temperature=0.8, top_k=40, seed=seed)
    text = stream_text(tokens, tokenizer, write)
    write("\n")
    return text
