"""Multilingual models (vgs_jax.multilingual): the combined loss and pair expansion against slow versions,
parameter counts of shared and separate towers, parallel views and batches."""

import itertools

import jax
import ml_collections
import numpy as np
import pytest
from flax import nnx

from vgs_jax import config_lib
from vgs_jax.audio_features import Featurizer
from vgs_jax.models import dual_encoder
from vgs_jax.multilingual import data
from vgs_jax.multilingual import model as ml_model
from vgs_jax.multilingual import objective

LANGUAGES = ("en", "hi", "ja")


def _unit(x):
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def _slow_hinge(a, b, ids, margin, positives=None):
    """platalea's hinge by loops; with `positives` [B, B], every positive pair (i, p) against every k whose
    image differs, divided by B * (number of positives) (pair expansion)."""
    a, b, n = _unit(a), _unit(b), len(a)
    s = a @ b.T
    pos = np.eye(n, dtype=bool) if positives is None else positives
    total = 0.0
    for i, p, k in itertools.product(range(n), range(n), range(n)):
        if pos[i, p] and ids[k] != ids[i]:
            total += max(0.0, margin + s[i, k] - s[i, p])
        if pos[i, p] and ids[k] != ids[p]:
            total += max(0.0, margin + s[k, p] - s[i, p])
    return total / (n * pos.sum())


class _FakeModel:
    """Returns fixed embeddings per language (the loss is tested, not the towers)."""

    def __init__(self, z):
        self.z = z

    def encode_speech(self, features, mask, *, key=None, language=None):
        del features, mask, key
        return {"embedding": self.z[language]}


def _config(weights, expansion=False):
    config = config_lib.load_config("configs/shapes_multilingual_tri.py:tiny")
    config.multilingual.weights = weights
    config.multilingual.pair_expansion = expansion
    return config


@pytest.mark.parametrize("expansion", [False, True])
def test_combined_loss_is_the_weighted_sum_of_slow_single_terms(expansion):
    rng = np.random.default_rng(0)
    z = {x: _unit(rng.normal(size=(6, 4))).astype(np.float32) for x in LANGUAGES + ("image",)}
    ids = np.array([0, 1, 0, 2, 3, 1], np.int32)  # rows 0/2 and 1/5 are captions of one image
    weights = {"en_image": 1.0, "hi_image": 0.5, "ja_image": 0.0, "en_hi": 2.0, "hi_ja": 0.25}
    loss_fn = objective.make_loss_fn(_config(weights, expansion))
    batch = {"image_id": ids, "example_mask": np.ones(6, bool)}
    for x in LANGUAGES[1:]:
        batch[f"audio_{x}"], batch[f"audio_mask_{x}"] = np.zeros((6, 3, 2), np.float32), np.ones((6, 3), bool)
    total, metrics = loss_fn(_FakeModel(z), {"embedding": z["en"]}, {"embedding": z["image"]}, batch,
                             jax.random.key(0))
    same_image = ids[:, None] == ids[None, :]
    expected = 0.0
    for name, w in weights.items():
        a, b = name.split("_")
        value = _slow_hinge(z[a], z[b], ids, 0.2, same_image if expansion and b != "image" else None)
        if w:
            np.testing.assert_allclose(metrics[f"loss_{a}_{b}"], value, rtol=1e-5)
        expected += w * value
    assert "loss_ja_image" not in metrics  # weight 0: no term
    np.testing.assert_allclose(total, expected, rtol=1e-5)


def test_pair_expansion_positives_by_hand():
    got = objective.expanded_positives(np.array([4, 7, 4, 9]), np.array([True, True, True, False]))
    want = np.array([[1, 0, 1, 0],
                     [0, 1, 0, 0],
                     [1, 0, 1, 0],
                     [0, 0, 0, 0]], bool)  # row 3 is padding: no positives
    np.testing.assert_array_equal(got, want)


def test_bad_terms_and_losses_are_named():
    with pytest.raises(ValueError, match=r"weights.en_fr=1.0"):
        objective.make_loss_fn(_config({"en_image": 1.0, "en_fr": 1.0}))
    with pytest.raises(ValueError, match="no term with weight > 0"):
        objective.make_loss_fn(_config({"en_image": 0.0}))
    config = _config({"en_hi": 1.0}, expansion=True)
    config.loss.name = "infonce"
    with pytest.raises(ValueError, match="pair_expansion=True is implemented for loss.name='platalea_hinge'"):
        objective.make_loss_fn(config)


def _count(tree):
    return sum(x.size for x in jax.tree.leaves(tree))


@pytest.mark.parametrize("shared", [True, False])
def test_parameter_counts_of_shared_and_separate_towers(shared):
    config = config_lib.load_config("configs/shapes_multilingual_tri.py:tiny")
    config.multilingual.shared_speech = shared
    params = dual_encoder.Template(ml_model.build_model(config, num_features=39, rngs=nnx.Rngs(0))).initial_params
    single = dual_encoder.Template(dual_encoder.build_dual_encoder(config.model, num_features=39,
                                                                   rngs=nnx.Rngs(0))).initial_params
    speech, image = _count(single["speech_encoder"]), _count(single["image_encoder"])
    assert _count(params) == image + (1 if shared else 3) * speech + 1  # + log_temperature
    assert ("extra_speech_encoders" in params) == (not shared)


def test_language_templates_run_each_language_tower():
    config = config_lib.load_config("configs/shapes_multilingual_bi.py:tiny")
    template = dual_encoder.Template(ml_model.build_model(config, num_features=39, rngs=nnx.Rngs(0)))
    x, mask = np.random.default_rng(0).normal(size=(2, 30, 39)).astype(np.float32), np.ones((2, 30), bool)
    model = template.merge(template.initial_params)
    for language, t in ml_model.language_templates(template).items():
        got = t.merge(template.initial_params).encode_speech(x, mask)["embedding"]
        np.testing.assert_allclose(got, model.encode_speech(x, mask, language=language)["embedding"], atol=1e-6)
    en, hi = (model.encode_speech(x, mask, language=lang)["embedding"] for lang in ("en", "hi"))
    assert not np.allclose(en, hi)  # separate towers


def _example(meaning, language, n=1600):
    return {"meaning_id": meaning, "language": language.encode(), "image_id": meaning // 5,
            "caption_id": 10 * meaning + LANGUAGES.index(language), "image": np.zeros((4, 4, 3), np.uint8),
            "audio": np.full(n + 160 * meaning, 100 * (1 + LANGUAGES.index(language)), np.int16)}


def test_grouped_views_and_parallel_batches():
    source = [_example(m, x) for m in (7, 3, 12, 5) for x in ("ja", "en", "hi")][::-1]
    ml = ml_collections.ConfigDict(dict(languages=("en", "hi"), layout="grouped"))
    views = data.parallel_views(source, ml)
    assert [views["en"][i]["meaning_id"] for i in range(4)] == [5, 12, 3, 7]  # first-seen order
    for i in range(4):
        assert views["hi"][i]["meaning_id"] == views["en"][i]["meaning_id"]
        assert views["hi"][i]["language"] == b"hi" and views["en"][i]["language"] == b"en"
    it = data.make_train_iterator(views, global_batch_size=2, featurizer=Featurizer.from_recipe("platalea_mfcc"),
                                  seed=0, max_frames=None, bucket_boundaries=None, num_threads=0, prefetch_batches=0)
    batch = next(it)
    state = it.get_state()
    real = batch["example_mask"]  # rows past 2 pad the batch to the device count
    assert real.sum() == 2 and batch["audio_hi"].shape[0] == len(real)
    np.testing.assert_array_equal(batch["caption_id_hi"][real], batch["caption_id"][real] + 1)  # same meanings
    np.testing.assert_array_equal(batch["audio_len_hi"], batch["audio_len"])
    second = next(it)
    it.set_state(state)
    np.testing.assert_array_equal(next(it)["caption_id_hi"], second["caption_id_hi"])
    with pytest.raises(ValueError, match=r"has no caption in \['ja'\]"):
        data.parallel_views(source[:-1], ml_collections.ConfigDict(dict(languages=("ja", "en"), layout="grouped")))


def test_field_views_rename_per_language():
    ex = dict(_example(0, "en"), audio_hindi=np.ones(800, np.int16), caption_id_english=99)
    ml = config_lib.load_config("configs/places_bilingual_davenet.py:tiny").multilingual
    views = data.parallel_views([ex], ml)
    assert views["english"][0]["caption_id"] == 99 and len(views["english"][0]["audio"]) == 1600
    assert views["hindi"][0]["caption_id"] == 0 and len(views["hindi"][0]["audio"]) == 800


def test_places_bilingual_views_of_the_dummy_build_and_missing_manual_dir(tmp_path):
    import pathlib

    import tensorflow_datasets as tfds

    from tfds_builders import places_audio  # noqa: F401  (registers the builder)
    from vgs_jax import data_sources
    from vgs_jax import train

    config = config_lib.load_config("configs/places_bilingual_davenet.py:tiny")
    config.dataset.data_dir = str(tmp_path / "empty")
    with pytest.raises(FileNotFoundError, match=r"PlacesHindi100k/metadata/train.json.*downloads/manual/places_audio"):
        train.train_and_evaluate(config, str(tmp_path / "run"))
    dummy = pathlib.Path(places_audio.__file__).parent / "dummy_data"
    builder = tfds.builder("places_audio/bilingual", data_dir=str(tmp_path / "data"), file_format="array_record")
    builder.download_and_prepare(download_config=tfds.download.DownloadConfig(manual_dir=str(dummy)))
    source = data_sources.open_split("places_audio/bilingual", "train", data_dir=str(tmp_path / "data"))
    views = data.parallel_views(source, config.multilingual)
    for i in range(len(source)):
        english, hindi = views["english"][i], views["hindi"][i]
        assert english["image_id"] == hindi["image_id"] == source[i]["image_id"]
        assert english["caption_id"] == source[i]["caption_id_english"]
        assert hindi["caption_id"] == source[i]["caption_id"]
        np.testing.assert_array_equal(hindi["audio"], source[i]["audio_hindi"])
        np.testing.assert_array_equal(english["audio"], source[i]["audio"])
