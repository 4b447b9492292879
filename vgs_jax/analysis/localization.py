"""Localisation of spoken words in images through matchmaps (DAVEnet-style, on spoken_shapes).

For each spoken word that names an object class (a shape word such as "circle"/"circles", or
a colour word), the matchmap ``M [H, W, T]`` (``vgs_jax.objectives.matchmap.matchmap``) is summed over the
word's frames; the argmax cell's centre is the prediction, and it is correct when it lies inside
the box of an object of that class (any such object, when several share it). Two chance
baselines are reported per word: ``chance`` = fraction of grid cells whose centre lies in a true
box (the exact accuracy of a uniformly random cell) and ``chance_area`` = fraction of the image
area the union of true boxes covers.

Time: frame j of an audio map downsampled 16x from 10 ms features covers input frames
[16 j, 16 j + 16), i.e. seconds ``[j, j + 1) * frame_shift + frame_offset`` with
``frame_shift = 0.16``. A word ``[start, end)`` uses the frames overlapping it (at least the frame
containing its midpoint). Boxes are ``[ymin, xmin, ymax, xmax]`` fractions of the image side
(spoken_shapes' ``bbox``); cell (r, c) of an H x W map has centre ``((r + .5) / H, (c + .5) / W)``.

This module also holds the small helpers the other matchmap analyses share: reading TFDS
interval fields and computing both maps of examples (batched by `inference.feature_batches`).
"""

from collections import defaultdict
from typing import Callable, Iterator, Mapping, Sequence

import numpy as np

from vgs_jax import audio_features
from vgs_jax import inference

DEFAULT_FRAME_SHIFT = 0.16  # seconds per frame of a 16x-downsampled map of 10 ms features.
_STRESS = str.maketrans("", "", "ˈˌ")


def word_frames(start: float, end: float, num_frames: int, *, frame_shift: float = DEFAULT_FRAME_SHIFT,
                frame_offset: float = 0.0) -> slice:
    """Frames ``slice(lo, hi)`` of a map overlapping the interval ``[start, end)`` seconds.

    Empty (lo == hi) only when the interval lies entirely outside the map's frames.
    """
    if not frame_shift > 0 or num_frames < 0:
        raise ValueError(f"need frame_shift > 0 and num_frames >= 0; got {frame_shift}, {num_frames}")
    if end < start:
        raise ValueError(f"interval end {end} < start {start} seconds; fix the alignment")
    a, b = (start - frame_offset) / frame_shift, (end - frame_offset) / frame_shift
    lo, hi = int(np.floor(a)), int(np.ceil(b))
    if hi <= lo:  # zero-length interval: the frame containing it
        hi = lo + 1
    lo, hi = min(max(lo, 0), num_frames), min(max(hi, 0), num_frames)
    return slice(lo, max(lo, hi))


def _check_map(matchmap) -> np.ndarray:
    m = np.asarray(matchmap, dtype=np.float64)
    if m.ndim != 3 or 0 in m.shape:
        raise ValueError(f"matchmap must be a non-empty [H, W, T] array, got shape {m.shape}")
    return m


def word_heatmap(matchmap, frames: slice) -> np.ndarray:
    """Matchmap ``[H, W, T]`` summed over the word's frames -> ``[H, W]`` float64."""
    m = _check_map(matchmap)
    if frames.stop <= frames.start:
        raise ValueError(f"the word has no frames in the map ({frames}); it lies outside the audio")
    return m[:, :, frames].sum(axis=-1)


def peak_cell(heatmap) -> tuple[int, int]:
    """(row, col) of the maximum of ``[H, W]`` (first in row-major order on ties)."""
    h = np.asarray(heatmap)
    if h.ndim != 2 or h.size == 0:
        raise ValueError(f"heatmap must be a non-empty [H, W] array, got shape {h.shape}")
    r, c = np.unravel_index(int(np.argmax(h)), h.shape)
    return int(r), int(c)


def _check_boxes(boxes) -> np.ndarray:
    b = np.asarray(boxes, dtype=np.float64).reshape(-1, 4) if np.size(boxes) else np.zeros((0, 4))
    if np.any(b[:, 2] < b[:, 0]) or np.any(b[:, 3] < b[:, 1]):
        raise ValueError(f"boxes must be [ymin, xmin, ymax, xmax] with max >= min; got {b.tolist()}")
    return b


def in_boxes(y: float, x: float, boxes) -> bool:
    """Whether the point (y, x) (fractions) lies in any box ``[n, 4]`` (edges included)."""
    b = _check_boxes(boxes)
    return bool(np.any((b[:, 0] <= y) & (y <= b[:, 2]) & (b[:, 1] <= x) & (x <= b[:, 3])))


def cell_chance(boxes, grid: tuple[int, int]) -> float:
    """Fraction of the ``grid`` (H, W) cells whose centre lies in any box."""
    h, w = grid
    return float(np.mean([[in_boxes((r + .5) / h, (c + .5) / w, boxes) for c in range(w)] for r in range(h)]))


def union_area(boxes) -> float:
    """Area (fraction of the unit square) covered by the union of boxes ``[n, 4]``, clipped to it."""
    b = np.clip(_check_boxes(boxes), 0.0, 1.0)
    if b.shape[0] == 0:
        return 0.0
    ys, xs = np.unique(b[:, [0, 2]]), np.unique(b[:, [1, 3]])
    area = 0.0
    for y0, y1 in zip(ys[:-1], ys[1:]):
        for x0, x1 in zip(xs[:-1], xs[1:]):
            if in_boxes((y0 + y1) / 2, (x0 + x1) / 2, b):
                area += (y1 - y0) * (x1 - x0)
    return float(area)


def localize_words(matchmap, words: Sequence[tuple], object_labels: Sequence[Mapping[str, str]], boxes,
                   word_classes: Mapping[str, tuple[str, str]], *, frame_shift: float = DEFAULT_FRAME_SHIFT,
                   frame_offset: float = 0.0) -> list[dict]:
    """One record per object-naming word of one (caption, image) pair.

    Args:
      matchmap: ``[H, W, T]`` for the pair (valid cells and frames only).
      words: ``(word, start_s, end_s)`` alignment of the caption.
      object_labels: per object, e.g. ``{"shape": "circle", "color": "red"}``.
      boxes: ``[num_objects, 4]`` ``[ymin, xmin, ymax, xmax]`` fractions.
      word_classes: word -> (kind, label), e.g. ``"circles" -> ("shape", "circle")``.
    Returns:
      dicts {"word", "kind", "label", "cell", "correct", "chance", "chance_area"}; words naming
      no object in the image, or lying outside the map's frames, are left out.
    """
    m = _check_map(matchmap)
    b = _check_boxes(boxes)
    if len(object_labels) != b.shape[0]:
        raise ValueError(f"got {len(object_labels)} object label dicts but {b.shape[0]} boxes")
    h, w, t = m.shape
    out = []
    for word, start, end in words:
        word = word.decode() if isinstance(word, bytes) else str(word)
        if word not in word_classes:
            continue
        kind, label = word_classes[word]
        true = b[[k for k, obj in enumerate(object_labels) if obj.get(kind) == label]]
        frames = word_frames(float(start), float(end), t, frame_shift=frame_shift, frame_offset=frame_offset)
        if true.shape[0] == 0 or frames.stop <= frames.start:
            continue
        r, c = peak_cell(word_heatmap(m, frames))
        out.append({"word": word, "kind": kind, "label": label, "cell": (r, c),
                    "correct": in_boxes((r + .5) / h, (c + .5) / w, true),
                    "chance": cell_chance(true, (h, w)), "chance_area": union_area(true)})
    return out


def _summary(records: Sequence[dict]) -> dict:
    return {"accuracy": float(np.mean([r["correct"] for r in records])),
            "chance": float(np.mean([r["chance"] for r in records])),
            "chance_area": float(np.mean([r["chance_area"] for r in records])), "n": len(records)}


def summarize(records: Sequence[dict]) -> dict:
    """Accuracy and chance overall, per word kind ("shape", "color") and per word."""
    if not records:
        raise ValueError("no localisation records: no caption word named an object of its image")
    by_kind, by_word = defaultdict(list), defaultdict(list)
    for r in records:
        by_kind[r["kind"]].append(r)
        by_word[r["word"]].append(r)
    return {**_summary(records), "per_kind": {k: _summary(v) for k, v in sorted(by_kind.items())},
            "per_word": {k: _summary(v) for k, v in sorted(by_word.items())}}


def spoken_shapes_word_classes(language: str = "en") -> dict[str, tuple[str, str]]:
    """word -> (kind, label) for the shape (singular and plural) and colour words of spoken_shapes."""
    from tfds_builders.spoken_shapes import grammar  # pylint: disable=import-outside-toplevel
    lex = grammar.get_lexicon(language)
    out = {word: ("shape", shape) for shape, forms in lex.shapes.items() for word in forms}
    out.update({word: ("color", color) for color, word in lex.colors.items()})
    return out


def intervals(field: Mapping, key: str, *, strip_stress: bool = False) -> list[tuple[str, float, float]]:
    """TFDS Sequence field (dict of lists: key, start, end) -> [(label str, start_s, end_s)]."""
    out = []
    for label, start, end in zip(field[key], field["start"], field["end"]):
        label = label.decode() if isinstance(label, bytes) else str(label)
        out.append((label.translate(_STRESS) if strip_stress else label, float(start), float(end)))
    return out


def example_matchmaps(examples: Sequence[dict], audio_maps_fn: Callable, image_maps_fn: Callable, *,
                      featurizer: audio_features.Featurizer, batch_size: int = 16
                      ) -> Iterator[tuple[dict, np.ndarray, np.ndarray, np.ndarray]]:
    """Yields (example, matchmap [H', W', T'] over valid cells/frames, audio frames [T', D],
    image cells [H', W', D]) per example; see `run_localization` for the callables."""
    for batch in inference.feature_batches(examples, featurizer, batch_size):
        amaps, amask = (np.asarray(x) for x in audio_maps_fn(batch["features"], batch["mask"]))
        images = np.stack([np.asarray(ex["image"]) for ex in batch["examples"]])
        imaps, imask = (np.asarray(x) for x in image_maps_fn(images))
        for r, ex in enumerate(batch["examples"]):
            a = amaps[r][amask[r].astype(bool)]
            rows, cols = np.flatnonzero(imask[r].any(axis=1)), np.flatnonzero(imask[r].any(axis=0))
            img = imaps[r][rows.min():rows.max() + 1, cols.min():cols.max() + 1]
            yield ex, np.einsum("hwd,td->hwt", img.astype(np.float64), a.astype(np.float64)), a, img


def run_localization(audio_maps_fn: Callable, image_maps_fn: Callable, examples: Sequence[dict], *,
                     featurizer: audio_features.Featurizer, word_classes: Mapping[str, tuple[str, str]] | None = None,
                     frame_shift: float = DEFAULT_FRAME_SHIFT, frame_offset: float = 0.0,
                     batch_size: int = 16) -> dict:
    """Word localisation report over spoken_shapes-like examples.

    Args:
      audio_maps_fn: ``(features [B, T, F] float32, mask [B, T] bool) -> (maps [B, T', D], mask [B, T'])``.
      image_maps_fn: ``(images uint8 [B, S, S, 3]) -> (maps [B, H, W, D], mask [B, H, W] bool)``.
      examples: dicts with "audio", "image", "words", "objects" (shape/color ClassLabel ids, bbox).
      featurizer: ``waveform int16 [n] -> float32 [T, F]`` with its pad value (`audio_features.Featurizer`).
      word_classes: word -> (kind, label); default `spoken_shapes_word_classes()`.
    Returns:
      `summarize` of all records (JSON-ready).
    """
    from tfds_builders.spoken_shapes import scenes  # pylint: disable=import-outside-toplevel
    word_classes = spoken_shapes_word_classes() if word_classes is None else word_classes
    names = {"shape": scenes.SHAPES, "color": scenes.COLORS, "size": scenes.SIZES}
    records = []
    for ex, mm, _, _ in example_matchmaps(examples, audio_maps_fn, image_maps_fn, featurizer=featurizer,
                                         batch_size=batch_size):
        objs = ex["objects"]
        labels = [{k: (names[k][int(objs[k][i])] if np.issubdtype(type(objs[k][i]), np.integer)
                       else str(objs[k][i])) for k in names if k in objs} for i in range(len(objs["bbox"]))]
        records += localize_words(mm, intervals(ex["words"], "word"), labels, np.asarray(objs["bbox"]),
                                  word_classes, frame_shift=frame_shift, frame_offset=frame_offset)
    return summarize(records)
