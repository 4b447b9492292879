"""Opening prepared datasets as random-access sources of example dicts, and reading their audio.

A *source* is any random-access sequence of example dicts (``len`` + ``[i]``): what
``open_split`` returns (``tfds.data_source``, array_record, no TensorFlow) or a plain list.
``vgs_jax.input_pipeline`` turns a source into padded, sharded batches.
"""
from __future__ import annotations

import importlib
from typing import Sequence

import numpy as np

from vgs_jax import dataset_files
from vgs_jax import length_cache


def open_split(name: str, split: str, *, data_dir: str,
               build_if_missing: bool = False, image_key: str = "image",
               image_features_model: str | None = None) -> Sequence[dict]:
    """Opens a prepared TFDS split (array_record) as a random-access source; no TensorFlow.

    ``name`` is e.g. ``"spoken_shapes/tiny"``. Importing ``tfds_builders.<base name>`` (when it
    exists) registers the builder. Raises FileNotFoundError when the dataset is not prepared in
    ``data_dir`` (unless ``build_if_missing``), ValueError for an unknown split. Reading an
    example from a damaged shard raises ``dataset_files.CorruptDatasetError`` naming the file and
    how to rebuild. With ``image_key="image_features"`` on a dataset that stores no such field,
    examples get their vectors from the image feature store beside the dataset (see
    ``_join_image_features``). TFDS start-up warnings that ask nothing of the user are silenced
    (``dataset_files.quiet_tfds_logs``).
    """
    import tensorflow_datasets as tfds  # deferred: costs ~0.4 s to import

    dataset_files.quiet_tfds_logs()

    base = name.split("/")[0].split(":")[0]
    module = f"tfds_builders.{base}"
    try:
        importlib.import_module(module)
    except ModuleNotFoundError as e:
        if e.name not in (module, "tfds_builders"):
            raise
    builder = tfds.builder(name, data_dir=data_dir, file_format="array_record")
    if not builder.is_prepared():
        if not build_if_missing:
            raise FileNotFoundError(
                f"Dataset {name!r} is not prepared in data_dir={data_dir!r}. Build it with "
                f"open_split(..., build_if_missing=True) (config: build_if_missing) or "
                f"`{dataset_files.build_command(name, data_dir)}`, or point data_dir at a prepared copy."
                + dataset_files.version_advice(builder, name, data_dir))
        builder.download_and_prepare()
    available = sorted(builder.info.splits.keys())
    if split not in available:
        raise ValueError(f"Unknown split {split!r} for dataset {name!r}; available splits: "
                         f"{available}." + dataset_files.version_advice(builder, name, data_dir))
    source = dataset_files.check_reads(builder.as_data_source(split=split), builder, split, name=name,
                                       data_dir=data_dir)
    if image_key == "image_features" and "image_features" not in builder.info.features:
        source = _join_image_features(source, builder.data_dir, name, data_dir,
                                      image_features_model)
    return source


def open_config_split(data_config, split: str, *, build_if_missing: bool = False) -> Sequence[dict]:
    """`open_split` for a config's `dataset` fields (name, data_dir, image_key, image_features_model)."""
    return open_split(data_config.name, split, data_dir=data_config.data_dir, build_if_missing=build_if_missing,
                      image_key=data_config.image_key,
                      image_features_model=data_config.get("image_features_model"))

def _join_image_features(source, dataset_dir: str, name: str, data_dir: str,
                         model: str | None) -> Sequence[dict]:
    """Wraps ``source`` so each example gains ``image_features`` (float32 [D]) by ``image_id``
    from ``<dataset_dir>/image_features/<model>.npy`` (the only store there when ``model`` is
    None). FileNotFoundError with the exact ``python -m vgs_jax.extract_image_features ...``
    command when there is no store."""
    from vgs_jax import image_feature_store

    return image_feature_store.join_source(source, dataset_dir, dataset=name, data_dir=data_dir,
                                           model=model)


def example_lengths(source: Sequence[dict]) -> np.ndarray:
    """Waveform length in samples of every example: int64 ``[len(source)]``.

    For TFDS data sources only the audio is decoded (images are skipped), which keeps this one
    pass cheap, and the result is cached beside the dataset (`length_cache`: later calls, e.g.
    every training start, read it instead); other sources are read example by example. Empty
    audio raises ValueError.
    """
    n = check_source(source)
    if hasattr(source, "example_lengths"):  # e.g. caption_mix.MixedSource: from its sources
        return np.asarray(source.example_lengths(), np.int64)
    cached = length_cache.load(source)
    if cached is not None:
        return cached
    info = getattr(source, "dataset_info", None)
    raw = getattr(source, "data_source", None)
    out = np.zeros(n, np.int64)
    if info is not None and raw is not None and hasattr(raw, "__getitems__"):
        import tensorflow_datasets as tfds

        features = info.features
        if "audio" not in features:
            raise KeyError(f"Dataset {info.name!r} has no feature 'audio'; features present: "
                           f"{sorted(features.keys())}.")
        skip = {k: tfds.decode.SkipDecoding() for k, f in features.items()
                if isinstance(f, tfds.features.Image)}
        for start in range(0, n, 1024):
            keys = list(range(start, min(start + 1024, n)))
            for i, rec in zip(keys, raw.__getitems__(keys)):
                ex = features.deserialize_example_np(rec, decoders=skip)
                out[i] = waveform(ex, i).shape[0]
        length_cache.store(source, out)
    else:
        for i in range(n):
            out[i] = waveform(source[i], i).shape[0]
    return out


def check_source(source) -> int:
    try:
        n = len(source)
    except TypeError as e:
        raise ValueError(f"source must be a random-access sequence of example dicts, got "
                         f"{type(source).__name__}.") from e
    if n == 0:
        raise ValueError("source is empty (0 examples); check the dataset name, split and "
                         "data_dir.")
    return n


def waveform(ex: dict, index: int) -> np.ndarray:
    if "audio" not in ex:
        raise KeyError(f"example {index} has no key 'audio'; keys present: {sorted(ex)}.")
    audio = np.asarray(ex["audio"])
    if audio.ndim != 1 or audio.shape[0] == 0:
        raise ValueError(f"audio of caption_id={ex.get('caption_id')} (example {index}) has "
                         f"shape {audio.shape}; expected a non-empty mono waveform [num_samples].")
    return audio
