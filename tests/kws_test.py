"""Keyword spotting from visual tags: the Kamper CNN, the visual-tag loss, keywords and the metrics,
each against a slow obvious version or hand-computed values."""

import os
import shutil

from flax import nnx
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import pytest
from scipy.interpolate import interp1d
from scipy.optimize import brentq
from sklearn.metrics import roc_curve

from vgs_jax import audio_features
from vgs_jax import config_lib
from vgs_jax import data_sources
from vgs_jax import input_pipeline
from vgs_jax.kws import evaluation as kws_evaluation
from vgs_jax.kws import keywords
from vgs_jax.kws import metrics
from vgs_jax.kws import pivot
from vgs_jax.models import kws_cnn
from vgs_jax.objectives import registry
from vgs_jax.objectives import tags


def _param_count(module) -> int:
    return sum(x.size for x in jax.tree.leaves(nnx.state(module, nnx.Param)))


def test_kamper_cnn_has_the_recipes_parameter_count():
    model = nnx.eval_shape(lambda: kws_cnn.KamperCNN(39, num_keywords=17, rngs=nnx.Rngs(0)))
    convs = (39 * 9 * 64 + 64) + (64 * 10 * 256 + 256) + (256 * 11 * 1024 + 1024)
    dense = (1024 * 4096 + 4096) + (4096 * 17 + 17)
    assert _param_count(model) == convs + dense == 7_339_281
    assert model.receptive_field == 134  # 9 + 2 + 9*3 + 2*3 + 10*9 input frames


def test_kamper_cnn_output_depends_only_on_the_utterance():
    """An utterance padded with garbage in a longer batch gives what it gives alone, also when it is
    shorter than the receptive field (zero-padded, as the recipe pads to 800 frames)."""
    model = kws_cnn.KamperCNN(5, num_keywords=3, widths=(4, 6, 8), hidden=(7,), rngs=nnx.Rngs(1))
    run = nnx.jit(lambda m, x, mask: m(x, mask))
    rng = np.random.default_rng(0)
    for length in (200, 60):
        alone = rng.normal(size=(1, length, 5)).astype(np.float32)
        padded = rng.normal(size=(1, 300, 5)).astype(np.float32) * 100
        padded[:, :length] = alone
        mask = np.arange(300)[None] < length
        want = run(model, jnp.asarray(alone), jnp.ones((1, length), bool))
        got = run(model, jnp.asarray(padded), jnp.asarray(mask))
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)
        assert np.isfinite(got).all() and got.shape == (1, 3)


def _slow_bce(logits, targets):
    total = 0.0
    for x, p in zip(np.ravel(logits), np.ravel(targets)):
        s = 1 / (1 + np.exp(-x))
        total -= p * np.log(s) + (1 - p) * np.log(1 - s)
    return total


def test_visual_tag_loss_matches_a_slow_version_and_stops_the_taggers_gradient():
    rng = np.random.default_rng(0)
    speech, image = rng.normal(size=(2, 4, 5)).astype(np.float32)
    targets = (rng.random((4, 5)) < 0.4).astype(np.float32)
    mask = np.array([True, True, True, False])
    soft = 1 / (1 + np.exp(-image.astype(np.float64)))
    want = np.mean([_slow_bce(speech[b], soft[b]) + 0.5 * _slow_bce(image[b], targets[b]) for b in range(3)])
    got = tags.visual_tag_loss(speech, image, targets, mask=mask, tagger_weight=0.5)
    np.testing.assert_allclose(got, want, rtol=1e-5)
    # The tagger's gradient comes from its own term only.
    g_image = jax.grad(lambda i: tags.visual_tag_loss(speech, i, targets, mask=mask))(image)
    g_tagger = jax.grad(lambda i: tags.summed_sigmoid_cross_entropy(i, targets)[:3].sum() / 3)(image)
    np.testing.assert_allclose(g_image, g_tagger, rtol=1e-5, atol=1e-7)
    # A perfect tagger: the speech model learns the targets themselves.
    want = np.mean([_slow_bce(speech[b], targets[b]) + _slow_bce(image[b], targets[b]) for b in range(3)])
    got = tags.visual_tag_loss(speech, image, targets, mask=mask, oracle_tagger=True)
    np.testing.assert_allclose(got, want, rtol=1e-5)


def test_visual_tags_objective_reads_logits_and_targets():
    loss_config = ml_collections.ConfigDict(dict(name="visual_tags", chunked=False, oracle_tagger=False))
    loss_fn = registry.make_loss_fn(loss_config,
                                    ml_collections.ConfigDict(dict(similarity="cosine")))
    logits = jnp.zeros((2, 3))
    batch = {"example_mask": jnp.ones(2, bool), tags.TARGETS_KEY: jnp.ones((2, 3))}
    loss, _ = loss_fn(None, {"logits": logits}, {"logits": logits}, batch, None)
    np.testing.assert_allclose(loss, 6 * np.log(2), rtol=1e-6)  # 3 keywords x 2 terms x log 2
    with pytest.raises(ValueError, match="keyword_targets"):
        loss_fn(None, {"logits": logits}, {"logits": logits}, {"example_mask": jnp.ones(2, bool)}, None)
    with pytest.raises(ValueError, match="pooled speech and image towers"):
        loss_fn(None, {"embedding": logits}, {"logits": logits}, batch, None)
    # loss.oracle_tagger=True: speech logits 10 against targets 1 (not the tagger's 0.5) cost softplus(-10).
    loss_config.oracle_tagger = True
    oracle_fn = registry.make_loss_fn(loss_config, ml_collections.ConfigDict(dict(similarity="cosine")))
    loss, _ = oracle_fn(None, {"logits": logits + 10}, {"logits": logits}, batch, None)
    np.testing.assert_allclose(loss, 3 * np.log1p(np.exp(-10)) + 3 * np.log(2), rtol=1e-6)


EXAMPLE = {"caption_id": 7, "text": b"a little red circle above two blue crosses",
           "words": {"word": [b"a", b"little", b"red", b"circle", b"above", b"two", b"blue", b"crosses"]},
           "objects": {"shape": [0, 5, 5], "color": [0, 4, 4], "size": [0, 1, 0]}}


def test_keywords_spoken_and_shown():
    vocab = keywords.spoken_shapes_keywords()
    names = [k.name for k in vocab]
    assert len(vocab) == 17 and names[:3] == ["circle", "square", "triangle"]
    spoken = {n for n, s in zip(names, keywords.spoken(EXAMPLE, vocab)) if s}
    shown = {n for n, s in zip(names, keywords.shown(EXAMPLE, vocab)) if s}
    assert spoken == {"red", "circle", "blue", "cross"}  # "little" is not the keyword "small"
    assert shown == {"red", "circle", "blue", "cross", "small", "large"}
    with pytest.raises(ValueError, match="choose one of"):
        keywords.vocabulary(ml_collections.ConfigDict(dict(kws=dict(vocabulary="flickr"))))


def test_example_fields_give_the_taggers_targets():
    config = config_lib.load_config("configs/shapes_kws.py:tiny,v1")
    assert keywords.example_fields(config_lib.load_config("configs/shapes_gru.py:tiny,v1")) is None
    targets = keywords.example_fields(config)(EXAMPLE)[tags.TARGETS_KEY]
    assert targets.dtype == np.float32 and targets.sum() == 4
    with config.unlocked():
        config.kws.tagger_targets = "scene"
    assert keywords.example_fields(config)(EXAMPLE)[tags.TARGETS_KEY].sum() == 6
    with config.unlocked():
        config.model.speech.num_keywords = 16
    with pytest.raises(ValueError, match="num_keywords=17"):
        keywords.example_fields(config)
    with config.unlocked():
        config.model.speech.num_keywords = 17
        config.train.embedding_cache_chunks = 2
    with pytest.raises(ValueError, match="embedding_cache_chunks=2 is unsupported with keyword spotting"):
        keywords.example_fields(config)
    with config.unlocked():
        config.train.embedding_cache_chunks = 1
        config.loss.oracle_tagger = True
        config.kws.tagger_targets = "text"
    with pytest.raises(ValueError, match="oracle_tagger=True with config.kws.tagger_targets='text'"):
        keywords.example_fields(config)


def test_metrics_by_hand():
    scores = np.array([0.9, 0.8, 0.7, 0.6, 0.5])
    relevant = np.array([True, False, True, True, False])
    assert metrics.precision_at(scores, relevant, 10) == pytest.approx(3 / 5)
    assert metrics.precision_at(scores, relevant, 3) == pytest.approx(2 / 3)  # P@N, N = 3
    # ROC (0,0) (0,1/3) (1/2,1/3) (1/2,1) (1,1): tpr = 1 - fpr on the vertical step at fpr 1/2.
    assert metrics.equal_error_rate(scores, relevant) == pytest.approx(0.5)
    assert metrics.equal_error_rate(scores, np.array([1, 1, 0, 0, 0], bool)) == 0.0
    assert metrics.equal_error_rate(-scores, np.array([1, 1, 0, 0, 0], bool)) == 1.0
    # A tie between a relevant and an irrelevant utterance: the ROC's diagonal segment from (0, 1/2)
    # to (1/2, 1) meets tpr = 1 - fpr at fpr 1/4.
    assert metrics.equal_error_rate(np.array([0.9, 0.5, 0.5, 0.1]), np.array([1, 1, 0, 0], bool)) == 0.25


def test_eer_matches_the_recipes_roc_root_finding():
    """kamperh/recipe_semantic_flickraudio: brentq(lambda x: 1 - x - interp1d(fpr, tpr)(x), 0, 1)."""
    rng = np.random.default_rng(0)
    for _ in range(5):
        relevant = rng.random(200) < 0.2
        scores = rng.normal(size=200) + 1.5 * relevant
        fpr, tpr, _ = roc_curve(relevant, scores)
        want = brentq(lambda x: 1.0 - x - interp1d(fpr, tpr)(x), 0.0, 1.0)
        assert metrics.equal_error_rate(scores, relevant) == pytest.approx(want, abs=1e-9)


def test_keyword_spotting_systems_and_disagreements():
    spoken = np.array([[1, 0], [0, 1], [0, 0], [1, 0]], bool)
    shown = np.array([[1, 0], [1, 1], [0, 1], [1, 0]], bool)
    scores = np.array([[2.0, 0.0], [3.0, 1.0], [0.0, 5.0], [1.0, 0.0]])
    texts = ["t0", "t1", "t2", "t3"]
    out = kws_evaluation.keyword_spotting(scores, spoken, shown, texts, np.arange(4), ["a", "b"])
    oracle = out["oracle_bow"]["exact"]
    assert oracle["p_at_n"] == 1.0 and oracle["eer"] == 0.0 and oracle["keywords_scored"] == 2
    model = out["model"]["exact"]["per_keyword"]["a"]  # ranks 1, 0, 3, 2: relevant 0, 3 at places 2, 3
    assert model["n"] == 2 and model["p_at_n"] == 0.5
    d = out["disagreements"]
    assert d["shown_not_spoken"] == 2 and d["spoken_not_shown"] == 0
    assert [(e["keyword"], e["caption_id"], e["model_rank"]) for e in d["examples"]] == [("a", 1, 1), ("b", 2, 1)]


def test_tagger_ranks_images_per_keyword():
    logits = np.array([[2.0, 0.0], [1.0, 1.0], [0.0, 2.0]])
    shown = np.array([[1, 0], [0, 1], [1, 1]], bool)
    out = kws_evaluation.tagger_spotting(logits, shown, ["a", "b"])
    a, b = out["model"]["per_keyword"]["a"], out["model"]["per_keyword"]["b"]
    assert a["p_at_n"] == 0.5 and a["eer"] == 0.5  # images 0, 1, 2 in that order; relevant: 0 and 2
    assert b["p_at_n"] == 1.0 and b["eer"] == 0.0  # images 2, 1, 0; relevant: 2 and 1
    assert out["random"]["keywords_scored"] == 2


def test_train_batches_carry_example_fields_with_zero_padding_rows():
    rng = np.random.default_rng(0)
    source = [{"audio": rng.integers(-3000, 3000, 400 + 160 * i).astype(np.int16), "image": np.zeros((4, 4, 3), np.uint8),
               "image_id": i, "caption_id": i} for i in range(10)]
    featurizer = audio_features.Featurizer(lambda w: np.ones((len(w) // 160, 2), np.float32), pad_value=0.0,
                                           num_features=2)
    fields = lambda ex: {"targets": np.array([ex["caption_id"], 1.0], np.float32)}
    batch = next(input_pipeline.make_train_iterator(source, global_batch_size=5, featurizer=featurizer, seed=0,
                                                    max_frames=None, bucket_boundaries=None, num_threads=0,
                                                    shard_index=1, shard_count=2, example_fields=fields))
    real = batch["example_mask"]  # the second host's half of 5 examples padded to an even row count
    assert real.any() and not real.all() and batch["targets"].dtype == np.float32
    np.testing.assert_array_equal(batch["targets"][real],
                                  np.stack([batch["caption_id"][real], np.ones(real.sum())], -1))
    assert (batch["targets"][~real] == 0).all()


HINDI = {"caption_id": 8, "meaning_id": 3, "language": b"hi", "text": b"x",
         "words": {"word": [w.encode() for w in "देखिए इस चित्र में गिनकर दो छोटे लाल डिब्बे हैं".split()]},
         "objects": {"shape": [1, 1], "color": [0, 0], "size": [0, 0]}}


def test_keywords_spoken_in_the_utterances_language():
    vocab = keywords.spoken_shapes_keywords()
    names = [k.name for k in vocab]
    said = lambda ex: {n for n, s in zip(names, keywords.spoken(ex, vocab)) if s}
    # "छोटे" inflects छोटा (small), "लाल" is red; "डिब्बे" (boxes) is a synonym of square: semantic only.
    assert said(HINDI) == {"small", "red"}
    japanese = {**HINDI, "language": "ja", "words": {"word": ["あかい", "まる", "と", "おおきな", "あおい", "しかく"]}}
    assert said(japanese) == {"red", "circle", "blue", "square"}  # "おおきな" is a synonym of おおきい (large)
    assert said({**EXAMPLE, "language": b"en"}) == said(EXAMPLE) == {"red", "circle", "blue", "cross"}
    with pytest.raises(ValueError, match="no 'de' forms"):
        keywords.spoken({**HINDI, "language": "de"}, vocab)


def test_shapes_kws_v2_reads_2_0_0_examples():
    config = config_lib.load_config("configs/shapes_kws.py:tiny,v2")
    assert config.dataset.name == "spoken_shapes/tiny:2.0.0"
    v2_example = {**EXAMPLE, "language": b"en", "meaning_id": 1}  # 2.0.0 fields beside 1.0.0's
    np.testing.assert_array_equal(keywords.example_fields(config)(v2_example)[tags.TARGETS_KEY],
                                  keywords.spoken(EXAMPLE, keywords.spoken_shapes_keywords()))


def test_crosslingual_tagger_learns_the_english_caption_of_the_same_meaning(monkeypatch):
    config = config_lib.load_config("configs/shapes_kws_crosslingual.py:tiny")
    assert config.dataset.name == "spoken_shapes/tiny_hi:2.0.0" and config.kws.tagger_language == "en"
    assert pivot.parallel_dataset_name("spoken_shapes/quick_ja:2.0.0", "en") == "spoken_shapes/quick:2.0.0"
    assert pivot.parallel_dataset_name("spoken_shapes/small:2.0.0", "hi") == "spoken_shapes/small_hi:2.0.0"
    with pytest.raises(ValueError, match="needs parallel captions"):
        pivot.parallel_dataset_name("spoken_shapes/tiny", "en")
    english = [{**EXAMPLE, "language": b"en", "meaning_id": 3}, {**EXAMPLE, "meaning_id": 4, "words": {"word": [b"a"]}}]
    opened = []
    monkeypatch.setattr(pivot.data_sources, "open_split",
                        lambda name, split, **kw: opened.append((name, split)) or english)
    fields = keywords.example_fields(config)
    assert opened == [("spoken_shapes/tiny:2.0.0", "train")]
    # The Hindi utterance says small + red; the tagger learns the English caption's red, circle, blue, cross.
    vocab = keywords.spoken_shapes_keywords()
    np.testing.assert_array_equal(fields(HINDI)[tags.TARGETS_KEY], keywords.spoken(EXAMPLE, vocab))
    assert fields({**HINDI, "meaning_id": 4})[tags.TARGETS_KEY].sum() == 0
    with pytest.raises(KeyError, match="meaning_id 5 .* has no caption in spoken_shapes/tiny:2.0.0"):
        fields({**HINDI, "meaning_id": 5})
    with config.unlocked():
        config.kws.tagger_targets = "scene"
    with pytest.raises(ValueError, match="needs kws.tagger_targets='text'"):
        keywords.example_fields(config)
    with pytest.raises(ValueError, match="choose one of \\('hi', 'ja'\\)"):
        config_lib.load_config("configs/shapes_kws_crosslingual.py:language=de")


def test_image_relevance_is_any_caption_of_the_image():
    spoken = np.array([[1, 0], [0, 0], [0, 1], [0, 0]], bool)
    np.testing.assert_array_equal(keywords.image_relevance(spoken, [7, 7, 3, 5]),
                                  [[1, 0], [1, 0], [0, 1], [0, 0]])


FLICKR_DUMMY = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "tfds_builders",
                            "flickr8k_audio", "dummy_data")


def test_flickr8k_kws_names_the_missing_corpus_then_reads_its_caption_words(tmp_path):
    config = config_lib.load_config("configs/flickr8k_kws.py:tiny")
    config.dataset.data_dir = str(tmp_path)
    config.dataset.image_key = "image"  # the ResNet vectors are tested with extract_image_features
    with pytest.raises(FileNotFoundError, match=r"wav2capt\.txt.*downloads/manual/flickr8k_audio"):
        keywords.example_fields(config)
    shutil.copytree(FLICKR_DUMMY, tmp_path / "downloads" / "manual" / "flickr8k_audio")
    # Training captions "A {dog|child|man|boat} is shown in picture {i} caption {k}": 20 captions say
    # caption, picture, shown; 5 each of the animals and people (ties alphabetically); "a", "is", "in" are stop words.
    vocab = keywords.vocabulary(config)
    assert [k.name for k in vocab] == ["caption", "picture", "shown", "boat"] and vocab[3].kind == "word"
    targets = keywords.example_fields(config)({"text": b"A boat is shown in picture 5 caption 1"})[tags.TARGETS_KEY]
    np.testing.assert_array_equal(targets, [1, 1, 1, 1])
    test_split = data_sources.open_config_split(config.dataset, "test")
    spoken, shown, _, _, image_ids = kws_evaluation._annotations(test_split, vocab)
    assert spoken.shape == (5, 4) and spoken[:, :3].all() and not spoken[:, 3].any() and (shown == spoken).all()
    assert len(set(image_ids)) == 1  # the dummy test split: one image, five captions
    with pytest.raises(ValueError, match="num_keywords <= 7"):
        config.model.speech.num_keywords = 8
        keywords.vocabulary(config)


def test_flickr8k_kws_with_a_pretrained_tagger_file(tmp_path):
    path = str(tmp_path / "tagger.npz")
    with pytest.raises(FileNotFoundError, match="tagger.npz' not found .*'keywords', 'kernel', 'bias'"):
        config_lib.load_config(f"configs/flickr8k_kws.py:tiny,tagger_weights={path}")
    kernel, bias = np.array([[1.0, -2.0, 0.0], [0.5, 0.0, 3.0]]), np.array([0.0, 1.0, -1.0])
    np.savez(path, keywords=np.array(["dog", "beach", "red"]), kernel=kernel, bias=bias)
    config = config_lib.load_config(f"configs/flickr8k_kws.py:tiny,tagger_weights={path}")
    assert config.model.speech.num_keywords == 3 and config.loss.oracle_tagger  # the speech model learns its outputs
    assert [k.name for k in keywords.vocabulary(config)] == ["dog", "beach", "red"]
    x = np.array([2.0, -1.0], np.float32)
    want = [1 / (1 + np.exp(-(2 * 1 - 0.5))), 1 / (1 + np.exp(-(-4 + 1))), 1 / (1 + np.exp(-(-3 - 1)))]
    got = keywords.example_fields(config)({"image_features": x})[tags.TARGETS_KEY]
    np.testing.assert_allclose(got, want, rtol=1e-6)
    with pytest.raises(ValueError, match="image vectors of 2 values; got shape \\(3,\\)"):
        keywords.example_fields(config)({"image_features": np.zeros(3)})
    np.savez(path, keywords=np.array(["dog"]), kernel=kernel, bias=bias)
    with pytest.raises(ValueError, match="must be \\[D, 1\\]"):
        keywords.vocabulary(config)
