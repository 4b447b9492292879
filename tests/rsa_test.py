"""Tests for vgs_jax.analysis.rsa against slow loops and hand cases."""

import functools
import math

import numpy as np
import pytest

from vgs_jax.analysis import abx, rsa


def slow_edit_distance(a, b):
    @functools.lru_cache(maxsize=None)
    def d(i, j):
        if i == 0 or j == 0:
            return i + j
        return min(d(i - 1, j) + 1, d(i, j - 1) + 1, d(i - 1, j - 1) + (a[i - 1] != b[j - 1]))

    return d(len(a), len(b))


def slow_pearson(x, y):
    mx, my = sum(x) / len(x), sum(y) / len(y)
    sxy = sum((p - mx) * (q - my) for p, q in zip(x, y))
    return sxy / math.sqrt(sum((p - mx) ** 2 for p in x) * sum((q - my) ** 2 for q in y))


def slow_ranks(x):
    """Average ranks (1-based) with ties sharing the mean rank."""
    order = sorted(range(len(x)), key=lambda k: x[k])
    ranks = [0.0] * len(x)
    i = 0
    while i < len(order):
        j = i
        while j + 1 < len(order) and x[order[j + 1]] == x[order[i]]:
            j += 1
        for k in range(i, j + 1):
            ranks[order[k]] = (i + j) / 2 + 1
        i = j + 1
    return ranks


def slow_triu(m):
    n = len(m)
    return [m[i][j] for i in range(n) for j in range(i + 1, n)]


def test_edit_distance_hand_and_slow():
    assert rsa.edit_distance("kitten", "sitting") == 3
    assert rsa.edit_distance("", "abc") == 3
    assert rsa.edit_distance(["k", "ae", "t"], ["k", "ae", "t"]) == 0
    assert rsa.normalized_edit_distance("flaw", "lawn") == pytest.approx(2 / 4)
    assert rsa.normalized_edit_distance("", "") == 0.0
    rng = np.random.default_rng(0)
    for _ in range(300):
        a = tuple(rng.integers(0, 4, size=rng.integers(0, 9)).tolist())
        b = tuple(rng.integers(0, 4, size=rng.integers(0, 9)).tolist())
        assert rsa.edit_distance(a, b) == slow_edit_distance(a, b)


def test_edit_distance_matrix():
    seqs = [["k", "ae", "t"], ["b", "ae", "t"], ["k", "ae", "t", "s"]]
    m = rsa.edit_distance_matrix(seqs)
    expected = np.array([[0, 1 / 3, 1 / 4], [1 / 3, 0, 2 / 4], [1 / 4, 2 / 4, 0]])
    np.testing.assert_allclose(m, expected)


def test_cosine_matrices_vs_loop():
    rng = np.random.default_rng(1)
    x = rng.normal(size=(6, 5))
    sim = rsa.cosine_similarity_matrix(x)
    for i in range(6):
        for j in range(6):
            ref = float(x[i] @ x[j]) / (np.linalg.norm(x[i]) * np.linalg.norm(x[j]))
            assert sim[i, j] == pytest.approx(ref, abs=1e-12)
    np.testing.assert_allclose(rsa.cosine_distance_matrix(x), 1 - sim)


def test_dtw_distance_matrix_vs_pairwise():
    rng = np.random.default_rng(2)
    seqs = [rng.normal(size=(rng.integers(1, 5), 3)) for _ in range(4)]
    m = rsa.dtw_distance_matrix(seqs)
    for i in range(4):
        assert m[i, i] == 0.0
        for j in range(4):
            if i != j:
                assert m[i, j] == pytest.approx(abx.dtw_distance(seqs[i], seqs[j]))


def test_upper_triangle_and_rsa_vs_slow():
    rng = np.random.default_rng(3)
    a, b = rng.normal(size=(7, 7)), rng.normal(size=(7, 7))
    assert rsa.upper_triangle(a).tolist() == slow_triu(a.tolist())
    ua, ub = slow_triu(a.tolist()), slow_triu(b.tolist())
    assert rsa.rsa(a, b) == pytest.approx(slow_pearson(ua, ub), abs=1e-12)
    assert rsa.rsa(a, b, "spearman") == pytest.approx(slow_pearson(slow_ranks(ua), slow_ranks(ub)), abs=1e-12)
    # Ties in the ranks.
    t1 = np.round(a * 2) / 2
    assert rsa.rsa(t1, b, "spearman") == pytest.approx(
        slow_pearson(slow_ranks(slow_triu(t1.tolist())), slow_ranks(ub)), abs=1e-12)


def test_identical_monotone_and_independent():
    rng = np.random.default_rng(4)
    x = rng.normal(size=(40, 8))
    d = rsa.cosine_distance_matrix(x)
    assert rsa.rsa_scores(d, d) == pytest.approx({"pearson": 1.0, "spearman": 1.0})
    # Lower-triangle / diagonal content is ignored.
    d_noisy = d.copy()
    d_noisy[np.tril_indices(40)] = rng.normal(size=len(np.tril_indices(40)[0]))
    assert rsa.rsa(d, d_noisy) == pytest.approx(1.0)
    # Monotone non-linear transform: Spearman exactly 1, Pearson below 1.
    mono = np.exp(5 * d)
    assert rsa.rsa(d, mono, "spearman") == pytest.approx(1.0)
    assert rsa.rsa(d, mono, "pearson") < 0.999
    # Distance vs similarity flips the sign.
    assert rsa.rsa(d, 1 - d) == pytest.approx(-1.0)
    # Independent spaces: near 0.
    y = rng.normal(size=(40, 8))
    scores = rsa.rsa_scores(d, rsa.cosine_distance_matrix(y))
    assert abs(scores["pearson"]) < 0.1 and abs(scores["spearman"]) < 0.1


def test_bad_inputs_raise():
    with pytest.raises(ValueError, match="same stimuli"):
        rsa.rsa(np.eye(3), np.eye(4))
    with pytest.raises(ValueError, match="constant"):
        rsa.rsa(np.ones((3, 3)), np.random.default_rng(0).normal(size=(3, 3)))
    with pytest.raises(ValueError, match="unknown method"):
        rsa.rsa(np.eye(3), np.eye(3), "kendall")
    with pytest.raises(ValueError, match="all-zero"):
        rsa.cosine_similarity_matrix(np.zeros((3, 2)))
    with pytest.raises(ValueError, match="square"):
        rsa.upper_triangle(np.ones((2, 3)))
