"""The content of a spoken_shapes 2.0 build: every image's scene, caption meanings and texts.

Planned in the builder's process before any speech is synthesized (it is cheap: no espeak),
because three rules need whole splits: no caption of an evaluation split occurs verbatim (in
any language) in train, each caption stores the images of its split it is true of
(`consistency`), and minimal-pair test images are edits of their partner.

Image ids of a size (tiny, quick, small, large) start at its `id_base`, so no two sizes share
an image or a random stream; the language configs of one size share the images, and their
captions are translations of the same meanings. Everything about image `i` is drawn from
`numpy.random.default_rng([seed, 2, i])` (2 = the version), in split order
train, validation, test, test_compositional.

Splits: train / validation / test are i.i.d. without HELD_OUT_PAIRS or HELD_OUT_RELATIONS; in
test, every odd image is a minimal pair of the image before it (one swap, size or move).
test_compositional: even images contain a held-out colour-shape pair that every caption
mentions first; odd images hold two single objects in a held-out (colour, relation)
configuration that every caption states first. test_unseen_speakers: the test images and
captions, spoken by the held-out speaker pool.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from . import consistency
from . import grammar
from . import grammar_v2
from . import meanings
from . import scenes_v2

NUM_CAPTIONS = 5
SPLITS = ("train", "validation", "test", "test_compositional", "test_unseen_speakers")
_TRIES = 200  # Caption draws before giving up on a novel (not in train) caption.


@dataclasses.dataclass(frozen=True)
class CaptionPlan:
    """One caption: k (0..4), its meaning, its text per language, the consistent image ids."""

    k: int
    meaning: consistency.Meaning
    texts: dict
    consistent: np.ndarray  # int64 [n] image ids of the split the caption is true of.


@dataclasses.dataclass(frozen=True)
class ImagePlan:
    image_id: int
    split: str
    objects: tuple
    captions: tuple
    minimal_pair_of: int = -1  # Test: the image this one is a minimal edit of (-1: none).
    edit: str = ""


def split_ids(id_base: int, sizes: dict[str, int]) -> dict[str, range]:
    """Image ids per split (test_unseen_speakers reuses the test ids)."""
    out, start = {}, id_base
    for split in ("train", "validation", "test", "test_compositional"):
        out[split] = range(start, start + sizes[split])
        start += sizes[split]
    out["test_unseen_speakers"] = out["test"]
    return out


def _captions(objects, rng, forbidden, meaning_kwargs) -> list:
    """NUM_CAPTIONS (meaning, texts) pairs, texts new to the image and absent from `forbidden`."""
    out, seen = [], set()
    for _ in range(NUM_CAPTIONS):
        for _attempt in range(_TRIES):
            kwargs = meaning_kwargs(rng) if callable(meaning_kwargs) else meaning_kwargs
            meaning = meanings.sample_meaning(objects, rng, **kwargs)
            texts = {lang: grammar_v2.render(meaning, lang, rng) for lang in grammar_v2.LANGUAGES}
            if not any(t in forbidden[lang] or (lang, t) in seen for lang, t in texts.items()):
                break
        else:
            raise RuntimeError(f"No caption of {objects} avoids the train captions after "
                               f"{_TRIES} draws; the grammar is too small for this split.")
        seen.update(texts.items())
        out.append((meaning, texts))
    return out


def _compositional(image_id, local, rng):
    """(objects, meaning kwargs) of a test_compositional image."""
    if local % 2 == 1:
        for _ in range(50):
            objects = scenes_v2.sample_scene(rng)
            singles = [e[0] for e in grammar.group_entities(objects) if len(e) == 1]
            focus = [(a, b, r) for a in singles for b in singles if a is not b
                     for r in meanings.relation_options(a, b, True)
                     if (a.color, r) in meanings.HELD_OUT_RELATIONS]
            if focus:
                return objects, lambda rng: {"allow_held_out": True,
                                             "focus_relation": focus[int(rng.integers(len(focus)))]}
    pairs = sorted(scenes_v2.HELD_OUT_PAIRS)
    pair = pairs[int(rng.integers(len(pairs)))]
    objects = scenes_v2.sample_scene(rng, held_out_pair=pair, allow_held_out=True)
    entity = next(e for e in grammar.group_entities(objects) if (e[0].color, e[0].shape) == pair)
    return objects, {"allow_held_out": True, "focus_entity": entity}


def plan(seed: int, id_base: int, sizes: dict[str, int]) -> dict[str, list[ImagePlan]]:
    """Every split's ImagePlans. sizes: images of train, validation, test, test_compositional."""
    ids = split_ids(id_base, sizes)
    forbidden = {lang: set() for lang in grammar_v2.LANGUAGES}
    out: dict[str, list[ImagePlan]] = {}
    drafts = {}
    for split in ("train", "validation", "test", "test_compositional"):
        images = []
        for local, image_id in enumerate(ids[split]):
            rng = np.random.default_rng([seed, 2, image_id])
            pair_of, edit, kwargs = -1, "", {}
            if split == "test_compositional":
                objects, kwargs = _compositional(image_id, local, rng)
            else:
                objects = scenes_v2.sample_scene(rng)
                if split == "test" and local % 2 == 1:
                    edited = scenes_v2.minimal_pair(images[-1][1], rng)
                    if edited is not None:
                        edit, objects = edited
                        pair_of = image_id - 1
            images.append((image_id, objects, _captions(objects, rng, forbidden, kwargs),
                           pair_of, edit))
        if split == "train":
            for _, _, caps, _, _ in images:
                for _, texts in caps:
                    for lang, t in texts.items():
                        forbidden[lang].add(t)
        drafts[split] = images
    for split, images in drafts.items():
        index = consistency.SceneIndex({i: objects for i, objects, _, _, _ in images})
        out[split] = [ImagePlan(i, split, objects, tuple(
            CaptionPlan(k, m, texts, index.consistent_images(m))
            for k, (m, texts) in enumerate(caps)), pair_of, edit)
            for i, objects, caps, pair_of, edit in images]
    out["test_unseen_speakers"] = [dataclasses.replace(p, split="test_unseen_speakers")
                                   for p in out["test"]]
    return out
