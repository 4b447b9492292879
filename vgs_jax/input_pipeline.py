"""TFDS data source -> grain -> padded, length-bucketed, device-sharded batches.

A *source* is any random-access sequence of example dicts (``len`` + ``[i]``), e.g. what
``data_sources.open_split`` returns or a plain list.
Each example needs ``audio`` (int16 waveform ``[num_samples]``, 16 kHz), the image key
(``image`` uint8 ``[H, W, 3]`` or ``image_features`` float ``[D_img]``), ``image_id`` and
``caption_id``. Other keys are ignored, unless ``example_fields`` (a function example -> {name:
fixed-shape array}, e.g. the keyword targets of ``vgs_jax.kws.keywords``) adds fields to the batch
(zeros in padding rows).

Batches are dicts of host-local NumPy arrays (``B`` = this host's share of the padded batch)::

    audio         float32 [B, T, D]  features; the featurizer's ``pad_value`` beyond each length
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
``data_sources.example_lengths``). ``T`` is computed from the global batch, so all hosts agree; this
assumes the number of feature frames never decreases as the number of samples grows.
"""
from __future__ import annotations

import math
import sys
import threading
from typing import Any, Iterator, Sequence

import grain
import jax
import numpy as np
from jax.sharding import NamedSharding, PartitionSpec as P

from vgs_jax import data_sources
from vgs_jax.audio_features import Featurizer

PAD_MULTIPLE = 64  # frames; padding unit when neither buckets nor max_frames are given
_REQUIRED = ("audio", "image_id", "caption_id")
_INT32_MAX = np.iinfo(np.int32).max


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


def make_train_iterator(source: Sequence[dict], *, global_batch_size: int, featurizer: Featurizer,
                        seed: int, max_frames: int | None,
                        bucket_boundaries: Sequence[int] | None, image_key: str = "image", num_epochs: int | None = None,
                        shard_index: int | None = None, shard_count: int | None = None,
                        bucket_window: int = 8, num_threads: int = 4,
                        prefetch_batches: int = 8,
                        lengths: np.ndarray | None = None,
                        example_fields=None) -> grain.DatasetIterator:
    """Checkpointable iterator of this host's share of each training batch (see module doc).

    ``num_epochs=None`` repeats forever. ``lengths`` (from ``data_sources.example_lengths``) may be passed to
    skip the length pass. The iterator supports ``get_state()`` / ``set_state(state)``.
    """
    n = data_sources.check_source(source)
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
    maker = _BatchMaker(source, featurizer, max_frames, bucket_boundaries, image_key, example_fields)
    _check_example(source[0], 0, image_key)
    if lengths is None and (maker.boundaries is not None or (shard_count > 1 and maker.dynamic)):
        lengths = data_sources.example_lengths(source)
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


def make_eval_batches(source: Sequence[dict], *, batch_size: int, featurizer: Featurizer,
                      max_frames: int | None, bucket_boundaries: Sequence[int] | None,
                      image_key: str = "image",
                      shard_index: int | None = None, shard_count: int | None = None,
                      num_threads: int = 4, prefetch_batches: int = 8,
                      lengths: np.ndarray | None = None, example_fields=None) -> Iterator[dict[str, np.ndarray]]:
    """Every example exactly once, in split order; this host's share of each global batch.

    Each global batch holds ``batch_size`` examples (the last one fewer) and padding rows
    (``example_mask`` False) up to ``padded_batch_size(batch_size)`` rows. A split smaller than
    ``batch_size`` gives one padded batch. ``example_fields`` adds fields as in training.
    """
    n = data_sources.check_source(source)
    padded, local_b, shard_index, shard_count = _shards(batch_size, shard_index, shard_count)
    maker = _BatchMaker(source, featurizer, max_frames, bucket_boundaries, image_key, example_fields)
    _check_example(source[0], 0, image_key)
    if lengths is None and shard_count > 1 and maker.dynamic:
        lengths = data_sources.example_lengths(source)
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

    def __init__(self, source, featurizer, max_frames, boundaries, image_key, example_fields=None):
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
        self.source, self.featurizer, self.max_frames = source, featurizer, max_frames
        self.boundaries, self.pad_value, self.image_key = boundaries, float(featurizer.pad_value), image_key
        self.example_fields = example_fields
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
        feats = np.asarray(self.featurizer(data_sources.waveform(ex, index)), np.float32)
        d = self.featurizer.num_features
        if feats.ndim != 2 or feats.shape[0] == 0 or feats.shape[1] != d:
            raise ValueError(f"the featurizer returned shape {feats.shape} for caption_id="
                             f"{ex['caption_id']} (example {index}); expected [frames>0, {d}] "
                             f"(its num_features).")
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
        # A host's share of the last eval batch may be all padding: its image shape from example 0.
        template = exs[0] if real else self.source[0]
        batch = self._collate(rows, exs, feats, self.padded_length(longest), _image(template, self.image_key))
        if self.example_fields is not None:
            batch.update(_extra_fields(self.example_fields, rows, exs, template))
        return batch

    def _collate(self, rows, exs, feats, t, first):
        b = len(rows)
        audio = np.full((b, t, self.featurizer.num_features), self.pad_value, np.float32)
        lens = np.zeros(b, np.int32)
        ids = np.full((2, b), -1, np.int64)
        images = np.zeros((b,) + first.shape, first.dtype)
        j = 0
        for r, i in enumerate(rows):
            if i < 0:
                continue
            f, ex = feats[j], exs[j]
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


def _extra_fields(fields, rows, exs, template) -> dict[str, np.ndarray]:
    """{name: [B, ...]} of `fields(example)` for the real rows, zeros in padding rows."""
    shapes = {k: np.asarray(v) for k, v in fields(template).items()}
    out = {k: np.zeros((len(rows),) + v.shape, v.dtype) for k, v in shapes.items()}
    real = [r for r, i in enumerate(rows) if i >= 0]
    for r, ex in zip(real, exs):
        for k, v in fields(ex).items():
            out[k][r] = v
    return out


def _check_lengths(lengths, n: int) -> np.ndarray:
    lengths = np.asarray(lengths, np.int64)
    if lengths.shape != (n,):
        raise ValueError(f"lengths has shape {lengths.shape}; expected ({n},), one per example "
                         f"(use data_sources.example_lengths(source)).")
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
