"""A moving_shapes split as audio-video fragments: padded audio features, frames, mention times.

Clips are one fragment each (all frames, the whole narration). Episodes are cut with
`tfds_builders.moving_shapes.fragments.cut` into fragments of `seconds`, whose starts come from a
sampling strategy (`sampling.fragment_starts`). Which still frame of a fragment pairs with its audio
is chosen per batch (`still_frames`), so "uniform" draws a new frame every time.
"""
from __future__ import annotations

import dataclasses

import numpy as np

from tfds_builders.moving_shapes import fragments as fragments_lib
from vgs_jax import audio_features
from vgs_jax import data_sources
from vgs_jax.video import sampling


@dataclasses.dataclass(frozen=True)
class Fragments:
    """N fragments: features float32 [N, T, D] (padded with the recipe's pad value), lengths int32 [N],
    video uint8 [N, F, H, W, 3], frame_times float32 [F] (s from each fragment's start), per fragment
    its mentions' start and end arrays [M_n] on the same clock, and the example each came from [N]."""

    features: np.ndarray
    lengths: np.ndarray
    video: np.ndarray
    frame_times: np.ndarray
    mention_start: list
    mention_end: list
    example: np.ndarray

    def __len__(self) -> int:
        return len(self.lengths)

    @property
    def mask(self) -> np.ndarray:
        """bool [N, T]: the valid (prefix) feature frames."""
        return np.arange(self.features.shape[1])[None, :] < self.lengths[:, None]

    def still_frames(self, index, strategy: str, rng: np.random.Generator) -> np.ndarray:
        """uint8 [len(index), H, W, 3]: one frame per fragment chosen by `sampling.frame_index`."""
        picks = [sampling.frame_index(self.frame_times, self.mention_start[i], self.mention_end[i], strategy, rng)
                 for i in index]
        return self.video[np.asarray(index), np.asarray(picks)]


def _whole(ex: dict, video: np.ndarray) -> dict:
    m = ex["mentions"]
    return {"video": video, "audio": data_sources.waveform(ex, int(ex["id"])),
            "mentions": {"start": np.asarray(m["start"], np.float32), "end": np.asarray(m["end"], np.float32)}}


def _overlapping(mentions: dict, start: float, seconds: float) -> dict:
    """The mentions that overlap [start, start + seconds), clipped to it, on the fragment's clock (`cut`
    keeps only those wholly inside, but a mention cut at a fragment edge still says what is on screen)."""
    s, e = np.asarray(mentions["start"], np.float32) - start, np.asarray(mentions["end"], np.float32) - start
    keep = (e > 0) & (s < seconds)
    return {"start": np.maximum(s[keep], 0.0), "end": np.minimum(e[keep], seconds)}


def load(source, featurizer: audio_features.Featurizer, *, seconds: float = 0.0, per_example: int | None = 1,
         strategy: str = "uniform", seed: int = 0, limit: int | None = None) -> Fragments:
    """The fragments of the first `limit` examples (None: all) of `source`. seconds 0: each example is
    one fragment (clips); else `per_example` fragments of `seconds` per example, placed by `strategy`
    ("mention" with per_example None: one centred on every mention that starts on screen)."""
    rng = np.random.default_rng(seed)
    parts, example = [], []
    for n in range(len(source) if limit is None else min(limit, len(source))):
        ex = source[n]
        video = np.stack([np.asarray(f) for f in ex["video"]])
        if seconds <= 0:
            parts.append(_whole(ex, video))
            example.append(n)
            continue
        fps, m = int(ex["fps"]), ex["mentions"]
        starts = sampling.fragment_starts(len(video) / fps, m["start"], seconds, fps, strategy, rng, per_example,
                                          mention_end=m["end"])
        for start in starts:
            part = fragments_lib.cut({**ex, "video": list(video)}, float(start), seconds)
            parts.append({**part, "mentions": _overlapping(m, float(start), seconds)})
            example.append(n)
    if not parts:
        raise ValueError("no fragments: the split is empty (check the dataset build).")
    frames = {p["video"].shape for p in parts}
    if len(frames) != 1:
        raise ValueError(f"fragments have different frame counts {sorted(frames)}; every clip / fragment must "
                         "have the same length (one moving_shapes config per split).")
    feats = [featurizer(p["audio"]) for p in parts]
    lengths = np.array([len(f) for f in feats], np.int32)
    features = np.full((len(feats), lengths.max(), featurizer.num_features), featurizer.pad_value, np.float32)
    for i, f in enumerate(feats):
        features[i, :len(f)] = f
    return Fragments(features, lengths, np.stack([p["video"] for p in parts]),
                     (np.arange(len(parts[0]["video"])) / int(source[0]["fps"])).astype(np.float32),
                     [np.asarray(p["mentions"]["start"], np.float32) for p in parts],
                     [np.asarray(p["mentions"]["end"], np.float32) for p in parts], np.asarray(example))
