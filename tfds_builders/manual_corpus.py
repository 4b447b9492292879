"""Shared helpers for TFDS builders of manually downloaded corpora (no TensorFlow).

Used by every builder that reads files the user placed in the TFDS manual directory
(`flickr8k_audio`, `spoken_coco`, `places_audio`, ...). Public API:

- `CorruptFileError(ValueError)`, `MissingFilesError(FileNotFoundError)`: errors whose message
  names the file(s) and says what to do.
- `corpus_dir(dl_manager, name, data_dir_root)`: the folder holding one corpus: TFDS 4.9.10 uses
  `<data_dir>/downloads/manual` for every dataset, so we look in `<manual>/<name>/` first and
  fall back to `<manual>/` itself only when `<manual>/<name>/` does not exist.
- `require_files(manual_dir, relpaths, corpus=, readme=)`: fails at once listing every missing path.
- `read_wav_16k(path)`: int16 [n] 16 kHz mono from any PCM/float WAV (floats beyond [-1, 1]
  clipped with a counted warning); repairs broken RIFF/data size fields.
- `read_image(path, size=)`: uint8 [H, W, 3], optionally shorter side -> `size` + centre crop.
- `encode_jpeg(image)`: uint8 [H, W, 3] -> JPEG bytes (TFDS cannot encode numpy images without TF).
- `BuildSummary`: counts of written examples per split and of skipped items per (kind, reason).
- `karpathy_splits(dataset_json)`: Karpathy `dataset_*.json` -> {split: [image dict, ...]}.
- `read_lines(path)`: stripped non-empty lines of a UTF-8 text file (CorruptFileError if not).
- `stable_id(text)`: a 63-bit non-negative int from a string, identical across runs and machines.
- `caption_features(image_size, **extra)`: the shared FeaturesDict (audio, image, ids, text, ...).
- `image_caption_examples(...)`: reads one image + its WAVs and yields TFDS (key, example) pairs.
- `ManualCorpusBuilder`: TFDS base class (array_record, `skip_corrupt` kwarg/config field,
  `build_summary` printed at the end, `corpus_root(dl_manager)`); subclass it, set `README`.
"""

from __future__ import annotations

import collections
import hashlib
import io
import json
import logging
import os
import struct
from typing import Any

import numpy as np
import tensorflow_datasets as tfds

SAMPLE_RATE = 16000
_MAX_LISTED = 20  # missing/skipped paths shown in a message
# Chunks that may follow the samples in a valid WAV (metadata written after `data`).
_TRAILING_CHUNKS = frozenset({b"LIST", b"id3 ", b"ID3 ", b"JUNK", b"PAD ", b"cue ", b"smpl",
                              b"inst", b"bext", b"fact", b"acid", b"labl", b"note", b"iXML",
                              b"_PMX", b"afsp"})


class CorruptFileError(ValueError):
    """A corpus file exists but cannot be read; the message names it and says what to do."""


class MissingFilesError(FileNotFoundError):
    """Corpus files are missing from the manual directory; the message lists them."""


def corpus_dir(dl_manager: Any, name: str, data_dir_root: str) -> str:
    """Returns the directory with corpus `name`: `<manual>/<name>` if it exists, else `<manual>`.

    `<manual>` is the download manager's manual dir (TFDS 4.9.10: `<data_dir>/downloads/manual`,
    or `DownloadConfig(manual_dir=...)`). The property `dl_manager.manual_dir` is avoided because
    it raises a bare AssertionError when the folder is missing; `require_files` reports better.
    """
    manual = getattr(dl_manager, "_manual_dir", None)
    manual = os.fspath(manual) if manual else os.path.join(data_dir_root, "downloads", "manual")
    sub = os.path.join(manual, name)
    if os.path.isdir(sub) or not os.path.isdir(manual):
        return sub
    return manual


def require_files(manual_dir: str, relpaths: list[str], *, corpus: str, readme: str) -> None:
    """Raises MissingFilesError listing every path of `relpaths` absent under `manual_dir`.

    `readme` names the README (and section) that tells how to obtain the files.
    """
    missing = [p for p in relpaths if not os.path.exists(os.path.join(manual_dir, p))]
    if not missing:
        return
    shown = ", ".join(missing)
    # One line, so the file names and the folder stay together in logs and `grep` output.
    raise MissingFilesError(
        f"{corpus}: {len(missing)} required file(s) missing: {shown}. Place them "
        f"(unpacked, layout as distributed) in the manual directory {manual_dir} following "
        f"{readme}, then build again.")


def read_lines(path: str) -> list[str]:
    """Stripped, non-empty lines of a UTF-8 text file; CorruptFileError if it cannot be decoded."""
    try:
        with open(path, encoding="utf-8") as f:
            return [line.strip() for line in f if line.strip()]
    except UnicodeDecodeError as e:
        raise CorruptFileError(f"{path}: not UTF-8 text ({e}); download the file again.") from e


def stable_id(text: str) -> int:
    """A non-negative 63-bit integer derived from `text` (SHA-1), the same on every machine."""
    return int.from_bytes(hashlib.sha1(text.encode("utf-8")).digest()[:8], "big") >> 1


def _riff_chunks(data: bytes):
    """Yields (chunk id, payload offset, declared size) of a RIFF/WAVE byte string."""
    pos = 12
    while pos + 8 <= len(data):
        cid, size = data[pos:pos + 4], struct.unpack("<I", data[pos + 4:pos + 8])[0]
        yield cid, pos + 8, size
        if cid == b"data":
            return
        pos += 8 + size + (size & 1)


def _repair_wav(data: bytes, path: str, repair: bool) -> bytes:
    """Checks the RIFF and data size fields of a WAV; rewrites them to the actual sizes.

    A declared data size that disagrees with the bytes present (the Flickr Audio defect; also
    0 or 0xFFFFFFFF from streaming writers) is replaced by what the file holds, cut to whole
    frames. Raises CorruptFileError when `repair` is False and a size is wrong, or when the
    header has no `fmt `/`data` chunk.
    """
    chunks = {cid: (off, size) for cid, off, size in _riff_chunks(data)}
    if b"fmt " not in chunks or b"data" not in chunks:
        raise CorruptFileError(f"{path}: WAV header has no 'fmt ' or 'data' chunk (truncated or "
                               "not a WAV file); download it again or build with skip_corrupt.")
    fmt_off, _ = chunks[b"fmt "]
    block_align = max(struct.unpack("<H", data[fmt_off + 12:fmt_off + 14])[0], 1)
    data_off, data_size = chunks[b"data"]
    actual = len(data) - data_off
    actual -= actual % block_align
    end = data_off + data_size + (data_size & 1)
    # A declared size that ends exactly at the end of the file, or before another chunk
    # (LIST, id3, ... after the samples) is right; anything else is a broken size field.
    data_ok = data_size <= len(data) - data_off and (
        end >= len(data) or (end + 8 <= len(data) and data[end:end + 4] in _TRAILING_CHUNKS
                             and end + 8 + struct.unpack("<I", data[end + 4:end + 8])[0]
                             <= len(data)))
    riff_ok = struct.unpack("<I", data[4:8])[0] == len(data) - 8
    if data_ok and riff_ok:
        return data
    if not repair:
        raise CorruptFileError(
            f"{path}: WAV header sizes disagree with the file (RIFF size "
            f"{struct.unpack('<I', data[4:8])[0]}, data chunk {data_size} bytes; the file holds "
            f"{len(data) - 8} and {actual}): the header is broken or the file truncated. Read "
            "it with repair_header=True or download it again.")
    if data_ok:
        fixed = bytearray(data)
    else:
        logging.info("Repairing WAV header of %s: data size %d -> %d", path, data_size, actual)
        fixed = bytearray(data[:data_off + actual])
        fixed[data_off - 4:data_off] = struct.pack("<I", actual)
    fixed[4:8] = struct.pack("<I", len(fixed) - 8)
    return bytes(fixed)


def read_wav_16k(path: str, *, repair_header: bool = True) -> np.ndarray:
    """Reads an audio file as int16 [n] mono at 16 kHz.

    WAV size fields that disagree with the file are repaired (see `_repair_wav`) when
    `repair_header`. 16-bit PCM at 16 kHz is returned as stored; every other sample format
    (8-bit unsigned, 24/32-bit PCM, 32/64-bit float, ...) is read as float in [-1, 1] (PCM
    divided by its full scale), several channels are averaged, other rates resampled with soxr
    (HQ), and the result is rounded to int16 (x * 32768). Float samples beyond [-1, 1] (and
    resampler overshoot beyond it) are clipped to int16 full scale with a logged warning that
    names the file and counts the clipped samples.
    Raises CorruptFileError for unreadable, truncated or empty audio, FileNotFoundError if absent.
    """
    import soundfile as sf  # deferred: only builders need it

    if not os.path.exists(path):
        raise FileNotFoundError(f"Audio file {path} does not exist; check the corpus layout.")
    with open(path, "rb") as f:
        data = f.read()
    if len(data) >= 12 and data[:4] == b"RIFF" and data[8:12] == b"WAVE":
        try:
            data = _repair_wav(data, path, repair_header)
        except struct.error as e:  # a chunk header cut off by the end of the file
            raise CorruptFileError(f"{path}: truncated WAV header ({e}); download it again or "
                                   "build with skip_corrupt.") from e
    try:
        with sf.SoundFile(io.BytesIO(data)) as snd:
            rate = snd.samplerate
            # libsndfile converts float samples to int16 without scaling (a [-1, 1] signal
            # becomes zeros): only 16-bit PCM is read as int16, everything else as float64.
            as_stored = rate == SAMPLE_RATE and snd.subtype == "PCM_16"
            wav = snd.read(dtype="int16" if as_stored else "float64", always_2d=True)
    except (RuntimeError, sf.LibsndfileError, struct.error) as e:
        raise CorruptFileError(f"{path}: unreadable audio ({e}); download it again or build "
                               "with skip_corrupt.") from e
    if wav.shape[0] == 0:
        raise CorruptFileError(f"{path}: audio is empty (0 samples); download it again or build "
                               "with skip_corrupt.")
    if as_stored:
        if wav.shape[1] == 1:
            return np.ascontiguousarray(wav[:, 0])
        return np.round(wav.astype(np.float64).mean(axis=1)).astype(np.int16)
    mono = wav.mean(axis=1)
    if rate != SAMPLE_RATE:
        import soxr  # deferred

        mono = soxr.resample(mono, rate, SAMPLE_RATE, quality="HQ")
    return _float_to_int16(mono, path)


def _float_to_int16(x: np.ndarray, path: str) -> np.ndarray:
    """float [n] in [-1, 1] -> int16 round(32768 x), clipping (with a counted warning) beyond."""
    outside = int(np.count_nonzero(np.abs(x) > 1.0))
    if outside:
        logging.warning("%s: %d of %d samples lie outside [-1, 1] (largest |x| %.4g); clipped to "
                        "int16 full scale. Float audio should be scaled to [-1, 1].",
                        path, outside, x.size, float(np.max(np.abs(x))))
    return np.clip(np.round(x * 32768.0), -32768, 32767).astype(np.int16)


def read_image(path: str, *, size: int | None) -> np.ndarray:
    """Reads an image as uint8 [H, W, 3] RGB.

    With `size`, the shorter side is resized to `size` (PIL bicubic) and the centre
    `size` x `size` cropped (odd margins: the extra pixel goes to the right/bottom).
    Raises CorruptFileError for unreadable or truncated files, FileNotFoundError if absent.
    """
    from PIL import Image  # deferred

    if size is not None and size < 1:
        raise ValueError(f"read_image: size={size} must be a positive pixel count or None.")
    if not os.path.exists(path):
        raise FileNotFoundError(f"Image file {path} does not exist; check the corpus layout.")
    try:
        with Image.open(path) as img:
            img.load()
            img = img.convert("RGB")
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as e:
        raise CorruptFileError(f"{path}: unreadable or truncated image ({e}); download it again "
                               "or build with skip_corrupt.") from e
    if size is not None:
        w, h = img.size
        scale = size / min(w, h)
        nw, nh = max(size, round(w * scale)), max(size, round(h * scale))
        img = img.resize((nw, nh), Image.BICUBIC)
        left, top = (nw - size) // 2, (nh - size) // 2
        img = img.crop((left, top, left + size, top + size))
    return np.asarray(img, dtype=np.uint8)


def encode_jpeg(image: np.ndarray, quality: int = 95) -> bytes:
    """uint8 [H, W, 3] -> JPEG bytes (TFDS's Image feature stores them without TensorFlow)."""
    from PIL import Image  # deferred

    image = np.asarray(image)
    if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
        raise ValueError(f"encode_jpeg: need uint8 [H, W, 3], got {image.dtype} {image.shape}.")
    buf = io.BytesIO()
    Image.fromarray(image).save(buf, format="JPEG", quality=quality)
    return buf.getvalue()


class BuildSummary:
    """Counts of examples written per split and of items skipped per (kind, reason).

    `kind` names what was skipped ("audio", "image", "caption", ...). Builders call `written`
    for each yielded example, `check` in the except clause of each file read, and log
    `report()` at the end of the build.
    """

    def __init__(self, corpus: str):
        self.corpus = corpus
        self.written = collections.Counter()  # split -> examples
        self.skipped = collections.Counter()  # (kind, reason) -> count
        self.examples: dict[tuple[str, str], list[str]] = collections.defaultdict(list)

    def add_written(self, split: str, n: int = 1) -> None:
        """Counts `n` examples written to `split`."""
        self.written[split] += n

    def skip(self, kind: str, path: str, reason: str) -> None:
        """Records one skipped item (the first few paths per reason are kept for the report)."""
        self.skipped[(kind, reason)] += 1
        if len(self.examples[(kind, reason)]) < 3:
            self.examples[(kind, reason)].append(path)

    def check(self, skip_corrupt: bool, kind: str, path: str, exc: Exception) -> None:
        """Raises `exc` (a CorruptFileError naming `path`) unless `skip_corrupt`; else counts it."""
        if not skip_corrupt:
            if isinstance(exc, (CorruptFileError, FileNotFoundError)) and path in str(exc):
                raise exc
            raise CorruptFileError(f"{self.corpus}: bad {kind} {path}: {exc}. Fix or remove it, "
                                   "or build with skip_corrupt=True to skip and count it.") from exc
        self.skip(kind, path, type(exc).__name__)

    def check_all(self, skip_corrupt: bool, problems: list[tuple[str, str, str]], *,
                  where: str, readme: str) -> None:
        """Consistency problems (kind, path, reason) found before writing: raise or record.

        Raises MissingFilesError listing the problems (the first 20) unless `skip_corrupt`,
        in which case each is counted as skipped.
        """
        if problems and not skip_corrupt:
            listed = "; ".join(f"{p} ({why})" for _, p, why in problems[:_MAX_LISTED])
            more = (f"; and {len(problems) - _MAX_LISTED} more"
                    if len(problems) > _MAX_LISTED else "")
            raise MissingFilesError(
                f"{self.corpus}: {len(problems)} problem(s) in {where}: {listed}{more}. Restore "
                f"the files ({readme}) or build with skip_corrupt=True to skip and count them.")
        for kind, path, why in problems:
            self.skip(kind, path, why)

    @property
    def num_skipped(self) -> int:
        """Total number of skipped items."""
        return sum(self.skipped.values())

    def report(self) -> str:
        """A multi-line human-readable summary."""
        lines = [f"{self.corpus} build summary:"]
        for split in sorted(self.written):
            lines.append(f"  written {split}: {self.written[split]} examples")
        if not self.skipped:
            lines.append("  skipped: none")
        for (kind, reason), n in sorted(self.skipped.items()):
            eg = ", ".join(self.examples[(kind, reason)])
            lines.append(f"  skipped {kind} ({reason}): {n}, e.g. {eg}")
        return "\n".join(lines)


def karpathy_splits(dataset_json: str) -> dict[str, list[dict]]:
    """Karpathy `dataset_{flickr8k,coco}.json` -> {split: [image dict, ...]} in file order.

    Each image dict has at least `filename`, `split`, `sentids` and `sentences` (each with `raw`
    and `sentid`); COCO entries also `filepath` and `cocoid`. Splits are as in the file
    (`train`, `val`, `test`, COCO also `restval`). Raises CorruptFileError naming the file for
    invalid JSON or a missing field.
    """
    try:
        with open(dataset_json, encoding="utf-8") as f:
            data = json.load(f)
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise CorruptFileError(f"{dataset_json}: not valid JSON ({e}); download it again.") from e
    if not isinstance(data, dict) or not isinstance(data.get("images"), list):
        raise CorruptFileError(f"{dataset_json}: no top-level 'images' list; is this a Karpathy "
                               "split file (dataset_*.json from caption_datasets)?")
    splits: dict[str, list[dict]] = collections.defaultdict(list)
    for i, image in enumerate(data["images"]):
        for key in ("filename", "split", "sentids", "sentences"):
            if key not in image:
                raise CorruptFileError(f"{dataset_json}: images[{i}] lacks field {key!r}; "
                                       "download the Karpathy split file again.")
        splits[image["split"]].append(image)
    return dict(splits)


def caption_features(image_size: int | None, **extra: Any) -> Any:
    """The FeaturesDict shared by image + spoken-caption corpora (plus `extra` features).

    audio int16 [n] at 16 kHz (tfds.features.Audio needs TensorFlow), image uint8
    [S, S, 3] JPEG (or [H, W, 3] when `image_size` is None), image_id / caption_id int64,
    speaker_id int32 (-1 unknown), text, and `wav` / `image_file` (paths in the corpus).
    """
    shape = (image_size, image_size, 3) if image_size else (None, None, 3)
    return tfds.features.FeaturesDict({
        "audio": tfds.features.Tensor(shape=(None,), dtype=np.int16),
        "image": tfds.features.Image(shape=shape, encoding_format="jpeg"),
        "image_id": np.int64,
        "caption_id": np.int64,
        "speaker_id": np.int32,
        "text": tfds.features.Text(),
        "wav": tfds.features.Text(),
        "image_file": tfds.features.Text(),
        **extra,
    })


def image_caption_examples(image_path: str, captions: list[dict], *, image_id: int,
                           image_size: int | None, split: str, summary: BuildSummary,
                           skip_corrupt: bool, corpus_root: str = ""):
    """Yields (key, example) for one image and its spoken captions, reading the files.

    Each caption dict has `wav` (path), `caption_id`, `text`, `speaker_id` and optionally more
    keys (copied into the example). A corrupt image skips all its captions, a corrupt WAV one
    caption (when `skip_corrupt`; otherwise CorruptFileError naming the file). Paths in the
    example are relative to `corpus_root`. Keys are `<image_id>_<caption_id>`.
    """
    try:
        jpeg = encode_jpeg(read_image(image_path, size=image_size))
    except (CorruptFileError, FileNotFoundError) as e:
        summary.check(skip_corrupt, "image", image_path, e)
        return
    for cap in captions:
        try:  # A caption with "audio" (e.g. synthetic speech) and wav "" has no file to read.
            audio = cap["audio"] if "audio" in cap else read_wav_16k(cap["wav"])
        except (CorruptFileError, FileNotFoundError) as e:
            summary.check(skip_corrupt, "audio", cap["wav"], e)
            continue
        example = dict(cap)
        example.update(
            audio=audio, image=jpeg, image_id=image_id,
            wav=os.path.relpath(cap["wav"], corpus_root) if corpus_root and cap["wav"] else cap["wav"],
            image_file=(os.path.relpath(image_path, corpus_root) if corpus_root
                        else image_path))
        summary.add_written(split)
        yield f"{image_id:012d}_{cap['caption_id']:012d}", example


IMAGE_FILE_RELEASE_NOTES = {
    "1.0.0": "Initial release.",
    "1.1.0": "New feature image_file: the image's path relative to the corpus folder of the manual "
             "directory, so vgs_jax.extract_image_features can ten-crop the original image (platalea's recipe)."}
"""RELEASE_NOTES of the builders whose version 1.1.0 added `image_file`."""


class ManualCorpusBuilder(tfds.core.GeneratorBasedBuilder, skip_registration=True):
    """Base of manual-corpus builders: array_record, `skip_corrupt`, build summary.

    Build with `Builder(config=..., skip_corrupt=True)` (or `tfds.builder(name,
    skip_corrupt=True)`) to skip missing, corrupt or unpaired files and count them in
    `self.build_summary` (printed at the end); by default the first one is an error naming it.

    Subclasses set `README` (where the download steps are) and may read
    `self.skip_corrupt` (builder kwarg, else the config's `skip_corrupt` field, else
    False) and `self.build_summary`; `corpus_root(dl_manager)` is their input folder.
    Splits over 1 GB are written without TensorFlow (spoken_shapes.tfds_compat).
    """

    README = ""

    def __init__(self, *, skip_corrupt: bool | None = None, file_format=None, **kwargs):
        config = kwargs.get("config")
        names = [c.name for c in self.BUILDER_CONFIGS]
        if isinstance(config, str) and config not in names:
            raise ValueError(f"Unknown {self.name} config {config!r}; choose one of {names} "
                             "or pass a config object.")
        super().__init__(file_format=file_format or "array_record", **kwargs)
        if skip_corrupt is None:
            skip_corrupt = bool(getattr(self.builder_config, "skip_corrupt", False))
        self.skip_corrupt = skip_corrupt
        self.build_summary = BuildSummary(self.name)

    def nonempty(self, split: str, examples):
        """Passes `examples` through; a split left empty (everything skipped) is a clear error
        instead of TFDS's bare "No examples were yielded"."""
        n = 0
        for n, item in enumerate(examples, 1):
            yield item
        if n == 0:
            raise ValueError(f"{self.name}: split {split!r} has no usable examples (every item was "
                             f"missing, corrupt or skipped); fix the corpus files.\n"
                             f"{self.build_summary.report()}")

    def corpus_root(self, dl_manager) -> str:
        """The folder holding this corpus (see `corpus_dir`)."""
        return corpus_dir(dl_manager, self.name, os.fspath(self.data_dir_root))

    def _download_and_prepare(self, dl_manager, download_config):  # pylint: disable=W0221
        from tfds_builders.spoken_shapes import tfds_compat  # deferred

        self.build_summary = BuildSummary(self.name)
        with tfds_compat.tf_free_shuffle_buckets():
            result = super()._download_and_prepare(dl_manager, download_config)
        report = self.build_summary.report()
        logging.info("%s", report)
        print(report, flush=True)
        return result
