"""TFDS builder for SPEECH-COCO (Havard, Besacier, Rosec 2017): MSCOCO captions spoken by TTS.

616 767 captions of the MSCOCO train2014/val2014 images synthesised with 8 Voxygen voices (speed
perturbed, ~30% with disfluencies). Each caption is a WAV plus a JSON (`duration`, `speaker`,
`synthesisedCaption`, `timecode`, `speed`, `wavFilename`, `captionID`, `imgID`, `disfluency`)
named `imageID_captionID_Speaker_DisfluencyPosition_Speed`. Word start/end times (seconds) come
from the `timecode` list. Splits: `karpathy` (train = train + restval, validation, test; needs
`dataset_coco.json`) or `coco2014` (train2014 / val2014 folders). Writes array_record, no
TensorFlow. See README.md for the layout and what is unverified.
"""

from __future__ import annotations

import dataclasses
import json
import os

import numpy as np
import tensorflow_datasets as tfds

from tfds_builders import manual_corpus

CORPUS = "speech_coco"
SPEAKERS = ("Amanda", "Bronwen", "Bruce", "Elizabeth", "Jenny", "Judith", "Paul", "Phil")
FOLDERS = ("train2014", "val2014")
SCHEMES = {"karpathy": {"train": ("train", "restval"), "validation": ("val",), "test": ("test",)},
           "coco2014": {"train": ("train2014",), "validation": ("val2014",)}}
ALIGNMENT_SLACK_S = 0.05
_WORD_END = ("SEPR", "SIL", "WORD")  # timecode entries that end the current word

MANUAL_DOWNLOAD_INSTRUCTIONS = """\
Place the unpacked files in <manual_dir>/speech_coco/ (or <manual_dir>/ itself):
  CORPUS-MSCOCO/train2014/json/*.json, CORPUS-MSCOCO/train2014/wav/*.wav,
  CORPUS-MSCOCO/val2014/json/*.json, CORPUS-MSCOCO/val2014/wav/*.wav: SPEECH-COCO, from Zenodo
    (https://zenodo.org/record/4282267, DOI 10.18709/PERSCIDO.2017.06.DS80; CC BY 4.0). The
    .sqlite3 databases and translations/ are not needed.
  images/train2014/COCO_train2014_<12-digit id>.jpg, images/val2014/COCO_val2014_<id>.jpg: the
    MSCOCO 2014 images (https://cocodataset.org/#download, train2014.zip and val2014.zip).
  dataset_coco.json: Karpathy's COCO split file (caption_datasets.zip from
    https://cs.stanford.edu/people/karpathy/deepimagesent/), for the `karpathy` config only.
Folder names can be changed through SpeechCocoConfig(speech_dir=, image_dir=).
"""

_CITATION = """\
@inproceedings{havard2017speechcoco,
  title={{SPEECH-COCO}: 600k Visually Grounded Spoken Captions Aligned to {MSCOCO} Data Set},
  author={Havard, William and Besacier, Laurent and Rosec, Olivier},
  booktitle={Proc. GLU 2017 Workshop on Grounding Language Understanding}, pages={42--46},
  year={2017}}
"""


def words_from_timecode(timecode: list, where: str) -> tuple:
    """SPEECH-COCO `timecode` ([[ms, kind, value], ...]) -> ((word, start_s, end_s), ...).

    A word starts at its WORD entry and ends at the first later SEPR, SIL or WORD entry that
    follows one of its phonemes (PHO); syllable marks (SYL) inside a word do not end it. A last
    word with no such entry ends at the latest time in the list. Words without phonemes or of
    zero length are dropped. Raises CorruptFileError naming `where` for malformed entries.
    """
    try:
        entries = [(float(t) / 1000.0, str(kind), str(value)) for t, kind, value in timecode]
    except (TypeError, ValueError) as e:
        raise manual_corpus.CorruptFileError(
            f"{where}: bad 'timecode' ({e}); expected [[milliseconds, kind, value], ...]. "
            "Download the file again or build with skip_corrupt=True.") from e
    last_time = max((t for t, _, _ in entries), default=0.0)
    words, current, has_phone = [], None, False
    for t, kind, value in entries:
        if current is not None and has_phone and kind in _WORD_END:
            words.append((current[0], current[1], t))
            current = None
        if kind == "WORD":
            current, has_phone = (value, t), False
        elif kind == "PHO" and current is not None:
            has_phone = True
    if current is not None and has_phone:
        words.append((current[0], current[1], last_time))
    return tuple(w for w in words if w[2] > w[1])


@dataclasses.dataclass(eq=False)
class SpeechCocoConfig(tfds.core.BuilderConfig):
    """split_scheme: `karpathy` or `coco2014`. image_size: output side (shorter side resized,
    centre crop). speech_dir / image_dir: folders under the manual dir (see README)."""

    split_scheme: str = "karpathy"
    image_size: int = 224
    speech_dir: str = "CORPUS-MSCOCO"
    image_dir: str = "images"

    def __post_init__(self):
        if self.split_scheme not in SCHEMES:
            raise ValueError(f"SpeechCocoConfig {self.name!r}: split_scheme="
                             f"{self.split_scheme!r}; choose one of {list(SCHEMES)}.")
        if self.image_size < 8:
            raise ValueError(f"SpeechCocoConfig {self.name!r}: image_size={self.image_size} is "
                             "too small; use at least 8 pixels (224 for real use).")


@dataclasses.dataclass(frozen=True)
class _Item:
    folder: str  # train2014 | val2014
    stem: str  # imageID_captionID_Speaker_Disfluency_Speed
    image_id: int
    caption_id: int


def _parse_stem(stem: str, path: str) -> tuple[int, int]:
    parts = stem.split("_")
    try:
        if len(parts) < 3:
            raise ValueError("too few '_' fields")
        return int(parts[0]), int(parts[1])
    except ValueError as e:
        raise manual_corpus.CorruptFileError(
            f"{path}: name does not follow imageID_captionID_Speaker_Disfluency_Speed ({e}); "
            "remove the file or build with skip_corrupt=True.") from e


class Builder(manual_corpus.ManualCorpusBuilder):
    """speech_coco: one example = one synthesised spoken caption of an MSCOCO image.

    Missing or corrupt files: `skip_corrupt`, see `manual_corpus.ManualCorpusBuilder`.
    """

    VERSION = tfds.core.Version("1.1.0")
    RELEASE_NOTES = manual_corpus.IMAGE_FILE_RELEASE_NOTES
    MANUAL_DOWNLOAD_INSTRUCTIONS = MANUAL_DOWNLOAD_INSTRUCTIONS
    README = "tfds_builders/speech_coco/README.md"
    BUILDER_CONFIGS = [
        SpeechCocoConfig(name="karpathy", description="Karpathy splits (train+restval/val/test).",
                         split_scheme="karpathy"),
        SpeechCocoConfig(name="coco2014", description="MSCOCO train2014 / val2014 as train / "
                         "validation.", split_scheme="coco2014"),
    ]
    DEFAULT_BUILDER_CONFIG_NAME = "karpathy"

    def _info(self) -> tfds.core.DatasetInfo:
        size = self.builder_config.image_size
        text = tfds.features.Text
        return self.dataset_info_from_configs(
            description=__doc__,
            features=tfds.features.FeaturesDict({
                "audio": tfds.features.Tensor(shape=(None,), dtype=np.int16),  # 16 kHz
                "image": tfds.features.Image(shape=(size, size, 3), encoding_format="jpeg"),
                "image_id": np.int64,  # MSCOCO image id
                "caption_id": np.int64,  # MSCOCO caption (annotation) id
                "speaker_id": np.int32,  # index into SPEAKERS
                "speaker": text(), "text": text(), "wav_file": text(),
                "image_file": text(),  # relative to the corpus folder of the manual directory
                "speed": np.float32, "disfluency": text(),
                "words": tfds.features.Sequence(
                    {"word": text(), "start": np.float32, "end": np.float32}),
            }),
            supervised_keys=None, citation=_CITATION)

    def _index(self, root: str) -> list[_Item]:
        """Pairs each JSON with its WAV by name; unpaired files are errors (or skipped)."""
        speech = os.path.join(root, self.builder_config.speech_dir)
        items = []
        for folder in FOLDERS:
            json_dir, wav_dir = os.path.join(speech, folder, "json"), os.path.join(speech, folder,
                                                                                  "wav")
            jsons = {os.path.splitext(n)[0] for n in os.listdir(json_dir) if n.endswith(".json")}
            wavs = {os.path.splitext(n)[0] for n in os.listdir(wav_dir) if n.endswith(".wav")}
            for stem in sorted(wavs - jsons):
                path = os.path.join(wav_dir, stem + ".wav")
                self.build_summary.check(self.skip_corrupt, "audio without caption", path,
                                   FileNotFoundError(f"{path} has no caption JSON "
                                                     f"{os.path.join(json_dir, stem + '.json')}"))
            for stem in sorted(jsons):
                path = os.path.join(json_dir, stem + ".json")
                if stem not in wavs:
                    wav = os.path.join(wav_dir, stem + ".wav")
                    self.build_summary.check(self.skip_corrupt, "caption without audio", path,
                                       FileNotFoundError(f"{path}: its audio {wav} is missing"))
                    continue
                try:
                    image_id, caption_id = _parse_stem(stem, path)
                except manual_corpus.CorruptFileError as e:
                    self.build_summary.check(self.skip_corrupt, "caption", path, e)
                    continue
                items.append(_Item(folder, stem, image_id, caption_id))
        return items

    def _split_generators(self, dl_manager):
        config = self.builder_config
        root = self.corpus_root(dl_manager)
        required = [os.path.join(config.speech_dir, f, sub) for f in FOLDERS
                    for sub in ("json", "wav")]
        if config.split_scheme == "karpathy":
            required.append("dataset_coco.json")
        manual_corpus.require_files(root, required, corpus=CORPUS,
                                    readme=self.README)
        items = self._index(root)
        scheme = SCHEMES[config.split_scheme]
        if config.split_scheme == "karpathy":
            names = {}
            for kp_split, images in manual_corpus.karpathy_splits(
                    os.path.join(root, "dataset_coco.json")).items():
                for image in images:
                    names[int(image["cocoid"])] = (kp_split, image["filepath"], image["filename"])
        else:
            names = {}
            for item in items:
                name = f"COCO_{item.folder}_{item.image_id:012d}.jpg"
                names[item.image_id] = (item.folder, item.folder, name)
        by_split = {split: [] for split in scheme}
        source_split = {s: split for split, sources in scheme.items() for s in sources}
        for item in items:
            if item.image_id not in names:
                path = os.path.join(root, config.speech_dir, item.folder, "json",
                                    item.stem + ".json")
                self.build_summary.check(self.skip_corrupt, "caption of an image in no split", path,
                                   ValueError(f"image {item.image_id} is not in "
                                              "dataset_coco.json"))
                continue
            split = source_split.get(names[item.image_id][0])
            if split is not None:
                by_split[split].append(item)
        for split in by_split:  # images together, then caption order: stable across builds
            by_split[split].sort(key=lambda it: (it.image_id, it.caption_id))
        return {split: self.nonempty(split, self._generate_examples(root, split, its, names))
                for split, its in by_split.items()}

    def _generate_examples(self, root, split, items, names):  # pylint: disable=W0221
        config, cache = self.builder_config, {}
        for item in items:
            base = os.path.join(root, config.speech_dir, item.folder)
            json_path = os.path.join(base, "json", item.stem + ".json")
            try:
                example = self._read_caption(json_path, os.path.join(base, "wav",
                                                                     item.stem + ".wav"), item)
            except (manual_corpus.CorruptFileError, FileNotFoundError) as e:
                self.build_summary.check(self.skip_corrupt, f"caption ({split})", json_path, e)
                continue
            _, filepath, filename = names[item.image_id]
            image_path = os.path.join(root, config.image_dir, filepath, filename)
            if image_path not in cache:
                cache.clear()
                try:
                    cache[image_path] = manual_corpus.encode_jpeg(
                        manual_corpus.read_image(image_path, size=config.image_size))
                except (manual_corpus.CorruptFileError, FileNotFoundError) as e:
                    self.build_summary.check(self.skip_corrupt, f"image ({split})", image_path, e)
                    continue
            example["image"] = cache[image_path]
            example["image_file"] = os.path.relpath(image_path, root)
            self.build_summary.add_written(split)
            yield f"{item.caption_id:09d}", example

    def _read_caption(self, json_path: str, wav_path: str, item: _Item) -> dict:
        try:
            with open(json_path, encoding="utf-8") as f:
                meta = json.load(f)
            image_id, caption_id = int(meta["imgID"]), int(meta["captionID"])
            speaker, text = str(meta["speaker"]), str(meta["synthesisedCaption"])
            timecode, speed = meta["timecode"], float(meta.get("speed", 1.0))
            disfluency = meta.get("disfluency") or [""]
        except (json.JSONDecodeError, UnicodeDecodeError, KeyError, TypeError, ValueError) as e:
            raise manual_corpus.CorruptFileError(
                f"{json_path}: unreadable caption JSON ({type(e).__name__}: {e}); download it "
                "again or build with skip_corrupt=True.") from e
        if (image_id, caption_id) != (item.image_id, item.caption_id):
            raise manual_corpus.CorruptFileError(
                f"{json_path}: imgID/captionID {image_id}/{caption_id} disagree with the file "
                f"name ({item.image_id}/{item.caption_id}); download it again.")
        if speaker not in SPEAKERS:
            raise manual_corpus.CorruptFileError(
                f"{json_path}: unknown speaker {speaker!r}; SPEECH-COCO has {list(SPEAKERS)}.")
        words = words_from_timecode(timecode, json_path)
        audio = manual_corpus.read_wav_16k(wav_path)
        duration = audio.shape[0] / manual_corpus.SAMPLE_RATE
        late = [w for w in words if w[2] > duration + ALIGNMENT_SLACK_S]
        if late:
            raise manual_corpus.CorruptFileError(
                f"{json_path}: word {late[0][0]!r} ends at {late[0][2]:.3f} s, after the end of "
                f"{wav_path} ({duration:.3f} s); the timecode does not fit the audio.")
        words = [(w, min(s, duration), min(e, duration)) for w, s, e in words]
        return {"audio": audio, "image_id": image_id, "caption_id": caption_id,
                "speaker_id": SPEAKERS.index(speaker), "speaker": speaker, "text": text,
                "wav_file": os.path.basename(wav_path), "speed": speed,
                "disfluency": str(disfluency[0]),
                "words": {"word": [w for w, _, _ in words],
                          "start": np.asarray([s for _, s, _ in words], np.float32),
                          "end": np.asarray([e for _, _, e in words], np.float32)}}
