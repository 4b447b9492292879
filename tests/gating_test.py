"""Gating: gate cuts, concept ranks, chance R@10, a fake embedder with a known answer, the model embedder."""

import itertools
import math

from flax import nnx
import jax
import numpy as np
import pytest

from vgs_jax import audio_features
from vgs_jax import config_lib
from vgs_jax import inference
from vgs_jax.analysis import gating
from vgs_jax.models import dual_encoder

SR = 16000


def _trial(marker, start, end, relevant, n=32000, kind="shape"):
    return gating.GatingTrial(np.full(n, marker, np.int16), f"w{marker}", start, end, kind,
                              np.asarray(relevant, bool), caption_id=marker)


def test_gate_cuts_hand_case():
    trial = gating.GatingTrial(np.arange(32000).astype(np.int16), "circle", 0.5, 1.0, "shape", np.ones(2, bool))
    cuts = gating.gate_waveforms(trial, (0.0, 0.5, 1.0))
    assert [len(w) for w in cuts] == [8000, 12000, 16000] and cuts[1][-1] == 11999
    cuts = gating.gate_waveforms(trial, (0.0, 0.2, 1.0), context="word")
    assert [len(w) for w in cuts] == [0, 1600, 8000] and cuts[1][0] == 8000
    late = gating.GatingTrial(np.zeros(100, np.int16), "star", 0.5, 1.0, "shape", np.ones(2, bool))
    assert [len(w) for w in gating.gate_waveforms(late, (0.0, 1.0))] == [100, 100]  # clipped to the audio
    with pytest.raises(ValueError, match="context"):
        gating.gate_waveforms(trial, (0.5,), context="left")
    with pytest.raises(ValueError, match="fractions"):
        gating.gate_waveforms(trial, (1.5,))
    with pytest.raises(ValueError, match="start"):
        gating.gate_waveforms(gating.GatingTrial(np.zeros(9, np.int16), "x", 1.0, 0.5, "shape", np.ones(1)), (0.5,))


def _slow_rank(scores, relevant):
    # Sort descending, irrelevant items first among ties (ties count against the model).
    order = sorted(range(len(scores)), key=lambda k: (-scores[k], relevant[k]))
    return 1 + next(pos for pos, k in enumerate(order) if relevant[k])


def test_concept_rank_hand_case_and_slow():
    assert gating.concept_rank([0.9, 0.5, 0.7], [False, True, True]) == 2
    assert gating.concept_rank([0.5, 0.5, 0.1], [False, True, False]) == 2  # tie counts against
    assert gating.concept_rank(np.zeros(8), np.eye(8, dtype=bool)[3]) == 8
    rng = np.random.default_rng(0)
    for _ in range(50):
        scores = rng.integers(0, 4, 9).astype(float)
        relevant = rng.random(9) < 0.3
        relevant[rng.integers(9)] = True
        assert gating.concept_rank(scores, relevant) == _slow_rank(scores, relevant)
    with pytest.raises(ValueError, match="no relevant image"):
        gating.concept_rank([0.1, 0.2], [False, False])


def test_chance_recall_by_enumeration():
    for m, r, k in ((6, 1, 2), (7, 3, 3), (5, 2, 10), (8, 8, 1)):
        hits = sum(any(i < r for i in top) for top in itertools.combinations(range(m), min(k, m)))
        assert gating.chance_recall(m, r, k) == pytest.approx(hits / math.comb(m, min(k, m)))
    with pytest.raises(ValueError, match="num_relevant"):
        gating.chance_recall(5, 0, 10)


def test_fake_embedder_hears_the_word_at_sixty_percent():
    # 12 images with one-hot embeddings; trial t's concept is in image t only. The fake speech
    # tower reads the trial from the waveform's value and points at the right image only once the
    # cut reaches 60 % of the word; before that it points at image 11 (never relevant).
    images = np.eye(12)
    trials = [_trial(t + 1, 0.4 + 0.1 * t, 0.9 + 0.1 * t, np.eye(12, dtype=bool)[t]) for t in range(4)]

    def embed(waveforms):
        out = np.zeros((len(waveforms), 12))
        for row, w in enumerate(waveforms):
            t = int(w[0]) - 1 if len(w) else 0
            heard = len(w) >= round((trials[t].start + 0.6 * 0.5) * SR)
            out[row, t if heard else 11] = 1.0
        return out

    fractions = (0.0, 0.2, 0.4, 0.6, 0.8, 1.0)
    curve = gating.gating_curve(embed, images, trials, fractions, trials_per_call=3)
    # Before 60 %: image 11 scores 1, the relevant image ties with ten others at 0 -> rank 12.
    assert curve["mean_rank"] == [12.0, 12.0, 12.0, 1.0, 1.0, 1.0]
    assert curve["r10"] == [0.0, 0.0, 0.0, 1.0, 1.0, 1.0] and curve["r1"] == curve["r10"]
    assert curve["chance_r10"] == pytest.approx(10 / 12)
    assert curve["num_trials"] == 4 and curve["num_images"] == 12 and curve["by_kind"]["shape"]["num_trials"] == 4
    with pytest.raises(ValueError, match="no gating trials"):
        gating.gating_curve(embed, images, [], fractions)
    with pytest.raises(ValueError, match="one flag per image"):
        gating.gating_curve(embed, images[:5], trials, fractions)


def test_model_embedder_matches_the_model():
    config = config_lib.load_config("configs/shapes_gru.py:tiny,v1")
    recipe = config.features.recipe
    model = dual_encoder.build_dual_encoder(config.model, num_features=audio_features.num_features(recipe),
                                            rngs=nnx.Rngs(0))
    template = dual_encoder.Template(model)
    params = template.initial_params
    rng = np.random.default_rng(0)
    waves = [rng.integers(-3000, 3000, n).astype(np.int16) for n in (5000, 12345, 300)]
    featurizer = audio_features.Featurizer.from_recipe(recipe)
    got = gating.model_embedder(template, params, featurizer, batch_size=3, pad_multiple=16)(waves)
    assert got.shape == (3, model.embed_dim)
    reference = jax.jit(lambda p, f, m: template.merge(p).embed_speech(f, m))  # one utterance, no padding
    for w, z in zip(waves[:2], got):
        feats = audio_features.compute(w, recipe)[None]
        want = np.asarray(reference(params, feats, np.ones(feats.shape[:2], bool)))[0]
        np.testing.assert_allclose(z, want, atol=1e-5)
    np.testing.assert_array_equal(got[2], 0.0)  # shorter than one window
    pixels = rng.integers(0, 255, (3, 64, 64, 3)).astype(np.uint8)
    np.testing.assert_allclose(inference.embed_images(template, params, pixels, batch_size=2),
                               np.asarray(model.embed_image(pixels)), atol=1e-5)


def test_split_images_and_trials_from_a_fake_source():
    def ex(caption_id, image_id, shapes, colors, words):
        return {"caption_id": caption_id, "image_id": image_id, "image": np.full((2, 2, 3), image_id, np.uint8),
                "audio": np.zeros(16000, np.int16), "objects": {"shape": shapes, "color": colors}}

    # SHAPES = (circle, square, ...), COLORS = (red, orange, ...)
    source = [ex(0, 7, [0], [0], None), ex(1, 7, [0], [0], None), ex(2, 9, [1, 0], [4, 4], None)]
    ids, pixels, concepts = gating.split_images(source)
    assert ids.tolist() == [7, 9] and pixels.shape == (2, 2, 2, 3)
    assert concepts == [{("shape", "circle"), ("color", "red")},
                        {("shape", "square"), ("shape", "circle"), ("color", "blue")}]
    meta = [{"caption_id": 0, "words": [("a", 0.0, 0.1), ("red", 0.1, 0.3), ("circle", 0.3, 0.6)]},
            {"caption_id": 1, "words": [("two", 0.0, 0.2), ("circles", 0.2, 0.5)]}]
    trials = gating.spoken_shapes_trials(source, meta, concepts, max_trials=10)
    assert [(t.word, t.kind, t.relevant.tolist()) for t in trials] == [
        ("red", "color", [True, False]), ("circle", "shape", [True, True]), ("circles", "shape", [True, True])]
    assert len(gating.spoken_shapes_trials(source, meta, concepts, max_trials=2)) == 2
    with pytest.raises(ValueError, match="caption"):
        gating.spoken_shapes_trials(source[1:], meta, concepts, max_trials=10)
