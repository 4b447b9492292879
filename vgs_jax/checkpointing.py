"""Thin wrapper over Orbax `CheckpointManager`: periodic, best-by-R@10, config and data state alongside.

Layout under `workdir`:
  checkpoints/<step>/{state, data, config}        periodic and final checkpoints, last N kept
  checkpoints_best/<step>/{state, data, config}   the one checkpoint with the best validation R@10
  config.json                                     the run's config, written on the first start

`state` is the train state pytree (params, opt_state, step), `data` the input iterator's state
(JSON), `config` the run's config (JSON), so `evaluate` needs nothing but the workdir.
"""

import json
import os
from typing import Any

from etils import epath
import jax
import orbax.checkpoint as ocp

BEST_METRIC = "speech_to_image_r10"


class CheckpointError(RuntimeError):
    """A checkpoint is missing or does not match what the caller expects."""


class Checkpointer:
    """Saves and restores train states in `workdir/checkpoints` and `workdir/checkpoints_best`."""

    def __init__(self, workdir: str, *, keep: int = 3, read_only: bool = False):
        self.workdir = epath.Path(workdir)
        self._latest = ocp.CheckpointManager(
            self.workdir / "checkpoints",
            options=ocp.CheckpointManagerOptions(
                max_to_keep=None if read_only else keep,
                create=not read_only,
                read_only=read_only,
                save_interval_steps=0 if read_only else 1,
            ),
        )
        self._best = ocp.CheckpointManager(
            self.workdir / "checkpoints_best",
            options=ocp.CheckpointManagerOptions(
                max_to_keep=None if read_only else 1,
                best_fn=lambda metrics: metrics[BEST_METRIC],
                best_mode="max",
                keep_checkpoints_without_metrics=False,
                create=not read_only,
                read_only=read_only,
                save_interval_steps=0 if read_only else 1,
            ),
        )

    def latest_step(self) -> int | None:
        return self._latest.latest_step()

    def all_steps(self) -> list[int]:
        return list(self._latest.all_steps())

    def best_step(self) -> int | None:
        return self._best.best_step()

    def best_metric(self) -> float | None:
        """The best validation R@10 saved so far, or None."""
        step = self._best.best_step()
        if step is None:
            return None
        metrics = self._best.metrics(step)
        return None if metrics is None else float(metrics[BEST_METRIC])

    def save(self, step: int, state: Any, *, data_state: dict, config: dict) -> None:
        """Writes a periodic/final checkpoint (asynchronously; see `wait`)."""
        self._latest.save(step, args=_save_args(state, data_state, config), force=True)

    def save_best(
        self, step: int, state: Any, *, data_state: dict, config: dict, r10: float
    ) -> bool:
        """Saves `state` as the best checkpoint if `r10` beats the best so far; returns whether it did."""
        best = self.best_metric()
        if best is not None and r10 <= best:
            return False
        self._best.save(
            step,
            args=_save_args(state, data_state, config),
            metrics={BEST_METRIC: float(r10)},
            force=True,
        )
        return True

    def resolve(self, which: str | int) -> tuple[ocp.CheckpointManager, int]:
        """Maps "latest", "best" or a step number to (manager, step); raises CheckpointError if absent."""
        if which == "latest":
            step, manager = self._latest.latest_step(), self._latest
        elif which == "best":
            step, manager = self._best.best_step(), self._best
        else:
            try:
                step = int(which)
            except ValueError:
                raise CheckpointError(
                    f"--checkpoint={which!r} is not 'latest', 'best' or a step number."
                ) from None
            manager = self._latest if step in self._latest.all_steps() else self._best
            if step not in manager.all_steps():
                raise CheckpointError(
                    f"No checkpoint for step {step} in {self.workdir}; periodic steps: "
                    f"{self.all_steps()}, best: {self.best_step()}."
                )
        if step is None:
            raise CheckpointError(
                f"No {which!r} checkpoint in {self.workdir}. Train first with "
                f"`python -m vgs_jax.main --config=... --workdir={self.workdir}`"
                + (" (the best checkpoint is written at validation steps)." if which == "best" else ".")
            )
        return manager, step

    def restore_config(self, which: str | int = "latest") -> dict:
        manager, step = self.resolve(which)
        return manager.restore(step, args=ocp.args.Composite(config=ocp.args.JsonRestore()))["config"]

    def restore(self, which: str | int, abstract_state: Any) -> tuple[int, Any, dict]:
        """Restores (step, state, data_state) into the structure/shardings of `abstract_state`."""
        manager, step = self.resolve(which)
        target = jax.tree.map(ocp.utils.to_shape_dtype_struct, abstract_state)
        try:
            restored = manager.restore(
                step,
                args=ocp.args.Composite(
                    state=ocp.args.StandardRestore(target), data=ocp.args.JsonRestore()
                ),
            )
        except (ValueError, KeyError, TypeError) as e:
            raise CheckpointError(
                f"Checkpoint {manager.directory}/{step} does not match the model built from the "
                f"config (different architecture or sizes?): {e}. Use the config the run was "
                "trained with, or a fresh --workdir."
            ) from e
        return step, restored["state"], restored["data"]

    def restore_params(self, which: str | int) -> tuple[int, dict]:
        """Restores only the model parameters (no optimizer needed) as a pure dict of arrays."""
        step, params, _ = self.restore_model_variables(which)
        return step, params

    def restore_model_variables(self, which: str | int) -> tuple[int, dict, dict]:
        """(step, params, model_state) as pure dicts of arrays, without a target (no optimizer
        needed). model_state (BatchNorm statistics, VQ codebooks) is {} for models without any.
        List indices come back as string keys ("0"); see `evaluation.fit_params`."""
        manager, step = self.resolve(which)
        restored = manager.restore(
            step, args=ocp.args.Composite(state=ocp.args.StandardRestore())
        )
        return step, restored["state"]["params"], restored["state"].get("model_state", {})

    def wait(self) -> None:
        self._latest.wait_until_finished()
        self._best.wait_until_finished()

    def close(self) -> None:
        self._latest.close()
        self._best.close()


def _save_args(state, data_state, config) -> ocp.args.Composite:
    return ocp.args.Composite(
        state=ocp.args.StandardSave(state),
        data=ocp.args.JsonSave(data_state),
        config=ocp.args.JsonSave(config),
    )


def read_saved_config(workdir: str) -> dict | None:
    """The config.json written by the first run in `workdir`, or None if there is none."""
    path = os.path.join(workdir, "config.json")
    if not os.path.exists(path):
        return None
    with open(path) as f:
        return json.load(f)


def write_config(workdir: str, config: dict) -> None:
    """Writes config.json atomically (never leaves a half-written file)."""
    os.makedirs(workdir, exist_ok=True)
    path = os.path.join(workdir, "config.json")
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        json.dump(config, f, indent=2, sort_keys=True)
    os.replace(tmp, path)
