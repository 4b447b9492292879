"""Captions as phoneme ids and images as target vectors: the data of Gelderloos & Chrupała (2016).

Each caption's text goes through `phonemes.g2p` (espeak-ng, spaces removed); each image becomes one
vector, by `image_vector`:

* "scene": the counts of the image's objects per shape, per colour and per size (spoken_shapes
  labels; 7 + 8 + 2 = 17 numbers). It stands in for the paper's VGG fc7 vector: what an ideal
  object recogniser reports, with no pixel CNN to pre-train offline.
* "pixels": the image averaged over 8 x 8 blocks, scaled to [0, 1] (64 x 64 x 3 -> 8 x 8 x 3 = 192).

Targets are standardised per dimension by the training split's images (reimaginet's `scale=True`).
"""
from __future__ import annotations

import dataclasses

import numpy as np

from vgs_jax import phonemes

IMAGE_VECTORS = ("scene", "pixels")
POOL = 8


@dataclasses.dataclass(frozen=True)
class PhonemeSplit:
    """One split: phonemes [N] (lists), word_end [N] (bool lists), texts [N], caption_image int [N] in
    0..M-1, images float32 [M, D] (unstandardised), image_id int [M]."""

    phonemes: list
    word_end: list
    texts: list
    caption_image: np.ndarray
    images: np.ndarray
    image_id: np.ndarray


def scene_vector(objects: dict) -> np.ndarray:
    """spoken_shapes `objects` -> float32 [len(SHAPES) + len(COLORS) + len(SIZES)] object counts."""
    from tfds_builders.spoken_shapes import scenes  # deferred: the label names of spoken_shapes

    out = []
    for key, names in (("shape", scenes.SHAPES), ("color", scenes.COLORS), ("size", scenes.SIZES)):
        out.append(np.bincount(np.asarray(objects[key], np.int64), minlength=len(names))[:len(names)])
    return np.concatenate(out).astype(np.float32)


def pixel_vector(image: np.ndarray) -> np.ndarray:
    """uint8 [H, W, 3] (H, W multiples of 8) -> float32 [8 * 8 * 3] block means in [0, 1]."""
    h, w, c = image.shape
    if h % POOL or w % POOL:
        raise ValueError(f"image_vector='pixels' needs image sides divisible by {POOL}; got {image.shape}.")
    blocks = np.asarray(image, np.float32).reshape(POOL, h // POOL, POOL, w // POOL, c) / 255.0
    return blocks.mean(axis=(1, 3)).reshape(-1)


def image_vector(ex: dict, kind: str, index: int) -> np.ndarray:
    if kind == "scene":
        if "objects" not in ex:
            raise ValueError(f"image_vector='scene' reads the objects' shape/colour/size labels, but example {index} "
                             f"has none (keys {sorted(ex)}); use spoken_shapes or image_vector='pixels'.")
        return scene_vector(ex["objects"])
    if kind == "pixels":
        return pixel_vector(ex["image"])
    raise ValueError(f"image_vector must be one of {IMAGE_VECTORS}; got {kind!r}.")


def load_split(source, kind: str, limit: int | None = None) -> PhonemeSplit:
    """A random-access source of example dicts (`text`, `image_id`, and `objects` or `image`) -> PhonemeSplit."""
    n = len(source) if limit is None else min(limit, len(source))
    phones, ends, texts, caption_image, images, image_ids, index = [], [], [], [], [], [], {}
    for i in range(n):
        ex = source[i]
        p, e = phonemes.g2p(ex["text"])
        phones.append(p)
        ends.append(e)
        texts.append(ex["text"].decode() if isinstance(ex["text"], bytes) else str(ex["text"]))
        image = int(ex["image_id"])
        if image not in index:
            index[image] = len(image_ids)
            image_ids.append(image)
            images.append(image_vector(ex, kind, i))
        caption_image.append(index[image])
    if n == 0:
        raise ValueError("the split has no captions")
    return PhonemeSplit(phones, ends, texts, np.asarray(caption_image), np.stack(images), np.asarray(image_ids))


def standardiser(images: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-dimension (mean [D], std [D]) of the training images; constant dimensions get std 1."""
    sd = images.std(axis=0)
    return images.mean(axis=0), np.where(sd > 0, sd, 1.0)
