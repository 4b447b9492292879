"""Builds flickr8k_audio from its dummy data (real layout) and checks what was written."""

import collections
import importlib.util
import os
import shutil

import numpy as np
import pytest
import tensorflow_datasets as tfds

from tfds_builders import manual_corpus as mc
from tfds_builders.flickr8k_audio import Builder, Flickr8kAudioConfig

DUMMY = os.path.join(os.path.dirname(os.path.abspath(__file__)), "dummy_data")
_spec = importlib.util.spec_from_file_location("flickr_dummy",
                                               os.path.join(DUMMY, "make_dummy_data.py"))
dummy = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(dummy)
SPLITS = ("train", "validation", "test")


def _build(data_dir, manual_dir=DUMMY, config=None, **kwargs):
    config = config or Flickr8kAudioConfig(name="test32", image_size=32)
    builder = Builder(data_dir=str(data_dir), config=config, **kwargs)
    builder.download_and_prepare(
        download_config=tfds.download.DownloadConfig(manual_dir=str(manual_dir)))
    return builder


def _read(builder):
    return {s: sorted((dict(ex) for ex in builder.as_data_source(split=s)),
                      key=lambda ex: int(ex["caption_id"]))
            for s in SPLITS if s in builder.info.splits}


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    builder = _build(tmp_path_factory.mktemp("flickr"))
    return builder, _read(builder)


def _copy_dummy(tmp_path):
    dst = tmp_path / "manual"
    shutil.copytree(DUMMY, dst, ignore=shutil.ignore_patterns("*.py", "__pycache__"))
    return dst


def test_counts_captions_ids_text_speakers_and_audio(built):
    builder, data = built
    assert {s: len(v) for s, v in data.items()} == {"train": 20, "validation": 5, "test": 5}
    assert builder.build_summary.num_skipped == 0
    speakers = dict(line.split() for line in open(os.path.join(
        DUMMY, "flickr_audio/wav2spk.txt")))
    caption_ids = []
    for split, examples in data.items():
        per_image = collections.Counter(int(ex["image_id"]) for ex in examples)
        assert set(per_image.values()) == {5}, (split, per_image)
        for ex in examples:
            wav = os.path.basename(ex["wav"].decode())
            i, k = dummy.IMAGES.index(wav.rsplit("_", 1)[0] + ".jpg"), int(wav[-5])
            split_name = {"val": "validation"}.get(dummy.SPLITS[i], dummy.SPLITS[i])
            assert split == split_name
            assert int(ex["image_id"]) == sorted(dummy.IMAGES).index(dummy.IMAGES[i])
            assert int(ex["caption_id"]) == 10 * int(ex["image_id"]) + k
            assert ex["text"].decode() == dummy.caption(i, k)  # token file, not Karpathy's " ."
            assert int(ex["speaker_id"]) == int(speakers[wav])
            assert ex["image"].shape == (32, 32, 3) and ex["image"].dtype == np.uint8
            assert ex["image_file"].decode() == f"Flicker8k_Dataset/{dummy.IMAGES[i]}"
            expected = np.frombuffer(dummy.wav_bytes(10 * i + k)[44:], dtype="<i2")
            np.testing.assert_array_equal(ex["audio"], expected)  # the broken one too
            caption_ids.append(int(ex["caption_id"]))
    assert len(caption_ids) == len(set(caption_ids)) == 30


def test_broken_header_file_is_in_the_dummy_data_and_repaired(built):
    base, k = dummy.BROKEN
    path = os.path.join(DUMMY, "flickr_audio/wavs", f"{base}_{k}.wav")
    with pytest.raises(mc.CorruptFileError, match=f"{base}_{k}.wav"):
        mc.read_wav_16k(path, repair_header=False)
    _, data = built
    (ex,) = [e for s in SPLITS for e in data[s] if e["wav"].decode().endswith(f"{base}_{k}.wav")]
    assert ex["audio"].shape == (2400,)


def test_ids_stable_across_builds_and_official_split_agrees(built, tmp_path):
    _, first = built
    config = Flickr8kAudioConfig(name="off32", image_size=32, split_source="official")
    second = _read(_build(tmp_path / "b", config=config))
    for split in SPLITS:
        key = lambda ex: (int(ex["image_id"]), int(ex["caption_id"]), ex["wav"], ex["text"])
        assert [key(e) for e in first[split]] == [key(e) for e in second[split]]
        for a, b in zip(first[split], second[split]):
            np.testing.assert_array_equal(a["audio"], b["audio"])


def test_corrupt_wav_error_names_the_file_and_skip_counts_it(tmp_path):
    manual = _copy_dummy(tmp_path)
    bad = manual / "flickr_audio/wavs" / f"{dummy.IMAGES[0][:-4]}_1.wav"
    bad.write_bytes(b"RIFF\x00\x00")
    with pytest.raises(mc.CorruptFileError, match=str(bad)):
        _build(tmp_path / "d1", manual)
    (manual / "flickr_audio/wavs/orphan_0.wav").write_bytes(dummy.wav_bytes(99))
    with open(manual / "Flickr8k_text/Flickr8k.token.txt", "a") as f:
        f.write(f"{dummy.IMAGES[0]}#5\tA sixth caption nobody spoke\n")
    builder = _build(tmp_path / "d2", manual, skip_corrupt=True)
    assert len(_read(builder)["train"]) == 19
    assert builder.build_summary.skipped[("audio", "CorruptFileError")] == 1
    assert builder.build_summary.skipped[("audio", "not in wav2capt.txt")] == 1
    assert builder.build_summary.skipped[("caption", "text without audio")] == 1
    os.remove(manual / "Flickr8k_text/Flickr8k.token.txt")  # Karpathy text is used instead
    data = _read(_build(tmp_path / "d3", manual, skip_corrupt=True))
    assert data["test"][0]["text"].decode() == dummy.caption(4, 0) + " ."


def test_missing_files_fail_fast_or_are_counted(tmp_path):
    manual = _copy_dummy(tmp_path)
    os.remove(manual / "Flicker8k_Dataset" / dummy.IMAGES[4])  # the test image
    os.remove(manual / "flickr_audio/wavs" / f"{dummy.IMAGES[0][:-4]}_2.wav")
    with pytest.raises(mc.MissingFilesError) as err:
        _build(tmp_path / "d1", manual)
    msg = str(err.value)
    assert dummy.IMAGES[4] in msg and "missing image file" in msg
    assert f"{dummy.IMAGES[0][:-4]}_2.wav (missing WAV file)" in msg
    builder = _build(tmp_path / "d2", manual, config=Flickr8kAudioConfig(
        name="skip32", image_size=32, skip_corrupt=True))
    data = _read(builder)
    # The only test image is gone: the split is left out (TFDS cannot write an empty split).
    assert {s: len(v) for s, v in data.items()} == {"train": 19, "validation": 5}
    assert builder.build_summary.num_skipped == 3
    assert builder.build_summary.skipped[("split", "no examples left")] == 1


def test_no_manual_dir_names_files_dir_and_readme(tmp_path):
    with pytest.raises(mc.MissingFilesError) as err:
        tfds.builder("flickr8k_audio", data_dir=str(tmp_path)).download_and_prepare()
    msg = str(err.value)
    for name in ("flickr_audio/wavs", "flickr_audio/wav2capt.txt", "flickr_audio/wav2spk.txt",
                 "Flicker8k_Dataset", "dataset_flickr8k.json",
                 os.path.join(str(tmp_path), "downloads", "manual", "flickr8k_audio"),
                 "tfds_builders/flickr8k_audio/README.md, section 'Getting the data'"):
        assert name in msg, name
    with pytest.raises(ValueError, match="split_source='kaparthy'"):
        Flickr8kAudioConfig(name="x", split_source="kaparthy")
    with pytest.raises(ValueError, match="Unknown flickr8k_audio config 'tiny'"):
        Builder(data_dir=str(tmp_path), config="tiny")


def test_interrupted_build_restarts_to_the_full_dataset(tmp_path, monkeypatch):
    real = mc.read_wav_16k
    calls = []

    def failing(path, **kwargs):
        calls.append(path)
        if len(calls) == 12:
            raise RuntimeError("simulated crash half way through the build")
        return real(path, **kwargs)

    monkeypatch.setattr(mc, "read_wav_16k", failing)
    with pytest.raises(RuntimeError, match="simulated crash"):
        _build(tmp_path)
    assert not Builder(data_dir=str(tmp_path), config=Flickr8kAudioConfig(
        name="test32", image_size=32)).is_prepared()
    monkeypatch.setattr(mc, "read_wav_16k", real)
    data = _read(_build(tmp_path))
    assert {s: len(v) for s, v in data.items()} == {"train": 20, "validation": 5, "test": 5}


def test_malformed_metadata_names_the_file_and_line(tmp_path):
    manual = _copy_dummy(tmp_path)
    spk = manual / "flickr_audio/wav2spk.txt"
    spk.write_text(spk.read_text() + "x.wav speaker_seven\n")
    with pytest.raises(mc.CorruptFileError, match=r"wav2spk.txt line 31: 'x.wav speaker_seven'"):
        _build(tmp_path / "d1", manual)
    spk.write_text("\n".join(spk.read_text().splitlines()[:-1]) + "\n")
    capt = manual / "flickr_audio/wav2capt.txt"
    capt.write_text(capt.read_text() + f"x.wav {dummy.IMAGES[0]} #12\n")
    with pytest.raises(mc.CorruptFileError, match=r"wav2capt.txt line 31"):
        _build(tmp_path / "d2", manual)
    capt.write_text("\n".join(capt.read_text().splitlines()[:-1]) + "\n")
    test_list = manual / "Flickr8k_text/Flickr_8k.testImages.txt"
    test_list.write_text(test_list.read_text() + dummy.IMAGES[0] + "\n")  # also in train
    with pytest.raises(mc.CorruptFileError, match="list an image twice"):
        _build(tmp_path / "d3", manual, config=Flickr8kAudioConfig(
            name="off", image_size=32, split_source="official"))
