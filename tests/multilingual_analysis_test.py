"""`analyze` of a multilingual run (vgs_jax.multilingual.analysis): hand-labelled word classes of real
spoken_shapes 2.0.0 captions in each language, and the per-language analyses of a short en+ja run on
tiny_multi (each tower on its own language's captions, phones and word classes)."""

import numpy as np
import pytest

from vgs_jax import config_lib
from vgs_jax import data_sources
from vgs_jax import train
from vgs_jax.analysis import activations
from vgs_jax.analysis import attention_words
from vgs_jax.analysis import suite
from vgs_jax.multilingual import analysis as ml_analysis
from vgs_jax.multilingual import data
from vgs_jax.multilingual import model as ml_model
from vgs_jax.multilingual import word_classes

# Captions of spoken_shapes/tiny_multi:2.0.0 (validation), labelled by hand (word_classes' docstring rules).
HAND = {
    "en": ("my view contains an emerald rhombus over an amber hexagon and also a small crimson rhombus",
           "function other other function color shape spatial function color shape function function function "
           "size color shape"),
    "en2": ("in this picture there are exactly two plum plus signs",
            "function function other function function other number color shape shape"),
    "hi": ("मैं देख सकता हूँ कि फ्रेम के अंदर एक पीला जोड़ का निशान मौजूद है और चार सुनहरी आकृतियाँ हैं",
           "function other other function function other particle other function color shape particle shape "
           "other function function number color other function"),
    "ja": ("わたし には でっかい わかくさいろ の しかくい かたち の うえ の ほう に こがた の ももいろ の きっこうがた が "
           "かかれて います",
           "function particle size color particle shape other particle spatial particle spatial particle size "
           "particle color particle shape particle other function"),
    "ja2": ("ここ には あおい ほし が ふたつ でて います",
            "function particle color shape particle number other function"),
}
SMALL = suite.SuiteSettings(max_probe_frames=300, probe_max_iter=50, max_abx_items=60, max_rsa_utterances=8,
                            word_min_count=2)


@pytest.mark.parametrize("key", sorted(HAND))
def test_word_classes_of_hand_labelled_captions(key):
    caption, labels = HAND[key]
    classes = word_classes.word_classes(key[:2])
    assert [attention_words.classify(w, classes) for w in caption.split()] == labels.split()


def test_word_classes_cover_the_grammar_and_refuse_other_languages():
    ja, hi = word_classes.word_classes("ja"), word_classes.word_classes("hi")
    assert ja["が"] == "particle" and hi["में"] == "particle" and "particle" not in word_classes.word_classes("en").values()
    assert hi["नीले"] == hi["नीली"] == "color" and hi["बड़ी"] == "size"  # inflected adjectives
    with pytest.raises(ValueError, match=r"not 'de'"):
        word_classes.word_classes("de")


@pytest.fixture(scope="module")
def en_ja_run(multi_shapes_data_dir, tmp_path_factory):
    config = config_lib.load_config("configs/shapes_multilingual_bi.py:tiny,languages=en+ja")
    config.dataset.data_dir = multi_shapes_data_dir
    config.num_train_steps = config.eval_every_steps = config.checkpoint_every_steps = 1
    workdir = str(tmp_path_factory.mktemp("ml_analyze") / "run")
    train.train_and_evaluate(config, workdir)
    return workdir


def test_only_layer_analyses_run_per_language():
    assert ml_analysis.split_analyses(["probes", "gating", "attention", "semantics"], explicit=False) == (
        ["probes", "attention"], {"gating": ml_analysis.NOT_FOR_MULTILINGUAL, "semantics": ml_analysis.NOT_FOR_MULTILINGUAL})
    with pytest.raises(ml_analysis.UnsupportedAnalysisError, match=r"\['gating'\].*choose from"):
        ml_analysis.split_analyses(["probes", "gating"], explicit=True)


def test_each_language_is_analysed_on_its_own_captions(en_ja_run):
    report = suite.analyze_workdir(en_ja_run, split="validation", max_utterances=12, settings=SMALL,
                                   analyses=["probes", "abx", "attention"])
    assert list(report["languages"]) == ["en", "ja"] and report["analyses"] == ["probes", "abx", "attention"]
    step, config, template, params = activations.load_models(en_ja_run, "best")
    views = data.parallel_views(data_sources.open_config_split(config.dataset, "validation"), config.multilingual)
    templates = ml_model.language_templates(template)
    for language in ("en", "ja"):
        sub = report["languages"][language]
        acts = activations.load(activations.cache_path(en_ja_run, "trained", "validation", language))
        view = [views[language][i] for i in range(12)]
        assert [m["text"] for m in acts.meta] == [ex["text"].decode() for ex in view]  # this language's captions
        assert sub["phone_set"] == sorted({activations.clean_phone(p.decode()) for ex in view
                                           for p in ex["phones"]["phone"]})
        direct = activations.extract(templates[language], params["trained"], config, split="validation",
                                     max_utterances=3, key={}, source=views[language])
        np.testing.assert_allclose(direct.pooled, acts.pooled[:3], atol=1e-5)  # through this language's tower
        assert sub["layers"] == ["conv", "gru_0", "pooled"]
        assert sub["trained"]["gru_0"]["local_probe"]["accuracy"] > 0 and "abx_within" in sub["random"]["conv"]
        classes = sub["attention_words"]["trained"]["classes"]
        assert ("particle" in classes) == (language == "ja") and "shape" in classes
        table = word_classes.word_classes(language)
        for cls in ("shape", "particle") if language == "ja" else ("shape",):  # slow: attention on the class's frames
            masses = [sum(a for a, tk in zip(acts.attention[i], acts.frame_times(i))
                          if any(s <= tk < e and table.get(w) == cls for w, s, e in m["words"]))
                      for i, m in enumerate(acts.meta) if any(table.get(w) == cls for w, _, _ in m["words"])]
            assert classes[cls]["share"] == pytest.approx(np.mean(masses), abs=1e-5)
    assert set(report["languages"]["ja"]["phone_set"]) != set(report["languages"]["en"]["phone_set"])
    text = ml_analysis.format_languages(report)
    assert "== ja: 12 captions" in text and "particle" in text
