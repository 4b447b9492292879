"""Stopping training cleanly on SIGTERM (how cloud accelerators pre-empt) and SIGINT (Ctrl-C).

Inside `StopSignals()`, a first SIGTERM or SIGINT does not kill the process: it records the
signal, and the training loop saves a checkpoint at the next step boundary and raises
`TrainingInterrupted`. During validation (`stop.abortable()`) the signal interrupts the
validation at once, since the train state it would save is already complete. A second SIGINT
raises KeyboardInterrupt immediately (the checkpoints already written are complete: Orbax writes
to a temporary folder and renames it).
"""

import contextlib
import signal
import threading
from typing import Iterator

SIGNALS = (signal.SIGTERM, signal.SIGINT)


class TrainingInterrupted(Exception):
    """Training stopped on a signal after saving a checkpoint; `signum` is the signal."""

    def __init__(self, message: str, signum: int):
        super().__init__(message)
        self.signum = signum


class AbortValidation(BaseException):
    """Raised inside `StopSignals.abortable()` when a stop signal arrives (BaseException, so no
    `except Exception` in library code swallows it)."""


class StopSignals:
    """Context manager turning SIGTERM/SIGINT into a stop request (`signum`, `name`)."""

    def __init__(self):
        self.signum: int | None = None
        self._abortable = 0
        self._previous = {}

    @property
    def name(self) -> str:
        return signal.Signals(self.signum).name if self.signum else ""

    def _handle(self, signum, frame):
        del frame
        if self.signum is not None:
            if signum == signal.SIGINT:
                raise KeyboardInterrupt(f"second {signal.Signals(signum).name}: stopping without saving")
            return
        self.signum = signum
        if self._abortable:
            raise AbortValidation()

    @contextlib.contextmanager
    def abortable(self) -> Iterator[None]:
        """A block (validation) that a stop signal interrupts at once with AbortValidation."""
        if self.signum is not None:
            raise AbortValidation()
        self._abortable += 1
        try:
            yield
        finally:
            self._abortable -= 1

    def __enter__(self) -> "StopSignals":
        if threading.current_thread() is threading.main_thread():
            for s in SIGNALS:
                self._previous[s] = signal.signal(s, self._handle)
        return self

    def __exit__(self, *exc) -> None:
        for s, handler in self._previous.items():
            signal.signal(s, handler)
        self._previous.clear()
