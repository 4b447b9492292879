"""spoken_shapes `*_tts` configs (split train_tts, TTS voices outside the test speakers) and
configs/shapes_gru_tts.py:tiny trained end to end on one."""
import dataclasses
import os

import espeakng_loader
import numpy as np
import pytest
import tensorflow_datasets as tfds

from tfds_builders.spoken_shapes import builder_v2, tts_augmentation, voices
from tfds_builders.spoken_shapes.spoken_shapes_dataset_builder import Builder
from vgs_jax import caption_mix
from vgs_jax import config_lib
from vgs_jax import data_sources
from vgs_jax import train

NAME = "spoken_shapes/tiny_tts:2.0.0"
# tiny_tts with fewer images (70 utterances, seconds to build), moved to tiny_tts's folder so the
# config reads it (readers take the split sizes from the built files).
MINI = dataclasses.replace(Builder.builder_configs["tiny_tts"], name="mini_tts", num_train=4,
                           num_validation=2, num_test=2, num_compositional=2)


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    path = str(tmp_path_factory.mktemp("tts"))
    Builder(config=MINI, version=builder_v2.VERSION, data_dir=path).download_and_prepare()
    os.rename(os.path.join(path, "spoken_shapes", "mini_tts"),
              os.path.join(path, "spoken_shapes", "tiny_tts"))
    return path


def read(data_dir, split):
    source = data_sources.open_split(NAME, split, data_dir=data_dir)
    return [source[i] for i in range(len(source))]


def test_train_tts_is_each_train_caption_spoken_by_a_held_out_tts_voice(data_dir):
    train_exs, tts = read(data_dir, "train"), read(data_dir, tts_augmentation.SPLIT)
    assert len(tts) == len(train_exs) == 4 * 5
    twins = {(e["meaning_id"], e["language"]): e for e in train_exs}
    for e in tts:
        twin = twins[(e["meaning_id"], e["language"])]
        assert e["text"] == twin["text"] and e["image_id"] == twin["image_id"]
        assert e["caption_id"] == twin["caption_id"] + tts_augmentation.CAPTION_ID_OFFSET
        assert e["audio"].shape != twin["audio"].shape or np.any(e["audio"] != twin["audio"])
    assert all(e["synthetic"] for e in tts) and not any(e["synthetic"] for e in train_exs)
    tts_ids = {s.speaker_id for s in tts_augmentation.speakers("en")}
    used = {e["speaker_id"] for e in tts}
    assert used <= tts_ids and len(used) >= 2
    for split in ("test", "test_unseen_speakers"):
        assert not used & {e["speaker_id"] for e in read(data_dir, split)}
    # Held out by construction: no pool of any language has a TTS variant or speaker id.
    assert not set(tts_augmentation.TTS_VARIANTS) & set(voices.VARIANTS)
    for language in voices.LANGUAGES:
        ids = {s.speaker_id for s in tts_augmentation.speakers(language)}
        for pool in voices.POOLS:
            assert not ids & {s.speaker_id for s in voices.speakers(language, pool)}
    for variant in tts_augmentation.TTS_VARIANTS:  # Bundled with espeak-ng: builds offline.
        assert os.path.isfile(os.path.join(espeakng_loader.get_data_path(), "voices", "!v",
                                           variant))


def test_tts_voice_reads_neutrally_and_tts_configs_need_version_2():
    v = tts_augmentation.tts_voice(np.random.default_rng(0), "hi")
    assert (v.pitch_range, v.word_pitch_sd, v.clause_end, v.voice) == (50, 0.0, ".", "hi")
    assert "synthetic" not in builder_v2.features(64) and "synthetic" in builder_v2.features(64, True)
    with pytest.raises(ValueError, match=r"'tiny_tts'.*tts=True\) exists only at version 2\.0\.0"):
        tfds.builder("spoken_shapes/tiny_tts:1.0.0", data_dir="/nonexistent")


def test_shapes_gru_tts_tiny_trainer_reads_the_mix(data_dir):
    config = config_lib.load_config("configs/shapes_gru_tts.py:tiny")
    config.dataset.data_dir = data_dir
    trainer = train.Trainer(config)  # What train_and_evaluate trains on (shapes_gru's model).
    assert len(trainer.train_source) == 20 and trainer.train_source.synthetic.sum() == 15
    batch = next(trainer.train_iterator())
    assert np.any(batch["caption_id"] >= tts_augmentation.CAPTION_ID_OFFSET)
    baseline = config_lib.load_config("configs/shapes_gru_tts.py:tiny,augment=false")
    baseline.dataset.data_dir = data_dir
    alone = caption_mix.open_train_source(baseline.dataset)
    assert len(alone) == 5 and not alone.synthetic.any()  # The same 25% of spoken captions.
    spoken = [trainer.train_source[i] for i in np.flatnonzero(~trainer.train_source.synthetic)]
    assert sorted(e["caption_id"] for e in spoken) == sorted(alone[i]["caption_id"] for i in range(5))
