"""Builds spoken_coco from its dummy data (real layout) and checks what was written."""

import collections
import importlib.util
import json
import os
import shutil

import numpy as np
import pytest
import tensorflow_datasets as tfds

from tfds_builders import manual_corpus as mc
from tfds_builders.spoken_coco import Builder, SpokenCocoConfig

DUMMY = os.path.join(os.path.dirname(os.path.abspath(__file__)), "dummy_data")
_spec = importlib.util.spec_from_file_location("coco_dummy",
                                               os.path.join(DUMMY, "make_dummy_data.py"))
dummy = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(dummy)


def _build(data_dir, manual_dir=DUMMY, config="tiny", **kwargs):
    builder = Builder(data_dir=str(data_dir), config=config, **kwargs)
    builder.download_and_prepare(
        download_config=tfds.download.DownloadConfig(manual_dir=str(manual_dir)))
    return builder


def _read(builder):
    return {s: sorted((dict(ex) for ex in builder.as_data_source(split=s)),
                      key=lambda ex: int(ex["caption_id"])) for s in builder.info.splits}


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    builder = _build(tmp_path_factory.mktemp("coco"))
    return builder, _read(builder)


def _copy_dummy(tmp_path):
    dst = tmp_path / "manual" / "spoken_coco"  # the <manual>/<name>/ layout
    shutil.copytree(DUMMY, dst, ignore=shutil.ignore_patterns("*.py", "__pycache__"))
    return dst.parent


def _spoken_captions():
    out = {}
    for which in ("train", "val"):
        with open(os.path.join(DUMMY, f"SpokenCOCO/SpokenCOCO_{which}.json")) as f:
            for entry in json.load(f)["data"]:
                for cap in entry["captions"]:
                    out[cap["uttid"]] = (entry["image"], cap)
    return out


def test_karpathy_plus_plus_counts_ids_text_and_audio(built):
    builder, data = built
    assert {s: len(v) for s, v in data.items()} == {"train": 20, "validation": 10, "test": 10}
    assert builder.build_summary.num_skipped == 0
    expected_split = {cocoid: {"restval": "train", "val": "validation"}.get(k, k)
                      for cocoid, _, k in dummy.IMAGES}
    speakers = sorted(dummy.SPEAKERS)
    captions = _spoken_captions()
    seen = set()
    for split, examples in data.items():
        per_image = collections.Counter(int(ex["image_id"]) for ex in examples)
        assert set(per_image.values()) == {5}
        for ex in examples:
            uttid = ex["uttid"].decode()
            image, cap = captions[uttid]
            cocoid, sentid = (int(x) for x in uttid.split("_")[-2:])
            assert int(ex["image_id"]) == cocoid and expected_split[cocoid] == split
            assert int(ex["caption_id"]) == sentid
            assert ex["text"].decode() == cap["text"] and ex["image_file"].decode() == image
            assert int(ex["speaker_id"]) == speakers.index(cap["speaker"])
            assert ex["wav"].decode() == "SpokenCOCO/" + cap["wav"]
            assert ex["image"].shape == (64, 64, 3)
            raw = open(os.path.join(DUMMY, "SpokenCOCO", cap["wav"]), "rb").read()
            np.testing.assert_array_equal(ex["audio"], np.frombuffer(raw[44:], "<i2"))
            seen.add(int(ex["caption_id"]))
    assert len(seen) == 40


def test_other_split_schemes_and_stable_ids(built, tmp_path):
    _, first = built
    again = _read(_build(tmp_path / "again"))
    for split in first:
        assert [(e["caption_id"], e["image_id"]) for e in first[split]] == [
            (e["caption_id"], e["image_id"]) for e in again[split]]
    karpathy = _build(tmp_path / "k", config=SpokenCocoConfig(name="k", image_size=16,
                                                              split_scheme="karpathy"))
    assert {s: len(v) for s, v in _read(karpathy).items()} == {
        "train": 15, "validation": 10, "test": 10}
    assert karpathy.build_summary.skipped[
        ("image", "Karpathy restval not used by karpathy")] == 1
    own = _build(tmp_path / "s", config=SpokenCocoConfig(name="s", image_size=16,
                                                         split_scheme="spokencoco"))
    assert {s: len(v) for s, v in _read(own).items()} == {"train": 15, "validation": 25}


def test_corrupt_image_error_names_the_file_and_skip_counts_it(tmp_path):
    manual = _copy_dummy(tmp_path)
    bad = manual / "spoken_coco/val2014/COCO_val2014_000000000042.jpg"
    bad.write_bytes(b"\xff\xd8\xff\xe0 truncated")
    with pytest.raises(mc.CorruptFileError, match=str(bad)):
        _build(tmp_path / "d1", manual)
    builder = _build(tmp_path / "d2", manual, skip_corrupt=True)
    assert len(_read(builder)["validation"]) == 5
    assert builder.build_summary.skipped[("image", "CorruptFileError")] == 1


def test_missing_wav_and_karpathy_mismatch_fail_fast_or_are_counted(tmp_path):
    manual = _copy_dummy(tmp_path)
    cap = next(c for _, c in _spoken_captions().values() if "_9_" in c["uttid"])
    os.remove(manual / "spoken_coco/SpokenCOCO" / cap["wav"])
    karpathy = json.loads((manual / "spoken_coco/dataset_coco.json").read_text())
    karpathy["images"] = [im for im in karpathy["images"] if im["cocoid"] != 25]
    (manual / "spoken_coco/dataset_coco.json").write_text(json.dumps(karpathy))
    with pytest.raises(mc.MissingFilesError) as err:
        _build(tmp_path / "d1", manual)
    msg = str(err.value)
    assert f"{cap['wav']} (missing WAV file)" in msg
    assert "train2014/COCO_train2014_000000000025.jpg (not in dataset_coco.json)" in msg
    builder = _build(tmp_path / "d2", manual, skip_corrupt=True)
    assert len(_read(builder)["train"]) == 14
    assert builder.build_summary.num_skipped == 2


def test_no_manual_files_and_bad_configs(tmp_path):
    with pytest.raises(mc.MissingFilesError) as err:
        tfds.builder("spoken_coco/raw", data_dir=str(tmp_path)).download_and_prepare()
    msg = str(err.value)
    for name in ("SpokenCOCO/SpokenCOCO_train.json", "val2014", "dataset_coco.json",
                 os.path.join(str(tmp_path), "downloads", "manual", "spoken_coco"),
                 "tfds_builders/spoken_coco/README.md"):
        assert name in msg, name
    with pytest.raises(ValueError, match="split_scheme='karpaty'"):
        SpokenCocoConfig(name="x", split_scheme="karpaty")
    with pytest.raises(ValueError, match="Unknown spoken_coco config 'small'.*'raw', 'tiny'"):
        Builder(data_dir=str(tmp_path), config="small")
