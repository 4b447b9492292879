"""Generation workers in fresh Python processes that never import the caller's `__main__`.

Why separate processes: synthesis forks espeak children (`speech.run_isolated`), and forking a
process whose JAX threads run can deadlock (environment.md §13 of the project notes), so a build
that may run next to JAX generates in workers that are started with fork+exec.

Why not `multiprocessing`: its "spawn" workers first re-import the caller's `__main__`. A script
read from stdin (`python - <<EOF`) has no file to re-import, so every worker dies with
`FileNotFoundError: ... '<stdin>'` and `Pool` re-spawns them and waits forever; a script or
`python -m` module without an `if __name__ == "__main__":` guard starts the build again inside
each worker. Here a worker is `python -c` importing only this module, whatever the entry point
(stdin, `-c`, a script, `-m`, a Jupyter kernel), and tasks are pickled by reference
(importable functions). The pool watches its workers: one that exits or is killed raises
`WorkerDiedError` at once, naming the task and ending with the worker's own output.
"""

from __future__ import annotations

import os
import pathlib
import pickle
import select
import signal
import struct
import subprocess
import sys
import tempfile
import traceback
from typing import Any, Callable, Iterable, Iterator

_HEADER = struct.Struct("<Q")  # Byte length of the pickled message that follows.
_POLL_S = 0.2  # How often a waiting pool checks that its workers are alive.
_OUTPUT_TAIL = 3000  # Characters of a dead worker's output quoted in the error.
# Directory holding the top-level package of this module, put first on the workers' sys.path so
# they import the same code as the caller (e.g. a repository checkout that is not installed).
_IMPORT_ROOT = str(pathlib.Path(__file__).resolve().parents[len(__name__.split(".")) - 1])


class WorkerDiedError(RuntimeError):
    """A worker process exited (crashed, was killed) before returning its task's result."""


def _pack(obj: Any) -> bytes:
    payload = pickle.dumps(obj, protocol=pickle.HIGHEST_PROTOCOL)
    return _HEADER.pack(len(payload)) + payload


def _write(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view):]


def _read_exactly(fd: int, n: int) -> bytes | None:
    """n bytes from fd, or None at end of file (the writer is gone)."""
    chunks, left = [], n
    while left:
        chunk = os.read(fd, min(left, 1 << 20))
        if not chunk:
            return None
        chunks.append(chunk)
        left -= len(chunk)
    return b"".join(chunks)


def _receive(fd: int) -> tuple[bool, Any]:
    """(True, message), or (False, None) when the writer closed the pipe or died mid-message."""
    header = _read_exactly(fd, _HEADER.size)
    payload = header and _read_exactly(fd, _HEADER.unpack(header)[0])
    if payload is None:
        return False, None
    return True, pickle.loads(payload)


def serve(task_fd: int, result_fd: int) -> None:
    """Worker loop: reads (fn, arg) messages, answers (ok, fn(arg) or the exception), until EOF."""
    while True:
        ok, message = _receive(task_fd)
        if not ok:
            return
        fn, arg = message
        try:
            outcome = (True, fn(arg))
        except Exception as e:  # pylint: disable=broad-except
            e.add_note(f"In spoken_shapes worker process {os.getpid()}:\n{traceback.format_exc()}")
            outcome = (False, e)
        try:
            data = _pack(outcome)
        except Exception:  # pylint: disable=broad-except
            data = _pack((False, RuntimeError(
                f"The result of {getattr(fn, '__qualname__', fn)} in a spoken_shapes worker "
                f"could not be pickled:\n{traceback.format_exc()}")))
        _write(result_fd, data)


class _Worker:
    """One worker process with its task and result pipes and a file catching its output."""

    def __init__(self):
        if not sys.executable:
            raise RuntimeError("spoken_shapes generation workers need sys.executable (the Python "
                               "interpreter to start); this embedded interpreter has none, so "
                               "use SpokenShapesConfig(num_workers=0).")
        task_read, self.task_fd = os.pipe()
        self.result_fd, result_write = os.pipe()
        self.output = tempfile.TemporaryFile()  # pylint: disable=consider-using-with
        code = (f"import sys; sys.path.insert(0, {_IMPORT_ROOT!r}); import {__name__} as pool; "
                f"pool.serve({task_read}, {result_write})")
        try:
            # Own process group: stopping the worker also stops the espeak child it forked.
            self.process = subprocess.Popen(  # pylint: disable=consider-using-with
                [sys.executable, "-c", code], pass_fds=(task_read, result_write),
                stdin=subprocess.DEVNULL, stdout=self.output, stderr=self.output,
                process_group=0)
        except BaseException:
            os.close(self.task_fd)
            os.close(self.result_fd)
            self.output.close()
            raise
        finally:
            os.close(task_read)
            os.close(result_write)

    @property
    def pid(self) -> int:
        return self.process.pid

    def died(self, task: str) -> WorkerDiedError:
        """The error to raise now that this worker is gone (reaps it; kills it if it lingers)."""
        try:
            code = self.process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
            code = self.process.wait()
        if code < 0:
            how = f"was killed by signal {signal.Signals(-code).name}"
            if code == -signal.SIGKILL:
                how += " (if the system ran out of memory, use fewer workers: num_workers)"
        else:
            how = f"exited with code {code}"
        self.output.seek(0)
        tail = self.output.read().decode("utf-8", "replace")[-_OUTPUT_TAIL:].strip()
        return WorkerDiedError(
            f"A spoken_shapes generation worker (pid {self.pid}) {how} while running {task}; "
            f"the build stops here. Its output ended with:\n{tail or '(no output)'}")

    def stop(self, kill: bool) -> None:
        """Lets the worker finish (it exits when its task pipe closes), or kills its group."""
        if self.task_fd >= 0:
            os.close(self.task_fd)
            self.task_fd = -1
        if kill and self.process.poll() is None:
            try:
                os.killpg(self.process.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait()
        if self.result_fd >= 0:
            os.close(self.result_fd)
            self.result_fd = -1
        self.output.close()


class WorkerPool:
    """`num_workers` worker processes that compute `fn(task)` for a stream of tasks, in order.

    Use as a context manager (or call `close`); leaving it because of an error kills the workers.
    """

    def __init__(self, num_workers: int):
        if num_workers < 1:
            raise ValueError(f"WorkerPool needs at least 1 worker, got num_workers={num_workers}.")
        self._workers: list[_Worker] = []
        try:
            for _ in range(num_workers):
                self._workers.append(_Worker())
        except BaseException:
            self.close(kill=True)
            raise

    @property
    def pids(self) -> list[int]:
        """Process ids of the workers."""
        return [w.pid for w in self._workers]

    def imap(self, fn: Callable[[Any], Any], tasks: Iterable[Any]) -> Iterator[Any]:
        """Yields fn(task) for each task in order; each worker computes one task at a time.

        fn and the tasks must pickle (fn by reference: a module-level function). An exception
        in fn is re-raised here; a worker that dies raises WorkerDiedError. Leaving while workers
        still compute (an error, or closing the iterator early) kills the pool.
        """
        if not self._workers:
            raise RuntimeError("This WorkerPool is closed; create a new one.")
        tasks = list(tasks)
        running: dict[_Worker, int] = {}  # Worker -> index of the task it computes.
        done: dict[int, tuple[bool, Any]] = {}
        submitted = 0
        try:
            for index in range(len(tasks)):
                while True:
                    for worker in self._workers:  # Keep every worker busy, also while we yield.
                        if worker not in running and submitted < len(tasks):
                            self._submit(worker, fn, tasks[submitted], submitted)
                            running[worker] = submitted
                            submitted += 1
                    if index in done:
                        break
                    worker, outcome = self._next_outcome(running, fn, tasks)
                    done[running.pop(worker)] = outcome
                ok, value = done.pop(index)
                if not ok:
                    raise value
                yield value
        finally:
            if running:
                self.close(kill=True)

    def _submit(self, worker: _Worker, fn, task, index: int) -> None:
        try:
            _write(worker.task_fd, _pack((fn, task)))
        except BrokenPipeError:
            raise worker.died(_describe(fn, task, index)) from None

    def _next_outcome(self, running: dict[_Worker, int], fn, tasks) -> tuple[_Worker, Any]:
        """Waits for the first result of a running worker; raises if any worker has died."""
        by_fd = {w.result_fd: w for w in running}
        poller = select.poll()  # Unlike select.select, not limited to descriptors < 1024.
        for fd in by_fd:
            poller.register(fd, select.POLLIN)
        while True:
            ready = poller.poll(_POLL_S * 1000)
            if ready:
                worker = by_fd[ready[0][0]]
                ok, outcome = _receive(worker.result_fd)
                if ok:
                    return worker, outcome
                raise worker.died(_describe(fn, tasks[running[worker]], running[worker]))
            for worker in self._workers:
                if worker.process.poll() is not None:
                    index = running.get(worker)
                    task = "no task" if index is None else _describe(fn, tasks[index], index)
                    raise worker.died(task)

    def close(self, kill: bool = False) -> None:
        """Stops the workers: lets them exit (kill=False) or kills them at once."""
        for worker in self._workers:
            worker.stop(kill)
        self._workers = []

    def __enter__(self) -> WorkerPool:
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        self.close(kill=exc_type is not None)


def _describe(fn, task, index: int) -> str:
    text = f"{getattr(fn, '__qualname__', fn)}({task!r})"
    return f"task {index} = {text[:300]}"
