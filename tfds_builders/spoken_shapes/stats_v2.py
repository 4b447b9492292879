"""Statistics of a spoken_shapes 2.0 build, computed from its plan (no audio needed).

Per language: vocabulary (distinct words of all captions); per split and language: captions,
distinct-caption ratio (distinct texts / captions), verbatim overlap (fraction of captions whose
text occurs in train), speakers used (drawn exactly as `generation_v2` draws them), and the mean
number of objects and of consistent images per caption.
"""

from __future__ import annotations

import numpy as np

from . import generation_v2
from . import grammar_v2
from . import speech


def speaker_ids(images, seed: int, language: str) -> set[int]:
    """The speaker ids `generation_v2.image_examples` gives this split's captions."""
    pool = "held_out" if images and images[0].split == "test_unseen_speakers" else "train"
    out = set()
    for im in images:
        for c in im.captions:
            rng = np.random.default_rng([seed, 2, im.image_id, c.k,
                                         grammar_v2.LANGUAGES.index(language),
                                         generation_v2.POOLS.index(pool)])
            out.add(speech.sample_voice(rng, language, pool).speaker_id)
    return out


def vocabulary(plans: dict, languages=grammar_v2.LANGUAGES) -> dict[str, int]:
    """{lang: number of distinct words in the captions of all splits}."""
    return {lang: len({w for images in plans.values() for im in images for c in im.captions
                       for w in c.texts[lang].split()}) for lang in languages}


def statistics(plans: dict, seed: int, languages=grammar_v2.LANGUAGES) -> dict:
    """{"vocabulary": {lang: n}, "splits": {split: {lang: {...}}}}."""
    vocab = vocabulary(plans, languages)
    train_texts = {lang: {c.texts[lang] for im in plans["train"] for c in im.captions}
                   for lang in languages}
    splits = {}
    for split, images in plans.items():
        per = {}
        for lang in languages:
            texts = [c.texts[lang] for im in images for c in im.captions]
            per[lang] = {
                "captions": len(texts),
                "distinct_ratio": len(set(texts)) / len(texts),
                "verbatim_in_train": float(np.mean([t in train_texts[lang] for t in texts])),
                "speakers": len(speaker_ids(images, seed, lang)),
            }
        per["objects_per_image"] = float(np.mean([len(im.objects) for im in images]))
        per["consistent_per_caption"] = float(np.mean(
            [len(c.consistent) for im in images for c in im.captions]))
        splits[split] = per
    return {"vocabulary": vocab, "splits": splits}


def format_statistics(stats: dict) -> str:
    langs = list(stats["vocabulary"])
    lines = ["vocabulary (distinct words): " + ", ".join(
        f"{lang} {n}" for lang, n in stats["vocabulary"].items())]
    lines.append(f"{'split':<22} {'lang':<4} {'captions':>8} {'distinct':>8} {'in train':>8} "
                 f"{'speakers':>8} {'objects/img':>11} {'consistent/cap':>14}")
    for split, per in stats["splits"].items():
        for lang in langs:
            s = per[lang]
            lines.append(f"{split:<22} {lang:<4} {s['captions']:>8} {s['distinct_ratio']:>8.3f} "
                         f"{s['verbatim_in_train']:>8.3f} {s['speakers']:>8} "
                         f"{per['objects_per_image']:>11.2f} {per['consistent_per_caption']:>14.2f}")
    return "\n".join(lines)
