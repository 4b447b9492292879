"""TFDS builder for Places audio captions: English (PlacesAudio400k), Hindi, and both together.

Reads the metadata JSON files of the MIT distributions (`image_base_path`, `audio_base_path`,
`data` = list of `{wav, image, uttid, speaker, asr_text, ...}`), the WAVs and the Places205
images from the TFDS manual directory, and writes array_record shards (no TensorFlow). Configs:
`english`, `hindi`, and `bilingual` (one example per Hindi caption whose image also has an English
caption: `audio` is the English waveform, `audio_hindi` the Hindi one). Word alignments come from
`text_alignment` (tokens `start__WORD__end`, seconds) where the metadata has it, else are empty.
See README.md for the layout and what is unverified.
"""

from __future__ import annotations

import dataclasses
import json
import os

import numpy as np
import tensorflow_datasets as tfds

from tfds_builders import manual_corpus

CORPUS = "places_audio"
LANGUAGES = ("english", "hindi", "bilingual")
SPLITS = (("train", "metadata/train.json"), ("validation", "metadata/val.json"))
ALIGNMENT_SLACK_S = 0.05  # alignment ends up to this far past the audio end are clipped

MANUAL_DOWNLOAD_INSTRUCTIONS = """\
Place the unpacked corpora in <manual_dir>/places_audio/ (or <manual_dir>/ itself):
  PlacesAudio_400k_distro/metadata/train.json, PlacesAudio_400k_distro/metadata/val.json and
    PlacesAudio_400k_distro/wavs/... : the PlacesAudio400k English captions, from MIT CSAIL SLS
    (https://groups.csail.mit.edu/sls/downloads/placesaudio/, registration required). The
    alignment-augmented JSONs of wnhsu/ResDAVEnet-VQ (with `text_alignment`) may replace the two
    metadata files (same names).
  PlacesHindi100k/metadata/train.json, PlacesHindi100k/metadata/val.json and
    PlacesHindi100k/wavs/... : the Hindi Places captions (Harwath et al. 2018, "Vision as an
    interlingua"), from the same MIT page; needed by the `hindi` and `bilingual` configs.
  images256/<image>: the Places205 images (`image` paths of the metadata are relative to this
    folder), from http://places.csail.mit.edu/ (Places205, resized 256x256 version).
Folder names can be changed through PlacesAudioConfig(english_dir=, hindi_dir=, image_dir=).
"""

_CITATION = """\
@inproceedings{harwath2016unsupervised,
  title={Unsupervised Learning of Spoken Language with Visual Context},
  author={Harwath, David and Torralba, Antonio and Glass, James},
  booktitle={NeurIPS}, year={2016}}
@inproceedings{harwath2018vision,
  title={Vision as an Interlingua: Learning Multilingual Semantic Embeddings of Untranscribed
         Speech}, author={Harwath, David and Chuang, Galen and Glass, James},
  booktitle={ICASSP}, year={2018}}
"""


@dataclasses.dataclass(frozen=True)
class Caption:
    """One metadata entry: ids, file paths (relative) and optional text and word alignments."""
    index: int  # position over all metadata files of its language (the stable caption id)
    split: str
    uttid: str
    wav: str
    image: str
    speaker: str
    text: str
    words: tuple  # ((word, start_s, end_s), ...)
    source: str  # metadata file, for error messages


def parse_alignment(alignment: str, where: str) -> tuple:
    """`"0.1__A__0.3 0.3__DOG__0.9"` -> (("A", 0.1, 0.3), ("DOG", 0.3, 0.9)); seconds.

    Raises CorruptFileError naming `where` for malformed tokens or start > end.
    """
    words = []
    for token in alignment.split():
        parts = token.split("__")
        try:
            if len(parts) != 3:
                raise ValueError("need 3 '__'-separated fields")
            start, word, end = float(parts[0]), parts[1], float(parts[2])
        except ValueError as e:
            raise manual_corpus.CorruptFileError(
                f"{where}: bad text_alignment token {token!r} ({e}); expected start__WORD__end "
                "in seconds. Fix the metadata or build with skip_corrupt=True.") from e
        if not 0 <= start <= end:
            raise manual_corpus.CorruptFileError(
                f"{where}: alignment token {token!r} has start > end or a negative time; fix "
                "the metadata or build with skip_corrupt=True.")
        words.append((word, start, end))
    return tuple(words)


def load_metadata(manual_dir: str, language_dir: str, language: str) -> list[Caption]:
    """Reads `<language_dir>/metadata/{train,val}.json` -> Captions in split then file order."""
    captions = []
    for split, rel in SPLITS:
        path = os.path.join(manual_dir, language_dir, rel)
        try:
            with open(path, encoding="utf-8") as f:
                meta = json.load(f)
        except (json.JSONDecodeError, UnicodeDecodeError) as e:
            raise manual_corpus.CorruptFileError(
                f"{path}: not valid JSON ({e}); download it again.") from e
        if not isinstance(meta, dict) or not isinstance(meta.get("data"), list):
            raise manual_corpus.CorruptFileError(
                f"{path}: no top-level 'data' list; is this a Places{language.title()} metadata "
                "file (metadata/train.json or metadata/val.json)?")
        for i, entry in enumerate(meta["data"]):
            missing = [k for k in ("wav", "image") if not entry.get(k)]
            if missing:
                raise manual_corpus.CorruptFileError(
                    f"{path}: data[{i}] lacks {missing}; every entry needs 'wav' and 'image'. "
                    "Download the metadata again.")
            uttid = entry.get("uttid") or os.path.splitext(os.path.basename(entry["wav"]))[0]
            where = f"{path} data[{i}] (uttid {uttid})"
            alignment = entry.get("text_alignment") or ""
            words = parse_alignment(alignment, where) if alignment else ()
            text = entry.get("asr_text") or entry.get("text") or ""
            captions.append(Caption(len(captions), split, uttid, entry["wav"], entry["image"],
                                    str(entry.get("speaker") or ""), text, words, where))
    return captions


@dataclasses.dataclass(eq=False)
class PlacesAudioConfig(tfds.core.BuilderConfig):
    """language: one of LANGUAGES. image_size: output side in pixels (shorter side resized, centre
    crop). english_dir / hindi_dir / image_dir: folders under the manual dir (see README)."""

    language: str = "english"
    image_size: int = 224
    english_dir: str = "PlacesAudio_400k_distro"
    hindi_dir: str = "PlacesHindi100k"
    image_dir: str = "images256"

    def __post_init__(self):
        if self.language not in LANGUAGES:
            raise ValueError(f"PlacesAudioConfig {self.name!r}: language={self.language!r}; "
                             f"choose one of {list(LANGUAGES)}.")
        if self.image_size < 8:
            raise ValueError(f"PlacesAudioConfig {self.name!r}: image_size={self.image_size} "
                             "is too small; use at least 8 pixels (224 for real use).")


def _words_feature():
    return tfds.features.Sequence(
        {"word": tfds.features.Text(), "start": np.float32, "end": np.float32})


def _words_value(words) -> dict:
    return {"word": [w for w, _, _ in words],
            "start": np.asarray([s for _, s, _ in words], np.float32),
            "end": np.asarray([e for _, _, e in words], np.float32)}


class Builder(manual_corpus.ManualCorpusBuilder):
    """places_audio: one example = one spoken caption of a Places205 image (see module doc).

    Missing or corrupt files: `skip_corrupt`, see `manual_corpus.ManualCorpusBuilder`.
    """

    VERSION = tfds.core.Version("1.1.0")
    RELEASE_NOTES = {"1.0.0": "Initial release.",
                     "1.1.0": "image_file is the image's path relative to the corpus folder of "
                              "the manual directory (<image_dir>/<metadata path>; was the metadata "
                              "path), so vgs_jax.extract_image_features can ten-crop the original."}
    MANUAL_DOWNLOAD_INSTRUCTIONS = MANUAL_DOWNLOAD_INSTRUCTIONS
    README = "tfds_builders/places_audio/README.md"
    BUILDER_CONFIGS = [
        PlacesAudioConfig(name="english", description="PlacesAudio400k English captions.",
                          language="english"),
        PlacesAudioConfig(name="hindi", description="Places Hindi captions.", language="hindi"),
        PlacesAudioConfig(name="bilingual", description="Images with an English and a Hindi "
                          "caption; both waveforms in one example.", language="bilingual"),
    ]
    DEFAULT_BUILDER_CONFIG_NAME = "english"

    def _info(self) -> tfds.core.DatasetInfo:
        size = self.builder_config.image_size
        text = tfds.features.Text
        features = {
            "audio": tfds.features.Tensor(shape=(None,), dtype=np.int16),  # 16 kHz
            "image": tfds.features.Image(shape=(size, size, 3), encoding_format="jpeg"),
            "image_id": np.int64, "caption_id": np.int64, "speaker_id": np.int32,
            "text": text(), "uttid": text(), "speaker": text(), "image_file": text(),
            "words": _words_feature(),
        }
        if self.builder_config.language == "bilingual":
            features.update({
                "audio_hindi": tfds.features.Tensor(shape=(None,), dtype=np.int16),
                "caption_id_english": np.int64, "speaker_id_hindi": np.int32,
                "text_hindi": text(), "uttid_hindi": text(), "speaker_hindi": text(),
                "words_hindi": _words_feature()})
        return self.dataset_info_from_configs(
            description=__doc__, features=tfds.features.FeaturesDict(features),
            supervised_keys=None, citation=_CITATION)

    def _split_generators(self, dl_manager):
        config = self.builder_config
        root = self.corpus_root(dl_manager)
        dirs = {"english": [config.english_dir], "hindi": [config.hindi_dir],
                "bilingual": [config.english_dir, config.hindi_dir]}[config.language]
        manual_corpus.require_files(root, [os.path.join(d, rel) for d in dirs for _, rel in SPLITS],
                                    corpus=CORPUS, readme=self.README)
        meta = {d: load_metadata(root, d, "hindi" if d == config.hindi_dir else "english")
                for d in dirs}
        all_caps = [c for caps in meta.values() for c in caps]
        image_ids = {p: i for i, p in enumerate(sorted({c.image for c in all_caps}))}
        speakers = {s: i for i, s in enumerate(sorted({c.speaker for c in all_caps} - {""}))}
        speakers[""] = -1
        ctx = (root, image_ids, speakers)
        if config.language == "bilingual":
            english_by_image = {}
            for c in meta[config.english_dir]:
                english_by_image.setdefault(c.image, c)
            return {split: self.nonempty(split, self._generate_bilingual(
                meta[config.hindi_dir], english_by_image, split, ctx)) for split, _ in SPLITS}
        lang_dir = dirs[0]
        return {split: self.nonempty(split, self._generate_examples(meta[lang_dir], lang_dir,
                                                                     split, ctx))
                for split, _ in SPLITS}

    def _read_caption(self, caption: Caption, root: str, lang_dir: str, split: str):
        """(waveform int16 [n], words) or None when skipped; raises unless skip_corrupt."""
        path = os.path.join(root, lang_dir, caption.wav)
        try:
            audio = manual_corpus.read_wav_16k(path)
        except (manual_corpus.CorruptFileError, FileNotFoundError) as e:
            self.build_summary.check(self.skip_corrupt, f"audio ({split})", path, e)
            return None
        duration = audio.shape[0] / manual_corpus.SAMPLE_RATE
        late = [w for w in caption.words if w[2] > duration + ALIGNMENT_SLACK_S]
        if late:
            exc = manual_corpus.CorruptFileError(
                f"{caption.source}: word {late[0][0]!r} ends at {late[0][2]:.3f} s, after the end "
                f"of {path} ({duration:.3f} s); fix the alignment or build with skip_corrupt=True.")
            self.build_summary.check(self.skip_corrupt, f"alignment ({split})", caption.source, exc)
            return None
        words = tuple((w, min(s, duration), min(e, duration)) for w, s, e in caption.words)
        return audio, words

    def _read_image(self, caption: Caption, root: str, split: str, cache: dict):
        path = os.path.join(root, self.builder_config.image_dir, caption.image)
        if path not in cache:
            cache.clear()  # captions of one image are usually adjacent; keep one image only
            try:
                image = manual_corpus.read_image(path, size=self.builder_config.image_size)
            except (manual_corpus.CorruptFileError, FileNotFoundError) as e:
                self.build_summary.check(self.skip_corrupt, f"image ({split})", path, e)
                return None
            cache[path] = manual_corpus.encode_jpeg(image)
        return cache[path]

    def _base_example(self, caption, audio, words, image, ctx) -> dict:
        _, image_ids, speakers = ctx
        return {"audio": audio, "image": image, "image_id": image_ids[caption.image],
                "caption_id": caption.index, "speaker_id": speakers[caption.speaker],
                "text": caption.text, "uttid": caption.uttid, "speaker": caption.speaker,
                "image_file": os.path.join(self.builder_config.image_dir, caption.image),
                "words": _words_value(words)}

    def _generate_examples(self, captions, lang_dir, split, ctx):  # pylint: disable=W0221
        root, cache = ctx[0], {}
        for caption in captions:
            if caption.split != split:
                continue
            read = self._read_caption(caption, root, lang_dir, split)
            image = self._read_image(caption, root, split, cache) if read else None
            if image is None:
                continue
            self.build_summary.add_written(split)
            yield f"{caption.index:09d}", self._base_example(caption, *read, image, ctx)

    def _generate_bilingual(self, hindi, english_by_image, split, ctx):
        root, image_ids, speakers = ctx
        config, cache = self.builder_config, {}
        for caption in hindi:
            if caption.split != split:
                continue
            english = english_by_image.get(caption.image)
            if english is None:  # Not bilingual: excluded by definition, but counted.
                self.build_summary.skip(f"hindi caption ({split})", caption.source,
                                  "image has no English caption")
                continue
            read_hi = self._read_caption(caption, root, config.hindi_dir, split)
            read_en = self._read_caption(english, root, config.english_dir, split) if read_hi \
                else None
            image = self._read_image(caption, root, split, cache) if read_en else None
            if image is None:
                continue
            example = self._base_example(english, *read_en, image, ctx)
            example.update({
                "caption_id": caption.index, "caption_id_english": english.index,
                "audio_hindi": read_hi[0], "speaker_id_hindi": speakers[caption.speaker],
                "text_hindi": caption.text, "uttid_hindi": caption.uttid,
                "speaker_hindi": caption.speaker, "words_hindi": _words_value(read_hi[1])})
            self.build_summary.add_written(split)
            yield f"{caption.index:09d}", example
