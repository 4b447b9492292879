"""Tests of vgs_jax.analysis.lexicon on constructed maps whose lexicon is known."""

import numpy as np
import pytest

from vgs_jax.objectives import matchmap as matchmap_lib
from vgs_jax.analysis import lexicon as lex
from vgs_jax.audio_features import Featurizer

NAMES = ["circle", "square", "star"]
D = 8


def _pair(rng, i, j):
    """Image with object i top-left and j bottom-right; caption "the <i> the <j>" (frames of 0.16 s)."""
    e = np.eye(D)
    image = rng.normal(scale=0.01, size=(4, 4, D))
    image[0, 0] += e[i]
    image[3, 3] += e[j]
    filler = 0.1 * e[7]
    frames = [filler, filler] + [e[i]] * 3 + [filler, filler] + [e[j]] * 3
    audio = np.stack(frames) + rng.normal(scale=0.01, size=(10, D))
    words = [("the", 0.0, 0.32), (NAMES[i], 0.32, 0.8), ("the", 0.8, 1.12), (NAMES[j], 1.12, 1.6)]
    boxes = np.array([[0, 0, .25, .25], [.75, .75, 1, 1]])
    return image, audio, words, boxes, [NAMES[i], NAMES[j]]


def test_find_groundings_hand_example():
    m = np.zeros((2, 2, 6))
    m[1, 0, 1] = 5.0
    m[0, 1, 4] = 3.0
    m[0, 0, 2] = 4.0  # suppressed: within min_separation of frame 1
    g = lex.find_groundings(m, peaks_per_pair=3, min_separation=1, radius=1, min_score=0.5)
    assert [x["cell"] for x in g] == [(1, 0), (0, 1)]
    assert g[0]["frames"] == slice(0, 3) and g[1]["frames"] == slice(3, 6) and g[0]["score"] == 5.0
    g = lex.find_groundings(m, peaks_per_pair=1, region_radius=1)
    assert g[0]["rows"] == slice(0, 2) and g[0]["cols"] == slice(0, 2)
    with pytest.raises(ValueError, match="peaks_per_pair >= 1"):
        lex.find_groundings(m, peaks_per_pair=0)


def test_find_groundings_matches_slow_greedy_search():
    rng = np.random.default_rng(5)
    for _ in range(10):
        m = rng.normal(size=(3, 4, 12))
        fast = lex.find_groundings(m, peaks_per_pair=4, min_separation=2, radius=0)
        used, slow = set(), []
        for _ in range(4):
            cands = [(m[r, c, t], t, r, c) for t in range(12) for r in range(3) for c in range(4) if t not in used]
            if not cands:
                break
            v, t, r, c = max(cands, key=lambda z: z[0])
            slow.append((t, (r, c)))
            used |= set(range(t - 2, t + 3))
        assert [(x["frames"].start, x["cell"]) for x in fast] == slow


def test_segment_word_and_region_object():
    words = [("a", 0.0, 0.1), ("red", 0.1, 0.4), (b"circle", 0.4, 0.9)]
    assert lex.segment_word(slice(0, 2), words) == "red"  # [0, .32): red .22 vs a .1
    assert lex.segment_word(slice(3, 5), words) == "circle"
    assert lex.segment_word(slice(8, 9), words) == lex.SILENCE
    boxes = [[0, 0, .5, .5], [.5, .5, 1, 1]]
    assert lex.region_object((0, 1), (4, 4), boxes, ["x", "y"]) == "x"
    assert lex.region_object((3, 3), (4, 4), boxes, ["x", "y"]) == "y"
    assert lex.region_object((0, 3), (4, 4), boxes, ["x", "y"]) == lex.BACKGROUND
    with pytest.raises(ValueError, match="2 boxes but 1 object labels"):
        lex.region_object((0, 0), (4, 4), boxes, ["x"])


def test_clusters_recover_the_constructed_lexicon():
    rng = np.random.default_rng(0)
    groundings = []
    for i in range(3):
        for j in range(3):
            if i != j:
                image, audio, words, boxes, labels = _pair(rng, i, j)
                mm = np.asarray(matchmap_lib.matchmap(image, audio))
                found = lex.pair_groundings(mm, audio, image, words, boxes, labels, peaks_per_pair=2)
                assert sorted(g["word"] for g in found) == sorted([NAMES[i], NAMES[j]])
                assert [g["word"] for g in found] == [g["object"] for g in found]
                groundings += found
    res = lex.cluster_groundings(groundings, 3)
    assert res["num_groundings"] == 12
    assert res["word_purity"] == 1.0 and res["object_purity"] == 1.0
    assert res["word_nmi"] == pytest.approx(1.0) and res["object_nmi"] == pytest.approx(1.0)
    assert sorted(c["word"] for c in res["clusters"]) == NAMES
    assert all(c["size"] == 4 for c in res["clusters"])
    # one cluster for three items: purity is the majority share, NMI 0
    one = lex.cluster_groundings(groundings, 1)
    assert one["word_purity"] == pytest.approx(4 / 12) and one["word_nmi"] == pytest.approx(0.0)
    with pytest.raises(ValueError, match="num_clusters must be in"):
        lex.cluster_groundings(groundings, 13)


def test_run_lexicon_with_stub_encoders():
    rng = np.random.default_rng(1)
    pairs = [_pair(rng, i, j) for i in range(3) for j in range(3) if i != j]
    # The stubs find each example's maps from its index k, stored in the waveform and the pixels.
    examples = [{"audio": np.full(160, k, np.int16), "image": np.full((4, 4, 3), k, np.uint8),
                 "words": {"word": [w for w, _, _ in p[2]], "start": [s for _, s, _ in p[2]],
                           "end": [e for _, _, e in p[2]]},
                 "objects": {"bbox": p[3], "shape": [NAMES.index(x) for x in p[4]], "color": [0, 0]}}
                for k, p in enumerate(pairs)]

    def featurize(wav):
        return np.full((10 + int(wav[0]) % 2, 1), wav[0], np.float32)  # ragged lengths get padded

    featurizer = Featurizer(featurize, pad_value=0.0, num_features=1)

    def audio_maps_fn(x, mask):
        ks = x[:, 0, 0].astype(int)
        maps = np.zeros((len(ks), 12, D))
        maps[:, :10] = np.stack([pairs[k][1] for k in ks])
        valid = np.zeros((len(ks), 12), bool)
        valid[:, :10] = True
        return maps, valid

    def image_maps_fn(images):
        ks = images[:, 0, 0, 0].astype(int)
        return np.stack([pairs[k][0] for k in ks]), np.ones((len(ks), 4, 4), bool)

    report = lex.run_lexicon(audio_maps_fn, image_maps_fn, examples, featurizer=featurizer,
                             num_clusters=3, batch_size=4, peaks_per_pair=2)
    assert report["word_purity"] == 1.0 and report["object_purity"] == 1.0
    assert report["num_groundings"] == 12 and "assignments" not in report
    # spoken_shapes names: SHAPES[:3] = circle, square, triangle; COLORS[0] = red
    assert sorted(c["object"] for c in report["clusters"]) == ["red circle", "red square", "red triangle"]
