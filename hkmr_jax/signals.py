"""Stopping a run cleanly: SIGTERM / SIGINT request a stop that the training loop honours
between steps (it checkpoints and exits; the run resumes with the same command).
See docs/training.md ("The command")."""

from __future__ import annotations

import signal
import threading


class StopRequest:
    """SIGTERM / SIGINT set a flag that the loop checks between steps (a second SIGINT
    interrupts at once). Handlers are installed only in the main thread."""

    def __init__(self):
        self.signal: int | None = None
        self._previous = {}

    def _handle(self, signum, frame):
        if self.signal is not None and signum == signal.SIGINT:
            raise KeyboardInterrupt
        self.signal = signum

    def __enter__(self):
        if threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGTERM, signal.SIGINT):
                self._previous[sig] = signal.signal(sig, self._handle)
        return self

    def __exit__(self, *exc):
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)


__all__ = ["StopRequest"]
