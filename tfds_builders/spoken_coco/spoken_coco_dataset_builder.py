"""TFDS builder for `spoken_coco`: MS-COCO 2014 images with SpokenCOCO spoken captions.

One example = one spoken caption (16 kHz int16 waveform) with its image (shorter side resized to
`image_size`, centre-cropped, JPEG), its text, speaker and ids. Reads the files the user placed
in the TFDS manual directory (`MANUAL_DOWNLOAD_INSTRUCTIONS`, README.md section "Getting the
data"); writes array_record (no TensorFlow).

Splits (config `split_scheme`), as platalea builds them by joining SpokenCOCO with Karpathy's
`dataset_coco.json` on the image path `<filepath>/<filename>`:
- `karpathy++` (default, platalea's default): train = Karpathy `train` + `restval`,
  validation = Karpathy `val` (5000 images), test = Karpathy `test` (5000 images);
- `karpathy`: the same without `restval` (those images are counted as skipped);
- `spokencoco`: SpokenCOCO's own files, train = SpokenCOCO_train.json, validation =
  SpokenCOCO_val.json, no test split.
Ids: `image_id` = the COCO id in the file name, `caption_id` = the last `_` field of `uttid`
(the COCO/Karpathy sentence id, as platalea reads it), `speaker_id` = rank of the speaker string
among all speakers of both JSON files (sorted).

Config `karpathy_tts` (TTS augmentation, Ilharco et al. 2019): also a split `train_tts`, the text of every
SpokenCOCO caption of the train images (the COCO caption read aloud, lowercased for the synthesiser) spoken by
the espeak-ng TTS voices of tfds_builders/spoken_shapes/tts_augmentation.py, with `caption_id` + 10^9, `wav`
and `uttid` "", `speaker` "tts/<variant>", `speaker_id` = number of real speakers + the voice's index, and a
feature `synthetic` (True only there). `text` and `image_id` are the real caption's.
"""

from __future__ import annotations

import collections
import dataclasses
import json
import os

import tensorflow_datasets as tfds

import numpy as np

from tfds_builders import manual_corpus as mc
from tfds_builders.spoken_shapes import tts_augmentation

README = "tfds_builders/spoken_coco/README.md, section 'Getting the data'"
SPOKEN_DIR = "SpokenCOCO"
SPOKEN_JSONS = {"train": "SpokenCOCO/SpokenCOCO_train.json",
                "val": "SpokenCOCO/SpokenCOCO_val.json"}
IMAGE_DIRS = ("train2014", "val2014")
KARPATHY_JSON = "dataset_coco.json"
SCHEMES = {  # split scheme -> {Karpathy split: our split}
    "karpathy++": {"train": "train", "restval": "train", "val": "validation", "test": "test"},
    "karpathy": {"train": "train", "val": "validation", "test": "test"},
}

_CITATION = """\
@inproceedings{hsu2021text,
  title = {Text-Free Image-to-Speech Synthesis Using Learned Segmental Units},
  author = {Hsu, Wei-Ning and Harwath, David and Miller, Tyler and Song, Christopher and
            Glass, James},
  booktitle = {ACL}, year = {2021}}
@inproceedings{lin2014microsoft,
  title = {Microsoft {COCO}: Common Objects in Context},
  author = {Lin, Tsung-Yi and others}, booktitle = {ECCV}, year = {2014}}
"""


@dataclasses.dataclass(eq=False)
class SpokenCocoConfig(tfds.core.BuilderConfig):
    """image_size: side of the stored square image. split_scheme: "karpathy++", "karpathy" or
    "spokencoco" (see the module docstring). skip_corrupt: skip (and count) unreadable or
    missing files instead of stopping with an error naming them. tts: also write `train_tts` (the train
    captions' text spoken by TTS voices, seed `tts_seed`).
    """

    image_size: int = 224
    split_scheme: str = "karpathy++"
    skip_corrupt: bool = False
    tts: bool = False
    tts_seed: int = 0

    def __post_init__(self):
        if self.split_scheme not in (*SCHEMES, "spokencoco"):
            raise ValueError(f"SpokenCocoConfig {self.name!r}: split_scheme="
                             f"{self.split_scheme!r}; use one of {[*SCHEMES, 'spokencoco']}.")
        if self.image_size < 1:
            raise ValueError(f"SpokenCocoConfig {self.name!r}: image_size={self.image_size} "
                             "must be a positive number of pixels.")


def _load_spoken(path: str) -> list[dict]:
    """The `data` list of a SpokenCOCO JSON; CorruptFileError naming the file if malformed."""
    try:
        with open(path, encoding="utf-8") as f:
            data = json.load(f)["data"]
    except (json.JSONDecodeError, UnicodeDecodeError, KeyError, TypeError) as e:
        raise mc.CorruptFileError(f"{path}: not a SpokenCOCO JSON with a 'data' list ({e!r}); "
                                  "download SpokenCOCO again.") from e
    for i, entry in enumerate(data):
        caps = entry.get("captions") if isinstance(entry, dict) else None
        if "image" not in entry or not isinstance(caps, list) or not all(
                isinstance(c, dict) and {"wav", "uttid", "text", "speaker"} <= c.keys()
                for c in caps):
            raise mc.CorruptFileError(f"{path}: data[{i}] lacks 'image' or 'captions' with "
                                      "wav/uttid/text/speaker; download SpokenCOCO again.")
    return data


def _int_field(value: str, what: str, path: str) -> int:
    if not value.isdigit():
        raise mc.CorruptFileError(f"{path}: cannot read {what} from {value!r} (expected digits); "
                                  "is this the SpokenCOCO release described in the README?")
    return int(value)


class Builder(mc.ManualCorpusBuilder):
    """spoken_coco: one example per SpokenCOCO spoken caption of a COCO 2014 image."""

    VERSION = tfds.core.Version("1.0.0")
    RELEASE_NOTES = {"1.0.0": "Initial release."}
    README = README
    BUILDER_CONFIGS = [
        SpokenCocoConfig(name="raw", description="Karpathy++ split, 224x224 JPEG images."),
        SpokenCocoConfig(name="tiny", image_size=64,
                         description="Karpathy++ split, 64x64 images (tests, dummy data)."),
        SpokenCocoConfig(name="karpathy_tts", tts=True, description=(
            "Karpathy++ split, 224x224 images, plus train_tts: the train captions' text spoken by TTS voices.")),
    ]
    DEFAULT_BUILDER_CONFIG_NAME = "raw"
    MANUAL_DOWNLOAD_INSTRUCTIONS = f"""\
    Place these in <data_dir>/downloads/manual/spoken_coco/ (unpacked, as distributed):
      {SPOKEN_JSONS['train']}, {SPOKEN_JSONS['val']}, {SPOKEN_DIR}/wavs/...: SpokenCOCO.tar.gz
        from https://data.csail.mit.edu/placesaudio/SpokenCOCO.tar.gz (page:
        https://sls.csail.mit.edu/downloads/placesaudio/downloads.cgi)
      train2014/*.jpg, val2014/*.jpg: COCO 2014 images, train2014.zip and val2014.zip from
        https://cocodataset.org/#download
      {KARPATHY_JSON} (split schemes karpathy / karpathy++): caption_datasets.zip from
        https://cs.stanford.edu/people/karpathy/deepimagesent/
    Details: {README}.
    """

    def _info(self) -> tfds.core.DatasetInfo:
        text = tfds.features.Text
        return self.dataset_info_from_configs(
            description=__doc__,
            features=mc.caption_features(self.builder_config.image_size,
                                         uttid=text(), speaker=text(),
                                         **({"synthetic": np.bool_} if self.builder_config.tts else {})),
            supervised_keys=None,
            homepage="https://sls.csail.mit.edu/downloads/placesaudio/downloads.cgi",
            citation=_CITATION,
        )

    def _split_of(self, root: str) -> dict[str, str]:
        """{image path relative to root: our split} for the configured scheme."""
        scheme = self.builder_config.split_scheme
        if scheme == "spokencoco":
            return {}
        split_of = {}
        for k_split, images in mc.karpathy_splits(os.path.join(root, KARPATHY_JSON)).items():
            for im in images:
                path = f"{im.get('filepath', '')}/{im['filename']}".lstrip("/")
                split_of[path] = SCHEMES[scheme].get(k_split, f"<{k_split}>")
        return split_of

    def _split_generators(self, dl_manager):
        root = self.corpus_root(dl_manager)
        scheme = self.builder_config.split_scheme
        required = [*SPOKEN_JSONS.values(), *IMAGE_DIRS]
        if scheme != "spokencoco":
            required.append(KARPATHY_JSON)
        mc.require_files(root, required, corpus="spoken_coco", readme=README)
        summary, skip = self.build_summary, self.skip_corrupt
        split_of = self._split_of(root)
        entries = {name: _load_spoken(os.path.join(root, rel))
                   for name, rel in SPOKEN_JSONS.items()}
        speakers = sorted({c["speaker"] for data in entries.values()
                           for e in data for c in e["captions"]})
        speaker_ids = {s: i for i, s in enumerate(speakers)}
        splits = collections.defaultdict(list)  # split -> [(image rel path, image id, captions)]
        texts = {}  # image rel path -> [(caption id, text)] of every caption, WAV or not (for train_tts)
        problems, seen_captions = [], {}
        for name, data in entries.items():
            json_path = os.path.join(root, SPOKEN_JSONS[name])
            for entry in data:
                image = entry["image"]
                if scheme == "spokencoco":
                    split = "train" if name == "train" else "validation"
                elif image not in split_of:
                    problems.append(("image", image, f"not in {KARPATHY_JSON}"))
                    continue
                else:
                    split = split_of.pop(image)
                if split.startswith("<"):
                    summary.skip("image", image, f"Karpathy {split[1:-1]} not used by {scheme}")
                    continue
                if not os.path.exists(os.path.join(root, image)):
                    problems.append(("image", image, "missing image file"))
                    continue
                stem = os.path.splitext(os.path.basename(image))[0]
                image_id = _int_field(stem.rsplit("_", 1)[-1], "the COCO id", json_path)
                captions = []
                for cap in entry["captions"]:
                    wav = os.path.join(SPOKEN_DIR, cap["wav"])
                    cid = _int_field(cap["uttid"].rsplit("_", 1)[-1], "the sentence id",
                                     json_path)
                    if cid in seen_captions:
                        raise mc.CorruptFileError(
                            f"{json_path}: uttid {cap['uttid']!r} and {seen_captions[cid]!r} "
                            f"share the sentence id {cid}; caption ids must be unique.")
                    seen_captions[cid] = cap["uttid"]
                    texts.setdefault(image, []).append((cid, cap["text"]))
                    if not os.path.exists(os.path.join(root, wav)):
                        problems.append(("audio", wav, "missing WAV file"))
                        continue
                    captions.append({"wav": os.path.join(root, wav), "caption_id": cid,
                                     "text": cap["text"], "uttid": cap["uttid"],
                                     "speaker": cap["speaker"],
                                     "speaker_id": speaker_ids[cap["speaker"]],
                                     **({"synthetic": False} if self.builder_config.tts else {})})
                splits[split].append((image, image_id, captions))
        for image, split in split_of.items():  # Karpathy images without spoken captions
            if not split.startswith("<"):
                problems.append(("image", image, "no spoken captions in SpokenCOCO"))
        summary.check_all(skip, problems, where=root, readme=README)
        names = ["train", "validation"] + ([] if scheme == "spokencoco" else ["test"])
        for split in [s for s in names if not any(caps for _, _, caps in splits[s])]:
            summary.skip("split", split, "no examples left")  # TFDS cannot write empty splits
            names.remove(split)
        out = {split: self._generate_examples(root, split, splits[split]) for split in names}
        if self.builder_config.tts and "train" in names:
            out[tts_augmentation.SPLIT] = self._generate_tts(root, splits["train"], texts, len(speakers))
        return out

    def _generate_examples(self, root, split, images):
        for image, image_id, captions in images:
            yield from mc.image_caption_examples(
                os.path.join(root, image), captions, image_id=image_id,
                image_size=self.builder_config.image_size, split=split,
                summary=self.build_summary, skip_corrupt=self.skip_corrupt, corpus_root=root)

    def _generate_tts(self, root, images, texts, num_speakers):
        """train_tts: the text of each caption of the train images, spoken by a TTS voice."""
        tts_ids = {s.speaker_id: k for k, s in enumerate(tts_augmentation.speakers("en"))}
        variants = [s.variant for s in tts_augmentation.speakers("en")]
        for image, image_id, _ in images:
            items = [(tts_augmentation.CAPTION_ID_OFFSET + cid, text) for cid, text in texts[image] if text.strip()]
            if not items:
                continue
            spoken = tts_augmentation.speak_texts([(cid, text.lower()) for cid, text in items],
                                                  self.builder_config.tts_seed)
            captions = [{"wav": "", "caption_id": cid, "text": text, "uttid": "",
                         "speaker": f"tts/{variants[tts_ids[speaker]]}",
                         "speaker_id": num_speakers + tts_ids[speaker], "audio": audio, "synthetic": True}
                        for (cid, text), (audio, speaker) in zip(items, spoken)]
            yield from mc.image_caption_examples(
                os.path.join(root, image), captions, image_id=image_id,
                image_size=self.builder_config.image_size, split=tts_augmentation.SPLIT,
                summary=self.build_summary, skip_corrupt=self.skip_corrupt, corpus_root=root)
