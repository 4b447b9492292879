"""Tests of the generation worker pool: order, errors, and workers that die."""

import contextlib
import math
import os
import signal
import time

import pytest

from tfds_builders.spoken_shapes import generation, worker_pool


@contextlib.contextmanager
def _deadline(seconds: float):
    """Raises TimeoutError in the block after `seconds` (a hang fails the test instead)."""
    def on_alarm(signum, frame):
        raise TimeoutError(f"still waiting after {seconds} s")
    previous = signal.signal(signal.SIGALRM, on_alarm)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def _slow_square(x: int) -> int:
    time.sleep(0.05 * (x % 3))  # Later tasks often finish before earlier ones.
    return x * x


def test_results_in_task_order_and_exceptions_reraised():
    with _deadline(60), worker_pool.WorkerPool(2) as pool:
        assert list(pool.imap(_slow_square, range(8))) == [x * x for x in range(8)]
        assert len(set(pool.pids)) == 2
        results = pool.imap(math.factorial, [3, -1, 4])
        assert next(results) == 6
        with pytest.raises(ValueError, match="not defined for negative values") as info:
            next(results)
        assert any("In spoken_shapes worker process" in note for note in info.value.__notes__)
    with pytest.raises(ValueError, match="num_workers=0"):
        worker_pool.WorkerPool(0)


def test_worker_that_exits_is_an_error_with_its_output():
    code = "import os, sys; print('cannot go on', file=sys.stderr, flush=True); os._exit(3)"
    with _deadline(60), worker_pool.WorkerPool(1) as pool:
        died = r"(?s)exited with code 3 while running task 0 = exec.*cannot go on"
        with pytest.raises(worker_pool.WorkerDiedError, match=died):
            list(pool.imap(exec, [code]))
        with pytest.raises(RuntimeError, match="WorkerPool is closed"):
            list(pool.imap(math.factorial, [1]))


def test_worker_killed_mid_build_raises_at_once():
    spec = generation.GenerationSpec(seed=0, image_size=64, language="en")
    with _deadline(60), worker_pool.WorkerPool(1) as pool:
        examples = generation.iter_image_examples(range(12), spec, pool=pool)
        assert next(examples)[0]["image_id"] == 0  # The worker now generates images 4-7.
        os.kill(pool.pids[0], signal.SIGKILL)
        start = time.monotonic()
        died = r"killed by signal SIGKILL.*task 1 = _isolated_block\(\(\[4, 5, 6, 7\]"
        with pytest.raises(worker_pool.WorkerDiedError, match=died):
            list(examples)
        assert time.monotonic() - start < 5.0
