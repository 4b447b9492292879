"""Tests for vgs_jax.analysis.abx against slow recursive DTW and loop-based ABX."""

import functools
import itertools
import math

import numpy as np
import pytest

from vgs_jax.analysis import abx


# ----------------------------------------------------------------- slow references
def slow_frame_dist(a, b, metric):
    if metric == "euclidean":
        return math.sqrt(sum((x - y) ** 2 for x, y in zip(a, b)))
    cos = sum(x * y for x, y in zip(a, b)) / (math.sqrt(sum(x * x for x in a)) * math.sqrt(sum(y * y for y in b)))
    cos = min(1.0, max(-1.0, cos))
    return math.acos(cos) / math.pi if metric == "angular" else 1.0 - cos


def slow_dtw(a, b, metric="angular"):
    d = [[slow_frame_dist(x, y, metric) for y in b] for x in a]

    @functools.lru_cache(maxsize=None)
    def cost(i, j):
        if i == 0 and j == 0:
            return d[0][0]
        options = []
        if i > 0:
            options.append(cost(i - 1, j))
        if j > 0:
            options.append(cost(i, j - 1))
        if i > 0 and j > 0:
            options.append(cost(i - 1, j - 1))
        return d[i][j] + min(options)

    i, j, path = len(a) - 1, len(b) - 1, 1
    while i > 0 or j > 0:
        if i == 0:
            j -= 1
        elif j == 0:
            i -= 1
        elif cost(i - 1, j - 1) <= cost(i, j - 1) and cost(i - 1, j - 1) <= cost(i - 1, j):
            i, j = i - 1, j - 1
        elif cost(i, j - 1) <= cost(i - 1, j):
            j -= 1
        else:
            i -= 1
        path += 1
    return cost(len(a) - 1, len(b) - 1) / path


def slow_abx_within(items, metric="angular"):
    """All triplets, no caps; average groups -> contexts -> speakers -> pairs with dicts."""
    groups = {}
    keys = {(it[2], it[1], it[3]) for it in items}
    for (c, pa, s), (c2, pb, s2) in itertools.product(keys, keys):
        if c != c2 or s != s2 or pa == pb:
            continue
        A = [it[0] for it in items if (it[2], it[1], it[3]) == (c, pa, s)]
        B = [it[0] for it in items if (it[2], it[1], it[3]) == (c, pb, s)]
        errs = []
        for ia, a in enumerate(A):
            for b in B:
                for ix, x in enumerate(A):
                    if ia == ix:
                        continue
                    dax, dbx = slow_dtw(a, x, metric), slow_dtw(b, x, metric)
                    errs.append(1.0 if dax > dbx else 0.5 if dax == dbx else 0.0)
        if errs:
            groups[(c, pa, pb, s)] = sum(errs) / len(errs)
    per_spk = {}
    for (c, pa, pb, s), v in groups.items():
        per_spk.setdefault((pa, pb, s), []).append(v)
    per_pair = {}
    for (pa, pb, s), v in per_spk.items():
        per_pair.setdefault((pa, pb), []).append(sum(v) / len(v))
    return groups, sum(sum(v) / len(v) for v in per_pair.values()) / len(per_pair)


# ----------------------------------------------------------------- DTW
@pytest.mark.parametrize("metric", abx.METRICS)
def test_dtw_matches_slow_recursive(metric):
    rng = np.random.default_rng(0)
    for _ in range(25):
        a = rng.normal(size=(rng.integers(1, 8), 3))
        b = rng.normal(size=(rng.integers(1, 8), 3))
        assert abx.dtw_distance(a, b, metric) == pytest.approx(slow_dtw(a.tolist(), b.tolist(), metric), abs=1e-12)


def test_dtw_tie_breaking_matches_slow_on_integer_costs():
    rng = np.random.default_rng(1)
    for _ in range(50):  # small integer costs make many ties in the backtrack
        d = rng.integers(0, 3, size=(rng.integers(1, 7), rng.integers(1, 7))).astype(float)
        ref = slow_dtw_from_matrix(d)
        assert abx.dtw_from_distances(d) == pytest.approx(ref, abs=1e-12)


def slow_dtw_from_matrix(d):
    ta, tb = d.shape
    cost = np.zeros_like(d)
    for i in range(ta):
        for j in range(tb):
            prev = [cost[p, q] for p, q in ((i - 1, j), (i, j - 1), (i - 1, j - 1)) if p >= 0 and q >= 0]
            cost[i, j] = d[i, j] + (min(prev) if prev else 0.0)
    i, j, path = ta - 1, tb - 1, 1
    while i > 0 or j > 0:
        if i == 0:
            j -= 1
        elif j == 0:
            i -= 1
        elif cost[i - 1, j - 1] <= min(cost[i, j - 1], cost[i - 1, j]):
            i, j = i - 1, j - 1
        elif cost[i, j - 1] <= cost[i - 1, j]:
            j -= 1
        else:
            i -= 1
        path += 1
    return cost[-1, -1] / path


def test_dtw_hand_cases():
    e0, e1 = [1.0, 0.0], [0.0, 1.0]
    # Orthogonal frames: angular distance 1/2, cosine distance 1.
    assert abx.frame_distances([e0], [e1], "angular")[0, 0] == pytest.approx(0.5)
    assert abx.frame_distances([e0], [e1], "cosine")[0, 0] == pytest.approx(1.0)
    assert abx.frame_distances([e0], [[-1.0, 0.0]], "angular")[0, 0] == pytest.approx(1.0)
    # Same frames repeated: DTW absorbs the duration difference -> 0.
    assert abx.dtw_distance([e0, e0, e1], [e0, e1, e1, e1]) == pytest.approx(0.0, abs=1e-7)
    # Single frame vs [e0, e1]: path length 2, cost 0 + 0.5 -> 0.25.
    assert abx.dtw_distance([e0], [e0, e1]) == pytest.approx(0.25)
    # Matrix [[0, 1], [1, 0]]: diagonal path of 2 cells, cost 0.
    assert abx.dtw_from_distances([[0.0, 1.0], [1.0, 0.0]]) == 0.0
    # [[1, 2], [3, 4]]: cost 1 + 4 over 2 cells.
    assert abx.dtw_from_distances([[1.0, 2.0], [3.0, 4.0]]) == pytest.approx(2.5)


def test_frames_for_interval():
    # ceil(0.1/0.01 - 0.5) = 10, floor(0.15/0.01 - 0.5) = 14.
    assert abx.frames_for_interval(0.1, 0.15) == slice(10, 15)
    assert abx.frames_for_interval(0.1, 0.15, feature_size=0.02) == slice(5, 8)  # last = floor(7.5 - 0.5)
    with pytest.raises(ValueError, match="covers no frame"):
        abx.frames_for_interval(0.101, 0.104)


def test_bad_inputs_raise():
    with pytest.raises(ValueError, match="all-zero frame"):
        abx.dtw_distance(np.zeros((2, 3)), np.ones((2, 3)))
    with pytest.raises(ValueError, match="feature dims differ"):
        abx.dtw_distance(np.ones((2, 3)), np.ones((2, 4)))
    with pytest.raises(ValueError, match="unknown metric"):
        abx.dtw_distance(np.ones((2, 3)), np.ones((2, 3)), "manhattan")
    with pytest.raises(ValueError, match="unknown mode"):
        abx.abx_error([(np.ones((2, 3)), "a", "c", "s")], mode="both")
    with pytest.raises(ValueError, match="no ABX groups"):
        abx.abx_error([(np.ones((2, 3)), "a", "c", "s"), (np.ones((2, 3)), "b", "c", "s")])


# ----------------------------------------------------------------- ABX
def make_items(rng, separated, speakers=("s1", "s2"), contexts=("c1", "c2"), phones=("a", "b", "c"), per_cell=3):
    centres = {p: rng.normal(size=8) * 10 for p in phones}
    items = []
    for s, c, p in itertools.product(speakers, contexts, phones):
        for _ in range(per_cell):
            mean = centres[p] if separated else np.zeros(8)
            items.append((mean + rng.normal(size=(int(rng.integers(2, 5)), 8)), p, c, s))
    return items


@pytest.mark.parametrize("mode", abx.MODES)
def test_separated_categories_give_zero_error(mode):
    items = make_items(np.random.default_rng(2), separated=True)
    assert abx.abx_error(items, mode=mode) == 0.0


@pytest.mark.parametrize("mode", abx.MODES)
def test_identical_distributions_give_half(mode):
    items = make_items(np.random.default_rng(3), separated=False, per_cell=5, contexts=("c1", "c2", "c3"))
    assert abx.abx_error(items, mode=mode) == pytest.approx(0.5, abs=0.06)


def test_within_matches_slow_loop():
    items = make_items(np.random.default_rng(4), separated=False, per_cell=3)
    # Make one phone partly separable so errors are not all ~0.5.
    items = [(f + (2.0 if p == "a" else 0.0), p, c, s) for f, p, c, s in items]
    groups = abx.abx_group_errors(items, mode="within", max_size_group=None)
    slow_groups, slow_total = slow_abx_within(items)
    assert groups.keys() == slow_groups.keys()
    for k in groups:
        assert groups[k] == pytest.approx(slow_groups[k], abs=1e-12)
    assert abx.abx_error(items, max_size_group=None) == pytest.approx(slow_total, abs=1e-12)


def test_across_group_hand_case():
    e0, e1, e2 = np.eye(3)
    items = [
        ([e0], "a", "c", "s1"), ([e1], "b", "c", "s1"),  # A and B from s1
        ([e0 + 0.1 * e2], "a", "c", "s2"),  # X from s2, closer to A
        ([e1 + 0.1 * e2], "b", "c", "s2"),
    ]
    groups = abx.abx_group_errors(items, mode="across")
    assert groups == {("c", "a", "b", "s1", "s2"): 0.0, ("c", "b", "a", "s1", "s2"): 0.0,
                      ("c", "a", "b", "s2", "s1"): 0.0, ("c", "b", "a", "s2", "s1"): 0.0}


def test_ties_count_half_and_aggregation_order():
    e0 = np.eye(2)[0]
    # A, X identical and B identical to them too: every trial ties -> 0.5.
    items = [([e0], "a", "c", "s"), ([e0], "a", "c", "s"), ([e0], "b", "c", "s")]
    assert abx.abx_group_errors(items) == {("c", "a", "b", "s"): 0.5}
    # Aggregation: contexts first, then speakers, then pairs (hand-computed).
    groups = {("c1", "a", "b", "s1"): 0.0, ("c2", "a", "b", "s1"): 1.0, ("c1", "a", "b", "s2"): 0.2,
              ("c1", "b", "a", "s1"): 0.4}
    # pair (a,b): s1 -> 0.5, s2 -> 0.2, mean 0.35; pair (b,a): 0.4; total 0.375.
    assert abx.aggregate_group_errors(groups) == pytest.approx(0.375)


def test_max_size_group_caps_cells():
    rng = np.random.default_rng(5)
    items = [(rng.normal(size=(2, 4)), p, "c", "s") for p in "ab" for _ in range(6)]
    full = abx.abx_group_errors(items, max_size_group=None)
    capped = abx.abx_group_errors(items, max_size_group=3, seed=0)
    assert full.keys() == capped.keys()
    again = abx.abx_group_errors(items, max_size_group=3, seed=0)
    assert capped == again  # deterministic for a seed
