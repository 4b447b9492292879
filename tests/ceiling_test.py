"""Tests for vgs_jax.ceiling against slow obvious versions, and its wiring into evaluation."""

import itertools
import types

import numpy as np
import pytest

from vgs_jax import ceiling
from vgs_jax import evaluation
from vgs_jax import inference


def slow_oracle(consistent_rows, own, ks):
    """Averages R@K over every order of each caption's consistent images (ranked first)."""
    out = {}
    for k in ks:
        per_caption = []
        for rows, o in zip(consistent_rows, own):
            orders = list(itertools.permutations(rows))
            per_caption.append(np.mean([list(order).index(o) < k for order in orders]))
        out[f"r{k}"] = float(np.mean(per_caption))
    return out


def test_oracle_recall_against_all_orders():
    rng = np.random.default_rng(0)
    own = rng.integers(0, 7, size=12)
    consistent = [np.unique(np.append(rng.choice(7, size=rng.integers(0, 5), replace=False), o))
                  for o in own]
    rows = ceiling.consistent_rows([c + 100 for c in consistent], own, np.arange(7) + 100)
    assert [list(r) for r in rows] == [list(c) for c in consistent]
    got = ceiling.oracle_recall(rows, ks=(1, 2, 3))
    want = slow_oracle(rows, own, (1, 2, 3))
    assert got == pytest.approx(want)


def test_consistent_rows_add_own_image_and_drop_unknown_ids():
    rows = ceiling.consistent_rows([np.array([5, 99]), np.array([], np.int64)],
                                   np.array([1, 2]), np.array([4, 5, 6]))
    assert [list(r) for r in rows] == [[1], [2]]


def test_top_images_and_consistent_r1_against_argsort():
    rng = np.random.default_rng(1)
    zs = rng.integers(-2, 3, size=(40, 4)).astype(np.float32)  # Integer products: exact ties.
    zi = rng.integers(-2, 3, size=(9, 4)).astype(np.float32)
    scores = zs @ zi.T
    slow_top = np.array([np.argsort(-s, kind="stable")[0] for s in scores])
    np.testing.assert_array_equal(ceiling.top_images(zs, zi, chunk_size=16), slow_top)
    np.testing.assert_array_equal(ceiling.top_images(scores=scores), slow_top)
    rows = [rng.choice(9, size=3, replace=False) for _ in range(40)]
    slow = np.mean([slow_top[c] in rows[c] for c in range(40)])
    assert ceiling.consistent_recall_at_1(slow_top, rows) == pytest.approx(slow)


def test_read_consistent_from_a_plain_source():
    source = [{"caption_id": 7, ceiling.FIELD: np.array([1, 2])},
              {"caption_id": 8, ceiling.FIELD: np.array([2])}]
    got = ceiling.read_consistent(source)
    assert sorted(got) == [7, 8] and list(got[7]) == [1, 2]
    assert ceiling.read_consistent([{"caption_id": 7}]) is None


def test_evaluate_split_reports_the_ceiling(monkeypatch):
    # Captions 0-3 of images 10, 10, 11, 12; caption 1 also describes image 11.
    emb = {"z_speech": np.array([[1, 0], [0, 1], [0, 1], [1, 1]], np.float32),
           "z_image": np.array([[1, 0], [0, 1], [-1, -1]], np.float32),
           "caption_image": np.array([0, 0, 1, 2]), "image_id": np.array([10, 11, 12]),
           "caption_id": np.array([0, 1, 2, 3])}
    monkeypatch.setattr(inference, "embed_split", lambda *a, **k: emb)
    template = types.SimpleNamespace(similarity="cosine")
    consistent = {0: np.array([10]), 1: np.array([10, 11]), 2: np.array([11]), 3: np.array([12])}
    results = evaluation.evaluate_split(template, None, None, consistent=consistent)
    # Top images: 10, 11, 11, 10 -> consistent for captions 0, 1, 2.
    assert results["ceiling"]["consistent_r1"] == pytest.approx(0.75)
    assert results["ceiling"]["oracle_r1"] == pytest.approx((1 + 0.5 + 1 + 1) / 4)
    assert results["speech_to_image"]["r1"] == pytest.approx(0.5)
    assert "oracle ceiling" in ceiling.format_ceiling(results)
    assert "ceiling" not in evaluation.evaluate_split(template, None, None)
