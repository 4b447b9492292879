"""Yu et al. 2005: IBM Model 1 against a written-out EM, the attention cue, and cue vs no cue on tiny data."""
import numpy as np
import pytest

from vgs_jax import ibm_model1
from vgs_jax import yu2005


def slow_model1(sentences, num_words, num_meanings, iterations, null):
    """Brown et al.'s model 1 EM with dicts and loops, one word token and one meaning at a time."""
    meanings_of = [list(m) + ([num_meanings] if null else []) for _, m in sentences]
    t = {(e, f): 1.0 / num_words for e in range(num_meanings + int(null)) for f in range(num_words)}
    for _ in range(iterations):
        count = {key: 0.0 for key in t}
        for (words, _), meanings in zip(sentences, meanings_of):
            for f in words:
                z = sum(t[(e, f)] for e in meanings)
                for e in meanings:
                    count[(e, f)] += t[(e, f)] / z
        for e in range(num_meanings + int(null)):
            total = sum(count[(e, f)] for f in range(num_words))
            for f in range(num_words):
                t[(e, f)] = count[(e, f)] / total if total else 1.0 / num_words
    return np.array([[t[(e, f)] for f in range(num_words)] for e in range(num_meanings + int(null))])


def test_model1_one_iteration_by_hand():
    # "a b" with meanings {X, Y}, "a" with {X}: counts X: a 1.5, b 0.5; Y: a 0.5, b 0.5.
    t = ibm_model1.em([([0, 1], [0, 1]), ([0], [0])], 2, 2, iterations=1, null=False)
    np.testing.assert_allclose(t, [[0.75, 0.25], [0.5, 0.5]])


@pytest.mark.parametrize("null", [False, True])
def test_model1_matches_written_out_em(null):
    sentences = [([0, 1, 2], [0, 1]), ([0, 3], [0]), ([1, 3, 3], [1, 2]), ([2, 4], [2]), ([4], [])]
    for iterations in (1, 2, 5):
        np.testing.assert_allclose(ibm_model1.em(sentences, 5, 4, iterations=iterations, null=null),
                                   slow_model1(sentences, 5, 4, iterations, null), rtol=1e-12)


def test_model1_rejects_bad_ids():
    with pytest.raises(ValueError, match="sentence 0 has meaning ids"):
        ibm_model1.em([([0], [3])], 2, 2, iterations=1)


def test_attention_cue_from_metadata():
    words = "i can see two orange stars and a small green cross and a red".split()
    objects = [("cross", "green"), ("star", "orange"), ("star", "orange")]
    ref = yu2005.referents(words, objects)
    np.testing.assert_array_equal(ref, [-1, -1, -1, -1, 1, 1, -1, -1, -1, 0, 0, -1, -1, -1])
    np.testing.assert_array_equal(yu2005.attention(ref), [1, 1, 1, 1, 1, 1, 0, 0, 0, 0, 0, 0, 0, 0])
    assert [list(r) for r in yu2005.runs([1, 1, 0, 0, 0])] == [[0, 1], [2, 3, 4]]


def test_candidates_and_occurrences():
    a, b = yu2005.positions("xabcdyab", 2, 4), yu2005.positions("zabcdw", 2, 4)
    assert a[tuple("ab")] == [1, 6]
    assert yu2005.maximal_common(set(a), set(b)) == {tuple("abcd")}
    assert yu2005.occurrences(a, [tuple("ab"), tuple("bcd")]) == [(1, 3), (2, 5), (6, 8)]


def test_object_features_from_pixels():
    crops = np.zeros((2, 4, 4, 3), np.float32)
    crops[0, 1:3, 1:3] = [1.0, 0.0, 0.0]  # a red square in the middle of a black box
    crops[1] = [0.0, 0.0, 1.0]  # a blue object filling its box
    colour, shape = yu2005.object_features(crops, np.zeros((2, 3), np.float32))
    np.testing.assert_allclose(colour, [[1, 0, 0], [0, 0, 1]])
    np.testing.assert_allclose(shape[:, 16], [0.25, 1.0])  # fill ratio after the 4 x 4 mask
    assert shape[0, 17] > 0 == shape[1, 17]  # edge density: the square has edges, the filled box none


def test_attention_cue_beats_no_cue_on_tiny(shapes_data_dir):
    from vgs_jax import data_sources

    source = data_sources.open_split("spoken_shapes/tiny:1.0.0", "train", data_dir=shapes_data_dir)
    utts, crops, backgrounds = yu2005.load_utterances(source, limit=60)
    results = yu2005.evaluate(utts, crops, backgrounds, yu2005.Options())
    cue, base = results["attention_cue"], results["no_cue"]
    assert cue["semantic_accuracy"] > 85  # 8 colour / 7 shape clusters: chance purity is far lower
    assert cue["association_precision"] > base["association_precision"] + 5  # measured 69.0 vs 59.2 (seeds 0-3: +10-11)
    assert cue["spotting_recall"] > 60
    noisy = yu2005.learn(utts, crops, backgrounds, use_cue=True, opts=yu2005.Options(cue_noise=1.0))
    assert cue["association_precision"] > noisy["association_precision"]


def test_refuses_examples_it_cannot_read():
    words = {"word": [b"a"], "start": [0.0], "end": [0.1]}
    objects = {"bbox": [], "shape": [], "color": []}
    with pytest.raises(ValueError, match="example 0 is in 'de'; use an English"):
        yu2005.load_utterances([{"words": words, "objects": objects, "language": b"de"}])
    with pytest.raises(ValueError, match="reads phone alignments, but example 0 has none"):
        yu2005.load_utterances([{"words": words, "objects": objects}])
