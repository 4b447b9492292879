"""Writes the spoken_coco dummy corpus (real layout, tiny files) next to this script.

    python tfds_builders/spoken_coco/dummy_data/make_dummy_data.py

3 train2014 images (Karpathy train) and 5 val2014 images (Karpathy: 2 val, 2 test, 1 restval),
5 captions each (0.1-0.12 s WAVs, 16 kHz, 16-bit) in SpokenCOCO/SpokenCOCO_{train,val}.json,
COCO-style 32-48 px JPEGs and a Karpathy dataset_coco.json. Deterministic.
"""

import io
import json
import os

import numpy as np
import soundfile as sf
from PIL import Image

HERE = os.path.dirname(os.path.abspath(__file__))
# (COCO id, folder, Karpathy split)
IMAGES = [(9, "train2014", "train"), (25, "train2014", "train"), (30, "train2014", "train"),
          (42, "val2014", "val"), (73, "val2014", "val"), (74, "val2014", "test"),
          (133, "val2014", "test"), (136, "val2014", "restval")]
SPEAKERS = ["m071506418gb9vo0w5xq3", "a1x2p4b6y8z0c3", "m5kq9ww1d4c2e7"]
WORDS = ["giraffe", "pizza", "train", "cat", "surfer", "clock", "kite", "bus"]


def wav_bytes(seed: int) -> bytes:
    rng = np.random.default_rng(seed)
    n = 1600 + 64 * (seed % 6)
    t = np.arange(n) / 16000
    x = 0.3 * np.sin(2 * np.pi * (150 + 37 * seed) * t) + 0.05 * rng.standard_normal(n)
    buf = io.BytesIO()
    sf.write(buf, (x * 32767).astype(np.int16), 16000, subtype="PCM_16", format="WAV")
    return buf.getvalue()


def main():
    rng = np.random.default_rng(1)
    spoken = {"train": [], "val": []}
    karpathy = []
    sentid = 1000
    for i, (cocoid, folder, ksplit) in enumerate(IMAGES):
        filename = f"COCO_{folder}_{cocoid:012d}.jpg"
        os.makedirs(os.path.join(HERE, folder), exist_ok=True)
        w, h = (48, 32) if i % 2 else (32, 40)
        pixels = rng.integers(0, 256, size=(h // 8, w // 8, 3), dtype=np.uint8)
        Image.fromarray(pixels).resize((w, h), Image.NEAREST).save(
            os.path.join(HERE, folder, filename), quality=90)
        which = "train" if folder == "train2014" else "val"
        captions, sentences = [], []
        for k in range(5):
            sentid += 7
            speaker = SPEAKERS[(i + k) % len(SPEAKERS)]
            uttid = f"{speaker}-3MYYFCXHJ36R22LVGKK6X8Q{i}{k}_{cocoid}_{sentid}"
            wav = f"wavs/{which}/{i % 2}/{uttid}.wav"
            os.makedirs(os.path.join(HERE, "SpokenCOCO", os.path.dirname(wav)), exist_ok=True)
            with open(os.path.join(HERE, "SpokenCOCO", wav), "wb") as f:
                f.write(wav_bytes(10 * i + k))
            text = f"a {WORDS[i]} in image {cocoid} number {k}"
            captions.append({"text": text.upper(), "speaker": speaker, "uttid": uttid,
                             "wav": wav})
            sentences.append({"tokens": text.split(), "raw": text, "imgid": i,
                              "sentid": sentid})
        spoken[which].append({"image": f"{folder}/{filename}", "captions": captions})
        karpathy.append({"filepath": folder, "filename": filename, "imgid": i, "split": ksplit,
                         "cocoid": cocoid, "sentids": [s["sentid"] for s in sentences],
                         "sentences": sentences})
    for which, data in spoken.items():
        with open(os.path.join(HERE, "SpokenCOCO", f"SpokenCOCO_{which}.json"), "w",
                  encoding="utf-8") as f:
            json.dump({"data": data}, f)
    with open(os.path.join(HERE, "dataset_coco.json"), "w", encoding="utf-8") as f:
        json.dump({"dataset": "coco", "images": karpathy}, f)


if __name__ == "__main__":
    main()
