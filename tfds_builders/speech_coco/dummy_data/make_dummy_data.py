"""Writes the speech_coco dummy data (real SPEECH-COCO layout, tiny files) next to this script.

Run: python tfds_builders/speech_coco/dummy_data/make_dummy_data.py
Deterministic. 6 MSCOCO-style images (32x32 JPEG; 3 in train2014, 3 in val2014), 2 spoken
captions each (0.25 s WAVs at 22.05 kHz, JSON with a word/syllable/phoneme timecode in ms), and
a Karpathy dataset_coco.json putting the images in train, restval, val and test.
"""

import json
import os
import shutil
import wave

import numpy as np
from PIL import Image

HERE = os.path.dirname(os.path.abspath(__file__))
RATE = 22050  # unverified for the real corpus; the builder resamples any rate to 16 kHz
IMAGES = {"train2014": [(9, "train"), (25, "train"), (30, "restval")],
          "val2014": [(42, "val"), (73, "test"), (74, "test")]}
CAPTIONS = [("a dog on a table", "Phil", "None", 1.0), ("um a red table", "Amanda", "Beginning",
                                                          0.9)]


def timecode(text):
    """Word/syllable/phoneme marks in ms: each word 40 ms, 'table' two syllables."""
    t, out = 10.0, [[0.0, "SYL", ""], [0.0, "SEPR", " "]]
    for word in text.split():
        out.append([t, "WORD", word])
        for k, ch in enumerate(word):
            if word == "table" and k == 2:
                out.append([t, "SYL", ""])
            out.append([t, "PHO", ch])
            t += 40.0 / len(word)
        out += [[t, "SYL", ""], [t, "SEPR", " "]]
        t += 5.0
    return out


def main():
    for sub in ("CORPUS-MSCOCO", "images"):
        shutil.rmtree(os.path.join(HERE, sub), ignore_errors=True)
    karpathy, caption_id, sentid = [], 100, 0
    for folder, images in IMAGES.items():
        for image_id, split in images:
            name = f"COCO_{folder}_{image_id:012d}.jpg"
            rng = np.random.default_rng(image_id)
            pixels = (rng.integers(0, 200, (1, 1, 3)) + rng.integers(0, 50, (40, 32, 3)))
            os.makedirs(os.path.join(HERE, "images", folder), exist_ok=True)
            Image.fromarray(pixels.astype(np.uint8)).save(
                os.path.join(HERE, "images", folder, name), format="JPEG", quality=70)
            sentences = []
            for text, speaker, disfluency, speed in CAPTIONS:
                speed_name = str(speed).replace(".", "-")
                stem = f"{image_id}_{caption_id}_{speaker}_{disfluency}_{speed_name}"
                n = int(0.25 * RATE)
                x = 6000 * np.sin(2 * np.pi * (150 + caption_id) * np.arange(n) / RATE)
                for sub in ("json", "wav"):
                    os.makedirs(os.path.join(HERE, "CORPUS-MSCOCO", folder, sub), exist_ok=True)
                with wave.open(os.path.join(HERE, "CORPUS-MSCOCO", folder, "wav", stem + ".wav"),
                               "wb") as w:
                    w.setnchannels(1)
                    w.setsampwidth(2)
                    w.setframerate(RATE)
                    w.writeframes(x.astype("<i2").tobytes())
                meta = {"duration": n / RATE, "speaker": speaker, "synthesisedCaption": text,
                        "timecode": timecode(text), "speed": speed, "wavFilename": stem + ".wav",
                        "captionID": caption_id, "imgID": image_id,
                        "disfluency": [disfluency, "um" if disfluency != "None" else ""]}
                with open(os.path.join(HERE, "CORPUS-MSCOCO", folder, "json", stem + ".json"),
                          "w", encoding="utf-8") as f:
                    json.dump(meta, f)
                sentences.append({"tokens": text.split(), "raw": text, "imgid": len(karpathy),
                                  "sentid": sentid})
                caption_id, sentid = caption_id + 1, sentid + 1
            karpathy.append({"filepath": folder, "filename": name, "imgid": len(karpathy),
                             "split": split, "sentids": [s["sentid"] for s in sentences],
                             "sentences": sentences, "cocoid": image_id})
    with open(os.path.join(HERE, "dataset_coco.json"), "w", encoding="utf-8") as f:
        json.dump({"images": karpathy, "dataset": "coco"}, f)


if __name__ == "__main__":
    main()
