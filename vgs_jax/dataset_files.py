"""The files of a prepared TFDS dataset: clear errors when a shard is corrupt, quiet TFDS start-up.

`check_reads(source, builder, split)` makes every read of a TFDS data source (``source[i]``,
``source.__getitems__``, and reads through its raw ``data_source``, e.g. `data_sources.example_lengths`)
turn the array_record reader's errors (``RuntimeError: Corrupted Riegeli/records file: chunk data hash
mismatch ...`` for a garbled file, ``Invalid Riegeli/records file ...`` for a truncated one) into a
`CorruptDatasetError` that names the shard file and says how to rebuild the dataset.

`quiet_tfds_logs()` drops two TFDS warnings a first run prints that ask nothing of the user: "Variant
folder <dir> has no dataset_info.json" (TFDS looking at the version folder of a dataset it is about to
build) and "OpenCV is not installed ... Defaulting to PIL" (PIL decodes our images). It filters those
records on the ``absl`` logger only; every other warning still shows.
"""
from __future__ import annotations

import bisect
import logging
import os
from typing import Any, Sequence

_READ_ERRORS = (RuntimeError, OSError)  # what the array_record reader raises for a bad file


class CorruptDatasetError(RuntimeError):
    """A dataset file cannot be read (truncated, garbled or missing); the message, one line, names
    the file and says how to rebuild the dataset."""


def build_command(name: str, data_dir: str) -> str:
    """The shell command that prepares dataset `name` (e.g. "spoken_shapes/tiny") in `data_dir`."""
    base = name.split("/")[0].split(":")[0]
    return (f"python -c \"import tfds_builders.{base}, tensorflow_datasets as tfds; "
            f"tfds.builder('{name}', data_dir='{data_dir}', file_format='array_record')"
            f".download_and_prepare()\"")


def version_advice(builder, name: str, data_dir: str) -> str:
    """" 'name' is version X; this builder also makes [...]: pin one as ..." for errors about `builder`
    (opened as `name`; a prepared dataset opens as TFDS's read-only builder, so the versions are read
    from the registered builder class): which of them `data_dir` holds, and how to pin one."""
    import tensorflow_datasets as tfds  # pylint: disable=import-outside-toplevel  (the caller imported it)

    try:
        cls = tfds.builder_cls(builder.name)
    except tfds.core.registered.DatasetNotFoundError:
        cls = type(builder)
    current = str(builder.version)
    others = sorted({str(v) for v in (cls.VERSION, *cls.SUPPORTED_VERSIONS) if v} - {current})
    if not others:
        return ""
    config_dir = os.path.join(data_dir, *builder.name.split("/"),
                              *([builder.builder_config.name] if builder.builder_config else []))
    prepared = sorted(v for v in others if os.path.isfile(os.path.join(config_dir, v, "dataset_info.json")))
    unpinned = name.split(":")[0]
    advice = (f" {name!r} is version {current}; this builder also makes {others}: pin one as "
              f"'{unpinned}:{others[0]}'")
    if prepared:
        advice += f" ({data_dir!r} holds {prepared})"
    return advice + "."


def rebuild_advice(name: str, data_dir: str, version_dir: str, manual: bool) -> str:
    """How to rebuild a prepared dataset whose files are damaged (`version_dir` holds its shards)."""
    base = name.split("/")[0].split(":")[0]
    advice = (f"Rebuild the dataset: delete {version_dir} and run again with build_if_missing=True "
              f"(config: dataset.build_if_missing), or run `{build_command(name, data_dir)}`.")
    if manual:
        manual_dir = os.path.join(data_dir, "downloads", "manual")
        advice += (f" It is rebuilt from the corpus files in {manual_dir}/{base}/ (or {manual_dir}/): "
                   "keep those.")
    return advice


class _CheckedRecords:
    """A TFDS source's raw record reader (``len``, ``[key]``, ``__getitems__(keys)`` -> bytes) whose
    read errors become CorruptDatasetError naming the shard that holds the record."""

    def __init__(self, records, files: Sequence[tuple[str, int]], describe: str, advice: str):
        self._records = records
        self._paths = [path for path, _ in files]
        self._ends = []
        total = 0
        for _, count in files:
            total += count
            self._ends.append(total)
        self._describe, self._advice = describe, advice

    def _file_of(self, key: int) -> str:
        return self._paths[min(bisect.bisect_right(self._ends, int(key)), len(self._paths) - 1)]

    def _error(self, path: str, error: Exception) -> CorruptDatasetError:
        reason = " ".join(str(error).split())  # one line
        return CorruptDatasetError(f"Dataset file {path} ({self._describe}) cannot be read: it is truncated, "
                                   f"corrupt or missing ({type(error).__name__}: {reason}). {self._advice}")

    def __len__(self) -> int:
        return len(self._records)

    def __getitem__(self, key) -> Any:
        try:
            return self._records[key]
        except _READ_ERRORS as e:
            raise self._error(self._file_of(key), e) from e

    def __getitems__(self, keys: Sequence[int]) -> Sequence[Any]:
        try:
            return self._records.__getitems__(keys)
        except _READ_ERRORS as e:
            first_error = e
        by_file: dict[str, list[int]] = {}
        for key in keys:
            by_file.setdefault(self._file_of(key), []).append(key)
        for path, file_keys in by_file.items():  # which shard fails on its own
            try:
                self._records.__getitems__(file_keys)
            except _READ_ERRORS as e:
                raise self._error(path, e) from e
        raise self._error(" / ".join(by_file), first_error) from first_error


def check_reads(source, builder, split: str, *, name: str, data_dir: str):
    """Wraps the raw reader of TFDS data source `source` (of `builder`'s `split`) in place, so read
    errors raise CorruptDatasetError (see module doc); returns `source`."""
    files = [(fi.filename, fi.take) for fi in builder.info.splits[split].file_instructions]
    manual = bool(getattr(builder, "MANUAL_DOWNLOAD_INSTRUCTIONS", None))
    advice = rebuild_advice(name, data_dir, os.fspath(builder.data_dir), manual)
    source.data_source = _CheckedRecords(source.data_source, files, f"dataset {name!r}, split {split!r}",
                                         advice)
    return source


class _NotActionableTfdsWarnings(logging.Filter):
    """Drops the two TFDS start-up warnings named in the module doc; passes everything else."""

    def filter(self, record: logging.LogRecord) -> bool:
        msg = record.msg if isinstance(record.msg, str) else ""
        if msg.startswith("OpenCV is not installed. We recommend using OpenCV"):
            return False
        args = record.args if isinstance(record.args, tuple) else ()
        return not (msg == "Variant folder %s has no %s" and args and args[-1] == "dataset_info.json")


def quiet_tfds_logs() -> None:
    """Installs the filter on the ``absl`` logger (which TFDS logs through); idempotent."""
    logger = logging.getLogger("absl")
    if not any(isinstance(f, _NotActionableTfdsWarnings) for f in logger.filters):
        logger.addFilter(_NotActionableTfdsWarnings())
