"""Tests of vgs_jax.analysis.semantics on constructed embeddings, texts and word vectors."""

import numpy as np
import pytest

from vgs_jax.analysis import semantics as sem
from vgs_jax.audio_features import Featurizer


def _pearson(x, y):
    x, y = x - x.mean(), y - y.mean()
    return float((x * y).sum() / np.sqrt((x * x).sum() * (y * y).sum()))


def _ranks(x):  # average ranks, slow
    return np.array([np.sum(x < v) + (np.sum(x == v) + 1) / 2 for v in x])


def test_pair_correlation_constructed_scores():
    # pair i has cosine cos(theta_i); scores are an increasing function of it -> spearman 1
    theta = np.linspace(0.1, 1.4, 12)
    a = np.stack([np.ones(12), np.zeros(12)], 1) * 3.0
    b = np.stack([np.cos(theta), np.sin(theta)], 1)
    cos = np.cos(theta)
    res = sem.pair_similarity_correlation(a, b, 1 + 4 * cos ** 3)
    assert res["spearman"] == pytest.approx(1.0) and res["n"] == 12
    assert res["pearson"] == pytest.approx(_pearson(cos, 1 + 4 * cos ** 3))
    assert sem.pair_similarity_correlation(a, b, 5 - 2 * cos)["pearson"] == pytest.approx(-1.0)
    rng = np.random.default_rng(0)
    scores = rng.integers(1, 4, 12).astype(float)  # ties
    res = sem.pair_similarity_correlation(a, b, scores)
    assert res["spearman"] == pytest.approx(_pearson(_ranks(cos), _ranks(scores)))
    with pytest.raises(ValueError, match="scores \\[n\\]"):
        sem.pair_similarity_correlation(a, b, scores[:5])
    with pytest.raises(ValueError, match="all zero"):
        sem.pair_similarity_correlation(np.zeros_like(a), b, scores)


def _orthogonal_vectors(words):
    return sem.WordVectors(list(words), np.eye(len(words)))


def test_relatedness_identical_unrelated_and_hand_value():
    wv = sem.WordVectors(["dog", "cat", "car", "red"],
                         np.array([[1, 0, 0], [0.6, 0.8, 0], [0, 0, 1], [0, 1, 0]], float))
    assert sem.relatedness(["dog", "red"], ["dog", "red"], wv) == pytest.approx(1.0)
    assert sem.relatedness(["dog"], ["car"], wv) == pytest.approx(0.0)
    # dog: max(cos(dog,cat)=.6, cos(dog,car)=0) = .6; red: max(.8, 0) = .8
    assert sem.relatedness(["dog", "red", "unknown"], ["cat", "car"], wv) == pytest.approx(0.7)
    assert sem.relatedness(["dog"], ["dog"], wv, exclude_identical=True) != sem.relatedness(["dog"], ["dog"], wv)
    assert np.isnan(sem.relatedness(["zzz"], ["dog"], wv))
    assert sem.content_words(b"A Dog, on the mat.") == ["dog", "mat"]


def test_word_vector_file_roundtrip(tmp_path):
    path = tmp_path / "vec.txt"
    path.write_text("3 2\ndog 1 0\ncat 3 4\ncar 0 -2\n", encoding="utf-8")
    wv = sem.load_word_vectors(str(path))
    assert wv.words == ["dog", "cat", "car"]
    np.testing.assert_allclose(wv.vectors, [[1, 0], [0.6, 0.8], [0, -1]])
    (tmp_path / "bad.txt").write_text("dog 1 0\ncat 1 x\n", encoding="utf-8")
    with pytest.raises(ValueError, match="bad.txt:2"):
        sem.load_word_vectors(str(tmp_path / "bad.txt"))
    (tmp_path / "ragged.txt").write_text("dog 1 0\ncat 1 2 3\n", encoding="utf-8")
    with pytest.raises(ValueError, match="ragged.txt:2: 3 values"):
        sem.load_word_vectors(str(tmp_path / "ragged.txt"))


def test_trained_vectors_separate_topics_and_are_deterministic():
    animals = [["dog", "chases", "cat"], ["cat", "chases", "mouse"], ["mouse", "chases", "dog"]] * 5
    vehicles = [["car", "passes", "bus"], ["bus", "passes", "truck"], ["truck", "passes", "car"]] * 5
    wv = sem.train_word_vectors(animals + vehicles, dim=4, window=2)
    wv2 = sem.train_word_vectors(animals + vehicles, dim=4, window=2)
    np.testing.assert_array_equal(wv.vectors, wv2.vectors)
    assert sem.relatedness(["dog"], ["cat"], wv) > 0.9
    assert abs(sem.relatedness(["dog"], ["bus"], wv)) < 1e-6  # disjoint co-occurrence blocks
    # PPMI by hand on a 2-sentence corpus: "a b", "a c" with window 1
    small = sem.train_word_vectors([["a", "b"], ["a", "c"]], dim=3, window=1)
    co = np.array([[0, 1, 1], [1, 0, 0], [1, 0, 0]], float)
    ppmi = np.maximum(np.log(np.where(co > 0, co * 4 / (co.sum(1, keepdims=True) * co.sum(0, keepdims=True)), 1)), 0)
    v = small.vectors
    gram = v @ v.T
    u, s, _ = np.linalg.svd(ppmi)
    ref = u * np.sqrt(s)
    ref = ref / np.maximum(np.linalg.norm(ref, axis=1, keepdims=True), 1e-12)
    np.testing.assert_allclose(gram, ref @ ref.T, atol=1e-10)
    with pytest.raises(ValueError, match="at least 2 words"):
        sem.train_word_vectors([["a"]])


def test_retrieval_relatedness_known_answer():
    texts = ["red circle", "red circle", "blue square", "blue square", "green star", "green star"]
    wv = _orthogonal_vectors(["red", "circle", "blue", "square", "green", "star"])
    # a model that retrieves the twin first and everything else after
    sim = np.eye(6) * 10
    for i in range(0, 6, 2):
        sim[i, i + 1] = sim[i + 1, i] = 5
    res = sem.retrieval_relatedness(sim, texts, texts, wv, k=1)
    assert res["top_k"] == pytest.approx(1.0) and res["shared_top_k"] == pytest.approx(2.0)
    assert res["bottom_k"] == pytest.approx(0.0)
    bad = sem.retrieval_relatedness(-sim, texts, texts, wv, k=1)
    assert bad["bottom_k"] == pytest.approx(1.0) and bad["top_k"] < 1.0
    with pytest.raises(ValueError, match="k must be in \\[1, 5\\]"):
        sem.retrieval_relatedness(sim, texts, texts, wv, k=6)
    with pytest.raises(ValueError, match="square similarity"):
        sem.retrieval_relatedness(sim[:3], texts[:3], texts, wv)


def test_run_semantics_with_stub_embedder():
    rng = np.random.default_rng(0)
    theta = rng.uniform(0, 1.5, 8)
    sick = [{"audio_a": np.array([0, 0], np.int16), "audio_b": np.array([1, int(t * 1000)], np.int16),
             "relatedness": 1 + 4 * np.cos(t)} for t in theta]
    captions = [{"audio": np.array([2, k], np.int16), "text": t.encode()}
                for k, t in enumerate(["red circle", "red circle", "blue square", "blue square"])]

    def featurize(wav):
        return wav[None].astype(np.float32)

    featurizer = Featurizer(featurize, pad_value=0.0, num_features=2)

    def embed_fn(x, mask):
        out = []
        for kind, val in x[:, 0]:
            if kind == 0:
                out.append([1.0, 0.0])
            elif kind == 1:
                out.append([np.cos(val / 1000), np.sin(val / 1000)])
            else:
                out.append([1.0, 0.0] if val < 2 else [0.0, 1.0])
        return np.array(out)

    report = sem.run_semantics(embed_fn, featurizer=featurizer, sick_examples=sick, caption_examples=captions,
                               k=1, batch_size=3)
    assert report["sick"]["pearson"] == pytest.approx(1.0, abs=1e-3) and report["sick"]["n"] == 8
    assert report["retrieval"]["top_k"] == pytest.approx(1.0)
    with pytest.raises(ValueError, match="sick_examples and/or caption_examples"):
        sem.run_semantics(embed_fn, featurizer=featurizer)
