"""Utterance lengths are cached beside a prepared split (or in the user cache when its folder is
read-only), are the lengths a full pass reads, and are recomputed when the dataset is rebuilt."""

import os
import shutil
import tempfile

import numpy as np
import pytest

from vgs_jax import data_sources
from vgs_jax import length_cache


@pytest.fixture
def data_dir(shapes_data_dir, tmp_path, monkeypatch):
    """A private copy of spoken_shapes/tiny without any length cache; the user cache in tmp_path."""
    copy = tmp_path / "tfds"
    shutil.copytree(os.path.join(shapes_data_dir, "spoken_shapes"), copy / "spoken_shapes",
                    ignore=shutil.ignore_patterns(f"{length_cache.PREFIX}*"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "user_cache"))
    return str(copy)


@pytest.fixture
def decoded(monkeypatch):
    """Counts the waveforms decoded by the length pass."""
    calls = []
    real = data_sources.waveform
    monkeypatch.setattr(data_sources, "waveform", lambda ex, i: calls.append(i) or real(ex, i))
    return calls


def _open(data_dir, split="validation"):
    return data_sources.open_split("spoken_shapes/tiny:1.0.0", split, data_dir=data_dir)


def _cache_files(folder):
    return sorted(n for n in os.listdir(folder) if n.startswith(length_cache.PREFIX))


def test_lengths_are_cached_beside_the_dataset_and_reread(data_dir, decoded):
    source = _open(data_dir)
    version_dir = os.fspath(source.dataset_info.data_dir)
    slow = np.array([len(source[i]["audio"]) for i in range(len(source))])
    first = data_sources.example_lengths(source)
    np.testing.assert_array_equal(first, slow)
    assert len(decoded) == 40 and _cache_files(version_dir) == [f"{length_cache.PREFIX}.validation.npz"]
    decoded.clear()
    again = data_sources.example_lengths(_open(data_dir))  # a new start: read, nothing decoded
    np.testing.assert_array_equal(again, slow)
    assert again.dtype == np.int64 and decoded == []
    # Each split has its own file.
    other = _open(data_dir, "test")
    np.testing.assert_array_equal(data_sources.example_lengths(other),
                                  [len(other[i]["audio"]) for i in range(len(other))])
    assert _cache_files(version_dir) == [f"{length_cache.PREFIX}.{s}.npz" for s in ("test", "validation")]

def test_a_rebuilt_or_damaged_cache_is_recomputed(data_dir, decoded):
    source = _open(data_dir)
    expected = data_sources.example_lengths(source)
    (shard,) = [fi.filename for fi in source.dataset_info.splits["validation"].file_instructions]
    os.utime(shard, ns=(os.stat(shard).st_atime_ns, os.stat(shard).st_mtime_ns + 1))  # rebuilt: new file
    decoded.clear()
    np.testing.assert_array_equal(data_sources.example_lengths(_open(data_dir)), expected)
    assert len(decoded) == 40
    cache = os.path.join(os.fspath(source.dataset_info.data_dir), f"{length_cache.PREFIX}.validation.npz")
    with open(cache, "wb") as f:
        f.write(b"not an npz")
    decoded.clear()
    np.testing.assert_array_equal(data_sources.example_lengths(_open(data_dir)), expected)
    assert len(decoded) == 40
    decoded.clear()
    np.testing.assert_array_equal(data_sources.example_lengths(_open(data_dir)), expected)  # rewritten
    assert decoded == []


def test_read_only_dataset_uses_the_user_cache_or_none(data_dir, decoded, tmp_path, monkeypatch):
    source = _open(data_dir)
    version_dir = os.fspath(source.dataset_info.data_dir)
    real_mkstemp = tempfile.mkstemp
    refused = [version_dir]  # tests run as root, which chmod cannot stop: refuse in mkstemp instead

    def mkstemp(*args, dir=None, **kwargs):
        if any(os.path.abspath(dir).startswith(r) for r in refused):
            raise PermissionError(13, "Read-only file system", dir)
        return real_mkstemp(*args, dir=dir, **kwargs)

    monkeypatch.setattr(tempfile, "mkstemp", mkstemp)
    expected = data_sources.example_lengths(source)
    assert _cache_files(version_dir) == []
    user = tmp_path / "user_cache" / "vgs_jax" / "lengths"
    assert [n.split(".")[0] for n in os.listdir(user)] == ["validation"]
    decoded.clear()
    np.testing.assert_array_equal(data_sources.example_lengths(_open(data_dir)), expected)
    assert decoded == []
    # Nothing writable at all: lengths are still right, computed each time.
    shutil.rmtree(user)
    refused.append(str(tmp_path / "user_cache"))
    for _ in range(2):
        decoded.clear()
        np.testing.assert_array_equal(data_sources.example_lengths(_open(data_dir)), expected)
        assert len(decoded) == 40
    assert not os.path.exists(user) or os.listdir(user) == []


def test_plain_sources_are_not_cached(decoded):
    source = [{"audio": np.ones(n, np.int16)} for n in (5, 7)]
    assert length_cache.cache_key(source) is None
    np.testing.assert_array_equal(data_sources.example_lengths(source), [5, 7])
