"""Tests for vgs_jax.analysis.probes: labels, baselines, RER and logistic probes."""

from collections import Counter

import numpy as np
import pytest

from vgs_jax.analysis import probes


def slow_frame_labels(intervals, num_frames, frame_rate):
    out = []
    for t in range(num_frames):
        centre = (t + 0.5) / frame_rate
        hit = [lab for lab, s, e in intervals if s <= centre < e]
        out.append(hit[0] if hit else None)
    return out


def test_frame_labels_hand_case():
    # 10 ms frames: centres 0.005, 0.015, ..., 0.075.
    intervals = [("h", 0.0, 0.02), ("i", 0.02, 0.05), ("sil", 0.06, 0.08)]
    got = probes.frame_labels(intervals, 8, 100.0)
    assert got.tolist() == ["h", "h", "i", "i", "i", None, "sil", "sil"]
    assert probes.frame_labels(intervals, 3, 50.0, fill="?").tolist() == ["h", "i", "?"]  # centres .01 .03 .05


def test_frame_labels_vs_slow():
    rng = np.random.default_rng(0)
    for _ in range(50):
        cuts = np.sort(rng.choice(np.arange(1, 100), 6, replace=False)) / 100
        intervals = [(f"p{k}", cuts[k], cuts[k + 1]) for k in range(0, 5, 2)]
        assert probes.frame_labels(intervals, 60, 50.0).tolist() == slow_frame_labels(intervals, 60, 50.0)


def test_frame_labels_bad_input():
    with pytest.raises(ValueError, match="overlaps"):
        probes.frame_labels([("a", 0.0, 0.1), ("b", 0.05, 0.2)], 10, 100)
    with pytest.raises(ValueError, match="end"):
        probes.frame_labels([("a", 0.1, 0.1)], 10, 100)


def test_presence_labels():
    y, vocab = probes.presence_labels([["k", "ae", "t"], ["d", "ao", "g", "g"], []])
    assert vocab == ["ae", "ao", "d", "g", "k", "t"]
    assert y.tolist() == [[1, 0, 0, 0, 1, 1], [0, 1, 1, 1, 0, 0], [0] * 6]
    y2, _ = probes.presence_labels([["t"]], vocabulary=["t", "k"])
    assert y2.tolist() == [[1, 0]]
    with pytest.raises(ValueError, match="outside the vocabulary"):
        probes.presence_labels([["x"]], vocabulary=["t"])


def test_baselines_and_rer_vs_slow():
    rng = np.random.default_rng(1)
    y_train = rng.choice(list("abc"), 50, p=[0.2, 0.5, 0.3])
    y_test = rng.choice(list("abc"), 40)
    maj = Counter(y_train.tolist()).most_common(1)[0][0]
    assert probes.majority_multiclass(y_train, y_test) == sum(v == maj for v in y_test) / 40
    yb_train = rng.integers(0, 2, size=(30, 4))
    yb_test = rng.integers(0, 2, size=(20, 4))
    vec = [int(sum(yb_train[:, v]) > 15) for v in range(4)]
    slow = sum(yb_test[i, v] == vec[v] for i in range(20) for v in range(4)) / 80
    assert probes.majority_binary(yb_train, yb_test) == pytest.approx(slow)
    # RER hand cases: baseline acc 0.6 (err 0.4), model 0.9 (err 0.1) -> 0.75.
    assert probes.relative_error_reduction(0.9, 0.6) == pytest.approx(0.75)
    assert probes.relative_error_reduction(0.6, 0.6) == 0.0
    assert probes.relative_error_reduction(1.0, 0.3) == 1.0
    assert probes.relative_error_reduction(0.5, 0.6) == pytest.approx(-0.25)
    with pytest.raises(ValueError, match="undefined"):
        probes.relative_error_reduction(1.0, 1.0)
    with pytest.raises(ValueError, match="acc_model"):
        probes.relative_error_reduction(1.2, 0.5)


def test_separable_probe_accuracy_one():
    rng = np.random.default_rng(2)
    centres = rng.normal(size=(4, 6)) * 6
    y = rng.integers(0, 4, 400)
    x = centres[y] + rng.normal(size=(400, 6)) * 0.3
    r = probes.train_probe(x[:200], y[:200], x[200:], y[200:])
    assert r["accuracy"] == 1.0 and r["rer"] == 1.0
    assert r["baseline_accuracy"] == pytest.approx(np.mean(y[200:] == np.bincount(y[:200]).argmax()))
    # String labels work the same way.
    names = np.array(["aa", "b", "ch", "d"], dtype=object)[y]
    assert probes.train_probe(x[:200], names[:200], x[200:], names[200:])["accuracy"] == 1.0


def test_independent_labels_rer_near_zero():
    rng = np.random.default_rng(3)
    x = rng.normal(size=(3000, 5))
    y = rng.choice(3, 3000, p=[0.6, 0.25, 0.15])
    r = probes.train_probe(x[:1500], y[:1500], x[1500:], y[1500:])
    assert abs(r["rer"]) < 0.05
    assert r["accuracy"] == pytest.approx(r["baseline_accuracy"], abs=0.03)


def test_presence_probe():
    rng = np.random.default_rng(4)
    y = rng.integers(0, 2, size=(300, 3))
    y[:, 2] = 0  # a phoneme never present: constant column
    x = np.concatenate([y[:, :2] * 4.0 + rng.normal(size=(300, 2)) * 0.2, rng.normal(size=(300, 2))], axis=1)
    r = probes.presence_probe(x[:150], y[:150], x[150:], y[150:])
    assert r["accuracy"] == 1.0 and r["f1"] == 1.0 and r["rer"] == 1.0
    assert r["baseline_accuracy"] == pytest.approx(probes.majority_binary(y[:150], y[150:]))
    # Independent presence targets: no gain over the majority vector.
    y_rand = (rng.random((2000, 2)) < 0.3).astype(int)
    x_rand = rng.normal(size=(2000, 4))
    r2 = probes.presence_probe(x_rand[:1000], y_rand[:1000], x_rand[1000:], y_rand[1000:])
    assert abs(r2["rer"]) < 0.05
    assert r2["baseline_f1"] == 0.0  # majority vector predicts absence everywhere
    with pytest.raises(ValueError, match="0/1"):
        probes.presence_probe(x[:10], y[:10] * 2, x[10:20], y[10:20])


def test_probe_bad_input():
    with pytest.raises(ValueError, match="rows"):
        probes.train_probe(np.zeros((3, 2)), [0, 1], np.zeros((2, 2)), [0, 1])
    with pytest.raises(ValueError, match="NaN"):
        probes.train_probe(np.full((2, 2), np.nan), [0, 1], np.zeros((2, 2)), [0, 1])
