"""Tests of vgs_jax.analysis.localization on constructed matchmaps with known answers."""

import numpy as np
import pytest

from vgs_jax.objectives import matchmap as matchmap_lib
from vgs_jax.analysis import localization as loc
from vgs_jax.audio_features import Featurizer

CLASSES = {"circle": ("shape", "circle"), "circles": ("shape", "circle"), "square": ("shape", "square"),
           "red": ("color", "red"), "blue": ("color", "blue")}


def test_word_frames_cover_overlapping_frames():
    # frames [0, .16), [.16, .32), [.32, .48) ...
    assert loc.word_frames(0.20, 0.40, 10) == slice(1, 3)
    assert loc.word_frames(0.16, 0.32, 10) == slice(1, 2)
    assert loc.word_frames(0.50, 0.50, 10) == slice(3, 4)  # zero length: the frame containing it
    assert loc.word_frames(5.0, 6.0, 10) == slice(10, 10)  # outside the map
    assert loc.word_frames(0.05, 0.15, 10, frame_shift=0.04, frame_offset=0.01) == slice(1, 4)
    with pytest.raises(ValueError, match="end 0.1 < start 0.2"):
        loc.word_frames(0.2, 0.1, 10)


def test_union_area_and_cell_chance_against_brute_force():
    rng = np.random.default_rng(0)
    grid = (np.arange(2000) + 0.5) / 2000
    for _ in range(20):
        lo = rng.uniform(0, 0.7, size=(3, 2))
        boxes = np.concatenate([lo, lo + rng.uniform(0.05, 0.3, size=(3, 2))], axis=1)
        inside = np.zeros((2000, 2000), bool)
        for y0, x0, y1, x1 in boxes:
            inside |= ((grid >= y0) & (grid <= y1))[:, None] & ((grid >= x0) & (grid <= x1))[None]
        assert loc.union_area(boxes) == pytest.approx(inside.mean(), abs=2e-3)
        slow = np.mean([[loc.in_boxes((r + .5) / 7, (c + .5) / 7, boxes) for c in range(7)] for r in range(7)])
        assert loc.cell_chance(boxes, (7, 7)) == pytest.approx(slow)
    assert loc.union_area([[0, 0, .5, .5], [.25, .25, .75, .75]]) == pytest.approx(.25 + .25 - .0625)
    assert loc.cell_chance([[0, 0, .5, .5]], (4, 4)) == pytest.approx(4 / 16)


def _scene():
    """4x4 image map: a red circle in the top-left quarter, a blue square bottom-right."""
    d = 4
    e = np.eye(d)
    image = np.zeros((4, 4, d))
    image[0:2, 0:2] = e[0] + e[2]  # circle (e0) and red (e2)
    image[2:4, 2:4] = e[1] + e[3]  # square (e1) and blue (e3)
    # caption "red circle blue square": each word 2 frames of 0.16 s
    audio = np.stack([e[2], e[2], e[0], e[0], e[3], e[3], e[1], e[1]])
    words = [("red", 0.0, 0.32), ("circle", 0.32, 0.64), ("blue", 0.64, 0.96), ("square", 0.96, 1.28)]
    labels = [{"shape": "circle", "color": "red"}, {"shape": "square", "color": "blue"}]
    boxes = np.array([[0, 0, .5, .5], [.5, .5, 1, 1]])
    return image, audio, words, labels, boxes


def test_perfect_localisation_and_chance():
    image, audio, words, labels, boxes = _scene()
    mm = np.asarray(matchmap_lib.matchmap(image, audio))
    recs = loc.localize_words(mm, words + [("the", 1.28, 1.3)], labels, boxes, CLASSES)
    assert [r["word"] for r in recs] == ["red", "circle", "blue", "square"]
    assert all(r["correct"] for r in recs)
    assert [r["cell"] for r in recs] == [(0, 0), (0, 0), (2, 2), (2, 2)]
    assert all(r["chance"] == pytest.approx(0.25) and r["chance_area"] == pytest.approx(0.25) for r in recs)
    report = loc.summarize(recs)
    assert report["accuracy"] == 1.0 and report["n"] == 4
    assert report["per_kind"]["color"]["n"] == 2 and report["per_word"]["circle"]["accuracy"] == 1.0


def test_swapped_audio_is_always_wrong_and_missing_objects_are_skipped():
    image, audio, words, labels, boxes = _scene()
    swapped = audio[[4, 5, 6, 7, 0, 1, 2, 3]]  # "blue square red circle" audio, old alignment
    recs = loc.localize_words(matchmap_lib.matchmap(image, swapped), words, labels, boxes, CLASSES)
    report = loc.summarize(recs)
    assert report["accuracy"] == 0.0 and report["chance"] == pytest.approx(0.25)
    only_circle = loc.localize_words(matchmap_lib.matchmap(image, audio), words, labels[:1], boxes[:1], CLASSES)
    assert [r["word"] for r in only_circle] == ["red", "circle"]
    # per-kind accuracy from a mix: one right, one wrong
    mixed = loc.summarize([{**recs[0], "correct": True}, recs[1]])
    assert mixed["per_kind"]["color"]["accuracy"] == 1.0 and mixed["per_kind"]["shape"]["accuracy"] == 0.0


def test_peak_matches_slow_loop():
    rng = np.random.default_rng(1)
    mm = rng.normal(size=(5, 6, 9))
    frames = loc.word_frames(0.3, 0.9, 9)
    heat = loc.word_heatmap(mm, frames)
    best, arg = -np.inf, None
    for r in range(5):
        for c in range(6):
            v = sum(mm[r, c, t] for t in range(frames.start, frames.stop))
            if v > best:
                best, arg = v, (r, c)
    assert loc.peak_cell(heat) == arg


def test_bad_inputs_are_named():
    image, audio, words, labels, boxes = _scene()
    mm = np.asarray(matchmap_lib.matchmap(image, audio))
    with pytest.raises(ValueError, match=r"matchmap must be a non-empty \[H, W, T\]"):
        loc.localize_words(mm[0], words, labels, boxes, CLASSES)
    with pytest.raises(ValueError, match="1 object label dicts but 2 boxes"):
        loc.localize_words(mm, words, labels[:1], boxes, CLASSES)
    with pytest.raises(ValueError, match="max >= min"):
        loc.in_boxes(0.1, 0.1, [[0.5, 0, 0.2, 1]])
    with pytest.raises(ValueError, match="no localisation records"):
        loc.summarize([])


def test_run_localization_with_stub_encoders():
    image, audio, words, _, boxes = _scene()
    examples = [{"audio": np.zeros(8 * 16, np.int16), "image": np.zeros((8, 8, 3), np.uint8),
                 "words": {"word": [w.encode() for w, _, _ in words], "start": [s for _, s, _ in words],
                           "end": [e for _, _, e in words]},
                 "objects": {"shape": [0, 1], "color": [0, 4], "size": [0, 0], "bbox": boxes}}] * 3

    def featurize(wav):
        return np.zeros((len(wav) // 16, 2), np.float32)

    featurizer = Featurizer(featurize, pad_value=0.0, num_features=2)

    def audio_maps_fn(x, mask):
        return np.repeat(audio[None], x.shape[0], 0), mask

    def image_maps_fn(images):
        padded = np.zeros((images.shape[0], 5, 5, 4))
        padded[:, :4, :4] = image
        mask = np.zeros((images.shape[0], 5, 5), bool)
        mask[:, :4, :4] = True
        return padded, mask

    report = loc.run_localization(audio_maps_fn, image_maps_fn, examples, featurizer=featurizer, batch_size=2)
    # spoken_shapes: SHAPES[0] = circle, SHAPES[1] = square, COLORS[0] = red, COLORS[4] = blue
    assert report["n"] == 12 and report["accuracy"] == 1.0
    assert set(report["per_word"]) == {"red", "circle", "blue", "square"}
