"""Diagnostic classifiers and relative error reduction (sota-and-metrics.md D.3).

* Local scope: one example per frame, labelled by ``frame_labels`` (drop silence
  frames before probing, as Chrupala, Higy & Alishahi 2020 do).
* Global scope: one pooled vector per utterance, with multi-label phoneme
  presence targets from ``presence_labels``; one binary probe per phoneme.
* Probe: standardised features (statistics from the training split) and a
  multinomial logistic regression (scikit-learn, L-BFGS, fixed ``seed``), trained
  on training activations and scored on held-out ones. (The paper trains the
  same softmax model with Adam; the optimiser differs, the model does not.)
* Baseline: the majority class of the TRAINING labels (``majority_multiclass``),
  or per phoneme the majority value (``majority_binary``, a majority vector).
* RER = (err_baseline - err_model) / err_baseline
      = ((1 - acc_base) - (1 - acc_model)) / (1 - acc_base).
  Report a randomly initialised model next to the trained one (D.3).
"""

from typing import Hashable, Sequence

import numpy as np
from sklearn.linear_model import LogisticRegression
from sklearn.preprocessing import StandardScaler


def frame_labels(intervals: Sequence[tuple[Hashable, float, float]], num_frames: int, frame_rate: float,
                 *, fill: Hashable = None) -> np.ndarray:
    """Phone label of each frame from ``(label, start_s, end_s)`` intervals.

    Frame t is labelled by the interval containing its centre ``(t + 0.5) / frame_rate``
    seconds (``start <= centre < end``); frames no interval covers get ``fill``.
    Args:
      intervals: non-overlapping ``(label, start, end)`` in seconds.
      num_frames: number of frames T; frame_rate: frames per second (100 for 10 ms).
    Returns:
      object array ``[T]`` of labels.
    """
    if num_frames < 0:
        raise ValueError(f"num_frames must be >= 0, got {num_frames}")
    if frame_rate <= 0:
        raise ValueError(f"frame_rate must be positive frames per second, got {frame_rate}")
    out = np.full(num_frames, fill, dtype=object)
    centres = (np.arange(num_frames) + 0.5) / frame_rate
    spans = sorted((float(s), float(e), lab) for lab, s, e in intervals)
    for k, (start, end, label) in enumerate(spans):
        if not end > start:
            raise ValueError(f"interval {label!r} has end {end} <= start {start}; fix the alignment")
        if k and start < spans[k - 1][1]:
            raise ValueError(f"interval {label!r} starting at {start} s overlaps the previous one "
                             f"ending at {spans[k - 1][1]} s; alignments must not overlap")
        out[(centres >= start) & (centres < end)] = label
    return out


def presence_labels(label_sequences: Sequence[Sequence[Hashable]],
                    vocabulary: Sequence[Hashable] | None = None) -> tuple[np.ndarray, list]:
    """Multi-label phoneme presence ``[n, V]`` (int8, 1 if phoneme v occurs in utterance i).

    ``vocabulary`` fixes the column order (default: sorted union of the labels);
    labels outside it raise. Returns ``(targets, vocabulary)``.
    """
    if vocabulary is None:
        vocabulary = sorted({lab for seq in label_sequences for lab in seq}, key=repr)
    vocabulary = list(vocabulary)
    index = {lab: k for k, lab in enumerate(vocabulary)}
    out = np.zeros((len(label_sequences), len(vocabulary)), dtype=np.int8)
    for i, seq in enumerate(label_sequences):
        for lab in seq:
            if lab not in index:
                raise ValueError(f"utterance {i} has label {lab!r} outside the vocabulary; add it or drop it")
            out[i, index[lab]] = 1
    return out, vocabulary


def majority_multiclass(y_train, y_test) -> float:
    """Accuracy on ``y_test [m]`` of always predicting the most frequent ``y_train [n]`` class."""
    y_train, y_test = np.asarray(y_train), np.asarray(y_test)
    if y_train.size == 0 or y_test.size == 0:
        raise ValueError("y_train and y_test must be non-empty")
    classes, counts = np.unique(y_train, return_counts=True)
    return float(np.mean(y_test == classes[np.argmax(counts)]))


def majority_binary(y_train, y_test) -> float:
    """Mean element accuracy on ``y_test [m, V]`` of the training majority vector of ``y_train [n, V]`` (0/1)."""
    y_train, y_test = np.asarray(y_train), np.asarray(y_test)
    if y_train.ndim != 2 or y_test.ndim != 2 or y_train.shape[1] != y_test.shape[1] or 0 in y_train.shape:
        raise ValueError(f"need 0/1 matrices [n, V] and [m, V], got {y_train.shape} and {y_test.shape}")
    majority = (y_train.mean(axis=0) > 0.5).astype(y_test.dtype)  # ties (exactly half) -> 0
    return float(np.mean(y_test == majority[None, :]))


def relative_error_reduction(acc_model: float, acc_baseline: float) -> float:
    """RER = ((1 - acc_baseline) - (1 - acc_model)) / (1 - acc_baseline) (D.3); accuracies in [0, 1]."""
    for name, acc in (("acc_model", acc_model), ("acc_baseline", acc_baseline)):
        if not 0.0 <= acc <= 1.0:
            raise ValueError(f"{name} must be an accuracy in [0, 1], got {acc}")
    if acc_baseline == 1.0:
        raise ValueError("the baseline makes no errors, so the relative error reduction is undefined")
    return ((1.0 - acc_baseline) - (1.0 - acc_model)) / (1.0 - acc_baseline)


def _check_xy(x, y, name: str):
    x = np.asarray(x, dtype=np.float64)
    y = np.asarray(y)
    if x.ndim != 2 or x.shape[0] == 0:
        raise ValueError(f"x_{name} must be [n > 0, dim] activations, got shape {x.shape}")
    if y.shape[0] != x.shape[0]:
        raise ValueError(f"x_{name} has {x.shape[0]} rows but y_{name} has {y.shape[0]}")
    if not np.all(np.isfinite(x)):
        raise ValueError(f"x_{name} contains NaN or inf")
    return x, y


def _fit_predict(x_train, y_train, x_test, c: float, max_iter: int, seed: int) -> np.ndarray:
    if len(np.unique(y_train)) == 1:  # nothing to learn; sklearn refuses a single class
        return np.full(len(x_test), y_train[0])
    scaler = StandardScaler().fit(x_train)
    clf = LogisticRegression(C=c, max_iter=max_iter, random_state=seed)
    clf.fit(scaler.transform(x_train), y_train)
    return clf.predict(scaler.transform(x_test))


def train_probe(x_train, y_train, x_test, y_test, *, c: float = 1.0, max_iter: int = 1000,
                seed: int = 0) -> dict[str, float]:
    """Multinomial logistic-regression probe (local or pooled scope).

    Args:
      x_train: activations ``[n, D]``; y_train: class labels ``[n]`` (any hashable dtype).
      x_test, y_test: held-out ``[m, D]`` and ``[m]``.
      c: inverse L2 strength (scikit-learn ``C``).
    Returns:
      ``{"accuracy", "baseline_accuracy", "rer"}``; ``rer`` is NaN if the baseline is perfect.
    """
    x_train, y_train = _check_xy(x_train, y_train, "train")
    x_test, y_test = _check_xy(x_test, y_test, "test")
    pred = _fit_predict(x_train, y_train, x_test, c, max_iter, seed)
    acc = float(np.mean(pred == y_test))
    base = majority_multiclass(y_train, y_test)
    rer = float("nan") if base == 1.0 else relative_error_reduction(acc, base)
    return {"accuracy": acc, "baseline_accuracy": base, "rer": rer}


def _f1(pred: np.ndarray, true: np.ndarray) -> float:
    tp = np.sum((pred == 1) & (true == 1))
    denom = np.sum(pred == 1) + np.sum(true == 1)
    return 1.0 if denom == 0 else float(2 * tp / denom)


def presence_probe(x_train, y_train, x_test, y_test, *, c: float = 1.0, max_iter: int = 1000,
                   seed: int = 0) -> dict[str, float]:
    """Global diagnostic: one binary logistic probe per phoneme column.

    Args:
      x_train: pooled activations ``[n, D]``; y_train: presence ``[n, V]`` (0/1).
      x_test, y_test: held-out ``[m, D]`` and ``[m, V]``.
    Returns:
      ``{"accuracy", "f1", "baseline_accuracy", "baseline_f1", "rer"}``: accuracy is the
      mean over all (utterance, phoneme) cells, F1 the mean over phonemes of the
      per-phoneme F1 (1.0 where a phoneme is neither present nor predicted),
      the baseline is the training majority vector, and RER uses the accuracies.
    """
    x_train, y_train = _check_xy(x_train, y_train, "train")
    x_test, y_test = _check_xy(x_test, y_test, "test")
    if y_train.ndim != 2 or y_test.ndim != 2 or y_train.shape[1] != y_test.shape[1]:
        raise ValueError(f"presence targets must be [n, V] and [m, V], got {y_train.shape} and {y_test.shape}")
    if not (np.isin(y_train, (0, 1)).all() and np.isin(y_test, (0, 1)).all()):
        raise ValueError("presence targets must be 0/1; build them with presence_labels")
    pred = np.stack([_fit_predict(x_train, y_train[:, v], x_test, c, max_iter, seed)
                     for v in range(y_train.shape[1])], axis=1)
    majority = np.broadcast_to((y_train.mean(axis=0) > 0.5).astype(y_test.dtype), y_test.shape)
    acc = float(np.mean(pred == y_test))
    base = majority_binary(y_train, y_test)
    rer = float("nan") if base == 1.0 else relative_error_reduction(acc, base)
    return {"accuracy": acc, "f1": float(np.mean([_f1(pred[:, v], y_test[:, v]) for v in range(y_test.shape[1])])),
            "baseline_accuracy": base,
            "baseline_f1": float(np.mean([_f1(majority[:, v], y_test[:, v]) for v in range(y_test.shape[1])])),
            "rer": rer}
