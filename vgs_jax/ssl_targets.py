"""HuBERT's first-iteration targets: k-means cluster ids of MFCC frames, fitted on the training audio.

As HuBERT (Hsu et al. 2021, iteration 1): 39-d MFCCs (13 coefficients + deltas + delta-deltas, 25 ms window,
10 ms hop; here the `mfcc` recipe of `vgs_jax.audio_features`, librosa's, where HuBERT used torchaudio's Kaldi
MFCC), no normalisation, k-means with k-means++ initialisation on a random subset of the training frames
(HuBERT: 100 clusters, scikit-learn's MiniBatchKMeans on 10% of LibriSpeech; here full-batch Lloyd
iterations on at most `config.ssl_targets.fit_frames` frames of `fit_utterances` utterances). Every
training utterance is then labelled frame by frame with its nearest centroid. The fit is a function of
`config.seed`, so a resumed run gets the same targets.

`example_fields(config, source)` is the train iterator's hook: example -> {"ssl_targets": int32 [L]},
L = 1 + max_frames // 160 target frames (waveforms cut to `config.features.max_frames` samples as the
pipeline cuts them), -1 past the utterance.
"""
from typing import Callable

import numpy as np

from vgs_jax import audio_features
from vgs_jax import data_sources
from vgs_jax.objectives.masked_prediction import TARGET_HOP
from vgs_jax.objectives.masked_prediction import TARGETS_KEY

RECIPE = "mfcc"
MIN_SAMPLES = 8 * TARGET_HOP  # the recipe's deltas need 9 frames: shorter waveforms are zero-padded


def mfcc_frames(wave: np.ndarray, max_samples: int) -> np.ndarray:
    """int16 or float waveform [N] -> float64 [1 + min(N, max_samples) // 160, 39] MFCC frames."""
    wave = np.asarray(wave)[:max_samples]
    frames = 1 + len(wave) // TARGET_HOP
    if len(wave) < MIN_SAMPLES:
        wave = np.pad(wave, (0, MIN_SAMPLES - len(wave)))
    return audio_features.compute(wave, RECIPE)[:frames]


def assign(x: np.ndarray, centroids: np.ndarray) -> np.ndarray:
    """x [N, D], centroids [K, D] -> int32 [N]: index of the nearest centroid (squared Euclidean)."""
    d = (np.sum(x * x, 1)[:, None] - 2 * x @ centroids.T + np.sum(centroids * centroids, 1)[None, :])
    return np.argmin(d, axis=1).astype(np.int32)


def kmeans(x: np.ndarray, k: int, *, iters: int, seed: int) -> np.ndarray:
    """x [N, D] -> centroids [k, D] float64: k-means++ initialisation, then `iters` Lloyd iterations (stops
    early when the assignment no longer changes; an empty cluster keeps its centroid)."""
    x = np.asarray(x, np.float64)
    if x.ndim != 2 or len(x) < k or k < 1:
        raise ValueError(f"kmeans: need at least k={k} >= 1 points [N, D]; got shape {x.shape}. Lower "
                         "model.speech.ssl_clusters or raise config.ssl_targets.fit_frames.")
    rng = np.random.default_rng(seed)
    centroids = [x[rng.integers(len(x))]]
    d2 = np.sum((x - centroids[0]) ** 2, 1)
    for _ in range(1, k):
        p = d2 / d2.sum() if d2.sum() > 0 else np.full(len(x), 1 / len(x))
        centroids.append(x[rng.choice(len(x), p=p)])
        d2 = np.minimum(d2, np.sum((x - centroids[-1]) ** 2, 1))
    centroids = np.stack(centroids)
    labels = None
    for _ in range(iters):
        new = assign(x, centroids)
        if labels is not None and np.array_equal(new, labels):
            break
        labels = new
        counts = np.bincount(labels, minlength=k)
        sums = np.zeros_like(centroids)
        np.add.at(sums, labels, x)
        filled = counts > 0
        centroids[filled] = sums[filled] / counts[filled, None]
    return centroids


def fit(source, *, k: int, max_samples: int, utterances: int, frames: int, iters: int, seed: int) -> np.ndarray:
    """Centroids [k, 39] fitted on MFCC frames of `utterances` random examples of `source` (at most `frames`
    frames, drawn at random)."""
    rng = np.random.default_rng(seed)
    picked = rng.permutation(len(source))[:utterances]
    x = np.concatenate([mfcc_frames(data_sources.waveform(source[int(i)], int(i)), max_samples) for i in picked])
    if len(x) > frames:
        x = x[rng.choice(len(x), frames, replace=False)]
    return kmeans(x, k, iters=iters, seed=seed)


def labels(wave: np.ndarray, centroids: np.ndarray, max_samples: int) -> np.ndarray:
    """waveform [N] -> int32 [1 + max_samples // 160]: cluster per MFCC frame, -1 past the (cut) waveform."""
    out = np.full(1 + max_samples // TARGET_HOP, -1, np.int32)
    z = assign(mfcc_frames(wave, max_samples), centroids)
    out[:len(z)] = z
    return out


def example_fields(config, source) -> Callable[[dict], dict[str, np.ndarray]] | None:
    """For the train iterator: example -> {TARGETS_KEY: int32 [L]} when config.loss.ssl_weight > 0 (fits the
    k-means on `source`, the training split, first), else None."""
    if not config.loss.get("ssl_weight", 0.0):
        return None
    if config.features.recipe != "raw" or config.features.max_frames is None:
        raise ValueError(f"loss.ssl_weight > 0 needs features.recipe='raw' with features.max_frames set (samples); got "
                         f"recipe={config.features.recipe!r}, max_frames={config.features.max_frames}.")
    if config.get("train", {}).get("embedding_cache_chunks", 1) > 1:
        raise ValueError(f"config.train.embedding_cache_chunks={config.train.embedding_cache_chunks} is unsupported "
                         "with loss.ssl_weight > 0 (the masked pass is not cached). Set "
                         "train.embedding_cache_chunks=1.")
    fields = config.ssl_targets
    max_samples = config.features.max_frames
    centroids = fit(source, k=config.model.speech.ssl_clusters, max_samples=max_samples,
                    utterances=fields.fit_utterances, frames=fields.fit_frames, iters=fields.kmeans_iters,
                    seed=config.seed)
    return lambda example: {TARGETS_KEY: labels(data_sources.waveform(example, -1), centroids, max_samples)}
