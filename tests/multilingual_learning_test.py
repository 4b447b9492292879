"""Learning test of a bilingual model (configs/shapes_multilingual_bi.py:tiny on spoken_shapes/tiny_multi 2.0.0):
a short run aligns English and Hindi captions (cross-lingual speech->speech retrieval) far above chance, where
the same model at random initialisation is at chance; and the evaluate path reports every language and
direction.

Scored on the train split's 120 parallel captions (chance R@10 = 10/120): tiny's 8 test images are too few to
tell learning from chance, and generalisation needs more images (README, "Multilingual models", on quick).
"""

from vgs_jax import config_lib
from vgs_jax import data_sources
from vgs_jax import evaluation
from vgs_jax import input_pipeline
from vgs_jax import train
from vgs_jax.multilingual import evaluation as ml_evaluation

CROSS = ("en->hi", "hi->en")


def test_bilingual_run_aligns_languages_above_chance(multi_shapes_data_dir, tmp_path):
    config = config_lib.load_config("configs/shapes_multilingual_bi.py:tiny")
    config.dataset.data_dir = multi_shapes_data_dir
    config.num_train_steps, config.batch_size, config.optimizer.lr_max = 60, 16, 3e-3
    config.model.speech.hidden = config.model.speech.attention_hidden = 32
    config.eval_every_steps = config.checkpoint_every_steps = 60
    workdir = str(tmp_path / "run")
    train.train_and_evaluate(config, workdir)
    step, _, trained = evaluation.evaluate_checkpoint(workdir, split="train")
    assert step == 60
    for key in ("en/speech_to_image", "en/image_to_speech", "hi/speech_to_image", "hi/image_to_speech") + CROSS:
        assert {"r1", "r5", "r10", "medr", "meanr", "n"} <= set(trained[key]), key
    _, _, template, _ = evaluation.restore_model(workdir)
    source = data_sources.open_config_split(config.dataset, "train")
    random_init = ml_evaluation.evaluate_split(
        template, template.initial_params, source, ml_config=config.multilingual, batch_size=64,
        features_config=config.features, image_key="image", mesh=input_pipeline.data_mesh())
    chance = 10 / trained["en->hi"]["n"]
    for key in CROSS:
        assert trained[key]["r10"] >= 4 * chance, (key, trained[key], chance)
        assert random_init[key]["r10"] <= 2 * chance, (key, random_init[key], chance)
    assert "en->hi" in ml_evaluation.format_results(trained)
