"""CELL (Roy & Pentland 2002): its parts against slow obvious versions, and discovery on tiny spoken_shapes."""
import itertools
import math

import numpy as np
import pytest
from PIL import Image, ImageDraw

from vgs_jax import cell
from vgs_jax import cell_memory
from vgs_jax import cell_speech
from vgs_jax import cell_vision
from vgs_jax import config_lib
from vgs_jax.analysis import rsa
from tfds_builders.spoken_shapes import scenes


def test_mutual_information_on_hand_tables():
    # 8 utterances, A and V in 4 each, both in 3: p = 3/8, 1/8, 1/8, 3/8 against 1/4 each.
    by_hand = 2 * 3 / 8 * math.log2(1.5) + 2 * 1 / 8 * math.log2(0.5)
    assert cell_memory.mutual_information(3, 4, 4, 8) == pytest.approx(by_hand)  # 0.1887
    assert cell_memory.mutual_information(4, 4, 4, 8) == pytest.approx(1.0)  # A = V: one bit
    assert cell_memory.mutual_information(2, 4, 4, 8) == pytest.approx(0.0)  # independent
    assert cell_memory.mutual_information(1, 2, 6, 8) == pytest.approx(
        sum(p * math.log2(p / (a * v)) for p, a, v in ((1 / 8, 2 / 8, 6 / 8), (1 / 8, 2 / 8, 2 / 8),
                                                        (5 / 8, 6 / 8, 6 / 8), (1 / 8, 6 / 8, 2 / 8))))


@pytest.mark.parametrize("stay", [0.3, 0.8])
def test_viterbi_matches_brute_force(stay):
    rng = np.random.default_rng(int(stay * 10))
    emissions = np.log(rng.dirichlet(np.ones(3), size=6))  # [T=6, S=3]

    def log_prob(path):
        total = math.log(1 / 3) + emissions[0, path[0]]
        for t in range(1, len(path)):
            total += math.log(stay if path[t] == path[t - 1] else (1 - stay) / 2) + emissions[t, path[t]]
        return total

    best = max(itertools.product(range(3), repeat=6), key=log_prob)
    np.testing.assert_array_equal(cell_speech.viterbi(emissions, stay), best)


def test_frames_segments_and_candidates():
    assert cell_speech.frame_labels(6, ["s", "t", "ɑːɹ"], [0.005, 0.02, 0.03], [0.02, 0.03, 0.05]) == [
        cell_speech.SILENCE, "s", "t", "ɑːɹ", "ɑːɹ", cell_speech.SILENCE]
    phones = ["<sil>", "s", "t", "ɑːɹ", "z"]
    segs = cell_speech.segments([0, 1, 1, 2, 3, 3, 4, 0, 2, 3], phones)
    assert segs == [("<sil>", 0, 1), ("s", 1, 3), ("t", 3, 4), ("ɑːɹ", 4, 6), ("z", 6, 7), ("<sil>", 7, 8),
                    ("t", 8, 9), ("ɑːɹ", 9, 10)]
    got = {(c.phones, c.start, c.end) for c in cell_speech.candidates(segs, 2, 3)}
    assert got == {(("s", "t", "ɑːɹ"), 1, 6), (("t", "ɑːɹ"), 3, 6), (("t", "ɑːɹ", "z"), 3, 7), (("ɑːɹ", "z"), 4, 7),
                   (("t", "ɑːɹ"), 8, 10)}  # ("s", "t") has no vowel; nothing spans the silence
    assert [cell_speech.is_vowel(p) for p in ("aɪə", "ɚ", "əl", "ŋ", "dʒ", "ɹ")] == [True] * 3 + [False] * 3


def test_form_matching_against_edit_distance():
    rng = np.random.default_rng(0)
    forms = [tuple(rng.choice(list("abc"), rng.integers(2, 7))) for _ in range(120)]
    index = cell_memory.FormIndex()
    index.add(0, forms)
    for a in forms[:25]:
        for b in forms:
            d = rsa.edit_distance(a, b)
            assert cell_memory.within_one_edit(a, b) == (d if d <= 1 else None)
            assert cell_memory.forms_match(a, b, 0.25) == (d <= 1 and d <= 0.25 * max(len(a), len(b)))
        assert set(index.matches(a, 0.25)) == {b for b in forms if cell_memory.forms_match(a, b, 0.25)}


def test_short_term_memory_promotions_by_hand():
    c = lambda form, start: cell_speech.Candidate(tuple(form), start, start + len(form))
    cands = [[c("xab", 0), c("qq", 5)], [c("xab", 0)], [c("xyb", 2), c("zz", 0)], [c("qq", 0)]]
    scene_objects = [np.array([0]), np.array([1, 2]), np.array([3]), np.array([4])]
    similar = np.eye(5, dtype=bool)
    similar[0, 3] = similar[3, 0] = similar[0, 2] = similar[2, 0] = similar[2, 3] = similar[3, 2] = True
    indexes = cell_memory.utterance_indexes(cands)
    kw = dict(stm_size=2, form_distance=0.34)
    # 1: "xab" recurs (utterance 0) but no object of scene 1 matches scene 0's object 0 ... object 2 does.
    # 2: "xyb" matches "xab" (1 edit of 3) in 0 (out of the buffer of 2) and 1, whose object 2 matches 3.
    # 3: "qq" was in utterance 0 only, out of the buffer by then.
    assert cell_memory.promote(cands, indexes, scene_objects, similar, **kw) == [
        (tuple("xab"), 1, 0, 2), (tuple("xyb"), 2, 0, 3)]
    audio = cell_memory.promote(cands, indexes, scene_objects, None, rng=np.random.default_rng(0), **kw)
    assert [(f, n) for f, n, _, _ in audio] == [(tuple("xab"), 1), (tuple("xyb"), 2)]


def test_long_term_memory_by_hand():
    c = lambda form, start: cell_speech.Candidate(tuple(form), start, start + len(form))
    cands = [[c("xab", 0), c("xa", 0)], [c("xab", 0), c("xa", 0)], [c("xab", 3)], [c("qq", 0)]]
    scene_objects = [np.array([0]), np.array([1, 4]), np.array([2]), np.array([3, 5])]
    similar = np.eye(6, dtype=bool)
    for i, j in itertools.permutations([0, 1, 2], 2):  # objects 0-2 are one shape; 4 and 5 another
        similar[i, j] = True
    similar[4, 5] = similar[5, 4] = True
    index = cell_memory.FormIndex()
    for n, cand in enumerate(cands):
        index.add(n, [x.phones for x in cand])
    promoted = [(tuple("xab"), 1, 0, 1), (tuple("xa"), 1, 1, 1), (tuple("xab"), 1, 0, 4)]
    items = cell_memory.lexicon(promoted, cands, index, similar, scene_objects, form_distance=0.25,
                                mi_threshold=0.1, min_together=2)
    # "xab" and shape {0, 1, 2}: A = V = utterances {0, 1, 2} of 4, I = H(3/4) bits. "xa" (A = {0, 1}) has less
    # MI and is the same stretch of speech as "xab"; shape {4, 5} is in utterances {1, 3}: 1 together only.
    entropy = -(0.75 * math.log2(0.75) + 0.25 * math.log2(0.25))
    assert items == [cell_memory.Item(tuple("xab"), 1, 0, 1, pytest.approx(entropy))]
    audio = cell_memory.audio_only(promoted, cands, index, form_distance=0.25, size=5)
    assert [(it.form, it.score) for it in audio] == [(tuple("xab"), 3.0)]  # "xa": same speech as "xab"


def render(shape: str, size: float, angle: float, cx: float = 0.5, cy: float = 0.5, pixels: int = 64) -> np.ndarray:
    """alpha [pixels, pixels] of one shape rotated by `angle` (radians), drawn like spoken_shapes (4x, box filter)."""
    obj = scenes.SceneObject(shape, "white", "small", cx, cy)
    pts = (obj.outline() - [cx, cy]) / obj.radius * size / 2
    rot = np.array([[math.cos(angle), -math.sin(angle)], [math.sin(angle), math.cos(angle)]])
    pts = pts @ rot.T + [cx, cy]
    big = Image.new("L", (4 * pixels, 4 * pixels), 0)
    ImageDraw.Draw(big).polygon([(float(x) * 4 * pixels, float(y) * 4 * pixels) for x, y in pts], fill=255)
    return np.asarray(big.resize((pixels, pixels), Image.Resampling.BOX), np.float64) / 255.0


def tight(alpha: np.ndarray) -> np.ndarray:
    """The object's pixels plus one blank pixel around them (as `cell_vision.box_pixels` cuts a box)."""
    rows, cols = np.nonzero(alpha.any(1))[0], np.nonzero(alpha.any(0))[0]
    return alpha[rows[0] - 1:rows[-1] + 2, cols[0] - 1:cols[-1] + 2]


def test_shape_histograms_are_invariant_to_position_scale_and_rotation():
    base = tight(render("star", 0.25, 0.0))
    h = cell_vision.shape_histogram(base)
    assert h.shape == (48,) and h.sum() == pytest.approx(1.0)
    np.testing.assert_array_equal(cell_vision.shape_histogram(np.pad(base, ((7, 0), (0, 5)))), h)  # exact
    np.testing.assert_allclose(cell_vision.shape_histogram(np.rot90(base)), h, atol=2e-3)  # bin-edge ties only
    # Rotated and rescaled renderings elsewhere in the image: each is nearest to its own shape's upright one.
    ref = {s: cell_vision.shape_histogram(tight(render(s, 0.3, 0.0))) for s in scenes.SHAPES}
    for s, size, angle in itertools.product(scenes.SHAPES, (0.2, 0.34), (0.4, 1.1)):
        d = {t: cell_vision.chi_square(cell_vision.shape_histogram(tight(render(s, size, angle, 0.3, 0.6))), r)
             for t, r in ref.items()}
        assert min(d, key=d.get) == s, (s, size, angle, d)
    assert cell_vision.chi_square(ref["star"], ref["star"]) == 0.0
    assert 0.0 < cell_vision.chi_square(ref["star"], ref["circle"]) <= 1.0


def tiny_config(data_dir, **recognizer):
    config = config_lib.load_config("configs/shapes_cell.py:tiny,v1")
    config.dataset.data_dir = data_dir
    config.dataset.split = "train"
    config.recognizer.update(recognizer)
    return config


def test_cell_finds_shape_words_the_audio_only_baseline_and_shuffled_pairs_do_not(shapes_data_dir):
    results = cell.evaluate(tiny_config(shapes_data_dir, oracle=True))
    ours, audio, shuffled = results["cell"], results["audio_only"], results["shuffled"]
    assert ours["lexicon_size"] >= 5 and ours["semantic_accuracy"] >= 60  # measured 9 items, 77.8
    assert ours["semantic_accuracy"] >= audio["semantic_accuracy"] + 30  # measured 22.2 (same size)
    assert shuffled["lexicon_size"] * shuffled["semantic_accuracy"] <= ours["lexicon_size"] * 20  # measured 0 items


def test_trained_recognizer_decodes_phones(shapes_data_dir):
    config = tiny_config(shapes_data_dir)
    config.dataset.max_captions = config.dataset.max_recognizer_captions = 12
    config.recognizer.steps = 20
    results = cell.evaluate(config)  # the whole pipeline with a trained recogniser (on its training captions)
    assert results["recognizer"]["frame_accuracy"] > 30  # measured 51.8; the most frequent phone ("n") is 7% of frames


def test_refusals():
    with pytest.raises(ValueError, match="config.system must be 'cell'"):
        cell.evaluate(config_lib.load_config("configs/shapes_gelderloos2016.py:tiny,v1"))
    words = {"word": [b"a"], "start": [0.0], "end": [0.1]}
    objects = {"bbox": [], "shape": [], "color": []}
    with pytest.raises(ValueError, match="phone alignments, but example 0 has none"):
        cell.load_stream([{"words": words, "objects": objects, "audio": np.zeros(1600, np.int16)}], None)
    with pytest.raises(ValueError, match="needs 0 < stay < 1"):
        cell_speech.viterbi(np.zeros((3, 2)), 1.0)
    with pytest.raises(ValueError, match="needs a visible area"):
        cell_vision.shape_histogram(np.zeros((5, 5)))
