"""Training sources that keep a fraction of the spoken captions and mix in synthetic ones.

A config's `dataset.tts` block (config_lib.base_config; see configs/shapes_gru_tts.py) sets:

    spoken_fraction   (0, 1]: share of the train split's examples kept, a fixed random subset
                      (`default_rng([SUBSET_SEED, n])`, the same for every training seed);
    synthetic_split   split of TTS-spoken captions ("" = none), e.g. spoken_shapes' `train_tts`;
    synthetic_for     "rest": only captions whose real speech was dropped (matched on
                      (image_id, text)); "all": every synthetic caption;
    synthetic_ratio   [0, 1): share of synthetic examples in the training stream.

The mixed source is a plain random-access source of `round(N * (1 - ratio))` real and
`round(N * ratio)` synthetic slots, `N = max(n_real / (1 - ratio), n_synthetic / ratio)`, so
the larger pool is seen once per epoch and the smaller one is repeated; slot `j` of a pool of
`m` examples holds example `perm[j % m]` (`perm` a fixed permutation). The train iterator
shuffles the slots per epoch, so each epoch's mix is the ratio up to rounding and the dropped
last batch.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np

from vgs_jax import data_sources

SUBSET_SEED = 16  # The kept subset depends on the split size only, never on the run's seed.
_SYNTHETIC_FOR = ("rest", "all")


def open_train_source(data_config, *, build_if_missing: bool = False) -> Sequence[dict]:
    """The config's train split, or its `dataset.tts` mix of it with the synthetic split."""
    source = data_sources.open_config_split(data_config, data_config.train_split,
                                            build_if_missing=build_if_missing)
    tts = data_config.tts
    if tts.spoken_fraction == 1.0 and not tts.synthetic_split and not tts.synthetic_ratio:
        return source
    synthetic = (data_sources.open_config_split(data_config, tts.synthetic_split)
                 if tts.synthetic_split else None)
    return mix(source, synthetic, spoken_fraction=tts.spoken_fraction,
               synthetic_ratio=tts.synthetic_ratio, synthetic_for=tts.synthetic_for)


def kept_indices(n: int, fraction: float) -> np.ndarray:
    """Sorted int64 indices of the `max(1, round(n * fraction))` kept real examples."""
    if not 0.0 < fraction <= 1.0:
        raise ValueError(f"dataset.tts.spoken_fraction={fraction} must be in (0, 1].")
    k = max(1, int(round(n * fraction)))
    return np.sort(np.random.default_rng([SUBSET_SEED, n]).permutation(n)[:k])


def slot_counts(n_real: int, n_synthetic: int, ratio: float) -> tuple[int, int]:
    """(real slots, synthetic slots) of the mix: the larger pool fills its share once."""
    if not 0.0 <= ratio < 1.0:
        raise ValueError(f"dataset.tts.synthetic_ratio={ratio} must be in [0, 1) (the share "
                         "of synthetic examples; 0 = none).")
    if ratio == 0.0 or n_synthetic == 0:
        return n_real, 0
    total = max(n_real / (1.0 - ratio), n_synthetic / ratio)
    return int(round(total * (1.0 - ratio))), int(round(total * ratio))


def mix(real: Sequence[dict], synthetic: Sequence[dict] | None, *, spoken_fraction: float = 1.0,
        synthetic_ratio: float = 0.0, synthetic_for: str = "rest") -> "MixedSource":
    """`real` cut to `spoken_fraction`, mixed with `synthetic` at `synthetic_ratio` (module doc)."""
    n = data_sources.check_source(real)
    kept = kept_indices(n, spoken_fraction)
    if synthetic_for not in _SYNTHETIC_FOR:
        raise ValueError(f"dataset.tts.synthetic_for={synthetic_for!r}; choose one of "
                         f"{list(_SYNTHETIC_FOR)}.")
    if synthetic is None:
        if synthetic_ratio:
            raise ValueError(f"dataset.tts.synthetic_ratio={synthetic_ratio} needs a "
                             "dataset.tts.synthetic_split (e.g. 'train_tts' of a spoken_shapes "
                             "*_tts config).")
        pool = np.zeros(0, np.int64)
    else:
        m = data_sources.check_source(synthetic)
        pool = np.arange(m)
        if synthetic_for == "rest":
            spoken = {_caption_key(ex) for ex in _read_all(real, kept)}
            pool = np.asarray([i for i, ex in zip(pool, _read_all(synthetic, pool))
                               if _caption_key(ex) not in spoken], np.int64)
        if synthetic_ratio and pool.size == 0:
            raise ValueError("No synthetic captions to mix in: every synthetic caption's real "
                             "speech is kept; lower spoken_fraction or set synthetic_for='all'.")
    n_real, n_syn = slot_counts(kept.size, pool.size, synthetic_ratio)
    rng = np.random.default_rng([SUBSET_SEED, n, pool.size])
    slots = [(0, kept[rng.permutation(kept.size)][np.arange(n_real) % kept.size])]
    if n_syn:
        slots.append((1, pool[rng.permutation(pool.size)][np.arange(n_syn) % pool.size]))
    return MixedSource([real, synthetic], slots)


class MixedSource:
    """A random-access source over slots of several sources.

    sources: the underlying sources; slots: [(source index, int64 [k] example indices)], in
    order. `synthetic` is bool [len]: True on slots from source 1.
    """

    def __init__(self, sources, slots):
        self.sources = sources
        self._which = np.concatenate([np.full(idx.size, s, np.int64) for s, idx in slots])
        self._index = np.concatenate([idx for _, idx in slots]).astype(np.int64)
        self.synthetic = self._which == 1

    def __len__(self) -> int:
        return int(self._index.size)

    def __getitem__(self, i: int) -> dict:
        return self.sources[self._which[i]][int(self._index[i])]

    def __getitems__(self, indices) -> list[dict]:
        return [self[int(i)] for i in indices]

    def example_lengths(self) -> np.ndarray:
        """int64 [len]: waveform lengths, from each source's (cached) `example_lengths`."""
        out = np.zeros(len(self), np.int64)
        for s, source in enumerate(self.sources):
            on = self._which == s
            if on.any():
                out[on] = data_sources.example_lengths(source)[self._index[on]]
        return out


def _caption_key(ex: dict) -> tuple:
    text = ex["text"]
    return int(ex["image_id"]), text.decode() if isinstance(text, bytes) else str(text)


def _read_all(source, indices) -> list[dict]:
    if hasattr(source, "__getitems__"):
        return list(source.__getitems__([int(i) for i in indices]))
    return [source[int(i)] for i in indices]
