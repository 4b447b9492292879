"""TFDS builder for `flickr8k_audio`: Flickr8K images with the Flickr Audio Caption Corpus.

One example = one spoken caption (16 kHz int16 waveform) with its image (resized to
`image_size`, centre-cropped, JPEG), its text, speaker and ids. Reads the files the user placed
in the TFDS manual directory (see `MANUAL_DOWNLOAD_INSTRUCTIONS` and README.md, section
"Getting the data"); writes array_record (no TensorFlow). Splits: train / validation / test from
Karpathy's `dataset_flickr8k.json` (config `karpathy`, default; its `val` -> `validation`) or
from the official `Flickr_8k.{train,dev,test}Images.txt` (config `official`). Ids: `image_id`
is the rank of the image file name among all split images (sorted), `caption_id` is
`10 * image_id + k` for caption `#k`, so both are stable across builds of the same files.
Config `karpathy_tts` (TTS augmentation): also a split `train_tts`, every text caption of the
train images spoken by espeak-ng TTS voices (caption_id + 10^9, `wav` ""), and a feature
`synthetic` (True only there); see tfds_builders/spoken_shapes/tts_augmentation.py.
"""

from __future__ import annotations

import collections
import dataclasses
import os

import numpy as np
import tensorflow_datasets as tfds

from tfds_builders import manual_corpus as mc
from tfds_builders.spoken_shapes import tts_augmentation

README = "tfds_builders/flickr8k_audio/README.md, section 'Getting the data'"
AUDIO_DIR = "flickr_audio"
WAV_DIR = "flickr_audio/wavs"
WAV2CAPT = "flickr_audio/wav2capt.txt"
WAV2SPK = "flickr_audio/wav2spk.txt"
IMAGE_DIR = "Flicker8k_Dataset"  # sic, as distributed
KARPATHY_JSON = "dataset_flickr8k.json"
TOKEN_FILE = "Flickr8k.token.txt"
OFFICIAL_SPLITS = {"train": "Flickr_8k.trainImages.txt", "validation": "Flickr_8k.devImages.txt",
                   "test": "Flickr_8k.testImages.txt"}
TEXT_DIRS = ("Flickr8k_text", "")  # the text files may sit in Flickr8k_text/ or at the top
KARPATHY_SPLITS = {"train": "train", "val": "validation", "test": "test"}

_CITATION = """\
@inproceedings{harwath2015deep,
  title = {Deep multimodal semantic embeddings for speech and images},
  author = {Harwath, David and Glass, James},
  booktitle = {ASRU}, year = {2015}}
@article{hodosh2013framing,
  title = {Framing image description as a ranking task: data, models and evaluation metrics},
  author = {Hodosh, Micah and Young, Peter and Hockenmaier, Julia},
  journal = {JAIR}, volume = {47}, year = {2013}}
"""


@dataclasses.dataclass(eq=False)
class Flickr8kAudioConfig(tfds.core.BuilderConfig):
    """split_source: "karpathy" (dataset_flickr8k.json) or "official" (Flickr_8k.*Images.txt).

    image_size: side of the stored square image in pixels. skip_corrupt: skip (and count)
    unreadable files, missing images/WAVs instead of stopping with an error naming them.
    tts: also write `train_tts` (the train text captions spoken by TTS voices, seed `tts_seed`).
    """

    split_source: str = "karpathy"
    image_size: int = 224
    skip_corrupt: bool = False
    tts: bool = False
    tts_seed: int = 0

    def __post_init__(self):
        if self.split_source not in ("karpathy", "official"):
            raise ValueError(f"Flickr8kAudioConfig {self.name!r}: split_source="
                             f"{self.split_source!r}; use 'karpathy' or 'official'.")
        if self.image_size < 1:
            raise ValueError(f"Flickr8kAudioConfig {self.name!r}: image_size={self.image_size} "
                             "must be a positive number of pixels.")


def _text_path(root: str, name: str) -> str:
    """Path of a Flickr8k_text file: Flickr8k_text/<name> or <name> (first that exists)."""
    for folder in TEXT_DIRS:
        path = os.path.join(root, folder, name)
        if os.path.exists(path):
            return path
    return os.path.join(root, TEXT_DIRS[0], name)


class Builder(mc.ManualCorpusBuilder):
    """flickr8k_audio: one example per spoken caption of a Flickr8K image."""

    VERSION = tfds.core.Version("1.0.0")
    RELEASE_NOTES = {"1.0.0": "Initial release."}
    README = README
    BUILDER_CONFIGS = [
        Flickr8kAudioConfig(name="karpathy", description="Karpathy split, 224x224 images."),
        Flickr8kAudioConfig(name="official", split_source="official",
                            description="Official Flickr8K split files, 224x224 images."),
        Flickr8kAudioConfig(name="karpathy_tts", tts=True, description=(
            "Karpathy split, 224x224 images, plus train_tts: the train text captions spoken "
            "by TTS voices.")),
    ]
    DEFAULT_BUILDER_CONFIG_NAME = "karpathy"
    MANUAL_DOWNLOAD_INSTRUCTIONS = f"""\
    Place these in <data_dir>/downloads/manual/flickr8k_audio/ (unpacked, as distributed):
      {WAV_DIR}/*.wav, {WAV2CAPT}, {WAV2SPK}: Flickr Audio Caption Corpus,
        flickr_audio.tar.gz from https://groups.csail.mit.edu/sls/downloads/flickraudio/
      {IMAGE_DIR}/*.jpg: Flickr8K images, Flickr8k_Dataset.zip (request form at
        https://forms.illinois.edu/sec/1713398; mirror linked in platalea's README)
      Flickr8k_text/{TOKEN_FILE} (optional text; Karpathy text used otherwise) and, for the
        `official` config, Flickr8k_text/Flickr_8k.{{train,dev,test}}Images.txt: Flickr8k_text.zip
      {KARPATHY_JSON} (config `karpathy`): caption_datasets.zip from
        https://cs.stanford.edu/people/karpathy/deepimagesent/
    Details: {README}.
    """

    def _info(self) -> tfds.core.DatasetInfo:
        return self.dataset_info_from_configs(
            description=__doc__,
            features=mc.caption_features(self.builder_config.image_size, **(
                {"synthetic": np.bool_} if self.builder_config.tts else {})),
            supervised_keys=None,
            homepage="https://groups.csail.mit.edu/sls/downloads/flickraudio/",
            citation=_CITATION,
        )

    def _required(self, root: str) -> list[str]:
        required = [WAV_DIR, WAV2CAPT, WAV2SPK, IMAGE_DIR]
        if self.builder_config.split_source == "karpathy":
            return required + [KARPATHY_JSON]
        names = [TOKEN_FILE, *OFFICIAL_SPLITS.values()]
        return required + [os.path.relpath(_text_path(root, n), root) for n in names]

    def _split_images(self, root: str) -> tuple[dict[str, list[str]], dict[tuple[str, int], str]]:
        """{split: [image file name]} and Karpathy texts {(image, k): raw} (empty if official)."""
        if self.builder_config.split_source == "official":
            return ({split: [ln.split()[0] for ln in mc.read_lines(_text_path(root, f))]
                     for split, f in OFFICIAL_SPLITS.items()}, {})
        splits, texts = {}, {}
        for name, images in mc.karpathy_splits(os.path.join(root, KARPATHY_JSON)).items():
            if name not in KARPATHY_SPLITS:
                continue
            splits[KARPATHY_SPLITS[name]] = [im["filename"] for im in images]
            for im in images:
                for k, sentence in enumerate(im["sentences"]):
                    if sentence is not None:  # platalea's filtered files hold nulls
                        texts[(im["filename"], k)] = sentence.get("raw", "")
        for split in KARPATHY_SPLITS.values():
            splits.setdefault(split, [])
        return splits, texts

    def _split_generators(self, dl_manager):
        root = self.corpus_root(dl_manager)
        mc.require_files(root, self._required(root), corpus="flickr8k_audio", readme=README)
        summary, skip = self.build_summary, self.skip_corrupt
        splits, texts = self._split_images(root)
        token_path = _text_path(root, TOKEN_FILE)
        if os.path.exists(token_path):  # Flickr8k.token.txt wins over Karpathy's text.
            for line in mc.read_lines(token_path):
                key, _, caption = line.partition("\t")
                image, _, k = key.partition("#")
                if k.isdigit():
                    texts[(image, int(k))] = caption.strip()
        speakers = {}
        for n, line in enumerate(mc.read_lines(os.path.join(root, WAV2SPK))):
            parts = line.split()
            if len(parts) != 2 or not parts[1].isdigit():
                raise mc.CorruptFileError(f"{os.path.join(root, WAV2SPK)} line {n + 1}: "
                                          f"{line!r} is not '<wav> <speaker number>'; download "
                                          "the Flickr Audio Caption Corpus again.")
            speakers[parts[0]] = int(parts[1])
        by_image = collections.defaultdict(list)  # image -> [(k, wav)]
        for n, line in enumerate(mc.read_lines(os.path.join(root, WAV2CAPT))):
            parts = line.split()
            if len(parts) != 3 or not parts[2].lstrip("#").isdigit() or int(
                    parts[2].lstrip("#")) > 9:  # caption_id = 10 * image_id + k
                raise mc.CorruptFileError(f"{os.path.join(root, WAV2CAPT)} line {n + 1}: "
                                          f"{line!r} is not '<wav> <image>.jpg #<k>'; download "
                                          "the Flickr Audio Caption Corpus again.")
            by_image[parts[1]].append((int(parts[2].lstrip("#")), parts[0]))
        # Consistency before writing anything: missing files fail fast (or are counted).
        in_split = {im for images in splits.values() for im in images}
        if len(in_split) != sum(len(images) for images in splits.values()):
            raise mc.CorruptFileError(f"flickr8k_audio: the {self.builder_config.split_source} "
                                      f"split files in {root} list an image twice (in one split "
                                      "or in two); download them again.")
        referenced = {wav for caps in by_image.values() for _, wav in caps}
        for wav in sorted(set(os.listdir(os.path.join(root, WAV_DIR))) - referenced):
            summary.skip("audio", os.path.join(WAV_DIR, wav), "not in wav2capt.txt")
        for image in sorted(set(by_image) - in_split):
            summary.skip("image", image, "has audio but is in no split")
        spoken = {(image, k) for image, caps in by_image.items() for k, _ in caps}
        for image, k in sorted(set(texts) - spoken):
            if image in in_split:
                summary.skip("caption", f"{image}#{k}", "text without audio")
        problems = []
        for image in sorted(in_split):
            if not os.path.exists(os.path.join(root, IMAGE_DIR, image)):
                problems.append(("image", os.path.join(IMAGE_DIR, image), "missing image file"))
            if image not in by_image:
                problems.append(("image", image, "no audio caption in wav2capt.txt"))
            for _, wav in by_image.get(image, []):
                if not os.path.exists(os.path.join(root, WAV_DIR, wav)):
                    problems.append(("audio", os.path.join(WAV_DIR, wav), "missing WAV file"))
        summary.check_all(skip, problems, where=root, readme=README)
        bad = {path for _, path, _ in problems}
        image_ids = {im: i for i, im in enumerate(sorted(in_split))}
        usable = {split: [im for im in images if os.path.join(IMAGE_DIR, im) not in bad
                          and im in by_image] for split, images in splits.items()}
        for split in [s for s, images in usable.items() if not images]:
            summary.skip("split", split, "no examples left")  # TFDS cannot write empty splits
            del usable[split]
        out = {split: self._generate_examples(root, split, images, by_image, speakers, texts,
                                              image_ids, bad)
               for split, images in usable.items()}
        if self.builder_config.tts and "train" in usable:
            out[tts_augmentation.SPLIT] = self._generate_tts(root, usable["train"], texts,
                                                             image_ids)
        return out

    def _generate_examples(self, root, split, images, by_image, speakers, texts, image_ids, bad):
        size = self.builder_config.image_size
        for image in images:
            image_id = image_ids[image]
            captions = [
                {"wav": os.path.join(root, WAV_DIR, wav), "caption_id": 10 * image_id + k,
                 "text": texts.get((image, k), ""), "speaker_id": speakers.get(wav, -1),
                 **({"synthetic": False} if self.builder_config.tts else {})}
                for k, wav in sorted(by_image[image])
                if os.path.join(WAV_DIR, wav) not in bad]
            yield from mc.image_caption_examples(
                os.path.join(root, IMAGE_DIR, image), captions, image_id=image_id,
                image_size=size, split=split, summary=self.build_summary,
                skip_corrupt=self.skip_corrupt, corpus_root=root)

    def _generate_tts(self, root, images, texts, image_ids):
        """train_tts: each non-empty text caption of the train images, spoken by a TTS voice."""
        by_image = collections.defaultdict(list)
        for (image, k), text in texts.items():
            if text.strip():
                by_image[image].append((k, text))
        for image in images:
            image_id = image_ids[image]
            items = [(tts_augmentation.CAPTION_ID_OFFSET + 10 * image_id + k, text)
                     for k, text in sorted(by_image[image])]
            if not items:
                continue
            spoken = tts_augmentation.speak_texts(items, self.builder_config.tts_seed)
            captions = [{"wav": "", "caption_id": cid, "text": text, "speaker_id": speaker,
                         "audio": audio, "synthetic": True}
                        for (cid, text), (audio, speaker) in zip(items, spoken)]
            yield from mc.image_caption_examples(
                os.path.join(root, IMAGE_DIR, image), captions, image_id=image_id,
                image_size=self.builder_config.image_size, split=tts_augmentation.SPLIT,
                summary=self.build_summary, skip_corrupt=self.skip_corrupt, corpus_root=root)
