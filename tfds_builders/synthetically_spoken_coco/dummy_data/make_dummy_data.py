"""Writes the synthetically_spoken_coco dummy data (corpus layout, tiny files) next to this script.

Run: python tfds_builders/synthetically_spoken_coco/dummy_data/make_dummy_data.py
Deterministic. 5 MSCOCO-style images (32x32 JPEG) in Karpathy splits train (2), restval (1),
val (1) and test (1), 2 captions each; `dataset.mp3.jsonl.gz` with one base64 MP3 (0.3 s,
24 kHz mono, as gTTS writes) per caption; alignments for captions 0 and 1 only.
"""

import base64
import gzip
import io
import json
import os
import shutil

import numpy as np
import soundfile as sf
from PIL import Image

HERE = os.path.dirname(os.path.abspath(__file__))
RATE = 24000
IMAGES = [("train2014", 9, "train"), ("train2014", 25, "train"), ("train2014", 30, "restval"),
          ("val2014", 42, "val"), ("val2014", 73, "test")]
TEXTS = ["A dog sits on a table.", "Two cats."]


def mp3_bytes(seconds, freq):
    t = np.arange(int(seconds * RATE)) / RATE
    buf = io.BytesIO()
    sf.write(buf, (0.3 * np.sin(2 * np.pi * freq * t)).astype(np.float32), RATE, format="MP3")
    return buf.getvalue()


def main():
    shutil.rmtree(os.path.join(HERE, "images"), ignore_errors=True)
    images, lines, sentid = [], [], 0
    for imgid, (folder, cocoid, split) in enumerate(IMAGES):
        name = f"COCO_{folder}_{cocoid:012d}.jpg"
        rng = np.random.default_rng(cocoid)
        pixels = rng.integers(0, 200, (1, 1, 3)) + rng.integers(0, 50, (36, 32, 3))
        os.makedirs(os.path.join(HERE, "images", folder), exist_ok=True)
        Image.fromarray(pixels.astype(np.uint8)).save(os.path.join(HERE, "images", folder, name),
                                                      format="JPEG", quality=70)
        sentences = []
        for text in TEXTS:
            sentences.append({"tokens": text.lower().strip(".").split(), "raw": text,
                              "imgid": imgid, "sentid": sentid})
            speech = base64.b64encode(mp3_bytes(0.3, 200 + 20 * sentid)).decode("ascii")
            lines.append(json.dumps({"sentid": sentid, "speech": speech}))
            sentid += 1
        images.append({"filepath": folder, "filename": name, "imgid": imgid, "split": split,
                       "sentids": [s["sentid"] for s in sentences], "sentences": sentences,
                       "cocoid": cocoid})
    with open(os.path.join(HERE, "dataset.json"), "w", encoding="utf-8") as f:
        json.dump({"images": images, "dataset": "coco"}, f)
    with open(os.path.join(HERE, "dataset.mp3.jsonl.gz"), "wb") as raw:
        with gzip.GzipFile(fileobj=raw, mode="wb", mtime=0) as f:  # mtime=0: same bytes each run
            f.write(("\n".join(lines) + "\n").encode("utf-8"))
    words = {0: [("a", 0.02, 0.05), ("dog", 0.05, 0.12), ("sits", 0.12, 0.18), ("on", 0.18, 0.2),
                 ("a", 0.2, 0.22), ("table", 0.22, 0.29)], 1: [("two", 0.03, 0.1),
                                                              ("cats", 0.1, 0.27)]}
    meta = {str(k): {"audio_length": 0.3, "forced_alignments": {
        "phones": [{"start": 0.0, "end": 0.02, "label": "sil"}],
        "words": [{"start": s, "end": e, "label": w} for w, s, e in v],
        "tags": [{"start": s, "end": e, "label": "NN"} for _, s, e in v]}}
        for k, v in words.items()}
    with open(os.path.join(HERE, "synth-coco-metadata.json"), "w", encoding="utf-8") as f:
        json.dump(meta, f)


if __name__ == "__main__":
    main()
