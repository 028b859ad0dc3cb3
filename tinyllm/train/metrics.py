"""What a run reports: the metrics file, the progress line, the loss curve.

* ``metrics.jsonl`` in the run directory: one JSON record per logged step,
  ``{"iter", "loss", "val_loss", "lr", "tokens_per_sec", "elapsed"}``
  (``val_loss`` is null except at evaluations). Easy to load anywhere:
  ``[json.loads(line) for line in open("runs/x/metrics.jsonl")]``.
* a one-line status that rewrites itself on a terminal (``\\r``), showing
  iteration, loss, learning rate, tokens/s and the time left;
* at the end, the loss curve as a unicode sparkline in the terminal, and as
  ``loss.png`` when matplotlib is installed (it is optional).
"""
from __future__ import annotations

import json
import math
import os
import shutil
import sys
from pathlib import Path
from typing import Any, Callable, TextIO

from ..distributed import is_main

SPARK = "▁▂▃▄▅▆▇█"


class MetricsLog:
    """Append-only JSONL metrics file that survives crashes and resumes.

    Args:
        path: the ``metrics.jsonl`` file.
        resume_iter: when resuming from iteration k, records after k (written by
            the interrupted run after its last checkpoint) are dropped, so the
            file describes exactly the run that continues.
        write: False keeps the records in memory only (the ranks other than 0
            of a data-parallel run: one process writes the file).
    """

    def __init__(self, path: str | os.PathLike, resume_iter: int | None = None, write: bool = True) -> None:
        self.path = Path(path)
        self.records: list[dict] = []
        self.writes = write
        if not write:
            return
        if resume_iter is not None and self.path.exists():
            kept = [r for r in read_metrics(self.path) if r.get("iter", 0) <= resume_iter]
            tmp = self.path.with_suffix(".jsonl.tmp")
            tmp.write_text("".join(json.dumps(r) + "\n" for r in kept), encoding="utf-8")
            os.replace(tmp, self.path)
            self.records = kept
        elif resume_iter is None:
            self.path.write_text("", encoding="utf-8")

    def write(self, record: dict[str, Any]) -> None:
        """Append one record (flushed at once, so a killed run keeps what it logged)."""
        clean = {k: (None if isinstance(v, float) and not math.isfinite(v) else v) for k, v in record.items()}
        if self.writes:
            with open(self.path, "a", encoding="utf-8") as f:
                f.write(json.dumps(clean) + "\n")
        self.records.append(clean)


def read_metrics(path: str | os.PathLike) -> list[dict]:
    """The records of a ``metrics.jsonl`` file (a half-written last line is skipped)."""
    out = []
    for line in Path(path).read_text(encoding="utf-8").splitlines():
        try:
            rec = json.loads(line)
        except json.JSONDecodeError:
            continue
        if isinstance(rec, dict):
            out.append(rec)
    return out


def sparkline(values: list[float], width: int = 60) -> str:
    """``values`` as a row of block characters, low to high (resampled to at most ``width``).

    >>> sparkline([3.0, 2.0, 1.5, 1.2])
    '█▄▂▁'
    """
    vals = [v for v in values if v is not None and math.isfinite(v)]
    if not vals:
        return ""
    if len(vals) > width:  # average into `width` buckets
        step = len(vals) / width
        vals = [sum(vals[int(i * step):int((i + 1) * step)]) / len(vals[int(i * step):int((i + 1) * step)])
                for i in range(width)]
    lo, hi = min(vals), max(vals)
    span = hi - lo or 1.0
    return "".join(SPARK[min(int((v - lo) / span * (len(SPARK) - 1) + 0.5), len(SPARK) - 1)] for v in vals)


def loss_curve_text(records: list[dict]) -> list[str]:
    """Lines showing the train and validation loss curves as sparklines, with first and last values."""
    lines = []
    for key, name in (("loss", "train"), ("val_loss", "val")):
        vals = [r[key] for r in records if r.get(key) is not None]
        if len(vals) >= 2:
            lines.append(f"{name:>5} loss {vals[0]:.3f} {sparkline(vals)} {vals[-1]:.3f}")
    return lines


def plot_losses(records: list[dict], path: str | os.PathLike) -> bool:
    """Write the loss curves to ``path`` (PNG) if matplotlib is importable; return whether it did.

    With several ranks only rank 0 writes it.
    """
    if not is_main():
        return False
    try:
        import matplotlib  # noqa: PLC0415  (optional dependency)
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt  # noqa: PLC0415
    except Exception:  # not installed, or no usable backend
        return False
    fig, ax = plt.subplots(figsize=(7, 4))
    for key, name in (("loss", "train"), ("val_loss", "val")):
        pts = [(r["iter"], r[key]) for r in records if r.get(key) is not None]
        if pts:
            ax.plot(*zip(*pts), label=name, marker="o" if key == "val_loss" else None, markersize=3)
    ax.set_xlabel("iteration")
    ax.set_ylabel("loss")
    ax.legend()
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return True


def format_duration(seconds: float) -> str:
    """``75.3 -> '1:15'``, ``3725 -> '1:02:05'``."""
    if not math.isfinite(seconds) or seconds < 0:
        return "?"
    s = int(round(seconds))
    h, rem = divmod(s, 3600)
    m, s = divmod(rem, 60)
    return f"{h}:{m:02d}:{s:02d}" if h else f"{m}:{s:02d}"


class Progress:
    """The one-line status, rewritten in place on a terminal.

    On a terminal every update replaces the line (``\\r``). When the output is
    a file or a pipe (CI logs) the status is left out and only the lines
    printed with :meth:`line` appear, so logs stay readable. In a data-parallel
    run the default stream of every rank but 0 is ``os.devnull``: one rank speaks.
    """

    def __init__(self, echo: Callable[[str], None] | None = None, stream: TextIO | None = None,
                 enabled: bool | None = None) -> None:
        if stream is None and not is_main():
            stream = open(os.devnull, "w", encoding="utf-8")  # noqa: SIM115  (lives as long as the process)
        self.stream = stream or sys.stdout
        self.echo = echo or (lambda s: print(s, file=self.stream, flush=True))
        self.enabled = self.stream.isatty() if enabled is None else enabled
        self._shown = 0

    def status(self, text: str) -> None:
        """Show ``text`` as the current status (terminal only)."""
        if not self.enabled:
            return
        width = shutil.get_terminal_size((100, 20)).columns - 1
        text = text[:width]
        self.stream.write("\r" + text + " " * max(self._shown - len(text), 0))
        self.stream.flush()
        self._shown = len(text)

    def clear(self) -> None:
        if self.enabled and self._shown:
            self.stream.write("\r" + " " * self._shown + "\r")
            self.stream.flush()
            self._shown = 0

    def line(self, text: str) -> None:
        """Print a permanent line (the status, if shown, is cleared first)."""
        self.clear()
        self.echo(text)
