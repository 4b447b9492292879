"""flickr8k_audio with `tts=True` (config karpathy_tts) on the dummy data: the split train_tts."""

import os

import numpy as np
import tensorflow_datasets as tfds

from tfds_builders.flickr8k_audio import Builder, Flickr8kAudioConfig
from tfds_builders.spoken_shapes import tts_augmentation

DUMMY = os.path.join(os.path.dirname(os.path.abspath(__file__)), "dummy_data")


def test_train_tts_speaks_every_train_text_caption(tmp_path):
    assert Builder.builder_configs["karpathy_tts"].tts
    builder = Builder(data_dir=str(tmp_path), config=Flickr8kAudioConfig(
        name="test32_tts", image_size=32, tts=True))
    builder.download_and_prepare(
        download_config=tfds.download.DownloadConfig(manual_dir=DUMMY))
    read = {s: [dict(ex) for ex in builder.as_data_source(split=s)] for s in builder.info.splits}
    train, tts = read["train"], read[tts_augmentation.SPLIT]
    assert not any(ex["synthetic"] for s in ("train", "validation", "test") for ex in read[s])
    assert len(tts) == len(train) == 20 and all(ex["synthetic"] for ex in tts)
    real = {int(ex["caption_id"]): ex for ex in train}
    tts_ids = {s.speaker_id for s in tts_augmentation.speakers("en")}
    for ex in tts:
        twin = real[int(ex["caption_id"]) - tts_augmentation.CAPTION_ID_OFFSET]
        assert ex["text"] == twin["text"] and ex["image_id"] == twin["image_id"]
        np.testing.assert_array_equal(ex["image"], twin["image"])
        assert ex["wav"] == b"" and ex["speaker_id"] in tts_ids
        assert ex["audio"].dtype == np.int16 and ex["audio"].size > 16000 // 4
