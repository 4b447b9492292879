"""Tests of the speech_coco builder on its dummy data (karpathy and coco2014 splits)."""

import dataclasses
import json
import os
import pathlib
import shutil
import sys

import numpy as np
import pytest
import tensorflow_datasets as tfds

from tfds_builders import manual_corpus
from tfds_builders.speech_coco import SPEAKERS, Builder, words_from_timecode

DUMMY = pathlib.Path(__file__).parent / "dummy_data"
IMAGES = {"karpathy": {"train": {9, 25, 30}, "validation": {42}, "test": {73, 74}},
          "coco2014": {"train": {9, 25, 30}, "validation": {42, 73, 74}}}


def _build(scheme, data_dir, manual=DUMMY, **kwargs):
    config = dataclasses.replace(Builder.builder_configs[scheme], name=f"{scheme}_32",
                                 image_size=32)
    builder = Builder(config=config, data_dir=data_dir, **kwargs)
    builder.download_and_prepare(
        download_config=tfds.download.DownloadConfig(manual_dir=os.fspath(manual)))
    out = {}
    for split in IMAGES[scheme]:
        src = builder.as_data_source(split=split)
        out[split] = [src[i] for i in range(len(src))]
    return builder, out


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    root = tmp_path_factory.mktemp("speech_coco")
    return {scheme: _build(scheme, root / scheme)[1] for scheme in IMAGES}


def test_counts_captions_per_image_and_types(built):
    for scheme, splits in IMAGES.items():
        for split, images in splits.items():
            exs = built[scheme][split]
            assert len(exs) == 2 * len(images), (scheme, split)
            ids = [e["image_id"] for e in exs]
            assert set(ids) == images and all(ids.count(i) == 2 for i in images)
            for e in exs:
                assert e["audio"].dtype == np.int16 and e["audio"].shape == (4000,)  # 0.25 s
                assert e["image"].dtype == np.uint8 and e["image"].shape == (32, 32, 3)
                # the original image, relative to the corpus folder (for extract_image_features)
                assert e["image_file"].decode().endswith(f"{e['image_id']:012d}.jpg")
                assert (DUMMY / e["image_file"].decode()).is_file()
    assert "tensorflow" not in sys.modules


def test_ids_unique_stable_and_metadata(built, tmp_path):
    exs = [e for split in built["karpathy"].values() for e in split]
    assert sorted(e["caption_id"] for e in exs) == list(range(100, 112))
    e = {x["caption_id"]: x for x in exs}[101]
    assert e["text"] == b"um a red table" and e["speaker"] == b"Amanda"
    assert SPEAKERS[e["speaker_id"]] == "Amanda" and e["disfluency"] == b"Beginning"
    assert e["wav_file"] == b"9_101_Amanda_Beginning_0-9.wav"
    np.testing.assert_allclose(e["speed"], 0.9)
    _, again = _build("karpathy", tmp_path)
    for split, exs1 in built["karpathy"].items():
        assert [x["caption_id"] for x in exs1] == [x["caption_id"] for x in again[split]]
        assert all(np.array_equal(a["audio"], b["audio"]) for a, b in zip(exs1, again[split]))


def test_words_within_audio_and_match_text(built):
    for split in built["coco2014"].values():
        for e in split:
            words = e["words"]
            assert [w.decode() for w in words["word"]] == e["text"].decode().split()
            start, end = np.asarray(words["start"]), np.asarray(words["end"])
            assert np.all(start < end) and np.all(end[:-1] <= start[1:])
            assert start[0] >= 0 and end[-1] <= e["audio"].shape[0] / 16000 + 1e-6


def test_words_from_timecode_by_hand():
    timecode = [[0, "SYL", ""], [0, "SEPR", " "], [100, "WORD", "a"], [100, "PHO", "@"],
                [150, "SYL", ""], [150, "SEPR", " "], [150, "WORD", "table"], [150, "PHO", "t"],
                [200, "PHO", "eI"], [250, "SYL", ""], [250, "PHO", "b"], [300, "PHO", "l"],
                [380, "SYL", ""], [380, "SEPR", " "], [400, "SIL", ""], [420, "WORD", "end"],
                [420, "PHO", "E"], [470, "PHO", "nd"], [520, "SYL", ""]]
    assert words_from_timecode(timecode, "x") == (("a", 0.1, 0.15), ("table", 0.15, 0.38),
                                                  ("end", 0.42, 0.52))
    assert words_from_timecode([[5, "WORD", "um"], [5, "SEPR", " "]], "x") == ()  # no phones
    with pytest.raises(manual_corpus.CorruptFileError, match="where.json: bad 'timecode'"):
        words_from_timecode([[1, "WORD"]], "where.json")


def _copy(tmp_path):
    manual = tmp_path / "manual"
    shutil.copytree(DUMMY, manual, ignore=shutil.ignore_patterns("*.py"))
    return manual


def test_unpaired_and_corrupt_files_error_or_skip(tmp_path):
    manual = _copy(tmp_path)
    train = manual / "CORPUS-MSCOCO/train2014"
    (train / "wav/9_100_Phil_None_1-0.wav").unlink()  # caption without audio
    (train / "json/25_102_Phil_None_1-0.json").unlink()  # audio without caption
    (train / "wav/30_104_Phil_None_1-0.wav").write_bytes(b"RIFF....WAVEjunk")  # corrupt
    (manual / "images/val2014/COCO_val2014_000000000073.jpg").unlink()  # split names it
    with pytest.raises(FileNotFoundError, match="25_102_Phil_None_1-0.wav has no caption"):
        _build("karpathy", tmp_path / "d1", manual)
    builder, exs = _build("karpathy", tmp_path / "d2", manual, skip_corrupt=True)
    assert len(exs["train"]) == 3 and len(exs["validation"]) == 2 and len(exs["test"]) == 2
    assert builder.build_summary.num_skipped == 5  # 2 unpaired + 1 corrupt + 2 captions of image 73
    report = builder.build_summary.report()
    for name in ("9_100_Phil", "25_102_Phil", "30_104_Phil", "COCO_val2014_000000000073"):
        assert name in report
    (train / "wav/25_102_Phil_None_1-0.wav").unlink()
    (train / "json/9_100_Phil_None_1-0.json").unlink()
    with pytest.raises(manual_corpus.CorruptFileError, match="30_104_Phil_None_1-0.wav"):
        _build("karpathy", tmp_path / "d3", manual)


def test_bad_json_and_late_alignment_name_the_file(tmp_path):
    manual = _copy(tmp_path)
    path = manual / "CORPUS-MSCOCO/val2014/json/42_106_Phil_None_1-0.json"
    meta = json.loads(path.read_text())
    meta["timecode"].append([900.0, "WORD", "late"])
    meta["timecode"] += [[900.0, "PHO", "l"], [950.0, "SEPR", " "]]
    path.write_text(json.dumps(meta))
    with pytest.raises(manual_corpus.CorruptFileError, match=r"42_106.*'late' ends at 0.950 s"):
        _build("coco2014", tmp_path / "d1", manual)
    path.write_text("{not json")
    with pytest.raises(manual_corpus.CorruptFileError, match="42_106_Phil_None_1-0.json"):
        _build("coco2014", tmp_path / "d2", manual)


def test_missing_files_and_bad_config(tmp_path):
    manual = _copy(tmp_path)
    (manual / "dataset_coco.json").unlink()
    with pytest.raises(manual_corpus.MissingFilesError, match="dataset_coco.json"):
        _build("karpathy", tmp_path / "d", manual)
    with pytest.raises(ValueError, match=r"'nope'.*\['karpathy', 'coco2014'\]"):
        Builder(config="nope", data_dir=tmp_path)
    with pytest.raises(ValueError, match="split_scheme='x'"):
        dataclasses.replace(Builder.builder_configs["karpathy"], split_scheme="x")
