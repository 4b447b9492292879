"""Cross-lingual keyword spotting (Kamper & Roth 2018): a visual tagger in language A is the pivot.

The speech model hears language B (spoken_shapes 2.0.0 `<size>_hi` / `<size>_ja`), the tagger
learns language A's keywords of the same images: with `kws.tagger_language="en"`, the tagger's
targets for a Hindi utterance are the English keywords said in the English caption of the same
meaning (`meaning_id`; 2.0.0's captions are parallel), read from the English config of the same
size (`<size>:2.0.0`). The speech model never sees a transcript in either language. At test time an
English keyword retrieves Hindi utterances; exact relevance is its Hindi translation being said
(`kws.keywords.Keyword.forms_in`), semantic relevance the image showing it.
"""
from typing import Callable, Sequence

import numpy as np

from vgs_jax import data_sources
from vgs_jax.objectives.tags import TARGETS_KEY

_LANGUAGE_SUFFIXES = ("_hi", "_ja", "_multi")


def parallel_dataset_name(name: str, language: str, *, field: str = "config.kws.tagger_language") -> str:
    """The spoken_shapes 2.0.0 config with the same images in `language`:
    ("spoken_shapes/quick_hi:2.0.0", "en") -> "spoken_shapes/quick:2.0.0". `field`: the config field that
    asked, named in the error."""
    base, _, rest = name.partition("/")
    config, _, version = rest.partition(":")
    if base != "spoken_shapes" or not version.startswith("2."):
        raise ValueError(f"{field} needs parallel captions: spoken_shapes 2.0.0 (e.g. "
                         f"'spoken_shapes/quick_hi:2.0.0'); got config.dataset.name={name!r}.")
    for suffix in _LANGUAGE_SUFFIXES:
        config = config.removesuffix(suffix)
    return f"{base}/{config}{'' if language == 'en' else '_' + language}:{version}"


Targets = Callable[[dict], np.ndarray]


def parallel_targets(source: Sequence[dict], targets: Targets) -> dict[int, np.ndarray]:
    """meaning_id -> float32 [V]: `targets` (example -> [V], e.g. its spoken keywords) of that
    meaning's caption in `source`."""
    return {int(source[i]["meaning_id"]): np.asarray(targets(source[i]), np.float32) for i in range(len(source))}


def pivot_fields(config, targets: Targets) -> Callable[[dict], dict[str, np.ndarray]]:
    """example -> {TARGETS_KEY: float32 [V]}: `targets` of the example's meaning in
    `config.kws.tagger_language`, from that language's train split (built if missing and allowed)."""
    data = config.dataset
    name = parallel_dataset_name(data.name, config.kws.tagger_language)
    source = data_sources.open_split(name, data.train_split, data_dir=data.data_dir,
                                     build_if_missing=data.get("build_if_missing", False))
    table = parallel_targets(source, targets)

    def fields(example: dict) -> dict[str, np.ndarray]:
        meaning = int(example["meaning_id"])
        if meaning not in table:
            raise KeyError(f"meaning_id {meaning} (caption_id {int(example['caption_id'])}) has no caption in "
                           f"{name} {data.train_split}; the pivot language's config must hold the same images.")
        return {TARGETS_KEY: table[meaning]}

    return fields
