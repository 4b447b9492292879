"""TFDS builder for Synthetically Spoken COCO (Chrupała, Gelderloos, Alishahi, ACL 2017).

Every MSCOCO caption of Karpathy's `dataset.json` spoken once by Google TTS (gTTS, one voice),
stored as MP3. Audio layout: `dataset.mp3.jsonl.gz`, one JSON line per caption
`{"sentid": int, "speech": base64 MP3}` (the format written by imaginet/tts.py in
gchrupala/visually-grounded-speech). MP3 is decoded offline by soundfile (libsndfile >= 1.1 has
an MPEG decoder) and resampled to 16 kHz with soxr. Optional word alignments from Havard's
`synth-coco-metadata.json` (forced alignments keyed by caption id). Splits are Karpathy's
(train = train + restval, validation = val, test). Writes array_record, no TensorFlow.
See README.md for what is unverified.
"""

from __future__ import annotations

import base64
import binascii
import dataclasses
import gzip
import io
import json
import os
import zlib

import numpy as np
import tensorflow_datasets as tfds

from tfds_builders import manual_corpus

CORPUS = "synthetically_spoken_coco"
AUDIO_FILE = "dataset.mp3.jsonl.gz"
ALIGNMENT_FILE = "synth-coco-metadata.json"
SPLITS = {"train": ("train", "restval"), "validation": ("val",), "test": ("test",)}
ALIGNMENT_SLACK_S = 0.05

MANUAL_DOWNLOAD_INSTRUCTIONS = """\
Place the files in <manual_dir>/synthetically_spoken_coco/ (or <manual_dir>/ itself):
  dataset.json: Karpathy's COCO split file (the `dataset.json` shipped with the corpus, or
    dataset_coco.json from https://cs.stanford.edu/people/karpathy/deepimagesent/ renamed).
  dataset.mp3.jsonl.gz: the spoken captions, from Zenodo https://doi.org/10.5281/zenodo.400926.
  images/train2014/COCO_train2014_<id>.jpg, images/val2014/COCO_val2014_<id>.jpg: the MSCOCO
    2014 images (https://cocodataset.org/#download).
  synth-coco-metadata.json (optional): forced word alignments, from
    https://github.com/William-N-Havard/VGS-dataset-metadata; without it `words` is empty.
"""

_CITATION = """\
@inproceedings{chrupala2017representations,
  title={Representations of language in a model of visually grounded speech signal},
  author={Chrupa{\\l}a, Grzegorz and Gelderloos, Lieke and Alishahi, Afra},
  booktitle={ACL}, year={2017}}
"""


def decode_mp3_16k(data: bytes, where: str) -> np.ndarray:
    """MP3 (or any soundfile-readable) bytes -> int16 [n] mono at 16 kHz.

    Raises CorruptFileError naming `where` when the bytes cannot be decoded or hold no samples.
    """
    import soundfile as sf  # deferred: only building needs it
    import soxr

    try:
        with sf.SoundFile(io.BytesIO(data)) as snd:
            rate = snd.samplerate
            wav = snd.read(dtype="float32", always_2d=True)
    except (RuntimeError, sf.LibsndfileError) as e:
        raise manual_corpus.CorruptFileError(
            f"{where}: undecodable audio ({e}); download {AUDIO_FILE} again or build with "
            "skip_corrupt=True.") from e
    if wav.shape[0] == 0:
        raise manual_corpus.CorruptFileError(f"{where}: audio is empty (0 samples); build with "
                                             "skip_corrupt=True to skip it.")
    mono = wav.mean(axis=1, dtype=np.float64)
    if rate != manual_corpus.SAMPLE_RATE:
        mono = soxr.resample(mono, rate, manual_corpus.SAMPLE_RATE, quality="HQ")
    return np.clip(np.round(mono * 32768.0), -32768, 32767).astype(np.int16)


def iter_audio_lines(path: str):
    """Yields (line number, sentid, base64 speech str) of `dataset.mp3.jsonl.gz`.

    Raises CorruptFileError naming the file and line for a truncated archive or a bad line.
    """
    try:
        with gzip.open(path, "rt", encoding="utf-8") as f:
            for number, line in enumerate(f, 1):
                if not line.strip():
                    continue
                try:
                    item = json.loads(line)
                    yield number, int(item["sentid"]), item["speech"]
                except (json.JSONDecodeError, KeyError, TypeError, ValueError) as e:
                    raise manual_corpus.CorruptFileError(
                        f"{path} line {number}: not a {{\"sentid\", \"speech\"}} JSON line "
                        f"({type(e).__name__}: {e}); download the file again.") from e
    except (OSError, EOFError, zlib.error, UnicodeDecodeError) as e:
        raise manual_corpus.CorruptFileError(
            f"{path}: unreadable gzip archive ({e}); download it again.") from e


def load_alignments(path: str) -> dict[int, tuple]:
    """`synth-coco-metadata.json` -> {caption id: ((word, start_s, end_s), ...)}."""
    try:
        with open(path, encoding="utf-8") as f:
            meta = json.load(f)
        return {int(key): tuple((str(w["label"]), float(w["start"]), float(w["end"]))
                                for w in value["forced_alignments"]["words"])
                for key, value in meta.items()}
    except (json.JSONDecodeError, UnicodeDecodeError, KeyError, TypeError, ValueError,
            AttributeError) as e:
        raise manual_corpus.CorruptFileError(
            f"{path}: not the expected {{caption id: {{'forced_alignments': {{'words': [{{label, "
            f"start, end}}]}}}}}} layout ({type(e).__name__}: {e}); download it again or remove "
            "it (alignments are optional).") from e


@dataclasses.dataclass(eq=False)
class SyntheticallySpokenCocoConfig(tfds.core.BuilderConfig):
    """image_size: output side in pixels (shorter side resized, centre crop)."""

    image_size: int = 224

    def __post_init__(self):
        if self.image_size < 8:
            raise ValueError(f"SyntheticallySpokenCocoConfig {self.name!r}: image_size="
                             f"{self.image_size} is too small; use at least 8 (224 for real use).")


class Builder(manual_corpus.ManualCorpusBuilder):
    """synthetically_spoken_coco: one example = one TTS-spoken MSCOCO caption with its image.

    Missing or corrupt files: `skip_corrupt`, see `manual_corpus.ManualCorpusBuilder`.
    """

    VERSION = tfds.core.Version("1.1.0")
    RELEASE_NOTES = manual_corpus.IMAGE_FILE_RELEASE_NOTES
    MANUAL_DOWNLOAD_INSTRUCTIONS = MANUAL_DOWNLOAD_INSTRUCTIONS
    README = "tfds_builders/synthetically_spoken_coco/README.md"
    BUILDER_CONFIGS = [SyntheticallySpokenCocoConfig(name="default", description="224x224 images.")]
    DEFAULT_BUILDER_CONFIG_NAME = "default"

    def _info(self) -> tfds.core.DatasetInfo:
        size = self.builder_config.image_size
        return self.dataset_info_from_configs(
            description=__doc__,
            features=tfds.features.FeaturesDict({
                "audio": tfds.features.Tensor(shape=(None,), dtype=np.int16),  # 16 kHz
                "image": tfds.features.Image(shape=(size, size, 3), encoding_format="jpeg"),
                "image_id": np.int64,  # MSCOCO image id (Karpathy `cocoid`)
                "caption_id": np.int64,  # Karpathy `sentid`
                "speaker_id": np.int32,  # always 0: one TTS voice
                "text": tfds.features.Text(),
                "image_file": tfds.features.Text(),  # relative to the corpus folder (manual dir)
                "words": tfds.features.Sequence(
                    {"word": tfds.features.Text(), "start": np.float32, "end": np.float32}),
            }),
            supervised_keys=None, citation=_CITATION)

    def _split_generators(self, dl_manager):
        root = self.corpus_root(dl_manager)
        manual_corpus.require_files(root, ["dataset.json", AUDIO_FILE], corpus=CORPUS,
                                    readme=self.README)
        sentences = {}  # sentid -> (split, image dict, raw text)
        for kp_split, images in manual_corpus.karpathy_splits(
                os.path.join(root, "dataset.json")).items():
            split = next((s for s, srcs in SPLITS.items() if kp_split in srcs), None)
            for image in images:
                for sentence in image["sentences"]:
                    sentences[int(sentence["sentid"])] = (split, image, sentence["raw"])
        audio_path = os.path.join(root, AUDIO_FILE)
        spoken = set()
        for number, sentid, _ in iter_audio_lines(audio_path):  # index pass: pairing checks
            if sentid not in sentences:
                self.build_summary.check(self.skip_corrupt, "audio without caption",
                                   f"{audio_path} line {number}",
                                   ValueError(f"sentid {sentid} is not in dataset.json"))
            spoken.add(sentid)
        for sentid in sorted(set(sentences) - spoken):
            self.build_summary.check(self.skip_corrupt, "caption without audio",
                               f"dataset.json sentid {sentid}",
                               FileNotFoundError(f"no line with this sentid in {audio_path}"))
        align_path = os.path.join(root, ALIGNMENT_FILE)
        alignments = load_alignments(align_path) if os.path.exists(align_path) else {}
        return {split: self.nonempty(split, self._generate_examples(root, split, sentences,
                                                                     alignments))
                for split in SPLITS}

    def _generate_examples(self, root, split, sentences, alignments):  # pylint: disable=W0221
        size, cache = self.builder_config.image_size, {}
        audio_path = os.path.join(root, AUDIO_FILE)
        for number, sentid, speech in iter_audio_lines(audio_path):
            entry = sentences.get(sentid)
            if entry is None or entry[0] != split:
                continue
            _, image, text = entry
            where = f"{audio_path} line {number} (sentid {sentid})"
            try:
                try:
                    data = base64.b64decode(speech, validate=True)
                except (binascii.Error, ValueError) as e:
                    raise manual_corpus.CorruptFileError(f"{where}: bad base64 ({e})") from e
                audio = decode_mp3_16k(data, where)
                words = self._words(alignments.get(sentid, ()), audio, where)
            except manual_corpus.CorruptFileError as e:
                self.build_summary.check(self.skip_corrupt, f"audio ({split})", where, e)
                continue
            image_path = os.path.join(root, "images", image.get("filepath", ""),
                                      image["filename"])
            if image_path not in cache:
                cache.clear()
                try:
                    cache[image_path] = manual_corpus.encode_jpeg(
                        manual_corpus.read_image(image_path, size=size))
                except (manual_corpus.CorruptFileError, FileNotFoundError) as e:
                    self.build_summary.check(self.skip_corrupt, f"image ({split})", image_path, e)
                    continue
            self.build_summary.add_written(split)
            yield f"{sentid:09d}", {
                "audio": audio, "image": cache[image_path],
                "image_id": int(image.get("cocoid", image.get("imgid"))),
                "caption_id": sentid, "speaker_id": 0, "text": text,
                "image_file": os.path.relpath(image_path, root),
                "words": {"word": [w for w, _, _ in words],
                          "start": np.asarray([s for _, s, _ in words], np.float32),
                          "end": np.asarray([e for _, _, e in words], np.float32)}}

    @staticmethod
    def _words(words, audio, where):
        duration = audio.shape[0] / manual_corpus.SAMPLE_RATE
        for word, start, end in words:
            if not 0 <= start <= end or end > duration + ALIGNMENT_SLACK_S:
                raise manual_corpus.CorruptFileError(
                    f"{where}: alignment of {word!r} ({start:.3f}-{end:.3f} s) does not fit the "
                    f"audio ({duration:.3f} s) in {ALIGNMENT_FILE}.")
        return [(w, min(s, duration), min(e, duration)) for w, s, e in words]
