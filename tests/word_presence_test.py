"""Word presence probes: vocabulary, targets, F1 and the probe on constructed data with known answers."""

import numpy as np
import pytest
from sklearn.metrics import f1_score

from vgs_jax.analysis import word_presence


def test_vocabulary_and_targets_hand_case():
    seqs = [["A", "red", "circle"], ["a", "blue", "circle"], ["two", "red", "circles", "and", "a", "star"]]
    assert word_presence.vocabulary(seqs, min_count=2) == ["a", "circle", "red"]
    assert word_presence.vocabulary(seqs, min_count=2, exclude={"a"}) == ["circle", "red"]
    assert word_presence.vocabulary(seqs, min_count=1, exclude={"a", "and"}) == [
        "blue", "circle", "circles", "red", "star", "two"]
    got = word_presence.presence_targets(seqs, ["circle", "red", "star"])
    np.testing.assert_array_equal(got, [[1, 1, 0], [1, 0, 0], [0, 1, 1]])
    with pytest.raises(ValueError, match="min_count"):
        word_presence.vocabulary(seqs, min_count=0)
    with pytest.raises(ValueError, match="duplicate"):
        word_presence.presence_targets(seqs, ["red", "red"])


def test_f1_matches_sklearn():
    rng = np.random.default_rng(0)
    for _ in range(20):
        pred, true = rng.integers(0, 2, 15), rng.integers(0, 2, 15)
        assert word_presence.f1_present(pred, true) == pytest.approx(f1_score(true, pred, zero_division=1.0))
    assert word_presence.f1_present([0, 0], [0, 0]) == 1.0
    assert word_presence.f1_present([1, 0], [0, 1]) == 0.0
    assert word_presence.f1_present([1, 1, 0], [1, 0, 0]) == pytest.approx(2 / 3)


def _data(n, v, seed, separable):
    rng = np.random.default_rng(seed)
    y = (rng.random((n, v)) < 0.3).astype(np.int8)
    noise = rng.normal(size=(n, 6))
    x = np.concatenate([3.0 * y + 0.1 * rng.normal(size=(n, v)), noise], axis=1) if separable else noise
    return x, y


def test_separable_words_are_found():
    x, y = _data(200, 4, 0, separable=True)
    vocab = ["circle", "red", "star", "blue"]
    out = word_presence.word_presence_probe(x[:150], y[:150], x[150:], y[150:], vocab)
    assert out["macro"]["accuracy"] == 1.0 and out["macro"]["f1"] == 1.0
    assert out["macro"]["baseline_f1"] < 0.5 and out["macro"]["rer"] == pytest.approx(1.0)
    for v, word in enumerate(vocab):
        row = out["words"][word]
        assert row["train_positives"] == y[:150, v].sum() and row["test_positives"] == y[150:, v].sum()
        # The majority value is 0 (presence rate 0.3), so the baseline accuracy is the absence rate.
        assert row["baseline_accuracy"] == pytest.approx(1.0 - y[150:, v].mean())


def test_noise_stays_near_baseline_and_baseline_is_the_majority():
    x, y = _data(400, 3, 1, separable=False)
    vocab = ["a", "b", "c"]
    out = word_presence.word_presence_probe(x[:300], y[:300], x[300:], y[300:], vocab, c=0.01)
    slow_base = np.mean([np.mean(y[300:, v] == int(y[:300, v].mean() > 0.5)) for v in range(3)])
    assert out["macro"]["baseline_accuracy"] == pytest.approx(slow_base)
    assert abs(out["macro"]["accuracy"] - slow_base) < 0.06


def test_single_class_word_and_bad_input():
    x, y = _data(40, 2, 2, separable=True)
    y[:30, 1] = 1  # always present in training: predicted present, majority present
    out = word_presence.word_presence_probe(x[:30], y[:30], x[30:], y[30:], ["w0", "w1"])
    assert out["words"]["w1"]["accuracy"] == pytest.approx(y[30:, 1].mean())
    assert out["words"]["w1"]["baseline_accuracy"] == pytest.approx(y[30:, 1].mean())
    with pytest.raises(ValueError, match="0/1"):
        word_presence.word_presence_probe(x[:30], 2 * y[:30], x[30:], y[30:], ["w0", "w1"])
    with pytest.raises(ValueError, match="vocabulary words"):
        word_presence.word_presence_probe(x[:30], y[:30], x[30:], y[30:], ["w0"])
    with pytest.raises(ValueError, match="shapes disagree"):
        word_presence.word_presence_probe(x[:30], y[:30], x[30:, :3], y[30:], ["w0", "w1"])
