"""What the spoken_shapes builder does at version 2.0.0: features, splits, examples.

The builder (`spoken_shapes_dataset_builder.Builder`) calls these when `builder.version` is
2.0.0; version 1.0.0 keeps its own code paths and bytes.
"""

from __future__ import annotations

import numpy as np
import tensorflow_datasets as tfds

from . import generation_v2
from . import grammar_v2
from . import plan_v2
from . import scenes

VERSION = "2.0.0"
DESCRIPTION = """\
spoken_shapes 2.0.0, generated locally (no download): rendered scenes of 1-6 coloured shapes with
distractors; each image has 5 partial captions (entities, relations, counts) in English, Hindi
and Japanese, spoken by espeak-ng with per-utterance voices and recording conditions, with word
and phone alignments and the ids of every image of the split each caption is true of. Splits:
train, validation, test (with minimal pairs), test_compositional (held-out colour-shape pairs and
colour-relation combinations), test_unseen_speakers (held-out voices)."""
MULTI = "multi"  # The config language that speaks every language of grammar_v2.LANGUAGES.
LANGUAGES = grammar_v2.LANGUAGES + (MULTI,)


def languages(language: str) -> tuple[str, ...]:
    """The languages spoken by a config of `language` ("multi": all)."""
    return grammar_v2.LANGUAGES if language == MULTI else (language,)


def features(image_size: int, synthetic: bool = False) -> tfds.features.FeaturesDict:
    """The 2.0.0 features. Variable-length arrays are stored as raw bytes (Encoding.BYTES):
    TFDS writes a plain tensor as an int64 list element by element (10 ms per 5 s of audio,
    the build's largest single cost, and 3x the bytes); decoding gives the same arrays.
    synthetic (the `*_tts` configs): a bool feature `synthetic`, True in `train_tts`."""
    text = tfds.features.Text
    as_bytes = tfds.features.Encoding.BYTES
    extra = {"synthetic": np.bool_} if synthetic else {}
    return tfds.features.FeaturesDict({**extra,
        "caption_id": np.int64,
        "meaning_id": np.int64,
        "image_id": np.int64,
        "image": tfds.features.Image(shape=(image_size, image_size, 3), encoding_format="png"),
        "audio": tfds.features.Tensor(shape=(None,), dtype=np.int16, encoding=as_bytes),
        "text": text(),
        "language": text(),
        "phonemes": text(),
        "speaker_id": np.int32,
        "words": tfds.features.Sequence({"word": text(), "start": np.float32, "end": np.float32}),
        "phones": tfds.features.Sequence(
            {"phone": text(), "start": np.float32, "end": np.float32}),
        "objects": tfds.features.Sequence({
            "shape": tfds.features.ClassLabel(names=scenes.SHAPES),
            "color": tfds.features.ClassLabel(names=scenes.COLORS),
            "size": tfds.features.ClassLabel(names=scenes.SIZES),
            "bbox": tfds.features.Tensor(shape=(4,), dtype=np.float32),
        }),
        "consistent_image_ids": tfds.features.Tensor(shape=(None,), dtype=np.int64,
                                                     encoding=as_bytes),
        "minimal_pair_of": np.int64,
    })


def split_sizes(config) -> dict[str, int]:
    return {"train": config.num_train, "validation": config.num_validation,
            "test": config.num_test, "test_compositional": config.num_compositional}


def plan_config(config) -> dict[str, list[plan_v2.ImagePlan]]:
    return plan_v2.plan(config.seed, config.id_base, split_sizes(config))


def generate(images, config, pool, synthetic: bool = False):
    """(key, example) pairs of one split's planned images (synthetic: spoken by TTS voices)."""
    spec = generation_v2.SpecV2(config.seed, config.image_size, languages(config.language),
                                config.clean_audio, synthetic)
    for examples in generation_v2.iter_image_examples(images, spec, config.num_workers,
                                                      pool=pool):
        for example in examples:
            if config.tts:
                example["synthetic"] = synthetic
            k = example["meaning_id"] % plan_v2.NUM_CAPTIONS
            yield f"{example['image_id']:08d}_{k}_{example['language']}", example
