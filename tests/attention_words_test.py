"""Attention share per word class: word classes from the grammar, frame-to-word mapping, shares."""

import numpy as np
import pytest

from tfds_builders.spoken_shapes import grammar
from vgs_jax.analysis import attention_words

WORDS = [("a", 0.1, 0.2), ("red", 0.2, 0.4), ("circle", 0.4, 0.8)]
CLASSES = {"a": "function", "red": "color", "circle": "shape"}


def test_word_classes_from_the_grammar():
    classes = attention_words.word_classes()
    lex = grammar.ENGLISH
    assert all(classes[w] == "shape" for forms in lex.shapes.values() for w in forms)
    assert all(classes[c] == "color" for c in lex.colors.values())
    assert {classes[w] for w in ("small", "little", "large", "big")} == {"size"}
    assert classes["two"] == classes["three"] == "number"
    assert classes["the"] == classes["is"] == classes["are"] == classes["it"] == "function"
    assert classes["left"] == classes["corner"] == classes["beside"] == "spatial"
    assert classes["picture"] == classes["background"] == "other"
    assert not {"e1", "be1", "r12", "w3", "it2"} & set(classes)
    # Every word the grammar can produce has a class.
    phrases = [t for ts in lex.templates.values() for t in ts]
    phrases += [p for table in (lex.relations, lex.positions, lex.arrangements) for ps in table.values() for p in ps]
    words = {w for p in phrases for w in p.replace("{", " ").replace("}", " ").split()}
    words -= {"e1", "e2", "e3", "be1", "r12", "r32", "w1", "w2", "w3", "it2"}
    assert words <= set(classes)
    assert attention_words.classify("Circle", classes) == "shape"
    assert attention_words.classify("zebra", classes) == "other"


def test_frame_words_hand_case():
    times = np.array([0.05, 0.15, 0.2, 0.35, 0.5, 0.79, 0.8, 0.9])
    np.testing.assert_array_equal(attention_words.frame_words(times, WORDS), [-1, 0, 1, 1, 2, 2, -1, -1])
    with pytest.raises(ValueError, match="overlaps"):
        attention_words.frame_words(times, [("a", 0.1, 0.3), ("b", 0.2, 0.4)])
    with pytest.raises(ValueError, match="before it starts"):
        attention_words.frame_words(times, [("a", 0.3, 0.1)])


def test_uniform_attention_matches_duration():
    times = 0.05 + 0.1 * np.arange(8)  # 0.05 ... 0.75: 1 frame silent, 1 "a", 2 "red", 4 "circle"
    u = attention_words.utterance_shares(np.full(8, 1 / 8), times, WORDS, CLASSES.get)
    assert u["share"] == pytest.approx({"function": 1 / 8, "color": 2 / 8, "shape": 4 / 8, "none": 1 / 8})
    assert u["expected"] == pytest.approx(u["share"])
    out = attention_words.attention_by_class([np.full(8, 1 / 8)], [times], [WORDS], CLASSES.get)
    assert all(row["ratio"] == pytest.approx(1.0) and row["density"] == pytest.approx(1.0)
               for cls, row in out["classes"].items() if cls != "none")
    assert list(out["classes"]) == ["shape", "color", "function", "none"]


def test_all_attention_on_the_colour_word():
    times = 0.05 + 0.1 * np.arange(8)
    att = np.zeros(8)
    att[2] = 1.0  # centre 0.25 s: "red"
    out = attention_words.attention_by_class([att], [times], [WORDS], CLASSES.get)
    assert out["classes"]["color"]["share"] == 1.0 and out["classes"]["shape"]["share"] == 0.0
    assert out["classes"]["color"]["ratio"] == pytest.approx(4.0)  # 2 of 8 frames hold all the mass
    assert out["words"]["red"]["density"] == pytest.approx(4.0)


def test_matches_slow_loop_on_random_utterances():
    rng = np.random.default_rng(0)
    attention, times, words = [], [], []
    for _ in range(6):
        t = 0.03 * np.arange(rng.integers(10, 30)) + 0.015
        cuts = np.sort(rng.choice(np.arange(1, len(t)), 3, replace=False)) * 0.03
        w = [(rng.choice(["a", "red", "circle"]), cuts[k], cuts[k + 1]) for k in range(2)]
        a = rng.random(len(t))
        attention.append(a / a.sum())
        times.append(t)
        words.append(w)
    out = attention_words.attention_by_class(attention, times, words, CLASSES.get)
    for cls in ("function", "color", "shape", "none"):
        shares, expected = [], []
        for a, t, w in zip(attention, times, words):
            mass = frames = 0.0
            present = False
            for k, tk in enumerate(t):
                owner = [CLASSES[x] for x, s, e in w if s <= tk < e]
                in_cls = (owner == [cls]) if cls != "none" else (owner == [])
                mass += a[k] * in_cls
                frames += in_cls
            present = any(CLASSES[x] == cls for x, _, _ in w) if cls != "none" else frames > 0
            if present:
                shares.append(mass)
                expected.append(frames / len(t))
        if not shares:
            assert cls not in out["classes"]
            continue
        assert out["classes"][cls]["share"] == pytest.approx(np.mean(shares))
        assert out["classes"][cls]["expected_share"] == pytest.approx(np.mean(expected))


def test_bad_attention():
    times = 0.05 + 0.1 * np.arange(4)
    with pytest.raises(ValueError, match="sum to 1"):
        attention_words.attention_by_class([np.ones(4)], [times], [WORDS], CLASSES.get)
    with pytest.raises(ValueError, match="frame times"):
        attention_words.attention_by_class([np.ones(3) / 3], [times], [WORDS], CLASSES.get)
    with pytest.raises(ValueError, match="one attention"):
        attention_words.attention_by_class([], [], [], CLASSES.get)
