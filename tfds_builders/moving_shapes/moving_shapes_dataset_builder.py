"""TFDS builder for `moving_shapes`: videos of shapes that enter, move and leave, with spoken narration.

Generated locally (no download; espeak-ng speech as in spoken_shapes). Two forms (builder configs):
`clips_*` are short clips with one spoken description each; `episodes_*` are longer videos whose
narrator mentions each object loosely in sync with its entrance (configurable offset and jitter),
from which a reader samples fragments (`tfds_builders.moving_shapes.fragments`). Per-frame object
boxes, word and phone alignments and the mention times are stored. Written as array_record (no
TensorFlow needed); read with `tfds.data_source("moving_shapes/clips_tiny", data_dir=...)`.
"""
from __future__ import annotations

import dataclasses

import numpy as np
import tensorflow_datasets as tfds

from tfds_builders.spoken_shapes import scenes
from tfds_builders.spoken_shapes import tfds_compat
from tfds_builders.spoken_shapes import worker_pool

from . import generation
from . import motion

FORMS = ("clips", "episodes")


@dataclasses.dataclass(eq=False)
class MovingShapesConfig(tfds.core.BuilderConfig):
    """form: "clips" or "episodes". num_train / num_validation / num_test: examples per split.
    image_size: frame side in pixels; fps: frames per second. clip_seconds: length of a clip;
    episode_seconds: length of an episode; episode_gap: (min, max) seconds between two entrances.
    narration_offset: mean delay (s) of a mention after its object enters (negative: before);
    narration_jitter: uniform +- spread (s) around it. seed: base seed of every example."""

    form: str = "clips"
    num_train: int = 16
    num_validation: int = 4
    num_test: int = 4
    image_size: int = 32
    fps: int = 8
    clip_seconds: float = 3.0
    episode_seconds: float = 20.0
    episode_gap: tuple = (1.5, 4.0)
    narration_offset: float = 0.5
    narration_jitter: float = 1.0
    seed: int = 0

    def __post_init__(self):
        if self.form not in FORMS:
            raise ValueError(f"MovingShapesConfig {self.name!r}: form={self.form!r}; choose one of {FORMS}.")
        if self.image_size < scenes.MIN_IMAGE_SIZE or self.fps < 1:
            raise ValueError(f"MovingShapesConfig {self.name!r}: image_size={self.image_size} must be >= "
                             f"{scenes.MIN_IMAGE_SIZE} and fps={self.fps} >= 1.")
        if min(self.num_train, self.num_validation, self.num_test) < 1:
            raise ValueError(f"MovingShapesConfig {self.name!r}: every split needs at least 1 example.")
        if not 0 < self.episode_gap[0] <= self.episode_gap[1] or self.narration_jitter < 0:
            raise ValueError(f"MovingShapesConfig {self.name!r}: need 0 < episode_gap[0] <= episode_gap[1] "
                             f"(got {self.episode_gap}) and narration_jitter >= 0 (got {self.narration_jitter}).")

    @property
    def spec(self) -> generation.Spec:
        return generation.Spec(self.form, self.seed, self.image_size, self.fps, self.clip_seconds,
                               self.episode_seconds, tuple(self.episode_gap), self.narration_offset,
                               self.narration_jitter)

    @property
    def split_ids(self) -> dict[str, range]:
        a, b = self.num_train, self.num_train + self.num_validation
        return {"train": range(0, a), "validation": range(a, b), "test": range(b, b + self.num_test)}


class Builder(tfds.core.GeneratorBasedBuilder):
    """moving_shapes: one example = one clip or episode with its narration, alignments and tracks."""

    VERSION = tfds.core.Version("1.0.0")
    RELEASE_NOTES = {"1.0.0": "Initial release."}
    BUILDER_CONFIGS = [
        MovingShapesConfig(name="clips_tiny", description="16/4/4 3-second clips, 32 px, 8 fps, for tests.",
                           form="clips"),
        MovingShapesConfig(name="episodes_tiny", description="4/2/2 10-second episodes, 32 px, 8 fps, for tests.",
                           form="episodes", num_train=4, num_validation=2, num_test=2, episode_seconds=10.0, seed=1),
        MovingShapesConfig(name="clips_small", description="2000/200/200 3-second clips, 64 px, 8 fps.",
                           form="clips", num_train=2000, num_validation=200, num_test=200, image_size=64, seed=2),
        MovingShapesConfig(name="episodes_small", description="200/20/20 30-second episodes, 64 px, 8 fps.",
                           form="episodes", num_train=200, num_validation=20, num_test=20, image_size=64,
                           episode_seconds=30.0, seed=3),
    ]
    DEFAULT_BUILDER_CONFIG_NAME = "clips_small"

    def __init__(self, *, file_format=None, **kwargs):
        super().__init__(file_format=file_format or "array_record", **kwargs)
        self._pool: worker_pool.WorkerPool | None = None

    def _info(self) -> tfds.core.DatasetInfo:
        size, text = self.builder_config.image_size, tfds.features.Text
        interval = lambda label: tfds.features.Sequence({label: text(), "start": np.float32, "end": np.float32})
        return self.dataset_info_from_configs(
            description=__doc__,
            features=tfds.features.FeaturesDict({
                "id": np.int64,
                "video": tfds.features.Sequence(tfds.features.Image(shape=(size, size, 3), encoding_format="png")),
                "fps": np.int32,
                "text": text(),
                "audio": tfds.features.Tensor(shape=(None,), dtype=np.int16),  # 16 kHz
                "speaker_id": np.int32,
                "words": interval("word"),
                "phones": interval("phone"),
                "mentions": tfds.features.Sequence(
                    {"object": np.int32, "text": text(), "start": np.float32, "end": np.float32}),
                "objects": tfds.features.Sequence({
                    "shape": tfds.features.ClassLabel(names=scenes.SHAPES),
                    "color": tfds.features.ClassLabel(names=scenes.COLORS),
                    "size": tfds.features.ClassLabel(names=scenes.SIZES),
                    "side": tfds.features.ClassLabel(names=motion.SIDES),
                    "enter": np.float32, "leave": np.float32}),
                # [objects * frames, 4] and [objects * frames], object-major (array_record stores one
                # unknown dimension without TensorFlow): `fragments.tracks` reshapes them.
                "boxes": tfds.features.Tensor(shape=(None, 4), dtype=np.float32),
                "visible": tfds.features.Tensor(shape=(None,), dtype=np.bool_),
            }),
            supervised_keys=None,
            citation="@misc{moving_shapes, title = {moving\\_shapes}, note = {Part of vgs\\_jax; eSpeak NG speech}}",
        )

    def _download_and_prepare(self, dl_manager, download_config):  # pylint: disable=W0221
        # Generation runs in a spawned worker: forking espeak children from a process whose JAX
        # threads run can deadlock (see spoken_shapes.worker_pool).
        with tfds_compat.tf_free_shuffle_buckets(), worker_pool.WorkerPool(1) as pool:
            self._pool = pool
            try:
                return super()._download_and_prepare(dl_manager, download_config)
            finally:
                self._pool = None

    def _split_generators(self, dl_manager):
        del dl_manager  # nothing to download
        return {split: self._generate_examples(ids) for split, ids in self.builder_config.split_ids.items()}

    def _generate_examples(self, ids):
        for ex in generation.iter_examples(ids, self.builder_config.spec, self._pool):
            yield f"{ex['id']:08d}", ex
