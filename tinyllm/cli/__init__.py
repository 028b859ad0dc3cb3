"""The ``tinyllm`` command line: train, generate, eval, finetune, gradcheck, info.

One module per command (``tinyllm/cli/<command>.py``); this one builds the
group and owns the single place where errors become messages:

* bad input (:class:`~tinyllm.data.DataError`, ``ValueError``, ``KeyError``,
  :class:`~tinyllm.backend.BackendError`, checkpoint errors, a diverged run, a
  file-system error) -> ``error: <one line>`` on stderr, exit status 1;
* a usage error (a flag's value click cannot parse, an unknown option or
  command) -> the same one line, naming the command's ``--help``, exit status 1;
* Ctrl-C -> the message (training saves a checkpoint first), exit status 130;
* anything else is a bug in tinyllm -> ``error: internal error: <type>: <message>``
  and a hint, exit status 2. ``TINYLLM_DEBUG=1`` shows the traceback instead.
"""
from __future__ import annotations

import os
import sys
from typing import Any

import click

from .. import __version__
from ..backend import BackendError
from ..checkpoint import CheckpointError
from ..data import DataError
from ..distributed import is_main
from .common import safe_text

EXIT_ERROR, EXIT_INTERNAL, EXIT_INTERRUPTED = 1, 2, 130


def _message(exc: BaseException) -> str:
    """One line: the exception's message (KeyError's quotes removed), else its type."""
    if isinstance(exc, KeyError) and exc.args:
        text = str(exc.args[0])
    elif isinstance(exc, MemoryError):
        text = f"out of memory ({exc or 'an allocation failed'}); try a smaller model, --batch-size or --block-size"
    elif isinstance(exc, OSError) and exc.strerror:
        text = f"{exc.strerror}: '{exc.filename}'" if exc.filename else exc.strerror
    else:
        text = str(exc)
    text = safe_text(" ".join(text.split()))  # one line, always, and nothing a terminal would obey
    return text or type(exc).__name__


def _user_errors() -> tuple[type, ...]:
    from ..train import TrainingDiverged  # noqa: PLC0415  (train imports the models: load on use)
    return (DataError, CheckpointError, BackendError, TrainingDiverged, ValueError, KeyError, OSError, MemoryError)


class TinyGroup(click.Group):
    """A click group that turns exceptions into one-line errors and exit statuses."""

    @staticmethod
    def _usage_error(ctx: click.Context, exc: click.UsageError) -> None:
        if type(exc).__name__ == "NoArgsIsHelpError":              # bare `tinyllm`: click shows the help
            raise exc
        where = exc.ctx.command_path if exc.ctx is not None else "tinyllm"
        click.echo(f"error: {' '.join(exc.format_message().split())} (see '{where} --help')", err=True)
        ctx.exit(EXIT_ERROR)

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        try:
            return super().parse_args(ctx, args)
        except click.UsageError as exc:                            # `tinyllm --bogus`
            self._usage_error(ctx, exc)
            raise

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except click.UsageError as exc:                            # a flag's value, an unknown option or command
            self._usage_error(ctx, exc)
        except (click.exceptions.Exit, click.ClickException, click.exceptions.Abort):
            raise
        except KeyboardInterrupt:
            click.echo("\ninterrupted", err=True)
            ctx.exit(EXIT_INTERRUPTED)
        except BrokenPipeError:                                    # `tinyllm info ... | head`: the reader left
            try:
                os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())   # nothing left to flush at exit
            except (OSError, ValueError):                          # a stdout without a file descriptor
                pass
            ctx.exit(EXIT_ERROR)
        except Exception as exc:  # noqa: BLE001  (this is the one top-level handler)
            from ..train import TrainingInterrupted  # noqa: PLC0415
            if isinstance(exc, TrainingInterrupted):
                if is_main():                                      # data-parallel: one rank says it
                    click.echo(f"\n{exc}", err=True)
                ctx.exit(EXIT_INTERRUPTED)
            if os.environ.get("TINYLLM_DEBUG"):
                raise
            if isinstance(exc, _user_errors()):
                click.echo(f"error: {_message(exc)}", err=True)
                ctx.exit(EXIT_ERROR)
            click.echo(f"error: internal error: {type(exc).__name__}: {_message(exc)}\n"
                       "This is a bug in tinyllm; run again with TINYLLM_DEBUG=1 to see the traceback, "
                       "and please report it.", err=True)
            ctx.exit(EXIT_INTERNAL)


@click.group(cls=TinyGroup, context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(__version__, prog_name="tinyllm")
def cli() -> None:
    """tinyllm: train, fine-tune, evaluate and sample small language models.

    \b
    Quick start (a char-level GPT on the built-in Shakespeare excerpt, a few minutes on a laptop CPU):
      tinyllm train
      tinyllm generate --ckpt runs/<the run> --prompt "ROMEO:"
    \b
    More:
      tinyllm train --preset tiny --out runs/tiny      # about a minute
      tinyllm train --model bert --out runs/bert       # masked-language-model pre-training
      tinyllm finetune --ckpt runs/tiny --data reviews.csv --task classify
      tinyllm eval --ckpt runs/tiny --data shakespeare
      tinyllm gradcheck                                # check every op's gradient
      tinyllm info --ckpt runs/tiny
    \b
    Errors print one line and exit with status 1 (2 for internal errors; set
    TINYLLM_DEBUG=1 to see their traceback). Run `tinyllm COMMAND --help` for
    each command's options and examples.
    """


def _register() -> None:
    from .evaluate import eval_command  # noqa: PLC0415
    from .finetune import finetune_command  # noqa: PLC0415
    from .generate import generate_command  # noqa: PLC0415
    from .gradcheck import gradcheck_command  # noqa: PLC0415
    from .info import info_command  # noqa: PLC0415
    from .prune import prune_command  # noqa: PLC0415
    from .quantize import quantize_command  # noqa: PLC0415
    from .train import train_command  # noqa: PLC0415
    for command in (train_command, generate_command, eval_command, finetune_command, gradcheck_command,
                    info_command):
        cli.add_command(command)
    cli.add_command(quantize_command)
    cli.add_command(prune_command)
    from .export import export_command  # noqa: PLC0415
    cli.add_command(export_command)


_register()


def main(argv: list[str] | None = None) -> None:
    """The ``tinyllm`` console script."""
    cli.main(args=argv if argv is not None else sys.argv[1:], prog_name="tinyllm")


__all__ = ["cli", "main"]
