"""spoken_coco with `tts=True` (config karpathy_tts) on the dummy data: the split train_tts."""

import os

import numpy as np
import tensorflow_datasets as tfds

from tfds_builders.spoken_coco import Builder, SpokenCocoConfig
from tfds_builders.spoken_shapes import tts_augmentation

DUMMY = os.path.join(os.path.dirname(os.path.abspath(__file__)), "dummy_data")


def test_train_tts_speaks_every_train_caption_text_with_tts_voices(tmp_path):
    assert Builder.builder_configs["karpathy_tts"].tts
    builder = Builder(data_dir=str(tmp_path), config=SpokenCocoConfig(name="test32_tts", image_size=32, tts=True))
    builder.download_and_prepare(download_config=tfds.download.DownloadConfig(manual_dir=DUMMY))
    read = {s: [dict(ex) for ex in builder.as_data_source(split=s)] for s in builder.info.splits}
    train, tts = read["train"], read[tts_augmentation.SPLIT]
    assert not any(ex["synthetic"] for s in ("train", "validation", "test") for ex in read[s])
    assert len(tts) == len(train) == 20 and all(ex["synthetic"] for ex in tts)
    real = {int(ex["caption_id"]): ex for ex in train}
    num_speakers = len({ex["speaker"] for s in ("train", "validation", "test") for ex in read[s]})
    variants = [s.variant for s in tts_augmentation.speakers("en")]
    for ex in tts:
        twin = real[int(ex["caption_id"]) - tts_augmentation.CAPTION_ID_OFFSET]
        assert ex["text"] == twin["text"] and ex["image_id"] == twin["image_id"]
        np.testing.assert_array_equal(ex["image"], twin["image"])
        assert ex["wav"] == ex["uttid"] == b""
        k = int(ex["speaker_id"]) - num_speakers
        assert 0 <= k < len(variants) and ex["speaker"].decode() == f"tts/{variants[k]}"
        assert ex["audio"].dtype == np.int16 and ex["audio"].size > 16000 // 4
