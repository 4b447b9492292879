"""Audio-visual lexicon discovery from matchmaps (after Harwath & Glass 2017; Harwath et al. 2018).

Per (caption, image) pair the matchmap ``M [H, W, T]`` is searched for its strongest peaks: the
largest value gives a (frame t, cell (r, c)) grounding; frames within ``min_separation`` of t
are then excluded and the next peak is taken, up to ``peaks_per_pair`` groundings with
``M > min_score``. A grounding pairs an **audio segment** (frames ``t - radius .. t + radius``,
clipped) with an **image region** (cells within ``region_radius`` of (r, c)). Segments and
regions are embedded by the mean of their frames / cells; each grounding is represented by the
L2-normalised audio embedding concatenated with the L2-normalised image embedding, and the
groundings are clustered by k-means (scikit-learn, fixed seed) into K audio-visual items.

Clusters are scored against ground truth: the **word** of a segment is the word overlapping its
time span ``[lo, hi) * frame_shift + frame_offset`` the longest ("<sil>" when none), the **object**
of a region is the label of the (first) box containing its centre cell's centre ("<background>"
when none). Reported: purity and NMI (``vq_units``) of the clusters against both, and each
cluster's majority word and object. Frame times as in ``localization`` (16x map: 0.16 s/frame).
"""

from collections import Counter
from typing import Callable, Mapping, Sequence

import numpy as np

from vgs_jax import audio_features
from vgs_jax.analysis import localization as loc
from vgs_jax.analysis import vq_units

SILENCE = "<sil>"
BACKGROUND = "<background>"


def find_groundings(matchmap, *, peaks_per_pair: int = 3, min_separation: int = 2, radius: int = 1,
                    region_radius: int = 0, min_score: float = -np.inf) -> list[dict]:
    """Matchmap peaks of one pair, strongest first.

    Args:
      matchmap: ``[H, W, T]`` over valid cells and frames.
    Returns:
      dicts {"frames": slice of audio frames, "cell": (r, c), "rows": slice, "cols": slice, "score"}.
    """
    m = np.asarray(matchmap, dtype=np.float64)
    if m.ndim != 3 or 0 in m.shape:
        raise ValueError(f"matchmap must be a non-empty [H, W, T] array, got shape {m.shape}")
    if peaks_per_pair < 1 or min_separation < 0 or radius < 0 or region_radius < 0:
        raise ValueError(f"need peaks_per_pair >= 1 and min_separation, radius, region_radius >= 0; got "
                         f"{peaks_per_pair}, {min_separation}, {radius}, {region_radius}")
    h, w, t = m.shape
    best = m.reshape(h * w, t).max(axis=0)  # per frame, the best cell
    free = np.ones(t, bool)
    out = []
    while len(out) < peaks_per_pair and free.any():
        score = np.where(free, best, -np.inf)
        f = int(np.argmax(score))
        if not score[f] > min_score:
            break
        r, c = np.unravel_index(int(np.argmax(m[:, :, f])), (h, w))
        out.append({"frames": slice(max(f - radius, 0), min(f + radius + 1, t)), "cell": (int(r), int(c)),
                    "rows": slice(max(r - region_radius, 0), min(r + region_radius + 1, h)),
                    "cols": slice(max(c - region_radius, 0), min(c + region_radius + 1, w)),
                    "score": float(score[f])})
        free[max(f - min_separation, 0):f + min_separation + 1] = False
    return out


def segment_word(frames: slice, words: Sequence[tuple], *, frame_shift: float = loc.DEFAULT_FRAME_SHIFT,
                 frame_offset: float = 0.0) -> str:
    """The word overlapping frames ``[lo, hi)`` longest (first on ties), or SILENCE."""
    lo = frames.start * frame_shift + frame_offset
    hi = frames.stop * frame_shift + frame_offset
    best, label = 0.0, SILENCE
    for word, s, e in words:
        overlap = min(hi, float(e)) - max(lo, float(s))
        if overlap > best:
            best, label = overlap, (word.decode() if isinstance(word, bytes) else str(word))
    return label


def region_object(cell: tuple[int, int], grid: tuple[int, int], boxes, labels: Sequence[str]) -> str:
    """Label of the first box ``[ymin, xmin, ymax, xmax]`` containing the cell's centre, or BACKGROUND."""
    b = np.asarray(boxes, dtype=np.float64).reshape(-1, 4) if len(labels) else np.zeros((0, 4))
    if b.shape[0] != len(labels):
        raise ValueError(f"got {b.shape[0]} boxes but {len(labels)} object labels")
    y, x = (cell[0] + .5) / grid[0], (cell[1] + .5) / grid[1]
    for box, label in zip(b, labels):
        if loc.in_boxes(y, x, box[None]):
            return str(label)
    return BACKGROUND


def _unit(v: np.ndarray) -> np.ndarray:
    return v / max(np.linalg.norm(v), 1e-12)


def pair_groundings(matchmap, audio_frames, image_cells, words: Sequence[tuple], boxes, labels: Sequence[str],
                    *, frame_shift: float = loc.DEFAULT_FRAME_SHIFT, frame_offset: float = 0.0,
                    **peak_options) -> list[dict]:
    """Groundings of one pair with embeddings and ground truth.

    Args:
      matchmap: ``[H, W, T]``; audio_frames: ``[T, D]``; image_cells: ``[H, W, D]`` (valid parts).
      words: ``(word, start_s, end_s)``; boxes ``[n, 4]`` and labels ``[n]`` of the image's objects.
      peak_options: passed to `find_groundings`.
    Returns:
      `find_groundings` dicts plus "embedding" ``[2 D]``, "word" and "object".
    """
    a, img = np.asarray(audio_frames, np.float64), np.asarray(image_cells, np.float64)
    m = np.asarray(matchmap)
    if a.ndim != 2 or img.ndim != 3 or m.shape != (img.shape[0], img.shape[1], a.shape[0]):
        raise ValueError(f"matchmap {m.shape} must be [H, W, T] for image_cells [H, W, D] {img.shape} and "
                         f"audio_frames [T, D] {a.shape}")
    out = []
    for g in find_groundings(m, **peak_options):
        emb = np.concatenate([_unit(a[g["frames"]].mean(axis=0)),
                              _unit(img[g["rows"], g["cols"]].reshape(-1, img.shape[-1]).mean(axis=0))])
        out.append({**g, "embedding": emb,
                    "word": segment_word(g["frames"], words, frame_shift=frame_shift, frame_offset=frame_offset),
                    "object": region_object(g["cell"], img.shape[:2], boxes, labels)})
    return out


def cluster_groundings(groundings: Sequence[dict], num_clusters: int, *, seed: int = 0) -> dict:
    """k-means over grounding embeddings; purity/NMI against words and objects.

    Returns:
      {"assignments" int [N], "word_purity", "word_nmi", "object_purity", "object_nmi",
       "num_groundings", "clusters": [{"size", "word", "object"}]} (JSON-ready except assignments).
    """
    from sklearn.cluster import KMeans  # pylint: disable=import-outside-toplevel
    if not 1 <= num_clusters <= len(groundings):
        raise ValueError(f"num_clusters must be in [1, number of groundings = {len(groundings)}], got "
                         f"{num_clusters}; use more pairs or fewer clusters")
    x = np.stack([g["embedding"] for g in groundings])
    assign = KMeans(num_clusters, n_init=10, random_state=seed).fit_predict(x)
    words = np.array([g["word"] for g in groundings], dtype=object)
    objects = np.array([g["object"] for g in groundings], dtype=object)
    clusters = []
    for k in range(num_clusters):
        sel = assign == k
        clusters.append({"size": int(sel.sum()),
                         "word": Counter(words[sel]).most_common(1)[0][0] if sel.any() else None,
                         "object": Counter(objects[sel]).most_common(1)[0][0] if sel.any() else None})
    return {"assignments": assign, "num_groundings": len(groundings),
            "word_purity": vq_units.purity(assign, words),
            "word_nmi": vq_units.normalized_mutual_information(assign, words),
            "object_purity": vq_units.purity(assign, objects),
            "object_nmi": vq_units.normalized_mutual_information(assign, objects), "clusters": clusters}


def run_lexicon(audio_maps_fn: Callable, image_maps_fn: Callable, examples: Sequence[dict], *,
                featurizer: audio_features.Featurizer, num_clusters: int = 20,
                object_label: Callable[[Mapping, int], str] | None = None,
                frame_shift: float = loc.DEFAULT_FRAME_SHIFT, frame_offset: float = 0.0, batch_size: int = 16,
                seed: int = 0, **peak_options) -> dict:
    """Lexicon discovery report over examples with "audio", "image", "words" and "objects".

    audio_maps_fn / image_maps_fn / featurizer: as `localization.run_localization`.
    object_label: ``(objects field, index) -> label``; default "<color> <shape>" of spoken_shapes.
    num_clusters is capped at the number of groundings found. Returns `cluster_groundings`'s
    dict without "assignments".
    """
    if object_label is None:
        from tfds_builders.spoken_shapes import scenes  # pylint: disable=import-outside-toplevel

        def object_label(objs, i):
            return f"{scenes.COLORS[int(objs['color'][i])]} {scenes.SHAPES[int(objs['shape'][i])]}"
    groundings = []
    for ex, mm, a, img in loc.example_matchmaps(examples, audio_maps_fn, image_maps_fn, featurizer=featurizer,
                                                batch_size=batch_size):
        objs = ex["objects"]
        n = len(objs["bbox"])
        groundings += pair_groundings(mm, a, img, loc.intervals(ex["words"], "word"), np.asarray(objs["bbox"]),
                                      [object_label(objs, i) for i in range(n)], frame_shift=frame_shift,
                                      frame_offset=frame_offset, **peak_options)
    report = cluster_groundings(groundings, min(num_clusters, len(groundings)), seed=seed)
    report.pop("assignments")
    return report
