"""Tests of training: schedules, the compiled step, checkpoints, resumption, bad input."""

import json
import math
import os

import jax
import numpy as np
import pytest

from vgs_jax import checkpointing
from vgs_jax import config_lib
from vgs_jax import data_sources
from vgs_jax import evaluation
from vgs_jax import input_pipeline
from vgs_jax import optimizers
from vgs_jax import train
from tests.shapes_versions_test import V2_ONLY


def test_cyclic_schedule_matches_platalea_formula():
    stepsize = 40
    fn = optimizers.cyclic_schedule(lr_max=2e-4, lr_min=1e-6, stepsize=stepsize)
    for it in [0, 1, 7, 10, 20, 33, 40, 41, 60, 80]:
        expected = (2e-4 - 1e-6) * 0.5 * (math.cos(math.pi * (1 + 2 * it / stepsize)) + 1) + 1e-6
        assert float(fn(it)) == pytest.approx(expected, rel=1e-5)
    # Starts at the minimum, peaks after half a period, back at the minimum after a period.
    assert float(fn(0)) == pytest.approx(1e-6, rel=1e-4)
    assert float(fn(20)) == pytest.approx(2e-4, rel=1e-5)
    assert float(fn(40)) == pytest.approx(1e-6, rel=1e-3)


def test_unknown_schedule_is_an_error():
    config = config_lib.base_config()
    config.optimizer.schedule = "cosine_annealing"
    with pytest.raises(ValueError, match="cosine_annealing.*cyclic"):
        optimizers.create_learning_rate_fn(config.optimizer, steps_per_epoch=10, total_steps=100)


def test_weight_decay_is_added_to_the_gradient_like_pytorch_adam():
    config = config_lib.base_config()
    config.optimizer.weight_decay = 0.5
    tx = optimizers.create_optimizer(config.optimizer, lambda step: 1.0)
    params = {"w": np.array([2.0])}
    updates, _ = tx.update({"w": np.array([0.0])}, tx.init(params), params)
    # Adam's first step is -lr * sign(g_eff) with g_eff = g + wd * w = 1.0.
    np.testing.assert_allclose(np.asarray(updates["w"]), [-1.0], rtol=1e-3)


def test_parse_arg_rejects_unknown_keys():
    assert config_lib.parse_arg("tiny", tiny=False).tiny is True
    assert config_lib.parse_arg("hidden=64", hidden=8).hidden == 64
    with pytest.raises(ValueError, match="tinyy.*valid arguments"):
        config_lib.parse_arg("tinyy", tiny=False)


# Configs of vgs_jax.segment_train (word-region systems), vgs_jax.phoneme_train (Gelderloos 2016) and vgs_jax.cell, with
# their own fields: tested in early_systems_test.py, gelderloos2016_test.py and cell_test.py.
SEGMENT_CONFIGS = ("shapes_hg2015.py", "shapes_synnaeve2014.py", "shapes_gelderloos2016.py", "shapes_cell.py")

# Configs of vgs_jax.video.train (moving_shapes), with their own fields: tested in video_config_test.py.
SEGMENT_CONFIGS += ("moving_shapes_boggust.py", "moving_shapes_avlnet.py")


@pytest.mark.parametrize("name", sorted(f for f in os.listdir("configs")
                                        if f.endswith(".py") and f not in ("__init__.py",) + SEGMENT_CONFIGS))
def test_every_config_loads_in_both_forms(name):
    for spec in (f"configs/{name}", f"configs/{name}:tiny"):
        config = config_lib.load_config(spec)
        installed = config_lib.load_config(spec.removeprefix("configs/").replace(".py", ""))  # "NAME[:tiny]"
        assert installed.to_dict() == config.to_dict()
        per_encoder = ("model.speech.", "model.image.", "kws.", "multilingual.", "text.", "model.text.")  # each
        # encoder's own keyword dicts; the keyword-spotting, multilingual and text tasks' own sections (only
        # their configs have them)
        fields = {k for k in config_lib.flatten(config.to_dict()) if not k.startswith(per_encoder)}
        base = {k for k in config_lib.flatten(config_lib.base_config().to_dict()) if not k.startswith(per_encoder)}
        assert fields == base, "configs may only change base_config() fields (model.speech/image aside)"
        with pytest.raises(AttributeError):
            config.optimizer.lr_maxx = 1.0  # locked: a typo is an error


# Configs this check skips: shapes_gru.py (trained end to end by test_train_and_evaluate_end_to_end
# and the README test), shapes_kws.py (by kws_learning_test.py), shapes_gru_tts.py (shapes_gru on
# tiny_tts, whose Trainer tts_augmentation_test.py builds and reads), shapes_multilingual_*.py (2.0.0
# *_multi data: _bi trains in multilingual_learning_test.py; _mono and _tri are the same code with 1 and
# 3 languages, built and scored by multilingual_test.py). Whether training learns is checked by the
# learning tests; these only check that each runs.
TRAINED_ELSEWHERE = ("shapes_gru.py", "shapes_kws.py", "shapes_gru_tts.py")
SHAPES_CONFIGS = sorted(f for f in os.listdir("configs")
                        if f.startswith("shapes_") and f not in TRAINED_ELSEWHERE + SEGMENT_CONFIGS
                        and not f.startswith("shapes_multilingual_"))


@pytest.mark.parametrize("name", SHAPES_CONFIGS)
def test_every_shapes_config_trains_tiny(name, shapes_data_dir, tmp_path):
    if name in V2_ONLY:  # its tiny 2.0.0 data, built here (the session's data_dir holds 1.0.0 only)
        config = config_lib.load_config(f"configs/{name}:tiny")
        config.dataset.data_dir = str(tmp_path / "tfds")
    else:
        config = config_lib.load_config(f"configs/{name}:tiny,v1")
        config.dataset.data_dir = shapes_data_dir
    config.features.bucket_boundaries = None  # one padded length: one compilation of the step
    metrics = train.train_and_evaluate(config, str(tmp_path / "run"))
    assert np.isfinite(metrics["train/loss"]) and np.isfinite(metrics["eval/speech_to_image_meanr"])


def test_train_step_compiles_once(tiny_config):
    tiny_config.features.bucket_boundaries = None  # one padded length -> one shape
    trainer = train.Trainer(tiny_config)
    it = trainer.train_iterator()
    state = trainer.initial_state
    for _ in range(3):
        state, metrics = trainer.train_step(state, input_pipeline.shard_batch(next(it), trainer.mesh))
    assert trainer.train_step._cache_size() == 1
    assert np.isfinite(float(metrics["loss"]))
    assert int(state["step"]) == 3


def test_train_and_evaluate_end_to_end(tiny_config, tmp_path):
    workdir = str(tmp_path / "run")
    metrics = train.train_and_evaluate(tiny_config, workdir)
    assert np.isfinite(metrics["train/loss"]) and np.isfinite(metrics["eval/speech_to_image_meanr"])
    ckpt = checkpointing.Checkpointer(workdir, read_only=True)
    assert ckpt.all_steps() == [3, 6]
    assert ckpt.best_step() in (3, 6)
    ckpt.close()
    lines = [json.loads(l) for l in open(os.path.join(workdir, "metrics.jsonl"))]
    assert [l["step"] for l in lines if "train/loss" in l] == [2, 4, 6]
    assert os.listdir(os.path.join(workdir, "tensorboard"))

    # The separate evaluation path restores from the workdir alone.
    for which in ("latest", "best", 3):
        step, config, results = evaluation.evaluate_checkpoint(workdir, checkpoint=which, split="test")
        assert config.dataset.name == "spoken_shapes/tiny:1.0.0"
        assert results["speech_to_image"]["n"] == len(
            data_sources.open_split("spoken_shapes/tiny:1.0.0", "test", data_dir=tiny_config.dataset.data_dir)
        )
    with pytest.raises(checkpointing.CheckpointError, match="No checkpoint for step 4"):
        evaluation.evaluate_checkpoint(workdir, checkpoint=4)


class _FaultyIterator:
    """Wraps the train iterator: `fault(k, batch)` may raise or alter the k-th batch (1-based)."""

    def __init__(self, iterator, fault):
        self._iterator, self._fault, self._count = iterator, fault, 0

    def __next__(self):
        self._count += 1
        return self._fault(self._count, next(self._iterator))

    def get_state(self):
        return self._iterator.get_state()

    def set_state(self, state):
        self._iterator.set_state(state)


def _inject(monkeypatch, fault):
    real = train.Trainer.train_iterator
    monkeypatch.setattr(
        train.Trainer, "train_iterator", lambda self: _FaultyIterator(real(self), fault)
    )
    return real


def test_non_finite_loss_stops_and_keeps_last_good_checkpoint(tiny_config, tmp_path, monkeypatch):
    def nan_audio_from_fifth_batch(k, batch):
        return {**batch, "audio": np.full_like(batch["audio"], np.nan)} if k >= 5 else batch

    workdir = str(tmp_path / "nan")
    _inject(monkeypatch, nan_audio_from_fifth_batch)
    with pytest.raises(train.NonFiniteLossError, match="step 5.*last good checkpoint"):
        train.train_and_evaluate(tiny_config, workdir)
    ckpt = checkpointing.Checkpointer(workdir, read_only=True)
    assert ckpt.all_steps() == [3]
    _, params = ckpt.restore_params("latest")
    assert all(np.isfinite(x).all() for x in jax.tree.leaves(params))


def test_workdir_from_a_different_config_is_refused(tiny_config, tmp_path):
    workdir = str(tmp_path / "run")
    train.train_and_evaluate(tiny_config, workdir)
    before = sorted(os.listdir(workdir))
    saved = open(os.path.join(workdir, "config.json")).read()
    tiny_config.model.speech.hidden = 24
    with pytest.raises(ValueError, match=r"model\.speech\.hidden.*new --workdir"):
        train.train_and_evaluate(tiny_config, workdir)
    assert sorted(os.listdir(workdir)) == before
    assert open(os.path.join(workdir, "config.json")).read() == saved


def test_evaluating_an_empty_workdir_says_to_train_first(tmp_path):
    with pytest.raises(checkpointing.CheckpointError, match="Train first"):
        evaluation.evaluate_checkpoint(str(tmp_path))


def test_batch_not_divisible_by_devices_is_padded_with_masked_rows(tiny_config):
    tiny_config.batch_size = jax.device_count() + 1  # 9 examples -> 16 rows on 8 devices
    trainer = train.Trainer(tiny_config)
    assert trainer.steps_per_epoch == len(trainer.train_source) // 9  # padding rows are not examples
    batch = next(trainer.train_iterator())
    assert batch["example_mask"].tolist() == [True] * 9 + [False] * 7


def test_flickr8k_config_without_its_data_names_the_files(tmp_path):
    config = config_lib.load_config("configs/flickr8k_gru.py:tiny")
    config.dataset.data_dir = str(tmp_path)
    with pytest.raises(FileNotFoundError, match=r"wav2capt\.txt.*downloads/manual/flickr8k_audio"):
        train.Trainer(config)


def test_fit_params_rearranges_string_indices_and_names_mismatches():
    expected = {"convs": {0: {"w": np.zeros(2)}, 1: {"w": np.zeros(3)}}}
    restored = {"convs": {"0": {"w": np.ones(2)}, "1": {"w": np.ones(3)}}}
    fitted = checkpointing.fit_tree(expected, restored, where="ckpt").tree
    np.testing.assert_array_equal(fitted["convs"][1]["w"], np.ones(3))
    restored["convs"]["1"]["w"] = np.ones(4)
    with pytest.raises(checkpointing.CheckpointError, match="convs/1/w"):
        checkpointing.fit_tree(expected, restored, where="ckpt")


def test_a_field_added_since_the_run_was_saved_resumes_at_its_default():
    current = config_lib.load_config("configs/shapes_gru.py:tiny,v1")
    current.loss.margin = config_lib.base_config().loss.margin
    saved = current.to_dict()
    del saved["loss"]["margin"]  # as if loss.margin were added to base_config() after this run was saved
    assert config_lib.incompatible_fields(saved, current) == []
    current.loss.margin += 0.1  # not the default: the saved run did not train with this value
    assert config_lib.incompatible_fields(saved, current) == ["loss.margin"]
