"""A training run's workdir: one run at a time, and the config the run was started with.

`exclusive(workdir)` holds an advisory lock (`workdir/run.lock`, `fcntl.flock`) for the whole
run, so a second training on the same workdir stops at once naming the process that holds it;
the kernel drops the lock when the holder exits, however it exits (kill -9 included).
`config.json` is written only once the data and model are ready, so a run that fails before
training leaves nothing that blocks a corrected retry. A changed config is refused by comparing
with `config.json`, or with the config stored in the newest readable checkpoint when
`config.json` is gone.
"""

import contextlib
import datetime
import fcntl
import json
import os
import socket
import sys
from typing import Iterator

import jax
import ml_collections

from vgs_jax import checkpointing
from vgs_jax import config_lib

LOCK_FILE = "run.lock"


class WorkdirBusyError(RuntimeError):
    """Another training run holds the workdir."""


class ConfigMismatchError(ValueError):
    """The workdir holds a run with a different config."""


@contextlib.contextmanager
def exclusive(workdir: str) -> Iterator[None]:
    """Holds `workdir`'s run lock (process 0 only; creates the folder) for the `with` block."""
    if jax.process_index() != 0:
        yield
        return
    os.makedirs(workdir, exist_ok=True)
    path = os.path.join(workdir, LOCK_FILE)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.read(fd, 4096).decode(errors="replace").strip() or "unknown process"
            raise WorkdirBusyError(
                f"{workdir} is in use by another training run ({holder}). Wait for it to finish or "
                "stop it, or use another --workdir.") from None
        started = datetime.datetime.now().isoformat(timespec="seconds")
        holder = f"pid {os.getpid()} on {socket.gethostname()}, started {started}: {' '.join(sys.argv)}"
        os.ftruncate(fd, 0)
        os.pwrite(fd, holder.encode()[:4000] + b"\n", 0)
        yield
    finally:
        os.close(fd)  # releases the lock


def read_config(workdir: str) -> dict | None:
    """The config.json of the run in `workdir`, or None if there is none."""
    path = os.path.join(workdir, "config.json")
    if not os.path.exists(path):
        return None
    try:
        with open(path) as f:
            return json.load(f)
    except ValueError as e:
        raise ConfigMismatchError(
            f"{path} is damaged ({e}). Delete it (the config is then taken from the newest "
            "checkpoint), or use a fresh --workdir.") from e


def write_config(workdir: str, config: dict) -> None:
    """Writes config.json atomically (never leaves a half-written file)."""
    os.makedirs(workdir, exist_ok=True)
    path = os.path.join(workdir, "config.json")
    with open(path + ".tmp", "w") as f:
        json.dump(config, f, indent=2, sort_keys=True)
    os.replace(path + ".tmp", path)


def saved_config(workdir: str) -> tuple[dict | None, str]:
    """(config of the run already in `workdir` or None, where it was read from)."""
    config = read_config(workdir)
    if config is not None:
        return config, os.path.join(workdir, "config.json")
    if not any(os.path.isdir(os.path.join(workdir, d)) for d in ("checkpoints", "checkpoints_best")):
        return None, ""
    with checkpointing.Checkpointer(workdir, read_only=True) as ckpt:
        for which in ("latest", "best"):
            try:
                manager, step = ckpt.resolve(which)
                return ckpt.restore_config(which), f"{manager.directory}/{step}"
            except checkpointing.CheckpointError:
                continue
    return None, ""


def check_same_config(workdir: str, config: ml_collections.ConfigDict) -> bool:
    """Refuses (ConfigMismatchError, nothing changed) a config whose non-resumable fields differ
    from the run already in `workdir`; returns whether config.json still has to be written."""
    saved, where = saved_config(workdir)
    if saved is not None:
        differing = config_lib.incompatible_fields(saved, config)
        if differing:
            raise ConfigMismatchError(
                f"{workdir} holds a run with a different config (fields {differing} differ from "
                f"{where}). Use a new --workdir, or the same config to resume it; nothing in the "
                "workdir was changed.")
    return read_config(workdir) is None
