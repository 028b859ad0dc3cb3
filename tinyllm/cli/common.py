"""Pieces the commands share: the training options, explicit-flag collection, engine setup."""
from __future__ import annotations

import json
import re
from typing import Any, Callable

import click
from click.core import ParameterSource

from .. import backend

# (flag, type, help). Defaults live in TrainConfig and the presets, not here: a flag the user did
# not type must not override the preset or the config file.
OPTIMIZATION_OPTIONS: list[tuple[str, Any, str]] = [
    ("--iters", int, "Optimizer steps."),
    ("--batch-size", int, "Sequences per micro-batch."),
    ("--grad-accum", int, "Micro-batches per optimizer step (gradient accumulation)."),
    ("--lr", float, "Peak learning rate (after warmup)."),
    ("--min-lr", float, "Learning rate at the end of the cosine decay."),
    ("--warmup", int, "Steps of linear warmup from 0."),
    ("--weight-decay", float, "AdamW weight decay (matrices only, not biases or LayerNorm)."),
    ("--beta2", float, "AdamW beta2."),
    ("--grad-clip", float, "Clip the global gradient norm to this (0: off)."),
    ("--eval-interval", int, "Evaluate and checkpoint every N steps."),
    ("--eval-iters", int, "Validation batches per evaluation."),
    ("--early-stop", int, "Stop after N evaluations without a better val loss (0: never)."),
    ("--log-interval", int, "Steps between records in metrics.jsonl."),
    ("--val-fraction", float, "Share of the data held out for validation."),
    ("--seed", int, "Seed of every random generator (init, dropout, batches)."),
]

ENGINE_OPTIONS: list[tuple[str, Any, str]] = [
    ("--backend", click.Choice(["numpy", "cupy"]), "Array backend: numpy (CPU) or cupy (GPU)."),
    ("--dtype", click.Choice(["float32", "float64"]), "Floating-point precision."),
]


def add_options(options: list[tuple[str, Any, str]]) -> Callable:
    """Decorator adding ``options`` (no defaults: unset flags stay None)."""
    def decorate(f: Callable) -> Callable:
        for flag, kind, help_text in reversed(options):
            f = click.option(flag, type=kind, default=None, help=help_text)(f)
        return f
    return decorate


def given(ctx: click.Context, names: list[str]) -> dict[str, Any]:
    """The options among ``names`` that the user typed on the command line, by setting name."""
    out = {}
    for name in names:
        if ctx.get_parameter_source(name) == ParameterSource.COMMANDLINE and ctx.params.get(name) is not None:
            out[name] = ctx.params[name]
    return out


def option_names(options: list[tuple[str, Any, str]]) -> list[str]:
    return [flag.lstrip("-").replace("-", "_") for flag, _, _ in options]


def use_engine(backend_name: str | None, dtype: str | None, seed: int | None = None) -> None:
    """Select backend and dtype for a command that loads a model (raises BackendError without CuPy)."""
    backend.set_backend(backend_name or "numpy")
    if dtype:
        backend.set_default_dtype(dtype)
    if seed is not None:
        backend.manual_seed(seed)


def echo_line(text: str) -> None:
    click.echo(text)


# C0 controls but the tab, DEL, C1 controls, and the bidirectional overrides and isolates: characters
# that move the cursor, recolour or clear a terminal, or make a line read in another order than it is
_UNSAFE = re.compile("[\x00-\x08\x0a-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]")


def safe_text(text: Any) -> str:
    """``text`` with every terminal control character written as its escape (``\\u001b``): names
    and examples read from a file (labels, tags, sources) are shown, never obeyed by the terminal."""
    return _UNSAFE.sub(lambda m: json.dumps(m.group())[1:-1], str(text))


def echo_safe(text: Any) -> None:
    """:func:`click.echo` of :func:`safe_text`."""
    click.echo(safe_text(text))
