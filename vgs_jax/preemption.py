"""Stopping training cleanly on SIGTERM (how cloud accelerators pre-empt) and SIGINT (Ctrl-C).

Inside `StopSignals()`, a first SIGTERM or SIGINT does not kill the process: it records the
signal, and the training loop saves a checkpoint at the next step boundary and raises
`TrainingInterrupted`. During validation (`stop.abortable()`) the signal interrupts the
validation at once, since the train state it would save is already complete. A second SIGINT
raises KeyboardInterrupt immediately (the checkpoints already written are complete: Orbax writes
to a temporary folder and renames it).

In a multi-process run every process must stop at the same step (saving is collective), so the
loop asks `agreed()` at each step boundary: a signal seen by any process stops all of them there,
and validation is not interrupted (a process leaving it early would stall the others).
"""

import contextlib
import signal
import threading
from typing import Iterator

import jax
from jax.experimental import multihost_utils
import numpy as np

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

    def agreed(self) -> int | None:
        """The stop signal if any process has received one, else None; in a multi-process run a
        collective every process must call at the same step (one int32 per process)."""
        if jax.process_count() == 1:
            return self.signum
        seen = np.asarray(multihost_utils.process_allgather(np.int32(self.signum or 0)))
        if self.signum is None and seen.any():
            self.signum = int(seen[seen != 0][0])  # another process's signal: stop here as well
        return self.signum

    @contextlib.contextmanager
    def abortable(self) -> Iterator[None]:
        """A block (validation) that a stop signal interrupts at once with AbortValidation (a
        single-process run only; with several processes the signal waits for `agreed()`)."""
        if jax.process_count() > 1:
            yield
            return
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
