"""Tests of the synthetically_spoken_coco builder on its dummy data (MP3 in a jsonl.gz)."""

import base64
import dataclasses
import gzip
import io
import json
import os
import pathlib
import shutil
import sys

import numpy as np
import pytest
import scipy.signal
import soundfile as sf
import tensorflow_datasets as tfds

from tfds_builders import manual_corpus
from tfds_builders.synthetically_spoken_coco import Builder, decode_mp3_16k

DUMMY = pathlib.Path(__file__).parent / "dummy_data"
IMAGES = {"train": {9, 25, 30}, "validation": {42}, "test": {73}}


def _build(data_dir, manual=DUMMY, **kwargs):
    config = dataclasses.replace(Builder.builder_configs["default"], name="tiny32", image_size=32)
    builder = Builder(config=config, data_dir=data_dir, **kwargs)
    builder.download_and_prepare(
        download_config=tfds.download.DownloadConfig(manual_dir=os.fspath(manual)))
    out = {}
    for split in IMAGES:
        src = builder.as_data_source(split=split)
        out[split] = [src[i] for i in range(len(src))]
    return builder, out


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    return _build(tmp_path_factory.mktemp("sscoco"))[1]


def test_counts_two_captions_per_image_and_types(built):
    for split, images in IMAGES.items():
        ids = [e["image_id"] for e in built[split]]
        assert len(ids) == 2 * len(images) and set(ids) == images
        assert all(ids.count(i) == 2 for i in images)
        for e in built[split]:
            assert e["audio"].dtype == np.int16 and 0.28 < e["audio"].shape[0] / 16000 < 0.4
            assert np.abs(e["audio"].astype(int)).max() > 3000  # the tone, not silence
            assert e["image"].shape == (32, 32, 3) and e["speaker_id"] == 0
            # the original image, relative to the corpus folder (for extract_image_features)
            assert e["image_file"].decode().endswith(f"{e['image_id']:012d}.jpg")
            assert (DUMMY / e["image_file"].decode()).is_file()
    assert "tensorflow" not in sys.modules


def test_ids_stable_and_text(built, tmp_path):
    exs = [e for split in built.values() for e in split]
    assert sorted(e["caption_id"] for e in exs) == list(range(10))
    first = {e["caption_id"]: e for e in exs}
    assert first[0]["text"] == b"A dog sits on a table." and first[1]["text"] == b"Two cats."
    _, again = _build(tmp_path)
    for split, exs1 in built.items():
        assert [(e["caption_id"], e["image_id"]) for e in exs1] == [
            (e["caption_id"], e["image_id"]) for e in again[split]]
        assert all(np.array_equal(a["audio"], b["audio"]) for a, b in zip(exs1, again[split]))


def test_alignments_where_known_within_audio(built):
    by_id = {e["caption_id"]: e for split in built.values() for e in split}
    assert [w.decode() for w in by_id[1]["words"]["word"]] == ["two", "cats"]
    np.testing.assert_allclose(by_id[1]["words"]["start"], [0.03, 0.1], atol=1e-6)
    assert len(by_id[0]["words"]["word"]) == 6 and len(by_id[5]["words"]["word"]) == 0
    for e in by_id.values():
        assert np.all(np.asarray(e["words"]["end"]) <= e["audio"].shape[0] / 16000 + 1e-6)


def test_decode_mp3_matches_soundfile_plus_polyphase_resampling():
    rate, t = 24000, np.arange(7200) / 24000
    buf = io.BytesIO()
    sf.write(buf, (0.4 * np.sin(2 * np.pi * 300 * t)).astype(np.float32), rate, format="MP3")
    ours = decode_mp3_16k(buf.getvalue(), "x").astype(float) / 32768
    ref, ref_rate = sf.read(io.BytesIO(buf.getvalue()), dtype="float32")
    assert ref_rate == rate
    slow = scipy.signal.resample_poly(ref.astype(float), 2, 3)  # 24 kHz -> 16 kHz
    assert abs(len(ours) - len(slow)) <= 1
    n = min(len(ours), len(slow))
    assert np.max(np.abs(ours[200:n - 200] - slow[200:n - 200])) < 0.01
    with pytest.raises(manual_corpus.CorruptFileError, match="here: undecodable"):
        decode_mp3_16k(b"\x00" * 100, "here")


def _rewrite_audio(manual, edit):
    path = manual / "dataset.mp3.jsonl.gz"
    lines = [json.loads(x) for x in gzip.open(path, "rt")]
    with gzip.open(path, "wt") as f:
        f.write("".join(json.dumps(x) + "\n" for x in edit(lines)))


def test_unpaired_corrupt_and_missing_image_error_or_skip(tmp_path):
    manual = tmp_path / "manual"
    shutil.copytree(DUMMY, manual, ignore=shutil.ignore_patterns("*.py"))

    def edit(lines):
        lines = [x for x in lines if x["sentid"] != 3]  # caption 3 without audio
        lines[0]["speech"] = base64.b64encode(b"not an mp3 at all" * 10).decode()  # corrupt
        return lines + [{"sentid": 99, "speech": lines[1]["speech"]}]  # audio without caption

    _rewrite_audio(manual, edit)
    (manual / "images/train2014/COCO_train2014_000000000030.jpg").unlink()  # named by split
    with pytest.raises(manual_corpus.CorruptFileError, match=r"line 10: sentid 99 is not in"):
        _build(tmp_path / "d1", manual)
    builder, exs = _build(tmp_path / "d2", manual, skip_corrupt=True)
    assert [len(exs[s]) for s in IMAGES] == [2, 2, 2]
    assert sorted(e["caption_id"] for e in exs["train"]) == [1, 2]
    assert builder.build_summary.num_skipped == 5  # 1 + 1 + 1 corrupt + 2 captions of image 30
    report = builder.build_summary.report()
    assert "sentid 3" in report and "line 1 (sentid 0)" in report and "000000000030" in report
    (manual / "images/val2014/COCO_val2014_000000000073.jpg").unlink()  # empties split test
    with pytest.raises(ValueError, match=r"split 'test' has no usable examples"):
        _build(tmp_path / "d4", manual, skip_corrupt=True)
    _rewrite_audio(manual, lambda lines: [x for x in lines if x["sentid"] != 99])
    with pytest.raises(manual_corpus.CorruptFileError, match="without audio dataset.json sentid 3"):
        _build(tmp_path / "d3", manual)


def test_truncated_archive_and_bad_alignment_name_the_file(tmp_path):
    manual = tmp_path / "manual"
    shutil.copytree(DUMMY, manual, ignore=shutil.ignore_patterns("*.py"))
    meta = json.loads((manual / "synth-coco-metadata.json").read_text())
    meta["1"]["forced_alignments"]["words"][-1]["end"] = 3.0
    (manual / "synth-coco-metadata.json").write_text(json.dumps(meta))
    with pytest.raises(manual_corpus.CorruptFileError, match=r"sentid 1\).*'cats'"):
        _build(tmp_path / "d1", manual)
    data = (manual / "dataset.mp3.jsonl.gz").read_bytes()
    (manual / "dataset.mp3.jsonl.gz").write_bytes(data[:len(data) // 2])
    with pytest.raises(manual_corpus.CorruptFileError, match="dataset.mp3.jsonl.gz: unreadable"):
        _build(tmp_path / "d2", manual)
    with pytest.raises(manual_corpus.MissingFilesError, match="dataset.json"):
        _build(tmp_path / "d3", tmp_path / "nothing")
