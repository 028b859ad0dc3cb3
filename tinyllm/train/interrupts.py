"""Ctrl-C and SIGTERM during training: a flag the loop checks after each step.

:func:`install_interrupt_handlers` points SIGINT and SIGTERM at a callback
(the trainer counts them: the first asks it to save and stop after the
current step, a second raises KeyboardInterrupt at once);
:func:`restore_interrupt_handlers` puts the previous handlers back.
"""
from __future__ import annotations

import signal
from typing import Any, Callable


def install_interrupt_handlers(on_signal: Callable[[], None]) -> dict:
    """Make SIGINT/SIGTERM call ``on_signal()``; return the previous handlers (main thread only)."""
    def handler(signum: int, frame: Any) -> None:
        on_signal()
    previous = {}
    for sig in (signal.SIGINT, signal.SIGTERM):
        try:
            previous[sig] = signal.signal(sig, handler)
        except ValueError:  # not the main thread: leave the default handling
            pass
    return previous


def restore_interrupt_handlers(previous: dict) -> None:
    """Put back the handlers :func:`install_interrupt_handlers` replaced."""
    for sig, h in previous.items():
        signal.signal(sig, h)
