"""Word segments and image fragments: the data view of the survey's early systems.

Synnaeve et al. (2014) and Harwath & Glass (2015) score spoken *words* against image *regions*
rather than utterances against images. They read the word alignments and object boxes of the
corpus (spoken_shapes stores both; survey-systems.md B.1, B.2):

* a word segment is the word's frames of the utterance's features (`audio_features` recipe, 10 ms
  frames) between its aligned start and end, resampled by linear interpolation to `frames` frames
  and flattened: [frames * F] (Synnaeve's "flattened filterbank" of the word);
* an image's regions are the whole image (region 0) and each object's box crop, each resized to
  `size` x `size` by nearest-neighbour sampling, scaled to [0, 1] and flattened: [size * size * 3];
* a word's concept is ("shape", name) or ("color", name) when it is a shape noun (singular or
  plural) or a colour word of the grammar (`analysis.gating.word_concepts`), else None; a region's
  concepts are its object's shape and colour (the whole image: all of its objects').
"""
import dataclasses
from collections.abc import Sequence

import numpy as np

from vgs_jax.analysis import gating

HOP_SECONDS = 0.01


@dataclasses.dataclass(frozen=True)
class SegmentSplit:
    """One split as word segments per caption and regions per image.

    words [N, W, frames * F] float32 (zero past word_mask [N, W] bool); word_concepts: per caption,
    one concept (or None) per word; caption_image [N] int: index of the caption's image in 0..M-1;
    regions [M, R, size * size * 3] float32 (zero past region_mask [M, R] bool); region_concepts: per
    image, a set of concepts per region; image_id [M] int.
    """

    words: np.ndarray
    word_mask: np.ndarray
    word_concepts: list
    caption_image: np.ndarray
    regions: np.ndarray
    region_mask: np.ndarray
    region_concepts: list
    image_id: np.ndarray


def check_annotations(ex: dict, index: int, system: str) -> None:
    """ValueError naming what `system` needs when example `index` lacks word alignments or object boxes."""
    missing = [f"{key} ({what})" for key, fields, what in (
        ("words", ("word", "start", "end"), "word alignments"),
        ("objects", ("bbox", "shape", "color"), "object boxes with shape and colour labels"))
        if key not in ex or any(f not in ex[key] for f in fields)]
    if missing:
        raise ValueError(
            f"{system} reads word segments and image regions from the corpus annotations, but example "
            f"{index} has no {' and no '.join(missing)}; its keys are {sorted(ex)}. spoken_shapes has them "
            "(configs/shapes_*.py); corpora without them cannot train this system.")


def resample_frames(x: np.ndarray, frames: int) -> np.ndarray:
    """[n, F] -> [frames, F] by linear interpolation at `frames` evenly spaced bin centres."""
    n = x.shape[0]
    pos = np.clip((np.arange(frames) + 0.5) * n / frames - 0.5, 0.0, n - 1.0)
    lo = np.floor(pos).astype(int)
    hi = np.minimum(lo + 1, n - 1)
    w = (pos - lo)[:, None]
    return x[lo] * (1.0 - w) + x[hi] * w


def word_segments(features: np.ndarray, starts, ends, frames: int) -> np.ndarray:
    """Utterance features [T, F] and word times (s) -> [num_words, frames * F] flattened segments."""
    t = features.shape[0]
    out = []
    for start, end in zip(starts, ends):
        a = min(int(round(float(start) / HOP_SECONDS)), t - 1)
        b = min(max(int(round(float(end) / HOP_SECONDS)), a + 1), t)
        out.append(resample_frames(features[a:b], frames).reshape(-1))
    return np.asarray(out, np.float32).reshape(len(out), frames * features.shape[1])


def crop(image: np.ndarray, box, size: int) -> np.ndarray:
    """image [S, S', 3] uint8, box [ymin, xmin, ymax, xmax] fractions -> [size * size * 3] in [0, 1]."""
    h, w = image.shape[:2]
    y0, x0, y1, x1 = (float(v) for v in box)
    ys = np.clip(((y0 + (y1 - y0) * (np.arange(size) + 0.5) / size) * h).astype(int), 0, h - 1)
    xs = np.clip(((x0 + (x1 - x0) * (np.arange(size) + 0.5) / size) * w).astype(int), 0, w - 1)
    return (image[ys][:, xs].astype(np.float32) / 255.0).reshape(-1)


def load_split(source: Sequence[dict], featurizer, *, frames: int, size: int, max_words: int,
               max_objects: int, system: str, limit: int | None = None) -> SegmentSplit:
    """The first `limit` (all when None) captions of `source` as a `SegmentSplit`; images
    de-duplicated by image_id in first-seen order. Words past `max_words` and objects past
    `max_objects` are dropped."""
    from tfds_builders.spoken_shapes import scenes  # deferred: the label names of spoken_shapes

    concepts_of = gating.word_concepts()
    n = len(source) if limit is None else min(limit, len(source))
    words, word_mask, word_concepts, caption_image = [], [], [], []
    image_index, regions, region_concepts, image_ids = {}, [], [], []
    for i in range(n):
        ex = source[i]
        check_annotations(ex, i, system)
        feats = np.asarray(featurizer(np.asarray(ex["audio"])), np.float32)
        w = ex["words"]
        names = [s.decode() if isinstance(s, bytes) else str(s) for s in w["word"]][:max_words]
        seg = word_segments(feats, w["start"][:max_words], w["end"][:max_words], frames)
        words.append(np.zeros((max_words, seg.shape[1]), np.float32))
        words[-1][:len(seg)] = seg
        word_mask.append(np.arange(max_words) < len(seg))
        word_concepts.append([concepts_of.get(name) for name in names])
        image_id = int(ex["image_id"])
        if image_id not in image_index:
            image_index[image_id] = len(image_ids)
            image_ids.append(image_id)
            objs = ex["objects"]
            kinds = [{("shape", scenes.SHAPES[int(s)]), ("color", scenes.COLORS[int(c)])}
                     for s, c in zip(objs["shape"], objs["color"])][:max_objects]
            pixels = np.asarray(ex["image"])
            rows = [crop(pixels, (0.0, 0.0, 1.0, 1.0), size)] + [crop(pixels, b, size)
                                                               for b in objs["bbox"][:max_objects]]
            regions.append(np.zeros((max_objects + 1, size * size * 3), np.float32))
            regions[-1][:len(rows)] = rows
            region_concepts.append([set().union(*kinds)] + kinds)
        caption_image.append(image_index[image_id])
    return SegmentSplit(np.stack(words), np.stack(word_mask), word_concepts, np.asarray(caption_image),
                        np.stack(regions), np.stack([np.arange(max_objects + 1) < len(c) for c in region_concepts]),
                        region_concepts, np.asarray(image_ids))
