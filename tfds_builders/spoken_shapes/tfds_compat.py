"""Lets TFDS 4.9.10 write splits larger than 1 GB without TensorFlow.

TFDS's writer shuffles a split in memory up to `shuffle.MAX_MEM_BUFFER_SIZE` (1 GB) and then
spills the records into 1000 temporary bucket files opened with `tf.io.gfile`, so building a
split that large without TensorFlow fails with
`ModuleNotFoundError: No module named 'tensorflow'` (from `shuffle._Bucket.add`).
`tf_free_shuffle_buckets()` swaps that bucket file I/O for plain Python files, keeping the same
record layout (key 16 bytes | size 8 bytes | data), for as long as it is active. If TFDS no
longer has the private class it patches, it changes nothing.
"""

from __future__ import annotations

import contextlib
import errno
import os
import struct

from tensorflow_datasets.core import shuffle

_METHODS = ("add", "flush", "read_values", "del_file")


def _add(self, key, data: bytes) -> None:
    if not self._fobj:
        os.makedirs(os.path.dirname(os.fspath(self._path)), exist_ok=True)
        try:
            self._fobj = open(os.fspath(self._path), "wb")  # pylint: disable=consider-using-with
        except OSError as e:
            if e.errno != errno.EMFILE:  # Too many open files: 1000 buckets are open at once.
                raise
            shuffle._increase_open_files_limit()  # pylint: disable=protected-access
            self._fobj = open(os.fspath(self._path), "wb")  # pylint: disable=consider-using-with
    self._fobj.write(shuffle._hkey_to_bytes(key))  # pylint: disable=protected-access
    self._fobj.write(struct.pack("=Q", len(data)))
    self._fobj.write(data)
    self._length += 1
    self._size += len(data)


def _flush(self) -> None:
    if self._fobj:
        self._fobj.flush()
        self._fobj.close()


def _read_values(self):
    self.flush()
    path = os.fspath(self._path)
    if not os.path.exists(path):  # Bucket created but never written.
        return
    with open(path, "rb") as f:
        while True:
            key_bytes = f.read(shuffle.HKEY_SIZE_BYTES)
            if not key_bytes:
                break
            size = struct.unpack("=Q", f.read(8))[0]
            yield shuffle._read_hkey(key_bytes), f.read(size)  # pylint: disable=protected-access


def _del_file(self) -> None:
    path = os.fspath(self._path)
    if os.path.exists(path):
        os.remove(path)


@contextlib.contextmanager
def tf_free_shuffle_buckets():
    """Context in which TFDS's shuffle buckets use plain files instead of tf.io.gfile."""
    bucket = getattr(shuffle, "_Bucket", None)
    helpers = ("_hkey_to_bytes", "_read_hkey", "_increase_open_files_limit", "HKEY_SIZE_BYTES")
    if bucket is None or not all(m in vars(bucket) for m in _METHODS) or not all(
            hasattr(shuffle, h) for h in helpers):
        yield
        return
    saved = {m: vars(bucket)[m] for m in _METHODS}
    for name, fn in zip(_METHODS, (_add, _flush, _read_values, _del_file)):
        setattr(bucket, name, fn)
    try:
        yield
    finally:
        for name, fn in saved.items():
            setattr(bucket, name, fn)
