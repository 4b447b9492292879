"""Writes the places_audio dummy data (real layout, tiny files) next to this script.

Run: python tfds_builders/places_audio/dummy_data/make_dummy_data.py
Deterministic: the same bytes every run. 7 Places205-style images (32x32 JPEG), 6 English
captions (4 train, 2 val; two with `text_alignment`) and 4 Hindi captions (3 train, 1 val; one
of them of an image with no English caption), 0.3 s WAVs at 16 kHz.
"""

import io
import json
import os
import shutil
import wave

import numpy as np
from PIL import Image

HERE = os.path.dirname(os.path.abspath(__file__))
RATE = 16000
IMAGES = [f"{c}/{scene}/gsun_{i:032x}.jpg" for i, (c, scene) in enumerate(
    [("a", "airport_terminal"), ("b", "bedroom"), ("c", "coast"), ("k", "kitchen"),
     ("m", "mountain"), ("s", "street"), ("h", "highway")])]


def write_wav(path, seconds, seed):
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * RATE)) / RATE
    x = 8000 * np.sin(2 * np.pi * (200 + 40 * seed) * t) + rng.normal(0, 300, t.shape)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with wave.open(path, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(RATE)
        w.writeframes(np.clip(x, -32768, 32767).astype("<i2").tobytes())


def write_jpeg(path, seed):
    rng = np.random.default_rng(100 + seed)
    pixels = (rng.integers(0, 256, (1, 1, 3)) + rng.integers(0, 40, (32, 48, 3))).clip(0, 255)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    buf = io.BytesIO()
    Image.fromarray(pixels.astype(np.uint8)).save(buf, format="JPEG", quality=70)
    with open(path, "wb") as f:
        f.write(buf.getvalue())


def write_language(folder, entries_by_split, seed0):
    """entries_by_split: {json name: [(image index, speaker, text, alignment or None)]}."""
    n = 0
    for name, entries in entries_by_split.items():
        data = []
        for image, speaker, text, alignment in entries:
            wav = f"wavs/{n // 3}/utterance_{1000 + n}.wav"
            write_wav(os.path.join(HERE, folder, wav), 0.3, seed0 + n)
            entry = {"wav": wav, "image": IMAGES[image],
                     "uttid": f"{speaker}-GSUN_{image:032X}", "speaker": speaker,
                     "asr_text": text}
            if alignment:
                entry["text"] = text
                entry["text_alignment"] = alignment
            data.append(entry)
            n += 1
        meta = {"image_base_path": "/path/on/the/original/machine/images256",
                "audio_base_path": f"/path/on/the/original/machine/{folder}", "data": data}
        path = os.path.join(HERE, folder, "metadata", name)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "w", encoding="utf-8") as f:
            json.dump(meta, f, indent=1, ensure_ascii=False)


def main():
    for sub in ("PlacesAudio_400k_distro", "PlacesHindi100k", "images256"):
        shutil.rmtree(os.path.join(HERE, sub), ignore_errors=True)
    for i, rel in enumerate(IMAGES):
        write_jpeg(os.path.join(HERE, "images256", rel), i)
    write_language("PlacesAudio_400k_distro", {
        "train.json": [(0, "A1SPKR", "a big airport", "0.02__A__0.05 0.05__BIG__0.15 "
                        "0.15__AIRPORT__0.29"),
                       (1, "A2SPKR", "a bedroom with a bed", "0.01__A__0.04 0.04__BEDROOM__0.3"),
                       (2, "A1SPKR", "the coast", None), (3, "A3SPKR", "", None)],
        "val.json": [(4, "A2SPKR", "mountains", None), (5, "A4SPKR", "a street", None)]}, 0)
    write_language("PlacesHindi100k", {
        "train.json": [(0, "H1SPKR", "हवाई अड्डा", None), (1, "H2SPKR", "शयनकक्ष", None),
                       (6, "H1SPKR", "राजमार्ग", None)],
        "val.json": [(4, "H3SPKR", "पहाड़", None)]}, 50)


if __name__ == "__main__":
    main()
