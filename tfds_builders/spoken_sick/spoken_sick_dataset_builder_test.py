"""Tests of the spoken_sick builder on a 6-line dummy SICK.txt (header + 5 pairs)."""

import os
import pathlib
import sys
import types

import numpy as np
import pytest
import tensorflow_datasets as tfds

from tfds_builders.spoken_shapes import speech
from tfds_builders.spoken_sick import Builder, read_sick
from tfds_builders.spoken_sick import spoken_sick_dataset_builder as sick

DUMMY = pathlib.Path(__file__).parent / "dummy_data"
SPLITS = {"train": [1, 2, 3], "validation": [4], "test": [5]}


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    builder = Builder(data_dir=tmp_path_factory.mktemp("sick"))
    builder.download_and_prepare(download_config=tfds.download.DownloadConfig(manual_dir=os.fspath(DUMMY)))
    out = {}
    for split in SPLITS:
        src = builder.as_data_source(split=split)
        out[split] = sorted((src[i] for i in range(len(src))), key=lambda e: e["pair_id"])
    return out


def test_splits_fields_and_labels(built):
    assert {s: [e["pair_id"] for e in exs] for s, exs in built.items()} == SPLITS
    first = built["train"][0]
    assert first["sentence_a"] == b"A group of kids is playing in a yard"
    assert first["relatedness"] == pytest.approx(4.5)
    assert sick.ENTAILMENT[built["validation"][0]["entailment"]] == "CONTRADICTION"
    assert sick.ENTAILMENT[built["train"][2]["entailment"]] == "ENTAILMENT"
    assert "tensorflow" not in sys.modules


def test_audio_and_alignments(built):
    for exs in built.values():
        for e in exs:
            for s in "ab":
                audio = e[f"audio_{s}"]
                assert audio.dtype == np.int16 and 0.5 < audio.shape[0] / speech.SAMPLE_RATE < 10
                assert np.abs(audio.astype(np.int32)).max() > 1000
                words = e[f"words_{s}"]
                assert [w.decode() for w in words["word"]] == e[f"sentence_{s}"].decode().split()
                start, end = np.array(words["start"]), np.array(words["end"])
                assert np.all(start <= end) and end[-1] <= audio.shape[0] / speech.SAMPLE_RATE + 1e-4
                assert len(e[f"phones_{s}"]["phone"]) > 3 and e[f"phonemes_{s}"]
                assert 0 <= e[f"speaker_{s}"] < len(sick.SPEAKERS)


def test_a_second_synthesis_process_gives_the_same_bytes(built):
    # Spoken again in another spawned worker (never forked from this process, where JAX threads
    # may run): the samples and speakers must equal the build's.
    rows = read_sick(os.fspath(DUMMY / "SICK.txt"))["validation"]
    again = list(sick.iter_examples(rows, 0, num_workers=1))
    assert again[0]["sentence_a"] == "A cat is sleeping"
    for s in "ab":
        np.testing.assert_array_equal(again[0][f"audio_{s}"], built["validation"][0][f"audio_{s}"])
        assert again[0][f"speaker_{s}"] == built["validation"][0][f"speaker_{s}"]


def _write(tmp_path, text):
    path = tmp_path / "SICK.txt"
    path.write_text(text, encoding="utf-8")
    return os.fspath(path)


def test_read_sick_errors_name_the_problem(tmp_path):
    head = "pair_ID\tsentence_A\tsentence_B\trelatedness_score\tentailment_judgment\tSemEval_set\n"
    rows = read_sick(_write(tmp_path, head + "7\tA b\tC d\t2.5\tNEUTRAL\tTEST\n\n"))
    assert rows["test"][0]["pair_id"] == 7 and rows["train"] == []
    with pytest.raises(ValueError, match="no column SemEval_set"):
        read_sick(_write(tmp_path, head.replace("SemEval_set", "set")))
    with pytest.raises(ValueError, match=r"SICK.txt:2: pair_ID must be an integer"):
        read_sick(_write(tmp_path, head + "7\tA b\tC d\thigh\tNEUTRAL\tTEST\n"))
    with pytest.raises(ValueError, match=r":2: SemEval_set 'DEV' must be one of"):
        read_sick(_write(tmp_path, head + "7\tA b\tC d\t2\tNEUTRAL\tDEV\n"))
    with pytest.raises(ValueError, match=r":3: pair_ID 7 appears twice"):
        read_sick(_write(tmp_path, head + "7\tA b\tC d\t2\tNEUTRAL\tTEST\n7\tA b\tC d\t2\tNEUTRAL\tTEST\n"))
    with pytest.raises(ValueError, match=r":2: 3 tab-separated fields"):
        read_sick(_write(tmp_path, head + "7\tA b\tC d\n"))
    with pytest.raises(ValueError, match="without words"):
        read_sick(_write(tmp_path, head + "7\t...\tC d\t2\tNEUTRAL\tTEST\n"))


def test_manual_dir_layouts_and_missing_file(tmp_path):
    builder = Builder(data_dir=os.fspath(tmp_path / "data"))
    manager = types.SimpleNamespace(_manual_dir=tmp_path / "manual")
    with pytest.raises(FileNotFoundError, match="SICK.txt not found"):
        builder._sick_path(manager)  # pylint: disable=protected-access
    (tmp_path / "manual" / "spoken_sick").mkdir(parents=True)
    (tmp_path / "manual" / "SICK.txt").write_text("x")
    found = builder._sick_path(manager)  # pylint: disable=protected-access
    assert found == os.fspath(tmp_path / "manual" / "SICK.txt")
    (tmp_path / "manual" / "spoken_sick" / "SICK.txt").write_text("x")
    assert builder._sick_path(manager).endswith("spoken_sick/SICK.txt")  # pylint: disable=protected-access
