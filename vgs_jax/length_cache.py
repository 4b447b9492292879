"""Utterance lengths of a prepared split, cached so start-up does not decode the corpus again.

`data_sources.example_lengths` decodes every waveform (about 1 ms an example: 10 minutes for
SpokenCOCO). Its result for a TFDS split is stored as
``<dataset version dir>/vgs_jax_lengths.<split>.npz`` beside the shards, holding int64
``lengths [N]`` and the key it is valid for: the split (with any slice), the example count and
each shard's name, size and modification time, so a rebuilt dataset (new files) is never served
stale lengths. Files are written atomically (temporary file + rename). When the dataset folder is
read-only (a shared corpus), the cache goes to ``$XDG_CACHE_HOME/vgs_jax/lengths`` (default
``~/.cache``) under a hash of the folder and key; when neither is writable nothing is cached.
"""
from __future__ import annotations

import hashlib
import json
import os
import re
import tempfile

import numpy as np

PREFIX = "vgs_jax_lengths"


def cache_key(source) -> dict | None:
    """What the lengths of TFDS data source `source` depend on, or None for other sources."""
    info, split = getattr(source, "dataset_info", None), getattr(source, "split", None)
    if info is None or split is None or not getattr(info, "data_dir", None):
        return None
    try:
        instructions = info.splits[split].file_instructions
    except (KeyError, ValueError, TypeError):
        return None
    shards = []
    for fi in instructions:
        try:
            st = os.stat(fi.filename)
        except OSError:
            return None
        shards.append([os.path.basename(fi.filename), fi.skip, fi.take, st.st_size, st.st_mtime_ns])
    return {"split": str(split), "num_examples": len(source), "shards": shards}


def _paths(source, key: dict) -> list[str]:
    """Where the cache may be: beside the dataset, then the user cache (read-only datasets)."""
    folder = os.fspath(source.dataset_info.data_dir)
    safe = re.sub(r"[^A-Za-z0-9_.-]", "_", key["split"])
    digest = hashlib.sha256(json.dumps([os.path.abspath(folder), key]).encode()).hexdigest()[:16]
    user = os.path.join(os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "vgs_jax", "lengths")
    return [os.path.join(folder, f"{PREFIX}.{safe}.npz"), os.path.join(user, f"{safe}.{digest}.npz")]


def load(source) -> np.ndarray | None:
    """The cached lengths of `source` if a valid cache exists, else None."""
    key = cache_key(source)
    if key is None:
        return None
    for path in _paths(source, key):
        try:
            with np.load(path) as data:
                if json.loads(str(data["key"])) == key and data["lengths"].shape == (key["num_examples"],):
                    return data["lengths"].astype(np.int64)
        except (OSError, ValueError, KeyError):  # absent, unreadable or damaged: recompute
            continue
    return None


def store(source, lengths: np.ndarray) -> str | None:
    """Writes the cache for `source` (first writable place); returns its path or None."""
    key = cache_key(source)
    if key is None:
        return None
    for path in _paths(source, key):
        folder = os.path.dirname(path)
        try:
            os.makedirs(folder, exist_ok=True)
            fd, tmp = tempfile.mkstemp(dir=folder, prefix=".tmp-" + PREFIX)
        except OSError:
            continue
        try:
            with os.fdopen(fd, "wb") as f:
                np.savez(f, lengths=np.asarray(lengths, np.int64), key=json.dumps(key))
            os.replace(tmp, path)
            return path
        except OSError:
            if os.path.exists(tmp):
                os.remove(tmp)
    return None
