"""Orbax checkpoints of a run: periodic and best-by-R@10, with config, data state and integrity.

Layout under `workdir` (made absolute: Orbax refuses relative paths):
  checkpoints/<step>/{state, data, config, integrity.json}       periodic and final, last N kept
  checkpoints_best/<step>/{state, data, config, integrity.json}  best validation speech->image R@10
  corrupt_checkpoints/<step>/                                    unreadable ones, moved aside on resume

`state` is the train state pytree, `data` the input iterator's state (JSON), `config` the run's
config (JSON), so `evaluate` needs nothing but the workdir. Saves are synchronous: a failed save
raises `CheckpointSaveError` at once, and training never continues past it. After each save the
SHA-256 of every file of the step is written to `integrity.json`; reading a checkpoint verifies
it first, so truncated, garbled, zeroed or missing files are reported as `CorruptCheckpointError`
naming the checkpoint (checkpoints written before this check, or killed between the save and the
digest, are read unverified).
"""

import hashlib
import json
import logging
import os
import shutil
import time
from collections.abc import Mapping
from typing import Any, Callable, NamedTuple

from etils import epath
from flax import nnx
import jax
from jax.experimental import multihost_utils
import jax.numpy as jnp
import numpy as np
import orbax.checkpoint as ocp

BEST_METRIC = "speech_to_image_r10"
INTEGRITY_FILE = "integrity.json"


class CheckpointError(RuntimeError):
    """A checkpoint is missing or does not match what the caller expects."""


class CorruptCheckpointError(CheckpointError):
    """A checkpoint's files are damaged (failed integrity check or unreadable)."""


class CheckpointSaveError(CheckpointError):
    """Writing a checkpoint failed (disk full, permissions, ...)."""


class _ReadOnlyNotice(logging.Filter):
    """Drops Orbax's "Given directory is read only" warning: reading is what we asked for."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not (isinstance(record.msg, str) and record.msg.startswith("Given directory is read only"))


class Checkpointer:
    """Saves and restores train states in `workdir/checkpoints` and `workdir/checkpoints_best`."""

    def __init__(self, workdir: str, *, keep: int = 3, read_only: bool = False):
        absl_logger = logging.getLogger("absl")
        if not any(isinstance(f, _ReadOnlyNotice) for f in absl_logger.filters):
            absl_logger.addFilter(_ReadOnlyNotice())
        self.workdir = epath.Path(os.path.abspath(workdir))
        self._read_only = read_only
        self._latest = self._manager("checkpoints", max_to_keep=keep)
        self._best = self._manager(
            "checkpoints_best", max_to_keep=1, best_fn=lambda metrics: metrics[BEST_METRIC],
            best_mode="max", keep_checkpoints_without_metrics=False)

    def _manager(self, name: str, *, max_to_keep: int, **options) -> ocp.CheckpointManager:
        ro = self._read_only
        return ocp.CheckpointManager(
            self.workdir / name,
            options=ocp.CheckpointManagerOptions(
                max_to_keep=None if ro else max_to_keep, create=not ro, read_only=ro,
                save_interval_steps=0 if ro else 1, enable_async_checkpointing=False, **options))

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
        """Writes a periodic/final checkpoint; raises CheckpointSaveError if it cannot."""
        self._save(self._latest, step, state, data_state, config)

    def save_best(self, step: int, state: Any, *, data_state: dict, config: dict, r10: float) -> bool:
        """Saves `state` as the best checkpoint if `r10` beats the best so far; returns whether it did."""
        best = self.best_metric()
        if best is not None and r10 <= best:
            return False
        self._save(self._best, step, state, data_state, config, metrics={BEST_METRIC: float(r10)})
        return True

    def _save(self, manager, step, state, data_state, config, **kwargs) -> None:
        path = manager.directory / str(step)
        try:
            manager.save(step, args=ocp.args.Composite(
                state=ocp.args.StandardSave(state), data=ocp.args.JsonSave(data_state),
                config=ocp.args.JsonSave(config)), force=True, **kwargs)
            manager.wait_until_finished()
            if jax.process_index() == 0:
                _write_integrity(path)
        except Exception as e:  # any failure: disk full, permissions, a broken file system
            left = _remove_partial_step(manager, step)
            manager.reload()
            leftover = f" Remove the partial folders {left} by hand." if left else ""
            raise CheckpointSaveError(
                f"Saving checkpoint {path} failed: {_cause(e)}. Training stopped at step {step}; the "
                f"checkpoints already written are untouched (periodic steps {self.all_steps()}, best "
                f"{self.best_step()}).{leftover} Fix the cause (free disk space, check permissions), "
                "then re-run the same command to resume.") from e

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
                    f"--checkpoint={which!r} is not 'latest', 'best' or a step number.") from None
            manager = self._latest if step in self._latest.all_steps() else self._best
            if step not in manager.all_steps():
                raise CheckpointError(
                    f"No checkpoint for step {step} in {self.workdir}; periodic steps: "
                    f"{self.all_steps()}, best: {self.best_step()}.")
        if step is None:
            raise CheckpointError(
                f"No {which!r} checkpoint in {self.workdir}. Train first with "
                f"`python -m vgs_jax.main --config=... --workdir={self.workdir}`"
                + (" (the best checkpoint is written at validation steps)." if which == "best" else "."))
        return manager, step

    def restore_config(self, which: str | int = "latest") -> dict:
        manager, step = self.resolve(which)
        return self._read(manager, step, lambda: manager.restore(
            step, args=ocp.args.Composite(config=ocp.args.JsonRestore()))["config"])

    def restore(self, which: str | int, abstract_state: Any) -> tuple[int, Any, dict]:
        """Restores (step, state, data_state) into the structure/shardings of `abstract_state`."""
        manager, step = self.resolve(which)
        return (step, *self._restore_step(manager, step, abstract_state))

    def _restore_step(self, manager, step: int, abstract_state: Any) -> tuple[Any, dict]:
        target = jax.tree.map(ocp.utils.to_shape_dtype_struct, abstract_state)
        verified = _verify_integrity(manager.directory / str(step))
        try:
            restored = manager.restore(step, args=ocp.args.Composite(
                state=ocp.args.StandardRestore(target), data=ocp.args.JsonRestore()))
        except Exception as e:
            if verified and isinstance(e, (ValueError, KeyError, TypeError)):
                raise CheckpointError(
                    f"Checkpoint {manager.directory}/{step} does not match the model built from the "
                    f"config (different architecture or sizes?): {_cause(e)}. Use the config the run "
                    "was trained with, or a fresh --workdir.") from e
            raise CorruptCheckpointError(
                f"Checkpoint {manager.directory}/{step} is unreadable: {_cause(e)}.") from e
        if not isinstance(restored["data"], dict):
            raise CorruptCheckpointError(
                f"Checkpoint {manager.directory}/{step} has a damaged data-iterator state: {restored['data']!r}.")
        return restored["state"], restored["data"]

    def restore_newest_intact(self, abstract_state: Any, say: Callable[[str], None]) -> tuple[int, Any, dict] | None:
        """Resumes from the newest readable checkpoint, periodic or best: (step, state, data_state),
        or None when there is none at all. Unreadable ones are moved to `corrupt_checkpoints/`
        (nothing is deleted) and reported through `say`; CheckpointError if none is readable."""
        candidates = sorted({(s, "latest") for s in self._latest.all_steps()}
                            | {(s, "best") for s in self._best.all_steps()}, reverse=True)
        problems = []
        for step, kind in candidates:
            manager = self._latest if kind == "latest" else self._best
            try:
                return (step, *self._restore_step(manager, step, abstract_state))
            except CorruptCheckpointError as e:
                problems.append(str(e))
                moved = self._move_aside(manager, step)
                say(f"{e} Moved it to {moved}; trying the previous checkpoint.")
        corrupt = os.path.join(os.fspath(self.workdir), "corrupt_checkpoints")
        if problems or (os.path.isdir(corrupt) and os.listdir(corrupt)):
            raise CorruptCheckpointError(
                f"No readable checkpoint in {self.workdir}: {' '.join(problems) or 'only damaged ones.'} "
                f"They are kept in {corrupt}. Use a fresh --workdir, or delete that folder to train "
                "from scratch here.")
        return None

    def _move_aside(self, manager, step: int) -> str:
        base = os.path.join(os.fspath(self.workdir), "corrupt_checkpoints", f"{manager.directory.name}_{step}")
        target, n = base, 0
        while os.path.exists(target):
            n += 1
            target = f"{base}.{n}"
        if jax.process_index() == 0:
            os.makedirs(os.path.dirname(target), exist_ok=True)
            shutil.move(os.fspath(manager.directory / str(step)), target)
        if jax.process_count() > 1:  # the others reload once it has moved
            multihost_utils.sync_global_devices(f"vgs_jax: moved aside {target}")
        manager.reload()
        return target

    def restore_params(self, which: str | int) -> tuple[int, dict]:
        """Restores only the model parameters (no optimizer needed) as a pure dict of arrays."""
        step, params, _ = self.restore_model_variables(which)
        return step, params

    def restore_model_variables(self, which: str | int) -> tuple[int, dict, dict]:
        """(step, params, model_state) as pure dicts of arrays, without a target (no optimizer
        needed). model_state (BatchNorm statistics, VQ codebooks) is {} for models without any.
        List indices come back as string keys ("0"); `fit_tree` arranges them like a model's tree."""
        manager, step = self.resolve(which)

        def read():
            # A target built from the saved shapes, replicated over this process's devices: the
            # run may have been saved on another device count (Orbax refuses the saved topology).
            saved = ocp.StandardCheckpointHandler().metadata(manager.directory / str(step) / "state")
            devices = jax.make_mesh((jax.device_count(),), ("devices",),
                                    axis_types=(jax.sharding.AxisType.Auto,))
            replicated = jax.sharding.NamedSharding(devices, jax.sharding.PartitionSpec())
            target = jax.tree.map(lambda leaf: jax.ShapeDtypeStruct(leaf.shape, leaf.dtype, sharding=replicated),
                                  saved.tree)
            return manager.restore(step, args=ocp.args.Composite(state=ocp.args.StandardRestore(target)))["state"]

        state = self._read(manager, step, read)
        return step, state["params"], state.get("model_state", {})

    def _read(self, manager, step: int, read: Callable[[], Any]) -> Any:
        """`read()` after the integrity check, with damage reported as CorruptCheckpointError."""
        where = manager.directory / str(step)
        _verify_integrity(where)
        try:
            return read()
        except Exception as e:
            raise CorruptCheckpointError(f"Checkpoint {where} is unreadable: {_cause(e)}.") from e

    def close(self) -> None:
        self._latest.close()
        self._best.close()

    def __enter__(self) -> "Checkpointer":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


class FittedTree(NamedTuple):
    """What `fit_tree` returns: `tree` in the expected structure, and the "a/0/b" paths of its
    leaves taken from the restored tree (`copied`) and left as they were (`fresh`), sorted."""
    tree: Any
    copied: list[str]
    fresh: list[str]


def fit_tree(expected, restored, *, partial: bool = False, where: str = "The checkpoint") -> FittedTree:
    """`restored`'s leaves arranged in the structure of `expected` (a model's params or state).

    Leaves are matched by path (list indices and their string form, as Orbax restores them
    without a target, are the same path) and shape, and take the expected leaf's dtype.

    Args:
      expected: nested mapping (pure dict or `nnx.State`) of the model, e.g. freshly initialised.
      restored: nested mapping (pure dict or `nnx.State`) read from a checkpoint.
      partial: False: every path must be in both trees with the same shape, else CheckpointError
        naming the missing, extra or mis-shaped ones (prefixed by `where`). True: the
        ResDAVEnet-VQ "->" recipe; leaves without a match keep `expected`'s value (`fresh`) and
        restored-only paths are ignored.
      where: what `restored` is, for the error message.
    Returns:
      FittedTree(tree, copied, fresh); `fresh` is empty unless `partial`.
    """
    expected, restored = (nnx.to_pure_dict(t) if isinstance(t, nnx.State) else t for t in (expected, restored))
    if not isinstance(expected, Mapping) or not isinstance(restored, Mapping):
        raise ValueError("fit_tree: expected and restored must be nested mappings (pure dicts or nnx.State).")
    names = lambda path: tuple(str(getattr(k, "key", getattr(k, "idx", k))) for k in path)
    old = {names(p): v for p, v in jax.tree_util.tree_leaves_with_path(restored)}
    paths, treedef = jax.tree_util.tree_flatten_with_path(expected)
    new = {names(p): v for p, v in paths}
    fits = {name for name, v in new.items() if name in old and np.shape(old[name]) == np.shape(v)}
    if not partial and (len(fits) != len(new) or len(old) != len(new)):
        bad = sorted("/".join(name) for name in (set(new) | set(old)) - fits)
        raise CheckpointError(
            f"{where} does not fit the model of its saved config; mismatched parameters: "
            f"{bad[:8]}{' ...' if len(bad) > 8 else ''}.")

    def leaf(name, value):
        if name not in fits:
            return value
        dtype = getattr(value, "dtype", None)
        same = dtype is None or getattr(old[name], "dtype", None) == dtype
        return old[name] if same else jnp.asarray(old[name], dtype)

    tree = jax.tree_util.tree_unflatten(treedef, [leaf(names(p), v) for p, v in paths])
    return FittedTree(tree, sorted("/".join(n) for n in fits), sorted("/".join(n) for n in set(new) - fits))


def _remove_partial_step(manager: ocp.CheckpointManager, step: int) -> list[str]:
    """Deletes what a failed save of `step` wrote; returns the folders that would not go.

    Orbax's first write error is raised while its other writes of the step may still run and
    create files, so this waits for them and retries for a few seconds.
    """
    try:
        manager.wait_until_finished()
    except Exception:  # pylint: disable=broad-except
        pass  # The error already being reported is the one that matters.
    directory = os.fspath(manager.directory)

    def partial_folders() -> list[str]:
        names = os.listdir(directory) if os.path.isdir(directory) else []
        return [os.path.join(directory, n) for n in names
                if n == str(step) or n.startswith(f"{step}.orbax-checkpoint-tmp")]

    for attempt in range(20):
        left = partial_folders()
        if not left:
            return []
        for folder in left:
            shutil.rmtree(folder, ignore_errors=True)
        time.sleep(0.05 * attempt)
    return partial_folders()


def _file_digests(step_dir: epath.Path) -> dict[str, str]:
    """{relative path: sha256 hex} of every file under `step_dir` except the integrity file."""
    digests = {}
    root = os.fspath(step_dir)
    for folder, _, files in os.walk(root):
        for name in files:
            path = os.path.join(folder, name)
            rel = os.path.relpath(path, root)
            if rel != INTEGRITY_FILE:
                with open(path, "rb") as f:
                    digests[rel] = hashlib.file_digest(f, "sha256").hexdigest()
    return digests


def _write_integrity(step_dir: epath.Path) -> None:
    digests = _file_digests(step_dir)
    path = os.path.join(os.fspath(step_dir), INTEGRITY_FILE)
    with open(path + ".tmp", "w") as f:
        json.dump(digests, f, indent=1, sort_keys=True)
    os.replace(path + ".tmp", path)


def _verify_integrity(step_dir: epath.Path) -> bool:
    """True if `step_dir` matches its integrity.json, False if it has none (unverified);
    CorruptCheckpointError naming the damaged files otherwise."""
    path = os.path.join(os.fspath(step_dir), INTEGRITY_FILE)
    if not os.path.exists(path):
        return False
    try:
        with open(path) as f:
            expected = json.load(f)
    except (OSError, ValueError) as e:
        raise CorruptCheckpointError(f"Checkpoint {step_dir} has a damaged {INTEGRITY_FILE}: {_cause(e)}.") from e
    actual = _file_digests(step_dir)
    damaged = sorted(k for k in expected if actual.get(k) != expected[k])
    extra = sorted(set(actual) - set(expected))
    if damaged or extra:
        what = [f"{k} ({'missing' if k not in actual else 'changed'})" for k in damaged]
        what += [f"{k} (unexpected)" for k in extra]
        raise CorruptCheckpointError(
            f"Checkpoint {step_dir} is damaged: {', '.join(what[:6])}{' ...' if len(what) > 6 else ''}.")
    return True


def _cause(e: BaseException) -> str:
    """One line describing `e` (first line of its message, with its type)."""
    text = str(e).strip().splitlines()
    return f"{type(e).__name__}: {text[0] if text else ''}".rstrip(": ")
