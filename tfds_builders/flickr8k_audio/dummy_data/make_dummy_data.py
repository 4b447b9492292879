"""Writes the flickr8k_audio dummy corpus (real layout, tiny files) next to this script.

    python tfds_builders/flickr8k_audio/dummy_data/make_dummy_data.py

6 images (Karpathy and official split: 4 train, 1 val, 1 test), 5 WAVs each (0.15 s, 16 kHz,
16-bit), 32-48 px JPEGs. The WAV of image 2, caption #3 gets the Flickr broken-header defect
(RIFF and data chunk sizes wrong). Deterministic: rerunning writes the same bytes.
"""

import io
import json
import os
import struct

import numpy as np
import soundfile as sf
from PIL import Image

HERE = os.path.dirname(os.path.abspath(__file__))
IMAGES = ["1000268201_693b08cb0e.jpg", "1001773457_577c3a7d70.jpg", "1002674143_1b742ab4b8.jpg",
          "1003163366_44323f5815.jpg", "1007129816_e794419615.jpg", "1007320043_627395c3d8.jpg"]
SPLITS = ["train", "train", "val", "train", "test", "train"]
BROKEN = ("1002674143_1b742ab4b8", 3)
WORDS = ["dog", "child", "girl", "man", "bird", "boat"]


def caption(i: int, k: int) -> str:
    return f"A {WORDS[i]} is shown in picture {i} caption {k}"


def wav_bytes(seed: int) -> bytes:
    rng = np.random.default_rng(seed)
    t = np.arange(2400) / 16000
    x = 0.3 * np.sin(2 * np.pi * (200 + 50 * seed % 700) * t) + 0.05 * rng.standard_normal(2400)
    buf = io.BytesIO()
    sf.write(buf, (x * 32767).astype(np.int16), 16000, subtype="PCM_16", format="WAV")
    return buf.getvalue()


def break_header(data: bytes) -> bytes:
    """The defect: RIFF size and data chunk size fields do not match the file (data size 0)."""
    out = bytearray(data)
    assert out[36:40] == b"data"
    out[4:8] = struct.pack("<I", 36)
    out[40:44] = struct.pack("<I", 0)
    return bytes(out)


def main():
    rng = np.random.default_rng(0)
    for d in ("flickr_audio/wavs", "Flicker8k_Dataset", "Flickr8k_text"):
        os.makedirs(os.path.join(HERE, d), exist_ok=True)
    wav2capt, wav2spk, tokens, images = [], [], [], []
    for i, name in enumerate(IMAGES):
        base = name[:-4]
        w, h = (48, 32) if i % 2 else (32, 40)
        pixels = rng.integers(0, 256, size=(h // 8, w // 8, 3), dtype=np.uint8)
        img = Image.fromarray(pixels).resize((w, h), Image.NEAREST)
        img.save(os.path.join(HERE, "Flicker8k_Dataset", name), quality=90)
        sentences = []
        for k in range(5):
            wav = f"{base}_{k}.wav"
            data = wav_bytes(10 * i + k)
            if (base, k) == BROKEN:
                data = break_header(data)
            with open(os.path.join(HERE, "flickr_audio/wavs", wav), "wb") as f:
                f.write(data)
            wav2capt.append(f"{wav} {name} #{k}")
            wav2spk.append(f"{wav} {1 + (i + k) % 4}")
            tokens.append(f"{name}#{k}\t{caption(i, k)}")
            sentences.append({"tokens": caption(i, k).lower().split(), "raw": caption(i, k) + " .",
                              "imgid": i, "sentid": 5 * i + k})
        images.append({"filename": name, "imgid": i, "split": SPLITS[i],
                       "sentids": [5 * i + k for k in range(5)], "sentences": sentences})
    files = {"flickr_audio/wav2capt.txt": wav2capt, "flickr_audio/wav2spk.txt": wav2spk,
             "Flickr8k_text/Flickr8k.token.txt": tokens}
    for split, fname in (("train", "trainImages"), ("val", "devImages"), ("test", "testImages")):
        files[f"Flickr8k_text/Flickr_8k.{fname}.txt"] = [
            n for n, s in zip(IMAGES, SPLITS) if s == split]
    for rel, lines in files.items():
        with open(os.path.join(HERE, rel), "w", encoding="utf-8") as f:
            f.write("\n".join(lines) + "\n")
    with open(os.path.join(HERE, "dataset_flickr8k.json"), "w", encoding="utf-8") as f:
        json.dump({"dataset": "flickr8k", "images": images}, f)


if __name__ == "__main__":
    main()
