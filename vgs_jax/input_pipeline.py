"""TFDS data source -> grain -> padded, length-bucketed, device-sharded batches.

A *source* is any random-access sequence of example dicts (``len`` + ``[i]``), e.g. what
``open_split`` returns (``tfds.data_source``, array_record, no TensorFlow) or a plain list.
Each example needs ``audio`` (int16 waveform ``[num_samples]``, 16 kHz), the image key
(``image`` uint8 ``[H, W, 3]`` or ``image_features`` float ``[D_img]``), ``image_id`` and
``caption_id``. Other keys are ignored.

Batches are dicts of host-local NumPy arrays (``B`` = this host's share of the padded batch)::

    audio         float32 [B, T, D]  features; ``pad_value`` beyond each length
    audio_mask    bool    [B, T]     True on valid frames
    audio_len     int32   [B]        valid frames per row (0 for padding rows)
    <image_key>   uint8 [B, H, W, 3] or float32 [B, D_img] (zeros in padding rows)
    image_id      int32   [B]        (-1 in padding rows)
    caption_id    int32   [B]        (-1 in padding rows)
    example_mask  bool    [B]        False only for padding rows (below)

Padding rows. A global batch of ``b`` examples is padded to ``padded_batch_size(b)`` rows, the
next multiple of the device count, so any batch size runs on any number of devices and every
host holds the same number of rows. The padding rows come after the examples in the global batch
(so on the last hosts), as do the missing examples of the final eval batch. Losses, BatchNorm
statistics and codebook updates skip them via ``example_mask`` / ``audio_len`` 0.

Padded length ``T`` (so ``jax.jit`` compiles a bounded number of times):

- ``bucket_boundaries`` given: the smallest boundary >= the longest (truncated) utterance of
  the *global* batch. With ``max_frames``, boundaries >= max_frames are replaced by max_frames
  itself. Without ``max_frames``, an utterance longer than the last boundary pads to a
  multiple of the last boundary.
- no buckets, ``max_frames`` given: always ``max_frames``.
- neither: the longest length rounded up to a multiple of ``PAD_MULTIPLE`` frames.

Training order: per epoch a permutation drawn from ``(seed, epoch)``; with buckets, windows of
``global_batch_size * bucket_window`` shuffled examples are sorted by waveform length and cut
into batches, and the batch order is shuffled. The incomplete last batch is dropped. The plan
is a pure function of ``(seed, epoch)``, so the grain iterator state (``{"next_index": k}``)
resumes the exact sequence. Lengths for bucketing are read once per call (see
``example_lengths``). ``T`` is computed from the global batch, so all hosts agree; this
assumes the number of feature frames never decreases as the number of samples grows.
"""
from __future__ import annotations

import importlib
import math
import sys
import threading
from typing import Any, Callable, Iterator, Sequence

import grain
import jax
import numpy as np
from jax.sharding import NamedSharding, PartitionSpec as P

from vgs_jax import dataset_files

PAD_MULTIPLE = 64  # frames; padding unit when neither buckets nor max_frames are given
_REQUIRED = ("audio", "image_id", "caption_id")
_INT32_MAX = np.iinfo(np.int32).max

Featurize = Callable[[np.ndarray], np.ndarray]


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
                f"`{dataset_files.build_command(name, data_dir)}`, or point data_dir at a prepared copy.")
        builder.download_and_prepare()
    available = sorted(builder.info.splits.keys())
    if split not in available:
        raise ValueError(f"Unknown split {split!r} for dataset {name!r}; available splits: "
                         f"{available}.")
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


# ---- Precomputed image vectors (see vgs_jax/image_feature_store.py) -------------------

def _join_image_features(source, dataset_dir: str, name: str, data_dir: str,
                         model: str | None) -> Sequence[dict]:
    """Wraps ``source`` so each example gains ``image_features`` (float32 [D]) by ``image_id``
    from ``<dataset_dir>/image_features/<model>.npy`` (the only store there when ``model`` is
    None). FileNotFoundError with the exact ``python -m vgs_jax.extract_image_features ...``
    command when there is no store."""
    from vgs_jax import image_feature_store

    return image_feature_store.join_source(source, dataset_dir, dataset=name, data_dir=data_dir,
                                           model=model)


# ---- Batching -------------------------------------------------------------------------------



def example_lengths(source: Sequence[dict]) -> np.ndarray:
    """Waveform length in samples of every example: int64 ``[len(source)]``.

    For TFDS data sources only the audio is decoded (images are skipped), which keeps this one
    pass cheap; other sources are read example by example. Empty audio raises ValueError.
    """
    n = _check_source(source)
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
                out[i] = _audio(ex, i).shape[0]
    else:
        for i in range(n):
            out[i] = _audio(source[i], i).shape[0]
    return out


def data_mesh() -> jax.sharding.Mesh:
    """1-D mesh named ``("data",)`` over all devices, Auto axis type (classic GSPMD)."""
    return jax.make_mesh((jax.device_count(),), ("data",),
                         axis_types=(jax.sharding.AxisType.Auto,))


def shard_batch(batch: dict[str, np.ndarray], mesh: jax.sharding.Mesh) -> dict[str, jax.Array]:
    """Host-local batch -> global ``jax.Array``s sharded ``P("data")`` on the leading axis.

    Each process passes its own rows; the global leading size is the sum over processes.
    """
    if "data" not in mesh.axis_names:
        raise ValueError(f"shard_batch needs a mesh with a 'data' axis; got axes "
                         f"{mesh.axis_names}. Use input_pipeline.data_mesh().")
    local = len({d for d in mesh.devices.flat if d.process_index == jax.process_index()})
    sharding = NamedSharding(mesh, P("data"))
    out = {}
    for key, value in batch.items():
        value = np.asarray(value)
        if value.ndim == 0 or value.shape[0] % local:
            raise ValueError(f"batch[{key!r}] has shape {value.shape}; its leading (batch) size "
                             f"must be a multiple of the {local} local devices.")
        out[key] = jax.make_array_from_process_local_data(sharding, value)
    return out


def make_train_iterator(source: Sequence[dict], *, global_batch_size: int, featurize: Featurize,
                        seed: int, max_frames: int | None,
                        bucket_boundaries: Sequence[int] | None, pad_value: float,
                        image_key: str = "image", num_epochs: int | None = None,
                        shard_index: int | None = None, shard_count: int | None = None,
                        bucket_window: int = 8, num_threads: int = 4,
                        prefetch_batches: int = 8,
                        lengths: np.ndarray | None = None) -> grain.DatasetIterator:
    """Checkpointable iterator of this host's share of each training batch (see module doc).

    ``num_epochs=None`` repeats forever. ``lengths`` (from ``example_lengths``) may be passed to
    skip the length pass. The iterator supports ``get_state()`` / ``set_state(state)``.
    """
    n = _check_source(source)
    padded, local_b, shard_index, shard_count = _shards(global_batch_size, shard_index, shard_count)
    if global_batch_size > n:
        raise ValueError(f"global_batch_size={global_batch_size} is larger than the split "
                         f"({n} examples); use global_batch_size <= {n}.")
    if not isinstance(seed, (int, np.integer)):
        raise ValueError(f"seed must be an int, got {seed!r}.")
    if bucket_window < 1:
        raise ValueError(f"bucket_window must be >= 1, got {bucket_window}.")
    if num_epochs is not None and num_epochs < 1:
        raise ValueError(f"num_epochs must be >= 1 or None (forever), got {num_epochs}.")
    maker = _BatchMaker(source, featurize, max_frames, bucket_boundaries, pad_value, image_key)
    _check_example(source[0], 0, image_key)
    if lengths is None and (maker.boundaries is not None or (shard_count > 1 and maker.dynamic)):
        lengths = example_lengths(source)
    maker.lengths = None if lengths is None else _check_lengths(lengths, n)
    steps = n // global_batch_size
    plans = _EpochPlans(n, global_batch_size, int(seed), maker.boundaries is not None,
                        bucket_window, maker.lengths)
    lo = shard_index * local_b

    def load(step: int) -> dict[str, np.ndarray]:
        epoch, pos = divmod(step, steps)
        rows = np.pad(plans.get(epoch)[pos], (0, padded - global_batch_size), constant_values=-1)
        return maker(rows, lo, lo + local_b)

    total = sys.maxsize if num_epochs is None else steps * num_epochs
    ds = grain.MapDataset.range(total).map(load)
    return iter(ds.to_iter_dataset(_read_options(num_threads, prefetch_batches)))


def make_eval_batches(source: Sequence[dict], *, batch_size: int, featurize: Featurize,
                      max_frames: int | None, bucket_boundaries: Sequence[int] | None,
                      pad_value: float, image_key: str = "image",
                      shard_index: int | None = None, shard_count: int | None = None,
                      num_threads: int = 4, prefetch_batches: int = 8,
                      lengths: np.ndarray | None = None) -> Iterator[dict[str, np.ndarray]]:
    """Every example exactly once, in split order; this host's share of each global batch.

    Each global batch holds ``batch_size`` examples (the last one fewer) and padding rows
    (``example_mask`` False) up to ``padded_batch_size(batch_size)`` rows. A split smaller than
    ``batch_size`` gives one padded batch.
    """
    n = _check_source(source)
    padded, local_b, shard_index, shard_count = _shards(batch_size, shard_index, shard_count)
    maker = _BatchMaker(source, featurize, max_frames, bucket_boundaries, pad_value, image_key)
    _check_example(source[0], 0, image_key)
    if lengths is None and shard_count > 1 and maker.dynamic:
        lengths = example_lengths(source)
    maker.lengths = None if lengths is None else _check_lengths(lengths, n)
    steps = -(-n // batch_size)
    order = np.full(steps * batch_size, -1, np.int64)
    order[:n] = np.arange(n)
    order = np.pad(order.reshape(steps, batch_size), ((0, 0), (0, padded - batch_size)),
                   constant_values=-1)
    lo = shard_index * local_b
    ds = grain.MapDataset.range(steps).map(lambda s: maker(order[s], lo, lo + local_b))
    return iter(ds.to_iter_dataset(_read_options(num_threads, prefetch_batches)))


class _EpochPlans:
    """Example indices per epoch, ``int64 [steps, global_batch]``, from (seed, epoch) alone."""

    def __init__(self, n, batch, seed, bucketed, window, lengths):
        self._args = (n, batch, seed, bucketed, window, lengths)
        self._cache: dict[int, np.ndarray] = {}
        self._lock = threading.Lock()

    def get(self, epoch: int) -> np.ndarray:
        with self._lock:
            if epoch not in self._cache:
                if len(self._cache) >= 2:  # prefetch threads touch at most two epochs at once
                    self._cache.pop(min(self._cache))
                self._cache[epoch] = self._plan(epoch)
            return self._cache[epoch]

    def _plan(self, epoch: int) -> np.ndarray:
        n, batch, seed, bucketed, window, lengths = self._args
        rng = np.random.default_rng([seed & 0xFFFFFFFFFFFFFFFF, epoch])
        steps = n // batch
        perm = rng.permutation(n)[:steps * batch]
        if not bucketed:
            return perm.reshape(steps, batch)
        chunks = []
        for start in range(0, perm.size, batch * window):
            chunk = perm[start:start + batch * window]
            chunks.append(chunk[np.argsort(lengths[chunk], kind="stable")])
        return np.concatenate(chunks).reshape(steps, batch)[rng.permutation(steps)]


class _BatchMaker:
    """Reads, featurises, truncates, pads and collates rows ``[lo, hi)`` of a global batch."""

    def __init__(self, source, featurize, max_frames, boundaries, pad_value, image_key):
        if max_frames is not None and max_frames < 1:
            raise ValueError(f"max_frames must be a positive int or None, got {max_frames}.")
        if boundaries is not None:
            b = [int(x) for x in boundaries]
            if not b or b[0] < 1 or any(x >= y for x, y in zip(b, b[1:])):
                raise ValueError(f"bucket_boundaries must be non-empty, positive and strictly "
                                 f"increasing, got {list(boundaries)}.")
            if max_frames is not None:
                b = [x for x in b if x < max_frames] + [max_frames]
            boundaries = b
        self.source, self.featurize, self.max_frames = source, featurize, max_frames
        self.boundaries, self.pad_value, self.image_key = boundaries, float(pad_value), image_key
        self.dynamic = boundaries is not None or max_frames is None  # T depends on the data
        self.lengths: np.ndarray | None = None

    def padded_length(self, longest: int) -> int:
        """Padded frame count T for a batch whose longest (truncated) utterance has ``longest``."""
        if self.boundaries is None:
            if self.max_frames is not None:
                return self.max_frames
            return PAD_MULTIPLE * max(1, -(-longest // PAD_MULTIPLE))
        for b in self.boundaries:
            if b >= longest:
                return b
        last = self.boundaries[-1]
        return last * -(-longest // last)

    def features(self, ex: dict, index: int) -> np.ndarray:
        feats = np.asarray(self.featurize(_audio(ex, index)), np.float32)
        if feats.ndim != 2 or feats.shape[0] == 0:
            raise ValueError(f"featurize returned shape {feats.shape} for caption_id="
                             f"{ex['caption_id']} (example {index}); expected [frames>0, D].")
        return feats if self.max_frames is None else feats[:self.max_frames]

    def __call__(self, indices: np.ndarray, lo: int, hi: int) -> dict[str, np.ndarray]:
        rows = [int(i) for i in indices[lo:hi]]
        real = [i for i in rows if i >= 0]
        exs = _read(self.source, real)
        for i, ex in zip(real, exs):
            _check_example(ex, i, self.image_key)
        feats = [self.features(ex, i) for i, ex in zip(real, exs)]
        longest = max((f.shape[0] for f in feats), default=0)
        valid = indices[indices >= 0]
        if self.dynamic and self.lengths is not None and valid.size > len(real):
            # Another host holds part of this batch: T must come from the whole batch.
            top = int(valid[np.argmax(self.lengths[valid])])
            if top not in real:
                longest = max(longest, self.features(_read(self.source, [top])[0], top).shape[0])
        if real:
            template, d = exs[0], feats[0].shape[1]
        else:  # a host's share of the last eval batch may be all padding
            template = self.source[0]
            d = self.features(template, 0).shape[1]
        return self._collate(rows, exs, feats, self.padded_length(longest), d,
                             _image(template, self.image_key))

    def _collate(self, rows, exs, feats, t, d, first):
        b = len(rows)
        audio = np.full((b, t, d), self.pad_value, np.float32)
        lens = np.zeros(b, np.int32)
        ids = np.full((2, b), -1, np.int64)
        images = np.zeros((b,) + first.shape, first.dtype)
        j = 0
        for r, i in enumerate(rows):
            if i < 0:
                continue
            f, ex = feats[j], exs[j]
            if f.shape[1] != d:
                raise ValueError(f"featurize returned {f.shape[1]} features for example {i} "
                                 f"but {d} for another; the feature size must be fixed.")
            audio[r, :f.shape[0]] = f
            lens[r] = f.shape[0]
            img = _image(ex, self.image_key)
            if img.shape != first.shape:
                raise ValueError(f"{self.image_key!r} of example {i} has shape {img.shape}, but "
                                 f"{first.shape} elsewhere in the batch; resize in the builder.")
            images[r] = img
            ids[:, r] = (ex["image_id"], ex["caption_id"])
            j += 1
        if ids.max() > _INT32_MAX:
            raise ValueError(f"image_id/caption_id {ids.max()} does not fit int32; renumber ids.")
        return {"audio": audio, "audio_mask": np.arange(t)[None, :] < lens[:, None],
                "audio_len": lens, self.image_key: images,
                "image_id": ids[0].astype(np.int32), "caption_id": ids[1].astype(np.int32),
                "example_mask": np.asarray(rows) >= 0}


def _check_source(source) -> int:
    try:
        n = len(source)
    except TypeError as e:
        raise ValueError(f"source must be a random-access sequence of example dicts, got "
                         f"{type(source).__name__}.") from e
    if n == 0:
        raise ValueError("source is empty (0 examples); check the dataset name, split and "
                         "data_dir.")
    return n


def _check_lengths(lengths, n: int) -> np.ndarray:
    lengths = np.asarray(lengths, np.int64)
    if lengths.shape != (n,):
        raise ValueError(f"lengths has shape {lengths.shape}; expected ({n},), one per example "
                         f"(use example_lengths(source)).")
    return lengths


def padded_batch_size(batch_size: int, shard_count: int | None = None) -> int:
    """Rows of a global batch of ``batch_size`` examples once padded: the next multiple of the
    device count (and of ``shard_count``, default the process count; it divides the device count
    on real hosts), so every device and every host holds the same number of rows."""
    if batch_size < 1:
        raise ValueError(f"batch size must be >= 1, got {batch_size}.")
    hosts = jax.process_count() if shard_count is None else int(shard_count)
    unit = math.lcm(jax.device_count(), hosts)
    return -(-batch_size // unit) * unit


def _shards(global_batch: int, shard_index, shard_count) -> tuple[int, int, int, int]:
    """(padded global batch, this host's rows, shard_index, shard_count)."""
    shard_index = jax.process_index() if shard_index is None else int(shard_index)
    shard_count = jax.process_count() if shard_count is None else int(shard_count)
    if not 0 <= shard_index < shard_count:
        raise ValueError(f"shard_index={shard_index} must be in [0, shard_count={shard_count}).")
    padded = padded_batch_size(global_batch, shard_count)
    return padded, padded // shard_count, shard_index, shard_count


def _check_example(ex: Any, index: int, image_key: str) -> None:
    if not isinstance(ex, dict):
        raise ValueError(f"example {index} is a {type(ex).__name__}, expected a dict.")
    for key in _REQUIRED + (image_key,):
        if key not in ex:
            raise KeyError(f"example {index} has no key {key!r}; keys present: {sorted(ex)}. "
                           f"(image_key selects the image field.)")


def _audio(ex: dict, index: int) -> np.ndarray:
    if "audio" not in ex:
        raise KeyError(f"example {index} has no key 'audio'; keys present: {sorted(ex)}.")
    audio = np.asarray(ex["audio"])
    if audio.ndim != 1 or audio.shape[0] == 0:
        raise ValueError(f"audio of caption_id={ex.get('caption_id')} (example {index}) has "
                         f"shape {audio.shape}; expected a non-empty mono waveform [num_samples].")
    return audio


def _image(ex: dict, key: str) -> np.ndarray:
    value = np.asarray(ex[key])
    return value if key == "image" else value.astype(np.float32)


def _read(source, indices: list[int]) -> list[dict]:
    if hasattr(source, "__getitems__"):
        return list(source.__getitems__(indices))
    return [source[i] for i in indices]


def _read_options(num_threads: int, prefetch_batches: int) -> grain.ReadOptions:
    if num_threads < 0 or prefetch_batches < 0:
        raise ValueError(f"num_threads ({num_threads}) and prefetch_batches "
                         f"({prefetch_batches}) must be >= 0.")
    return grain.ReadOptions(num_threads=num_threads, prefetch_buffer_size=prefetch_batches)
