"""TFDS builder for `spoken_shapes`: rendered scenes of shapes with spoken captions.

Generated locally (no download): each image shows 1-3 coloured shapes; each of its 5 captions
comes from a small grammar and is spoken by espeak-ng with one of 16 speakers, with word and
phone alignments. Written as array_record (no TensorFlow needed); read with
`tfds.data_source("spoken_shapes/small", data_dir=..., download=False)`.
"""
# (This docstring is 1.0.0's dataset description: kept as it was.) The default version is 2.0.0
# (code in builder_v2.py and the *_v2 modules): 1-6 objects, partial captions in en/hi/ja,
# test_compositional and test_unseen_speakers splits, and the images each caption is true of; see
# README.md. 1.0.0 stays buildable (`spoken_shapes/small:1.0.0`) for results measured on it.

from __future__ import annotations

import contextlib
import dataclasses

import numpy as np
import tensorflow_datasets as tfds

from . import builder_v2
from . import generation
from . import grammar
from . import scenes
from . import speech
from . import tfds_compat
from . import tts_augmentation
from . import worker_pool

SHAPES = scenes.SHAPES
COLORS = scenes.COLORS
SIZES = scenes.SIZES
SAMPLE_RATE = speech.SAMPLE_RATE
SPEAKERS = speech.make_speaker_table(grammar.ENGLISH.voices)  # English speaker table; id = index.
NUM_CAPTIONS = generation.NUM_CAPTIONS
V1_VERSION = "1.0.0"  # The first release: 1-3 objects, English, train/validation/test only.

_CITATION = """\
@misc{spoken_shapes,
  title = {spoken\\_shapes: a generated corpus of spoken captions of simple scenes},
  note = {Part of vgs\\_jax; speech synthesized with eSpeak NG},
}
"""


@dataclasses.dataclass(eq=False)
class SpokenShapesConfig(tfds.core.BuilderConfig):
    """Sizes and content options of a spoken_shapes build.

    num_train / num_validation / num_test: images per split (5 examples per image).
    image_size: image side in pixels (>= scenes.MIN_IMAGE_SIZE). language: key of
    grammar.LEXICONS. seed: base seed of every image. num_workers: generation processes
    (0 = this process; only speed changes, never the bytes).
    Version 2.0.0 only: language may also be "hi", "ja" or "multi" (every language);
    num_compositional: test_compositional images; id_base: first image id (disjoint per size);
    clean_audio: True keeps espeak's clean sound (no room, noise, silence or dither).
    tts: True adds the split `train_tts` (each train caption spoken by a TTS voice) and the
    feature `synthetic` (see tts_augmentation.py).
    """

    num_train: int = 24
    num_validation: int = 8
    num_test: int = 8
    image_size: int = 64
    language: str = "en"
    seed: int = 0
    num_workers: int = 0
    num_compositional: int = 8
    id_base: int = 0
    clean_audio: bool = False
    tts: bool = False

    def __post_init__(self):
        if self.language not in builder_v2.LANGUAGES:
            try:
                grammar.get_lexicon(self.language)  # Raises for unknown languages.
            except ValueError as e:
                raise ValueError(f"{e} Version {builder_v2.VERSION} also speaks "
                                 f"{list(builder_v2.LANGUAGES)}.") from None
        if self.image_size < scenes.MIN_IMAGE_SIZE:
            raise ValueError(f"SpokenShapesConfig {self.name!r}: image_size={self.image_size} is "
                             f"too small; use at least {scenes.MIN_IMAGE_SIZE} pixels.")
        for field in ("num_train", "num_validation", "num_test", "num_compositional"):
            if getattr(self, field) < 1:
                raise ValueError(f"SpokenShapesConfig {self.name!r}: {field}="
                                 f"{getattr(self, field)}; every split needs at least 1 image.")
        if self.num_workers < 0:
            raise ValueError(f"SpokenShapesConfig {self.name!r}: num_workers={self.num_workers} "
                             "must be >= 0 (0 = generate in this process).")

    @property
    def split_image_ids(self) -> dict[str, range]:
        """Disjoint image id ranges: train first, then validation, then test."""
        a = self.num_train
        b = a + self.num_validation
        return {"train": range(0, a), "validation": range(a, b),
                "test": range(b, b + self.num_test)}


def _language_configs(configs, languages) -> list[SpokenShapesConfig]:
    """`<size>_<language>` copies of the (English) size configs: same images, other captions."""
    return [dataclasses.replace(c, name=f"{c.name}_{language}", language=language,
                                description=f"{c.description} 2.0.0 only, language {language}.")
            for language in languages for c in configs]


def _tts_configs(configs) -> list[SpokenShapesConfig]:
    """`<size>_tts` copies of the size configs: the same splits plus `train_tts`."""
    return [dataclasses.replace(c, name=f"{c.name}_tts", tts=True, description=(
        f"{c.description} 2.0.0 only, with the train captions also spoken by TTS voices "
        f"(split {tts_augmentation.SPLIT})."))
            for c in configs if c.name in ("tiny", "quick", "small")]


class Builder(tfds.core.GeneratorBasedBuilder):
    """spoken_shapes: one example = one spoken caption with its image and alignments."""

    VERSION = tfds.core.Version(builder_v2.VERSION)
    # 1.0.0 on request (`spoken_shapes/small:1.0.0`): the README's older results were measured on it.
    SUPPORTED_VERSIONS = [tfds.core.Version(V1_VERSION)]
    RELEASE_NOTES = {
        "1.0.0": "Initial release.",
        "2.0.0": "1-6 objects with distractors, partial captions, counting, minimal pairs; "
                 "test_compositional and test_unseen_speakers splits; en/hi/ja and multilingual "
                 "configs; per-utterance voices and recording conditions; consistent image ids.",
    }
    # tiny too uses a (spawned) worker: forking espeak children from a process whose JAX threads
    # already run (tests, training that builds on first use) risks a deadlock.
    BUILDER_CONFIGS = [
        SpokenShapesConfig(name="tiny", description="24/8/8 images, for tests.",
                           num_train=24, num_validation=8, num_test=8, num_workers=1,
                           num_compositional=8, id_base=1_000_000),
        # Learning tests: enough test images (100) for recall to tell learning from chance; its
        # own seed, so its test images are in no other config's train split.
        SpokenShapesConfig(name="quick", description="400/20/100 images, seed 1, for learning "
                           "tests.", num_train=400, num_validation=20, num_test=100, seed=1,
                           num_workers=2, num_compositional=100, id_base=2_000_000),
        SpokenShapesConfig(name="small", description="3000/500/500 images (default).",
                           num_train=3000, num_validation=500, num_test=500, num_workers=2,
                           num_compositional=500, id_base=3_000_000),
        SpokenShapesConfig(name="large", description="20000/1000/1000 images.",
                           num_train=20000, num_validation=1000, num_test=1000, num_workers=2,
                           num_compositional=1000, id_base=4_000_000),
    ]
    V1_CONFIG_NAMES = tuple(c.name for c in BUILDER_CONFIGS)
    # Version 2.0.0 only: the same images per size, captions in Hindi, Japanese, or all three.
    BUILDER_CONFIGS += _language_configs(BUILDER_CONFIGS, ("hi", "ja", builder_v2.MULTI))
    BUILDER_CONFIGS += _tts_configs(BUILDER_CONFIGS)
    DEFAULT_BUILDER_CONFIG_NAME = "small"

    def __init__(self, *, file_format=None, **kwargs):
        config = kwargs.get("config")
        names = [c.name for c in self.BUILDER_CONFIGS]
        if isinstance(config, str) and config not in names:
            # TFDS's own message lists only "closely matching" names, often none at all.
            v2_only = [n for n in names if n not in self.V1_CONFIG_NAMES]
            raise ValueError(f"Unknown spoken_shapes config {config!r}; choose one of "
                             f"{list(self.V1_CONFIG_NAMES)}, or at version {builder_v2.VERSION} "
                             f"also {v2_only}, or pass a SpokenShapesConfig(name=..., ...).")
        # array_record is the only format that builds and reads without TensorFlow.
        super().__init__(file_format=file_format or "array_record", **kwargs)
        self._pool: worker_pool.WorkerPool | None = None  # Workers of the running build.
        config = self.builder_config
        if not self._is_v2 and (config.language != "en" or config.tts):
            raise ValueError(f"spoken_shapes config {config.name!r} (language "
                             f"{config.language!r}, tts={config.tts}) exists only at version "
                             f"{builder_v2.VERSION} (the default); load 'spoken_shapes/"
                             f"{config.name}' or '...:{builder_v2.VERSION}'.")

    @property
    def canonical_version(self) -> tfds.core.Version:
        # TFDS generates only the canonical (VERSION) or the newest version; here the version this
        # builder was opened at is canonical, so `spoken_shapes/small:1.0.0` still builds.
        return getattr(self, "_version", None) or super().canonical_version

    @property
    def versions(self) -> list[tfds.core.Version]:
        """Every version this code builds, the default (VERSION) first."""
        return [tfds.core.Version(self.VERSION), *self.SUPPORTED_VERSIONS]

    @property
    def _is_v2(self) -> bool:
        return str(self.version) == builder_v2.VERSION

    def _info(self) -> tfds.core.DatasetInfo:
        size = self.builder_config.image_size
        if self._is_v2:
            return self.dataset_info_from_configs(description=builder_v2.DESCRIPTION,
                                                  features=builder_v2.features(
                                                      size, self.builder_config.tts),
                                                  supervised_keys=None, citation=_CITATION)
        text = tfds.features.Text
        return self.dataset_info_from_configs(
            description=__doc__,
            features=tfds.features.FeaturesDict({
                "caption_id": np.int64,
                "image_id": np.int64,
                "image": tfds.features.Image(shape=(size, size, 3), encoding_format="png"),
                # tfds.features.Audio needs TensorFlow even to be constructed (its decoder
                # calls tf.dtypes.as_dtype), so the waveform is a plain int16 tensor at 16 kHz.
                "audio": tfds.features.Tensor(shape=(None,), dtype=np.int16),
                "text": text(),
                "phonemes": text(),
                "speaker_id": np.int32,
                "words": tfds.features.Sequence(
                    {"word": text(), "start": np.float32, "end": np.float32}),
                "phones": tfds.features.Sequence(
                    {"phone": text(), "start": np.float32, "end": np.float32}),
                "objects": tfds.features.Sequence({
                    "shape": tfds.features.ClassLabel(names=SHAPES),
                    "color": tfds.features.ClassLabel(names=COLORS),
                    "size": tfds.features.ClassLabel(names=SIZES),
                    "bbox": tfds.features.Tensor(shape=(4,), dtype=np.float32),
                }),
            }),
            supervised_keys=None,
            citation=_CITATION,
        )

    def _download_and_prepare(self, dl_manager, download_config):  # pylint: disable=W0221
        # Splits over 1 GB (small's train split is ~1.5 GB) spill to shuffle buckets, which TFDS
        # writes with tf.io.gfile; use plain files instead so no TensorFlow is needed.
        config = self.builder_config
        sizes = (builder_v2.split_sizes(config).values() if self._is_v2
                 else [len(ids) for ids in config.split_image_ids.values()])
        largest = max(sizes)
        workers = generation.num_pool_workers(config.num_workers, largest)
        with tfds_compat.tf_free_shuffle_buckets(), contextlib.ExitStack() as stack:
            # One set of workers for all splits (each costs an interpreter start and an import).
            self._pool = stack.enter_context(worker_pool.WorkerPool(workers)) if workers else None
            try:
                return super()._download_and_prepare(dl_manager, download_config)
            finally:
                self._pool = None

    def _split_generators(self, dl_manager):
        del dl_manager  # Nothing to download.
        if self._is_v2:
            config = self.builder_config
            plans = builder_v2.plan_config(config)
            splits = {split: builder_v2.generate(images, config, self._pool)
                      for split, images in plans.items()}
            if config.tts:
                splits[tts_augmentation.SPLIT] = builder_v2.generate(
                    plans["train"], config, self._pool, synthetic=True)
            return splits
        return {split: self._generate_examples(ids)
                for split, ids in self.builder_config.split_image_ids.items()}

    def _generate_examples(self, image_ids):
        config = self.builder_config
        spec = generation.GenerationSpec(config.seed, config.image_size, config.language)
        examples_iter = generation.iter_image_examples(image_ids, spec, config.num_workers,
                                                       pool=self._pool)
        for examples in examples_iter:
            for k, example in enumerate(examples):
                yield f"{example['image_id']:08d}_{k}", example
