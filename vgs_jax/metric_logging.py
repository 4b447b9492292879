"""Training metrics to the console, `workdir/metrics.jsonl` and TensorBoard event files.

Each record is one JSON line `{"step": int, "<prefix>/<name>": float, ...}`; the same scalars go
to TensorBoard through tensorboardX (no TensorFlow needed). Only process 0 writes files and
prints progress (to stdout, so it stays readable when library logging is verbose).
"""

import json
import os
import time

import jax
import tensorboardX


class MetricLogger:
    """Appends scalar metrics to metrics.jsonl and TensorBoard; prints a progress line."""

    def __init__(self, workdir: str, *, total_steps: int, batch_size: int, resume_step: int = 0):
        """`resume_step`: the checkpoint step training resumes from; records of later steps (written
        before an interruption, and about to be written again) are dropped from metrics.jsonl and
        hidden in TensorBoard (purge_step), so the logs read as one uninterrupted run."""
        self._total_steps = total_steps
        self._batch_size = batch_size
        self._is_writer = jax.process_index() == 0
        self._jsonl = None
        self._tb = None
        if self._is_writer:
            os.makedirs(workdir, exist_ok=True)
            path = os.path.join(workdir, "metrics.jsonl")
            _truncate_after(path, resume_step)
            self._jsonl = open(path, "a")
            self._tb = tensorboardX.SummaryWriter(os.path.join(workdir, "tensorboard"),
                                                  purge_step=resume_step + 1 if resume_step else None)
        self._last_time = None
        self._last_step = None

    def write(self, step: int, scalars: dict[str, float]) -> None:
        """Writes `scalars` (names already prefixed, e.g. "train/loss") for `step`."""
        if not self._is_writer:
            return
        record = {"step": int(step), **{k: float(v) for k, v in scalars.items()}}
        self._jsonl.write(json.dumps(record) + "\n")
        self._jsonl.flush()
        for name, value in scalars.items():
            self._tb.add_scalar(name, float(value), int(step))
        self._tb.flush()

    def train_progress(self, step: int, scalars: dict[str, float]) -> dict[str, float]:
        """Adds steps/s, utterances/s and ETA to `scalars`, writes them and prints a progress line."""
        now = time.perf_counter()
        rates = {}
        if self._last_time is not None and step > self._last_step:
            steps_per_sec = (step - self._last_step) / (now - self._last_time)
            rates = {
                "train/steps_per_sec": steps_per_sec,
                "train/utterances_per_sec": steps_per_sec * self._batch_size,
            }
        self._last_time, self._last_step = now, step
        scalars = {**scalars, **rates}
        self.write(step, scalars)
        line = f"step {step}/{self._total_steps}  loss {scalars['train/loss']:.4f}"
        line += f"  lr {scalars['train/learning_rate']:.2e}"
        if rates:
            eta = (self._total_steps - step) / rates["train/steps_per_sec"]
            line += (
                f"  {rates['train/steps_per_sec']:.2f} steps/s"
                f"  {rates['train/utterances_per_sec']:.0f} utt/s  ETA {_format_seconds(eta)}"
            )
        if self._is_writer:
            print(line, flush=True)
        return scalars

    def close(self) -> None:
        if self._is_writer:
            self._jsonl.close()
            self._tb.close()

    def __enter__(self) -> "MetricLogger":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def _truncate_after(path: str, step: int) -> None:
    """Keeps only the complete records of steps <= `step` in the JSON-lines file `path`."""
    if not os.path.exists(path):
        return
    kept = []
    with open(path) as f:
        for line in f:
            try:
                record = json.loads(line)
            except ValueError:  # a line cut short by a kill
                continue
            if line.endswith("\n") and record.get("step", 0) <= step:
                kept.append(line)
    with open(path + ".tmp", "w") as f:
        f.writelines(kept)
    os.replace(path + ".tmp", path)


def _format_seconds(seconds: float) -> str:
    seconds = int(seconds)
    return f"{seconds // 3600}:{seconds // 60 % 60:02d}:{seconds % 60:02d}"
