"""Word presence probes (after Chrupała, Gelderloos & Alishahi 2017a): is word w in the utterance?

For every word type of a vocabulary (content words with at least ``min_count`` occurrences in
the analysed utterances; function words excluded), one binary logistic-regression probe predicts
from an utterance vector (the encoder's pooled embedding, or a layer's mean-pooled activations)
whether the word occurs in the utterance. Probes use standardised features (statistics from the
training utterances), scikit-learn L-BFGS with a fixed seed, train on the first utterances and
test on the rest (the split `suite` uses for the phoneme-presence probe).

Scores per word on the test utterances: accuracy, F1 of the "present" class (1.0 when the word
is neither present nor predicted), and the same for the majority baseline (the word's majority
value in the training utterances). Macro scores are means over words; ``rer`` is the relative
error reduction of the macro accuracy over the macro baseline accuracy (sota-and-metrics.md D.3).
Run it on the trained model and on its random initialisation, which the suite does.
"""

from collections import Counter
from typing import Sequence

import numpy as np
from sklearn.linear_model import LogisticRegression
from sklearn.preprocessing import StandardScaler

from vgs_jax.analysis import probes


def vocabulary(word_sequences: Sequence[Sequence[str]], *, min_count: int,
               exclude: frozenset[str] | set[str] = frozenset()) -> list[str]:
    """Sorted word types with ``>= min_count`` occurrences (tokens, case-folded) outside `exclude`."""
    if min_count < 1:
        raise ValueError(f"min_count must be >= 1, got {min_count}.")
    counts = Counter(w.lower() for seq in word_sequences for w in seq)
    return sorted(w for w, c in counts.items() if c >= min_count and w not in exclude)


def presence_targets(word_sequences: Sequence[Sequence[str]], vocab: Sequence[str]) -> np.ndarray:
    """``[n, V]`` int8: 1 if vocabulary word v occurs (case-folded) in utterance i; other words ignored."""
    index = {w: k for k, w in enumerate(vocab)}
    if len(index) != len(vocab):
        raise ValueError("vocab has duplicate words; pass the list `vocabulary` returns.")
    out = np.zeros((len(word_sequences), len(vocab)), np.int8)
    for i, seq in enumerate(word_sequences):
        for w in seq:
            k = index.get(w.lower())
            if k is not None:
                out[i, k] = 1
    return out


def f1_present(pred, true) -> float:
    """F1 of the positive class of 0/1 vectors ``[m]``; 1.0 when neither has a positive."""
    pred, true = np.asarray(pred), np.asarray(true)
    tp = int(np.sum((pred == 1) & (true == 1)))
    denom = int(np.sum(pred == 1) + np.sum(true == 1))
    return 1.0 if denom == 0 else 2.0 * tp / denom


def _check(x, y, name: str) -> tuple[np.ndarray, np.ndarray]:
    x, y = np.asarray(x, np.float64), np.asarray(y)
    if x.ndim != 2 or x.shape[0] == 0 or not np.all(np.isfinite(x)):
        raise ValueError(f"x_{name} must be finite [n > 0, D] utterance vectors, got shape {x.shape}.")
    if y.ndim != 2 or y.shape[0] != x.shape[0]:
        raise ValueError(f"y_{name} must be [n, V] presence targets with n = {x.shape[0]}, got {y.shape}.")
    if not np.isin(y, (0, 1)).all():
        raise ValueError(f"y_{name} must be 0/1; build it with presence_targets.")
    return x, y


def word_presence_probe(x_train, y_train, x_test, y_test, vocab: Sequence[str], *, c: float = 1.0,
                        max_iter: int = 1000, seed: int = 0) -> dict:
    """One binary probe per vocabulary word.

    Args:
      x_train: ``[n, D]`` utterance vectors; y_train: ``[n, V]`` 0/1 presence (column v = vocab[v]).
      x_test, y_test: held-out ``[m, D]`` and ``[m, V]``.
    Returns:
      {"macro": {"accuracy", "f1", "baseline_accuracy", "baseline_f1", "rer"},
       "words": {word: {"accuracy", "f1", "baseline_accuracy", "baseline_f1", "train_positives",
       "test_positives"}}}; ``rer`` is NaN when the baseline is perfect.
    """
    x_train, y_train = _check(x_train, y_train, "train")
    x_test, y_test = _check(x_test, y_test, "test")
    if x_train.shape[1] != x_test.shape[1] or not y_train.shape[1] == y_test.shape[1] == len(vocab):
        raise ValueError(f"shapes disagree: x {x_train.shape}/{x_test.shape}, y {y_train.shape}/{y_test.shape}, "
                         f"{len(vocab)} vocabulary words.")
    if not vocab:
        raise ValueError("vocab is empty; lower min_count or analyse more utterances.")
    scaler = StandardScaler().fit(x_train)
    xs_train, xs_test = scaler.transform(x_train), scaler.transform(x_test)
    words = {}
    for v, word in enumerate(vocab):
        target = y_train[:, v]
        majority = int(target.mean() > 0.5)  # ties (exactly half) -> absent
        if len(np.unique(target)) == 1:
            pred = np.full(len(x_test), target[0])
        else:
            clf = LogisticRegression(C=c, max_iter=max_iter, random_state=seed).fit(xs_train, target)
            pred = clf.predict(xs_test)
        base = np.full(len(x_test), majority)
        words[word] = {"accuracy": float(np.mean(pred == y_test[:, v])), "f1": f1_present(pred, y_test[:, v]),
                       "baseline_accuracy": float(np.mean(base == y_test[:, v])),
                       "baseline_f1": f1_present(base, y_test[:, v]),
                       "train_positives": int(target.sum()), "test_positives": int(y_test[:, v].sum())}
    macro = {k: float(np.mean([w[k] for w in words.values()]))
             for k in ("accuracy", "f1", "baseline_accuracy", "baseline_f1")}
    macro["rer"] = (float("nan") if macro["baseline_accuracy"] == 1.0 else
                    probes.relative_error_reduction(macro["accuracy"], macro["baseline_accuracy"]))
    return {"macro": macro, "words": words}
