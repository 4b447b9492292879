"""Tests of tfds_builders/manual_corpus.py against obvious NumPy/PIL versions."""

import io
import json
import os
import struct
import types

import numpy as np
import pytest
import soundfile as sf
from PIL import Image

from tfds_builders import manual_corpus as mc


def _wav(path, x, rate=16000, subtype="PCM_16"):
    sf.write(path, x, rate, subtype=subtype)
    return path


def _tone(n=1600, seed=0):
    rng = np.random.default_rng(seed)
    return rng.integers(-20000, 20000, size=n).astype(np.int16)


def test_read_wav_16k_is_exact_for_16k_int16(tmp_path):
    x = _tone()
    y = mc.read_wav_16k(_wav(str(tmp_path / "a.wav"), x))
    assert y.dtype == np.int16 and y.shape == (1600,)
    np.testing.assert_array_equal(y, x)


@pytest.mark.parametrize("riff,data_size", [(36, 0), (0xFFFFFFFF, 0xFFFFFFFF), (100, 50)])
def test_broken_header_is_repaired_and_strict_mode_names_the_file(tmp_path, riff, data_size):
    x = _tone(seed=1)
    raw = bytearray(open(_wav(str(tmp_path / "a.wav"), x), "rb").read())
    assert raw[36:40] == b"data"
    raw[4:8], raw[40:44] = struct.pack("<I", riff), struct.pack("<I", data_size)
    path = tmp_path / "broken.wav"
    path.write_bytes(bytes(raw))
    np.testing.assert_array_equal(mc.read_wav_16k(str(path)), x)
    with pytest.raises(mc.CorruptFileError, match="broken.wav.*repair_header=True"):
        mc.read_wav_16k(str(path), repair_header=False)


def test_trailing_metadata_chunk_is_not_mistaken_for_samples(tmp_path):
    x = _tone(seed=2)
    raw = open(_wav(str(tmp_path / "a.wav"), x), "rb").read()
    extra = b"LIST" + struct.pack("<I", 8) + b"INFOabcd"
    raw = bytearray(raw + extra)
    raw[4:8] = struct.pack("<I", len(raw) - 8)
    path = tmp_path / "list.wav"
    path.write_bytes(bytes(raw))
    np.testing.assert_array_equal(mc.read_wav_16k(str(path), repair_header=False), x)


def test_truncated_empty_and_garbage_audio_are_corrupt(tmp_path):
    raw = open(_wav(str(tmp_path / "a.wav"), _tone()), "rb").read()
    (tmp_path / "cut.wav").write_bytes(raw[:30])
    (tmp_path / "empty.wav").write_bytes(raw[:44])
    (tmp_path / "junk.wav").write_bytes(b"not audio at all" * 10)
    short_fmt = b"fmt " + struct.pack("<I", 4) + b"\x01\x00\x01\x00"
    (tmp_path / "shortfmt.wav").write_bytes(raw[:12] + short_fmt + b"data" + bytes(4))
    for name in ("cut.wav", "empty.wav", "junk.wav", "shortfmt.wav"):
        with pytest.raises(mc.CorruptFileError, match=name):
            mc.read_wav_16k(str(tmp_path / name))
    with pytest.raises(FileNotFoundError, match="nothere.wav"):
        mc.read_wav_16k(str(tmp_path / "nothere.wav"))


def test_other_rates_are_resampled_and_channels_averaged(tmp_path):
    t8 = np.arange(4000) / 8000
    tone = 0.5 * np.sin(2 * np.pi * 440 * t8)
    y = mc.read_wav_16k(_wav(str(tmp_path / "8k.wav"), tone, rate=8000, subtype="FLOAT"))
    assert y.dtype == np.int16 and y.shape == (8000,)
    expected = 0.5 * np.sin(2 * np.pi * 440 * np.arange(8000) / 16000) * 32768
    # Away from the edges the band-limited resampler reproduces the sine closely.
    assert np.max(np.abs(y[400:-400] - expected[400:-400])) < 0.01 * 32768
    left, right = _tone(seed=3), _tone(seed=4)
    stereo = np.stack([left, right], axis=1)
    y = mc.read_wav_16k(_wav(str(tmp_path / "st.wav"), stereo))
    slow = [int(np.round((int(a) + int(b)) / 2)) for a, b in zip(left, right)]
    np.testing.assert_array_equal(y, np.array(slow, dtype=np.int16))


def _write_pcm(path, ints, sample_width, rate=16000):
    """Writes integer PCM with the wave module: ints [n, channels] already in the stored range."""
    import wave
    ints = np.asarray(ints, np.int64)
    if sample_width == 1:
        raw = ints.astype(np.uint8).tobytes()  # 8-bit WAV is unsigned
    else:
        raw = b"".join(int(v).to_bytes(sample_width, "little", signed=True) for v in ints.reshape(-1))
    with wave.open(str(path), "wb") as w:
        w.setnchannels(ints.shape[1])
        w.setsampwidth(sample_width)
        w.setframerate(rate)
        w.writeframes(raw)
    return str(path)


# (stored value range, full scale) of each integer PCM width: sample / full scale is in [-1, 1).
_PCM = {1: ((0, 256), 128), 2: ((-32768, 32768), 32768), 3: ((-2**23, 2**23), 2**23),
        4: ((-2**31, 2**31), 2**31)}


@pytest.mark.parametrize("channels", [1, 2])
@pytest.mark.parametrize("sample_width", [1, 2, 3, 4])
def test_integer_pcm_of_every_width_is_scaled_to_int16(tmp_path, sample_width, channels):
    (low, high), full = _PCM[sample_width]
    ints = np.random.default_rng(sample_width).integers(low, high, size=(800, channels))
    ints[:2] = [[low] * channels, [high - 1] * channels]  # both ends of the range
    y = mc.read_wav_16k(_write_pcm(tmp_path / "a.wav", ints, sample_width))
    centred = ints - 128 if sample_width == 1 else ints
    expected = [int(np.round(np.mean([v / full for v in row]) * 32768)) for row in centred]
    assert y.dtype == np.int16
    np.testing.assert_array_equal(y, np.clip(expected, -32768, 32767))


@pytest.mark.parametrize("channels", [1, 2])
@pytest.mark.parametrize("subtype,dtype", [("FLOAT", np.float32), ("DOUBLE", np.float64)])
def test_float_wavs_are_scaled_not_truncated(tmp_path, subtype, dtype, channels):
    x = np.random.default_rng(5).uniform(-0.99, 0.99, size=(800, channels))
    y = mc.read_wav_16k(_wav(str(tmp_path / "f.wav"), x, subtype=subtype))
    stored = x.astype(dtype).astype(np.float64)
    expected = [int(np.round(np.mean(row) * 32768)) for row in stored]
    np.testing.assert_array_equal(y, expected)
    assert np.abs(y).max() > 16000  # not the all-zero audio of a float -> int16 truncation


def test_out_of_range_float_samples_clip_with_a_counted_warning(tmp_path, caplog):
    x = np.array([0.5, 1.5, -2.0, 1.0, -1.0, 0.25], np.float32)
    with caplog.at_level("WARNING"):
        y = mc.read_wav_16k(_wav(str(tmp_path / "loud.wav"), x, subtype="FLOAT"))
    np.testing.assert_array_equal(y, [16384, 32767, -32768, 32767, -32768, 8192])
    assert "loud.wav: 2 of 6 samples lie outside [-1, 1] (largest |x| 2)" in caplog.text
    caplog.clear()
    mc.read_wav_16k(_wav(str(tmp_path / "ok.wav"), x.clip(-1, 1), subtype="FLOAT"))
    assert "outside" not in caplog.text


def test_resampled_formats_agree(tmp_path):
    t = np.arange(2205) / 22050
    tone = 0.4 * np.sin(2 * np.pi * 300 * t)
    ints = np.round(tone * 2**23).astype(np.int64)[:, None]
    from_int24 = mc.read_wav_16k(_write_pcm(tmp_path / "i.wav", ints, 3, rate=22050))
    from_float = mc.read_wav_16k(_wav(str(tmp_path / "f.wav"), tone, rate=22050, subtype="DOUBLE"))
    assert from_int24.shape == from_float.shape == (1600,)
    assert np.abs(from_int24.astype(int) - from_float).max() <= 1
    assert np.abs(from_float).max() > 0.35 * 32768


def _save_image(path, w, h, seed=0):
    rng = np.random.default_rng(seed)
    Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8)).save(path, format="PNG")
    return str(path)


@pytest.mark.parametrize("w,h", [(40, 20), (20, 41), (16, 16)])
def test_read_image_resizes_shorter_side_and_centre_crops(tmp_path, w, h):
    path = _save_image(tmp_path / "a.png", w, h)
    img = Image.open(path).convert("RGB")
    size = 8
    # Obvious version: scale so the shorter side is `size`, then slice the middle.
    if w <= h:
        nw, nh = size, max(size, round(h * size / w))
    else:
        nw, nh = max(size, round(w * size / h)), size
    big = np.asarray(img.resize((nw, nh), Image.BICUBIC))
    top, left = (nh - size) // 2, (nw - size) // 2
    expected = big[top:top + size, left:left + size]
    got = mc.read_image(path, size=size)
    assert got.dtype == np.uint8 and got.shape == (size, size, 3)
    np.testing.assert_array_equal(got, expected)
    np.testing.assert_array_equal(mc.read_image(path, size=None), np.asarray(img))


def test_truncated_or_garbage_images_are_corrupt(tmp_path):
    buf = io.BytesIO()
    Image.fromarray(np.full((32, 32, 3), 100, np.uint8)).save(buf, format="JPEG")
    (tmp_path / "cut.jpg").write_bytes(buf.getvalue()[:200])
    (tmp_path / "junk.jpg").write_bytes(b"\x00" * 100)
    for name in ("cut.jpg", "junk.jpg"):
        with pytest.raises(mc.CorruptFileError, match=name):
            mc.read_image(str(tmp_path / name), size=8)
    with pytest.raises(ValueError, match="size=0"):
        mc.read_image(str(tmp_path / "junk.jpg"), size=0)


def test_encode_jpeg_round_trips_and_checks_input():
    img = np.full((8, 8, 3), [10, 120, 250], np.uint8)
    back = np.asarray(Image.open(io.BytesIO(mc.encode_jpeg(img))))
    assert back.shape == (8, 8, 3) and np.abs(back.astype(int) - img).max() <= 3
    with pytest.raises(ValueError, match="uint8"):
        mc.encode_jpeg(img.astype(np.float32))


def test_require_files_lists_every_missing_path_dir_and_readme(tmp_path):
    (tmp_path / "have.txt").write_text("x")
    mc.require_files(str(tmp_path), ["have.txt"], corpus="c", readme="R.md")
    with pytest.raises(mc.MissingFilesError) as err:
        mc.require_files(str(tmp_path), ["have.txt", "a/b.json", "imgs"], corpus="c",
                         readme="R.md, section 'Getting the data'")
    msg = str(err.value)
    assert "2 required file(s) missing: a/b.json, imgs" in msg
    assert str(tmp_path) in msg and "R.md, section 'Getting the data'" in msg
    assert "have.txt" not in msg and isinstance(err.value, FileNotFoundError)


def test_build_summary_raises_or_counts():
    s = mc.BuildSummary("corp")
    with pytest.raises(mc.CorruptFileError, match="corp: bad audio x/1.wav.*skip_corrupt=True"):
        s.check(False, "audio", "x/1.wav", RuntimeError("boom"))
    original = mc.CorruptFileError("x/2.wav: unreadable")
    with pytest.raises(mc.CorruptFileError) as err:
        s.check(False, "audio", "x/2.wav", original)
    assert err.value is original
    s.check(True, "audio", "x/1.wav", RuntimeError("boom"))
    s.check(True, "audio", "x/2.wav", RuntimeError("boom"))
    s.skip("image", "i.jpg", "missing image file")
    s.add_written("train", 3)
    s.add_written("train")
    assert s.num_skipped == 3 and s.written["train"] == 4
    report = s.report()
    assert "written train: 4" in report and "skipped audio (RuntimeError): 2" in report
    assert "skipped image (missing image file): 1, e.g. i.jpg" in report
    with pytest.raises(mc.MissingFilesError, match=r"2 problem\(s\) in ROOT: a \(gone\); b"):
        s.check_all(False, [("image", "a", "gone"), ("audio", "b", "gone")], where="ROOT",
                    readme="R")
    s.check_all(True, [("image", "a", "gone")], where="ROOT", readme="R")
    assert s.skipped[("image", "gone")] == 1


def test_karpathy_splits_groups_by_split_and_names_bad_files(tmp_path):
    images = [{"filename": f"{i}.jpg", "split": s, "sentids": [i], "sentences": [{"raw": "r"}]}
              for i, s in enumerate(["train", "val", "train", "test", "restval"])]
    path = tmp_path / "dataset.json"
    path.write_text(json.dumps({"images": images}))
    splits = mc.karpathy_splits(str(path))
    assert {k: [im["filename"] for im in v] for k, v in splits.items()} == {
        "train": ["0.jpg", "2.jpg"], "val": ["1.jpg"], "test": ["3.jpg"], "restval": ["4.jpg"]}
    path.write_text("{not json")
    with pytest.raises(mc.CorruptFileError, match="dataset.json.*not valid JSON"):
        mc.karpathy_splits(str(path))
    del images[2]["sentids"]
    path.write_text(json.dumps({"images": images}))
    with pytest.raises(mc.CorruptFileError, match=r"images\[2\] lacks field 'sentids'"):
        mc.karpathy_splits(str(path))


def test_stable_id_and_read_lines(tmp_path):
    import hashlib
    expected = int(hashlib.sha1(b"abc").hexdigest()[:16], 16) // 2
    assert mc.stable_id("abc") == expected and 0 <= expected < 2**63
    assert mc.stable_id("abc") != mc.stable_id("abd")
    (tmp_path / "t.txt").write_text("a b\n\n  c  \n")
    assert mc.read_lines(str(tmp_path / "t.txt")) == ["a b", "c"]
    (tmp_path / "bad.txt").write_bytes(b"\xff\xfe\xfa")
    with pytest.raises(mc.CorruptFileError, match="bad.txt"):
        mc.read_lines(str(tmp_path / "bad.txt"))


def test_corpus_dir_prefers_named_subfolder(tmp_path):
    manual = tmp_path / "manual"
    dl = types.SimpleNamespace(_manual_dir=manual)
    assert mc.corpus_dir(dl, "corp", "unused") == str(manual / "corp")  # nothing there yet
    manual.mkdir()
    assert mc.corpus_dir(dl, "corp", "unused") == str(manual)  # files directly in manual/
    (manual / "corp").mkdir()
    assert mc.corpus_dir(dl, "corp", "unused") == str(manual / "corp")
    no_dl = types.SimpleNamespace()
    assert mc.corpus_dir(no_dl, "corp", str(tmp_path)) == os.path.join(
        str(tmp_path), "downloads", "manual", "corp")
