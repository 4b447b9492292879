"""Tests of the places_audio builder on its dummy data (english, hindi, bilingual)."""

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
from tfds_builders.places_audio import Builder, parse_alignment

DUMMY = pathlib.Path(__file__).parent / "dummy_data"
COUNTS = {"english": {"train": 4, "validation": 2}, "hindi": {"train": 3, "validation": 1},
          "bilingual": {"train": 2, "validation": 1}}


def _config(language):
    return dataclasses.replace(Builder.builder_configs[language], name=f"{language}_32",
                               image_size=32)


def _build(language, data_dir, manual=DUMMY, **kwargs):
    builder = Builder(config=_config(language), data_dir=data_dir, **kwargs)
    builder.download_and_prepare(
        download_config=tfds.download.DownloadConfig(manual_dir=os.fspath(manual)))
    data = {split: builder.as_data_source(split=split) for split in COUNTS[language]}
    return builder, {s: [src[i] for i in range(len(src))] for s, src in data.items()}


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    root = tmp_path_factory.mktemp("places")
    return {lang: _build(lang, root / lang)[1] for lang in COUNTS}


def test_counts_one_caption_per_image_and_fields(built):
    for language, counts in COUNTS.items():
        for split, n in counts.items():
            exs = built[language][split]
            assert len(exs) == n, (language, split)
            assert len({e["image_id"] for e in exs}) == n  # one caption per image here
            for e in exs:
                assert e["audio"].dtype == np.int16 and e["audio"].shape == (4800,)
                assert e["image"].dtype == np.uint8 and e["image"].shape == (32, 32, 3)
    assert "tensorflow" not in sys.modules


def test_ids_unique_stable_and_text(built, tmp_path):
    exs = built["english"]["train"] + built["english"]["validation"]
    assert sorted(e["caption_id"] for e in exs) == list(range(6))  # metadata order
    assert len({e["image_id"] for e in exs}) == 6
    by_id = {e["caption_id"]: e for e in exs}
    assert by_id[0]["text"] == b"a big airport" and by_id[3]["text"] == b""
    assert by_id[0]["speaker"] == b"A1SPKR" and by_id[2]["speaker_id"] == by_id[0]["speaker_id"]
    assert by_id[4]["image_file"].startswith(b"images256/m/mountain/gsun_")  # relative to the corpus folder
    assert all((DUMMY / e["image_file"].decode()).is_file() for e in exs)
    _, again = _build("english", tmp_path)
    for split in COUNTS["english"]:
        for a, b in zip(built["english"][split], again[split]):
            assert (a["caption_id"], a["image_id"], a["uttid"]) == (
                b["caption_id"], b["image_id"], b["uttid"])
            assert np.array_equal(a["audio"], b["audio"])


def test_alignments_parsed_and_within_audio(built):
    by_id = {e["caption_id"]: e for e in built["english"]["train"]}
    words = by_id[0]["words"]
    assert [w.decode() for w in words["word"]] == ["A", "BIG", "AIRPORT"]
    np.testing.assert_allclose(words["start"], [0.02, 0.05, 0.15], atol=1e-6)
    np.testing.assert_allclose(words["end"], [0.05, 0.15, 0.29], atol=1e-6)
    for e in built["english"]["train"]:
        duration = e["audio"].shape[0] / 16000
        assert np.all(np.asarray(e["words"]["end"]) <= duration + 1e-6)
        assert np.all(np.asarray(e["words"]["start"]) <= np.asarray(e["words"]["end"]))
    assert len(by_id[2]["words"]["word"]) == 0  # no alignment in the metadata -> empty


def test_bilingual_pairs_english_and_hindi_of_the_same_image(built):
    english = {e["image_file"]: e for s in COUNTS["english"] for e in built["english"][s]}
    hindi = {e["caption_id"]: e for s in COUNTS["hindi"] for e in built["hindi"][s]}
    for split in COUNTS["bilingual"]:
        for e in built["bilingual"][split]:
            en, hi = english[e["image_file"]], hindi[e["caption_id"]]
            assert e["caption_id_english"] == en["caption_id"]
            assert np.array_equal(e["audio"], en["audio"])
            assert np.array_equal(e["audio_hindi"], hi["audio"])
            assert e["text_hindi"] == hi["text"] and e["text"] == en["text"]
            assert not np.array_equal(e["audio"], e["audio_hindi"])
    assert "राजमार्ग" not in {e["text_hindi"].decode() for e in built["bilingual"]["train"]}


def test_parse_alignment_and_errors():
    assert parse_alignment("0.5__DOG__0.75  0.75__RUNS__1.0", "x") == (
        ("DOG", 0.5, 0.75), ("RUNS", 0.75, 1.0))
    with pytest.raises(manual_corpus.CorruptFileError, match=r"here.*'0.5__DOG'"):
        parse_alignment("0.5__DOG", "here")
    with pytest.raises(manual_corpus.CorruptFileError, match="start > end"):
        parse_alignment("0.9__DOG__0.5", "here")


def _copy_dummy(tmp_path):
    manual = tmp_path / "manual"
    shutil.copytree(DUMMY, manual, ignore=shutil.ignore_patterns("*.py"))
    return manual


def test_corrupt_and_missing_files_error_or_skip(tmp_path):
    manual = _copy_dummy(tmp_path)
    bad_wav = manual / "PlacesAudio_400k_distro/wavs/0/utterance_1001.wav"
    bad_wav.write_bytes(b"RIFF\x00\x00")
    missing_image = manual / "images256/c/coast/gsun_00000000000000000000000000000002.jpg"
    missing_image.unlink()
    with pytest.raises(manual_corpus.CorruptFileError, match="utterance_1001.wav"):
        _build("english", tmp_path / "d1", manual)
    bad_wav.unlink()  # now the first problem is a caption without audio
    with pytest.raises(FileNotFoundError, match="utterance_1001.wav"):
        _build("english", tmp_path / "d2", manual)
    builder, exs = _build("english", tmp_path / "d3", manual, skip_corrupt=True)
    assert len(exs["train"]) == 2 and len(exs["validation"]) == 2
    assert builder.build_summary.num_skipped == 2
    report = builder.build_summary.report()
    assert "utterance_1001.wav" in report and "gsun_00000000000000000000000000000002" in report
    assert sorted(e["caption_id"] for e in exs["train"]) == [0, 3]  # ids unchanged by skipping


def test_alignment_past_the_audio_end_is_an_error(tmp_path):
    manual = _copy_dummy(tmp_path)
    path = manual / "PlacesAudio_400k_distro/metadata/train.json"
    meta = json.loads(path.read_text())
    meta["data"][0]["text_alignment"] = "0.0__A__0.1 0.1__LONG__2.5"
    path.write_text(json.dumps(meta))
    with pytest.raises(manual_corpus.CorruptFileError, match=r"'LONG' ends at 2.500 s"):
        _build("english", tmp_path / "d1", manual)


def test_missing_metadata_and_bad_config(tmp_path):
    with pytest.raises(manual_corpus.MissingFilesError, match="PlacesHindi100k/metadata/val.json"):
        _build("hindi", tmp_path / "d", tmp_path / "empty")
    with pytest.raises(ValueError, match=r"'nope'.*\['english', 'hindi', 'bilingual'\]"):
        Builder(config="nope", data_dir=tmp_path)
    with pytest.raises(ValueError, match="language='french'"):
        dataclasses.replace(Builder.builder_configs["english"], language="french")
