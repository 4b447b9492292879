"""Boundary detection from frame-level activations and its evaluation (sota-and-metrics.md D.4).

Detection: boundaries are the peaks of a frame-level signal that reach ``threshold`` and lie at
least ``min_distance`` frames apart (``scipy.signal.find_peaks``: among close peaks the higher
survives). Peak at signal index t -> time ``t * frame_shift + time_offset`` seconds. Two signals
(``METHODS``) are computed from a layer's frames ``[T, D]``:

* ``"cosine_change"``: the cosine distance between consecutive frames, ``[T - 1]``; value t sits
  midway between frames t and t + 1. Our own detector (what `analyze` reports by default).
* ``"activation_norm"``: the L2 norm of each frame, ``[T]``; value t sits at frame t's centre.
  After Harwath & Glass (2019, "Towards visually grounded sub-word speech unit discovery"):
  boundaries are peaks of the L2 norm of a layer's frame activations. Our reference notes
  (sota-and-metrics.md, survey-systems.md) give no further detail of the paper's detector, so
  these choices are ours: the raw norm (no smoothing, no per-utterance scaling), any layer, the
  same peak picking and threshold tuning as ``"cosine_change"``, and phone boundaries as the
  reference (the paper's abstract calls the events diphone boundaries).

Evaluation (D.4 formulas):

* Matching is one-to-one (our choice among the two conventions in D.4): each
  reference boundary is matched to at most one prediction within
  ``tolerance`` seconds (default 0.02 s = 2 frames at 10 ms) and vice versa.
  We use a maximum matching (two-pointer sweep over sorted times), so two
  predictions near one reference count once. No boundary is dropped: pass the
  utterance's internal boundaries (or include both ends in both lists).
* P = hits / #pred, R = hits / #ref, F1 = 2PR / (P + R),
  OS = R / P - 1 = #pred / #ref - 1 (the count form is defined even at 0 hits),
  R-value = 1 - (|r1| + |r2|) / 2 with r1 = sqrt((1 - R)^2 + OS^2) and
  r2 = (-OS + R - 1) / sqrt(2) (Rasanen et al. 2009).
* Corpus scores sum hits and counts over utterances before dividing.
* ``tune_threshold`` picks the threshold on validation data only; apply the
  returned value unchanged to test data.
"""

import math
from typing import Sequence

import numpy as np
from scipy import signal as sp_signal

_EPS = 1e-9  # seconds; keeps |0.05 - 0.03| <= 0.02 true in float arithmetic
CRITERIA = ("r_value", "f1")
# detector -> position of its signal's value t, in frames: cosine change sits between frames t and t + 1
SIGNAL_LAG = {"cosine_change": 0.5, "activation_norm": 0.0}
METHODS = tuple(SIGNAL_LAG)


def _frames(frames) -> np.ndarray:
    x = np.asarray(frames, np.float64)
    if x.ndim != 2:
        raise ValueError(f"frames must be one utterance's layer activations [T, D], got shape {x.shape}")
    return x


def cosine_change_signal(frames) -> np.ndarray:
    """Cosine distance between consecutive frames: ``[T, D]`` -> ``[T - 1]`` float64 in [0, 2]."""
    x = _frames(frames)
    norms = np.maximum(np.linalg.norm(x, axis=1), 1e-12)
    return 1.0 - np.sum(x[1:] * x[:-1], axis=1) / (norms[1:] * norms[:-1])


def activation_norm_signal(frames) -> np.ndarray:
    """L2 norm of every frame: ``[T, D]`` -> ``[T]`` float64."""
    return np.linalg.norm(_frames(frames), axis=1)


def boundary_signal(frames, method: str) -> np.ndarray:
    """The frame-level signal of detector `method` for frames ``[T, D]`` (value t sits at frame
    position ``t + SIGNAL_LAG[method]``)."""
    if method == "cosine_change":
        return cosine_change_signal(frames)
    if method == "activation_norm":
        return activation_norm_signal(frames)
    raise ValueError(f"unknown boundary method {method!r}; choose one of {METHODS}")


def detect_peaks(values, *, threshold: float | None = None, min_distance: int = 1) -> np.ndarray:
    """Peak frame indices ``[K]`` (int64, ascending) of a 1-D signal ``values [T]``."""
    values = np.asarray(values, dtype=np.float64)
    if values.ndim != 1:
        raise ValueError(f"values must be a 1-D frame-level signal, got shape {values.shape}")
    if not np.all(np.isfinite(values)):
        raise ValueError("values contains NaN or inf; clean the signal before peak picking")
    if min_distance < 1:
        raise ValueError(f"min_distance must be >= 1 frame, got {min_distance}")
    peaks, _ = sp_signal.find_peaks(values, height=threshold, distance=min_distance)
    return peaks.astype(np.int64)


def detect_boundaries(values, *, frame_shift: float = 0.01, threshold: float | None = None,
                      min_distance: int = 1, time_offset: float = 0.0) -> np.ndarray:
    """Boundary times in seconds ``[K]`` (float64) from the peaks of ``values [T]`` (one value per frame)."""
    if frame_shift <= 0:
        raise ValueError(f"frame_shift must be a positive frame step in seconds, got {frame_shift}")
    peaks = detect_peaks(values, threshold=threshold, min_distance=min_distance)
    return peaks * frame_shift + time_offset


def frame_boundaries(frames, *, method: str, frame_step: float, frame_start: float,
                     threshold: float | None = None, min_distance: int = 1) -> np.ndarray:
    """Boundary times in seconds ``[K]`` of one utterance's frames ``[T, D]`` (frame j centred at
    ``frame_start + j * frame_step`` s) by `method`."""
    return detect_boundaries(boundary_signal(frames, method), frame_shift=frame_step, threshold=threshold,
                             min_distance=min_distance, time_offset=frame_start + SIGNAL_LAG[method] * frame_step)


def _check_times(times, name: str) -> np.ndarray:
    times = np.asarray(times, dtype=np.float64).reshape(-1)
    if not np.all(np.isfinite(times)):
        raise ValueError(f"{name} contains NaN or inf boundary times")
    return np.sort(times)


def count_hits(predicted, reference, tolerance: float = 0.02) -> int:
    """Size of a maximum one-to-one matching with ``|pred - ref| <= tolerance`` (seconds)."""
    if tolerance < 0:
        raise ValueError(f"tolerance must be >= 0 seconds, got {tolerance}")
    pred, ref = _check_times(predicted, "predicted"), _check_times(reference, "reference")
    hits, p = 0, 0
    for r in ref:  # refs in order, each takes the earliest still-usable prediction
        while p < len(pred) and pred[p] < r - tolerance - _EPS:
            p += 1
        if p < len(pred) and pred[p] <= r + tolerance + _EPS:
            hits += 1
            p += 1
    return hits


def scores_from_counts(hits: int, num_pred: int, num_ref: int) -> dict[str, float]:
    """Precision, recall, F1, over-segmentation and R-value from boundary counts (D.4)."""
    if num_ref <= 0:
        raise ValueError("no reference boundaries, so recall and R-value are undefined; "
                         "evaluate on utterances that have boundaries")
    if not 0 <= hits <= min(num_pred, num_ref):
        raise ValueError(f"hits={hits} must lie in [0, min(num_pred={num_pred}, num_ref={num_ref})]")
    precision = hits / num_pred if num_pred else 0.0
    recall = hits / num_ref
    f1 = 2 * precision * recall / (precision + recall) if hits else 0.0
    os_ = num_pred / num_ref - 1
    r1 = math.sqrt((1 - recall) ** 2 + os_ ** 2)
    r2 = (-os_ + recall - 1) / math.sqrt(2)
    r_value = 1 - (abs(r1) + abs(r2)) / 2
    return {"precision": precision, "recall": recall, "f1": f1, "os": os_, "r_value": r_value,
            "hits": hits, "num_pred": num_pred, "num_ref": num_ref}


def evaluate_boundaries(predicted: Sequence, reference: Sequence, tolerance: float = 0.02) -> dict[str, float]:
    """Corpus scores for per-utterance boundary times (seconds).

    Args:
      predicted: one array of predicted boundary times per utterance.
      reference: one array of reference boundary times per utterance (same order).
    Returns:
      ``scores_from_counts`` of the summed hits and counts.
    """
    if len(predicted) != len(reference):
        raise ValueError(f"{len(predicted)} predicted vs {len(reference)} reference utterances; pair them up")
    hits = num_pred = num_ref = 0
    for pred, ref in zip(predicted, reference):
        hits += count_hits(pred, ref, tolerance)
        num_pred += len(pred)
        num_ref += len(ref)
    return scores_from_counts(hits, num_pred, num_ref)


def tune_threshold(val_signals: Sequence, val_reference: Sequence, thresholds: Sequence[float], *,
                   criterion: str = "r_value", frame_shift: float = 0.01, min_distance: int = 1,
                   time_offset: float = 0.0, tolerance: float = 0.02) -> tuple[float, list[dict]]:
    """Best peak threshold on VALIDATION data (ties: the first of ``thresholds``).

    Args:
      val_signals: validation frame-level signals, each ``[T_i]``.
      val_reference: their reference boundary times in seconds.
      thresholds: candidate peak heights.
      criterion: ``"r_value"`` (as UnsupSeg) or ``"f1"``.
    Returns:
      ``(best_threshold, table)``; ``table[k]`` holds the scores of ``thresholds[k]``
      plus its ``"threshold"``. Apply ``best_threshold`` to test data with ``detect_boundaries``.
    """
    if criterion not in CRITERIA:
        raise ValueError(f"unknown criterion {criterion!r}; choose one of {CRITERIA}")
    if len(thresholds) == 0:
        raise ValueError("thresholds is empty; pass candidate peak heights, e.g. np.linspace(0, 0.15, 16)")
    table = []
    for threshold in thresholds:
        predicted = [detect_boundaries(s, frame_shift=frame_shift, threshold=threshold,
                                       min_distance=min_distance, time_offset=time_offset) for s in val_signals]
        row = evaluate_boundaries(predicted, val_reference, tolerance)
        row["threshold"] = float(threshold)
        table.append(row)
    best = max(range(len(table)), key=lambda k: (table[k][criterion], -k))
    return float(thresholds[best]), table
