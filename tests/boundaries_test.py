"""Tests for vgs_jax.analysis.boundaries: peak picking, one-to-one matching, P/R/F1/R-value."""

import math

import numpy as np
import pytest

from vgs_jax.analysis import boundaries


def slow_peaks(x, threshold, min_distance):
    cands = [t for t in range(1, len(x) - 1) if x[t - 1] < x[t] > x[t + 1]]
    if threshold is not None:
        cands = [t for t in cands if x[t] >= threshold]
    kept = []
    for t in sorted(cands, key=lambda t: -x[t]):
        if all(abs(t - k) >= min_distance for k in kept):
            kept.append(t)
    return sorted(kept)


def slow_max_matching(pred, ref, tol):
    """Exhaustive maximum one-to-one matching."""
    def best(i, used):
        if i == len(ref):
            return 0
        out = best(i + 1, used)
        for j, p in enumerate(pred):
            if j not in used and abs(p - ref[i]) <= tol + 1e-9:
                out = max(out, 1 + best(i + 1, used | {j}))
        return out

    return best(0, frozenset())


def test_peaks_vs_slow():
    rng = np.random.default_rng(0)
    for _ in range(200):
        x = rng.random(rng.integers(1, 30))
        thr = None if rng.random() < 0.3 else float(rng.random())
        dist = int(rng.integers(1, 5))
        got = boundaries.detect_peaks(x, threshold=thr, min_distance=dist).tolist()
        assert got == slow_peaks(x.tolist(), thr, dist)


def slow_signal(frames, method):
    """(values, frame position of value 0) by plain loops: cosine change between frames t and t + 1,
    or the L2 norm of frame t."""
    x = frames.tolist()
    norm = [math.sqrt(sum(v * v for v in row)) for row in x]
    if method == "activation_norm":
        return norm, 0.0
    dots = [sum(a * b for a, b in zip(x[t], x[t + 1])) for t in range(len(x) - 1)]
    return [1 - dots[t] / (norm[t] * norm[t + 1]) for t in range(len(x) - 1)], 0.5


@pytest.mark.parametrize("method", boundaries.METHODS)
def test_frame_boundaries_vs_slow_loops(method):
    rng = np.random.default_rng(3)
    for _ in range(100):
        frames = rng.normal(size=(int(rng.integers(1, 25)), int(rng.integers(2, 6))))  # D >= 2: no plateaus
        step, start = float(rng.choice([0.01, 0.02, 0.03])), float(rng.choice([0.0, 0.005, 0.03]))
        values, lag = slow_signal(frames, method)
        np.testing.assert_allclose(boundaries.boundary_signal(frames, method), values, atol=1e-12)
        thr = None if rng.random() < 0.3 or not values else float(rng.random() * max(values))
        dist = int(rng.integers(1, 4))
        want = [start + (t + lag) * step for t in slow_peaks(values, thr, dist)]
        got = boundaries.frame_boundaries(frames, method=method, frame_step=step, frame_start=start,
                                          threshold=thr, min_distance=dist)
        np.testing.assert_allclose(got, want, atol=1e-12)


def test_methods_hand_case():
    # Norms 1, 3, 1, 1, 2, 1 (peaks at frames 1 and 4); directions turn 90 degrees between frames 2 and 3.
    frames = np.array([[1, 0], [3, 0], [1, 0], [0, 1], [0, 2], [0, 1]], np.float64)
    norm = boundaries.frame_boundaries(frames, method="activation_norm", frame_step=0.01, frame_start=0.005)
    np.testing.assert_allclose(norm, [0.015, 0.045])  # frame centres
    change = boundaries.frame_boundaries(frames, method="cosine_change", frame_step=0.01, frame_start=0.005)
    np.testing.assert_allclose(change, [0.03])  # midway between frames 2 (0.025 s) and 3 (0.035 s)
    with pytest.raises(ValueError, match="unknown boundary method"):
        boundaries.boundary_signal(frames, "norm")
    with pytest.raises(ValueError, match=r"\[T, D\]"):
        boundaries.boundary_signal(frames[0], "activation_norm")


def test_detect_boundaries_times():
    x = np.array([0, 1, 0, 0, 3, 0, 2, 0.0])
    np.testing.assert_allclose(boundaries.detect_boundaries(x), [0.01, 0.04, 0.06])
    np.testing.assert_allclose(boundaries.detect_boundaries(x, threshold=1.5), [0.04, 0.06])
    # min_distance 3: peak 6 is within 2 frames of the higher peak 4.
    np.testing.assert_allclose(boundaries.detect_boundaries(x, min_distance=3, frame_shift=0.02), [0.02, 0.08])
    np.testing.assert_allclose(boundaries.detect_boundaries(x, threshold=2.5, time_offset=0.005), [0.045])


def test_matching_vs_exhaustive():
    rng = np.random.default_rng(1)
    for _ in range(300):
        pred = np.round(rng.random(rng.integers(0, 6)) * 0.2, 2)
        ref = np.round(rng.random(rng.integers(0, 6)) * 0.2, 2)
        assert boundaries.count_hits(pred, ref, 0.02) == slow_max_matching(sorted(pred), sorted(ref), 0.02)


def test_exact_peaks_give_perfect_scores():
    ref = [0.05, 0.12, 0.31]
    x = np.zeros(40)
    x[[5, 12, 31]] = 1.0
    pred = boundaries.detect_boundaries(x, threshold=0.5)
    s = boundaries.evaluate_boundaries([pred], [ref])
    assert (s["precision"], s["recall"], s["f1"], s["r_value"], s["os"]) == pytest.approx((1, 1, 1, 1, 0))


def test_tolerance_within_and_beyond():
    ref = [0.10, 0.30]
    assert boundaries.count_hits([0.12, 0.28], ref) == 2  # exactly 20 ms off counts
    assert boundaries.count_hits([0.05 + 0.07, 0.3], ref) == 2  # float 0.12000000000000001
    assert boundaries.count_hits([0.13, 0.27], ref) == 0  # 30 ms off
    assert boundaries.count_hits([0.13, 0.27], ref, tolerance=0.03) == 2
    assert boundaries.count_hits([0.04 * k for k in range(10)], []) == 0


def test_one_to_one():
    # Two predictions near one reference: one hit; precision 1/2.
    s = boundaries.evaluate_boundaries([[0.10, 0.11]], [[0.10]])
    assert s["hits"] == 1 and s["precision"] == 0.5 and s["recall"] == 1.0
    # The greedy sweep must not waste a prediction: p=0.11 serves r=0.10 and p=0.13 serves r=0.14.
    assert boundaries.count_hits([0.11, 0.13], [0.10, 0.14]) == 2


def test_r_value_hand_computation():
    # 3 hits, 4 predictions, 5 references: P = 0.75, R = 0.6, OS = 4/5 - 1 = -0.2.
    s = boundaries.scores_from_counts(3, 4, 5)
    r1 = math.sqrt(0.4 ** 2 + 0.2 ** 2)
    r2 = (0.2 + 0.6 - 1) / math.sqrt(2)
    assert s["precision"] == 0.75 and s["recall"] == 0.6
    assert s["f1"] == pytest.approx(2 * 0.75 * 0.6 / 1.35)
    assert s["os"] == pytest.approx(-0.2)
    assert s["r_value"] == pytest.approx(1 - (r1 + abs(r2)) / 2)
    assert s["r_value"] == pytest.approx(0.705683, abs=1e-6)  # 1 - (0.447214 + 0.141421) / 2
    # OS = R/P - 1 whenever there are hits.
    assert s["os"] == pytest.approx(s["recall"] / s["precision"] - 1)
    # No predictions: P, F1 = 0; OS = -1; r1 = sqrt(2), r2 = 0.
    s0 = boundaries.scores_from_counts(0, 0, 5)
    assert (s0["precision"], s0["f1"], s0["os"]) == (0.0, 0.0, -1.0)
    assert s0["r_value"] == pytest.approx(1 - math.sqrt(2) / 2)


def test_corpus_sums_counts():
    s = boundaries.evaluate_boundaries([[0.1], [0.5, 0.9]], [[0.1, 0.2], [0.9]])
    assert (s["hits"], s["num_pred"], s["num_ref"]) == (2, 3, 3)


def test_tune_threshold_on_validation_then_apply_to_test():
    rng = np.random.default_rng(2)

    def make(n):
        sigs, refs = [], []
        for _ in range(n):
            x = rng.random(60) * 0.4  # noise peaks below 0.4
            idx = np.sort(rng.choice(np.arange(3, 57, 6), 5, replace=False))
            x[idx] = 0.8 + 0.2 * rng.random(5)
            sigs.append(x)
            refs.append(idx * 0.01)
        return sigs, refs

    val_sig, val_ref = make(10)
    thresholds = [0.0, 0.2, 0.5, 0.7, 0.95]
    best, table = boundaries.tune_threshold(val_sig, val_ref, thresholds)
    assert best == 0.5  # first threshold reaching the perfect validation R-value
    assert [row["threshold"] for row in table] == thresholds
    assert table[2]["r_value"] == pytest.approx(1.0) and table[0]["r_value"] < 0.9
    test_sig, test_ref = make(5)
    pred = [boundaries.detect_boundaries(s, threshold=best) for s in test_sig]
    assert boundaries.evaluate_boundaries(pred, test_ref)["f1"] == pytest.approx(1.0)
    best_f1, _ = boundaries.tune_threshold(val_sig, val_ref, thresholds, criterion="f1")
    assert best_f1 == 0.5


def test_bad_inputs_raise():
    with pytest.raises(ValueError, match="no reference boundaries"):
        boundaries.evaluate_boundaries([[0.1]], [[]])
    with pytest.raises(ValueError, match="pair them up"):
        boundaries.evaluate_boundaries([[0.1]], [])
    with pytest.raises(ValueError, match="1-D"):
        boundaries.detect_peaks(np.zeros((2, 2)))
    with pytest.raises(ValueError, match="unknown criterion"):
        boundaries.tune_threshold([np.zeros(3)], [[0.01]], [0.1], criterion="precision")
    with pytest.raises(ValueError, match="tolerance"):
        boundaries.count_hits([0.1], [0.1], tolerance=-1)
