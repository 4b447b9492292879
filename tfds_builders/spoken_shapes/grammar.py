"""Caption grammar: per-language lexicons and templates that describe a scene in words.

Objects of the same colour and shape form one *entity* ("two red circles"); every caption names
every entity with its colour and shape (size optional), so the captions identify the image.
Spatial words (relations "to the left of", "above", "below", "next to"; absolute positions
"in the top left corner"; arrangements "side by side") are computed from the objects' centres.

To add a language, build a `Lexicon` (words, templates, noun-phrase rule and the espeak voices
that read it) and add it to `LEXICONS`.
"""

from __future__ import annotations

import dataclasses
import itertools
import re
import string
from typing import Callable, Mapping, Sequence

import numpy as np

from . import scenes

_PLACEHOLDERS = ("e1", "e2", "e3", "be1", "r12", "r32", "w1", "w2", "w3", "it2")


@dataclasses.dataclass(frozen=True)
class Lexicon:
    """The words and templates of one language.

    noun_phrase(lexicon, count, color_word, shape_name, size_word_or_None) -> str.
    templates[n]: format strings for scenes of n entities, using the placeholders
      {e1} {e2} {e3} (entities), {be1} (copula agreeing with e1), {r12}/{r32} (relation of
      entity 1/3 to entity 2; single objects only), {w1} {w2} {w3} (where the entity is),
      {it2} (pronoun for entity 2).
    """

    language: str
    voices: tuple[str, ...]  # espeak voice names that read this language.
    shapes: Mapping[str, tuple[str, str]]  # shape -> (singular, plural)
    colors: Mapping[str, str]
    sizes: Mapping[str, tuple[str, ...]]  # size -> synonyms
    numbers: Mapping[int, str]
    relations: Mapping[str, tuple[str, ...]]  # left_of/right_of/above/below/next_to -> phrases
    positions: Mapping[tuple[str, str], tuple[str, ...]]  # (row, column) -> phrases
    arrangements: Mapping[str, tuple[str, ...]]  # horizontal/vertical -> phrases for a pair
    copula: tuple[str, str]  # (singular, plural)
    pronoun: str
    templates: Mapping[int, tuple[str, ...]]
    noun_phrase: Callable[..., str]
    # Words espeak reads together with the previous word ("of a", "in the"), with their phone
    # count, so the joined unit can be split into word alignments (see speech.py).
    joined_word_phones: Mapping[str, int] = dataclasses.field(default_factory=dict)

    def __post_init__(self):
        for name, table, keys in (("shapes", self.shapes, scenes.SHAPES),
                                  ("colors", self.colors, scenes.COLORS),
                                  ("sizes", self.sizes, scenes.SIZES)):
            missing = set(keys) - set(table)
            if missing:
                raise ValueError(f"Lexicon {self.language!r}: {name} lacks words for "
                                 f"{sorted(missing)}.")
        for n, templates in self.templates.items():
            for t in templates:
                used = {f for _, f, _, _ in string.Formatter().parse(t) if f}
                if not used <= set(_PLACEHOLDERS) or f"e{n}" not in used:
                    raise ValueError(f"Lexicon {self.language!r}: template {t!r} must mention "
                                     f"{{e1}}..{{e{n}}} and use only {_PLACEHOLDERS}.")


def _english_noun_phrase(lex: Lexicon, count: int, color: str, shape: str, size) -> str:
    singular, plural = lex.shapes[shape]
    words = [w for w in (size, lex.colors[color], singular if count == 1 else plural) if w]
    if count == 1:
        article = "an" if words[0][0] in "aeiou" else "a"
        return " ".join([article] + words)
    return " ".join([lex.numbers[count]] + words)


ENGLISH = Lexicon(
    language="en",
    voices=("en-us", "en"),
    shapes={"circle": ("circle", "circles"), "square": ("square", "squares"),
            "triangle": ("triangle", "triangles"), "star": ("star", "stars"),
            "diamond": ("diamond", "diamonds"), "cross": ("cross", "crosses"),
            "hexagon": ("hexagon", "hexagons")},
    colors={c: c for c in scenes.COLORS},
    sizes={"small": ("small", "little"), "large": ("large", "big")},
    numbers={2: "two", 3: "three"},
    relations={"left_of": ("to the left of",), "right_of": ("to the right of",),
               "above": ("above", "over"), "below": ("below", "under"),
               "next_to": ("next to", "beside")},
    positions={("top", "left"): ("in the top left corner",),
               ("top", "center"): ("at the top", "near the top"),
               ("top", "right"): ("in the top right corner",),
               ("middle", "left"): ("on the left", "on the left side"),
               ("middle", "center"): ("in the middle", "in the centre"),
               ("middle", "right"): ("on the right", "on the right side"),
               ("bottom", "left"): ("in the bottom left corner",),
               ("bottom", "center"): ("at the bottom", "near the bottom"),
               ("bottom", "right"): ("in the bottom right corner",)},
    arrangements={"horizontal": ("side by side", "next to each other"),
                  "vertical": ("one above the other",)},
    copula=("is", "are"),
    pronoun="it",
    templates={
        1: ("{e1}", "there {be1} {e1}", "a picture of {e1}", "{e1} {w1}", "there {be1} {e1} {w1}",
            "i can see {e1}", "this image shows {e1}", "{e1} on a dark background"),
        2: ("{e1} and {e2}", "there {be1} {e1} and {e2}", "{e1} {r12} {e2}",
            "{e2} with {e1} {r12} {it2}", "a picture of {e1} {r12} {e2}",
            "{e1} {w1} and {e2} {w2}", "i can see {e1} and {e2}", "this image shows {e1} and {e2}"),
        3: ("{e1} {e2} and {e3}", "there {be1} {e1} {e2} and {e3}", "{e1} {r12} {e2} and {e3}",
            "{e3} and {e1} {r12} {e2}", "{e1} {r12} {e2} and {e3} {r32} {it2}",
            "a picture of {e1} {e2} and {e3}", "{e1} {r12} {e2} with {e3} {w3}",
            "i can see {e1} {e2} and {e3}"),
    },
    noun_phrase=_english_noun_phrase,
    # Measured on this grammar with espeak-ng 1.52: "in the", "on the", "of a", "of an" and
    # "there are" come as one WORD event; "the" = ð ə, "a" = ə, "an" = ə n, "are" = ˌɑː(ɹ).
    joined_word_phones={"the": 2, "a": 1, "an": 2, "are": 1},
)

LEXICONS: dict[str, Lexicon] = {"en": ENGLISH}


def get_lexicon(language: str) -> Lexicon:
    """The lexicon of `language`; unknown languages raise ValueError listing the supported ones."""
    if language not in LEXICONS:
        raise ValueError(f"Unsupported caption language {language!r}; supported languages: "
                         f"{sorted(LEXICONS)}. Add a Lexicon to grammar.LEXICONS for a new one.")
    return LEXICONS[language]


def group_entities(objects: Sequence[scenes.SceneObject]) -> list[tuple[scenes.SceneObject, ...]]:
    """Groups objects by (colour, shape), keeping first-appearance order."""
    groups: dict[tuple[str, str], list] = {}
    for obj in objects:
        groups.setdefault((obj.color, obj.shape), []).append(obj)
    return [tuple(g) for g in groups.values()]


def relation(a: scenes.SceneObject, b: scenes.SceneObject) -> str:
    """Where `a` is relative to `b`: left_of / right_of (dominant x) or above / below (y down)."""
    dx, dy = a.cx - b.cx, a.cy - b.cy
    if abs(dx) >= abs(dy):
        return "left_of" if dx < 0 else "right_of"
    return "above" if dy < 0 else "below"


def position(obj: scenes.SceneObject) -> tuple[str, str]:
    """(row, column) region of the image that holds the object's centre, thirds-based."""
    row = "top" if obj.cy < 0.4 else "bottom" if obj.cy > 0.6 else "middle"
    col = "left" if obj.cx < 0.4 else "right" if obj.cx > 0.6 else "center"
    return row, col


def _where(lex: Lexicon, entity, rng) -> str | None:
    if len(entity) == 1:
        return _pick(rng, lex.positions[position(entity[0])])
    if len(entity) == 2:
        a, b = entity
        key = "horizontal" if abs(a.cx - b.cx) >= abs(a.cy - b.cy) else "vertical"
        return _pick(rng, lex.arrangements[key])
    return None


def _pick(rng: np.random.Generator, options: Sequence[str]) -> str:
    return options[int(rng.integers(len(options)))]


def _relation_phrase(lex: Lexicon, a, b, rng) -> str | None:
    if len(a) != 1 or len(b) != 1:
        return None
    rel = relation(a[0], b[0])
    options = lex.relations[rel]
    if rel in ("left_of", "right_of"):
        options = options + lex.relations["next_to"]
    return _pick(rng, options)


def _entity_phrase(lex: Lexicon, entity, rng, size_prob: float) -> str:
    sizes = {o.size for o in entity}
    size = None
    if len(sizes) == 1 and rng.random() < size_prob:
        size = _pick(rng, lex.sizes[sizes.pop()])
    return lex.noun_phrase(lex, len(entity), entity[0].color, entity[0].shape, size)


def caption(lex: Lexicon, entities, template: str, rng, size_prob: float = 0.5) -> str | None:
    """Fills `template` for the ordered entities; None when the template does not apply."""
    e = list(entities) + [None] * (3 - len(entities))
    slots = {
        "e1": e[0] and _entity_phrase(lex, e[0], rng, size_prob),
        "e2": e[1] and _entity_phrase(lex, e[1], rng, size_prob),
        "e3": e[2] and _entity_phrase(lex, e[2], rng, size_prob),
        "be1": lex.copula[len(e[0]) > 1],
        "r12": e[1] and _relation_phrase(lex, e[0], e[1], rng),
        "r32": e[2] and _relation_phrase(lex, e[2], e[1], rng),
        "w1": _where(lex, e[0], rng), "w2": e[1] and _where(lex, e[1], rng),
        "w3": e[2] and _where(lex, e[2], rng),
        "it2": lex.pronoun if e[1] and len(e[1]) == 1 else None,
    }
    used = {f for _, f, _, _ in string.Formatter().parse(template) if f}
    if any(slots[name] is None for name in used):
        return None
    return re.sub(r"\s+", " ", template.format(**slots)).strip()


def make_captions(objects, lex: Lexicon, rng: np.random.Generator, num: int = 5) -> list[str]:
    """`num` captions of the scene, distinct where the grammar allows, varied templates/order."""
    entities = group_entities(objects)
    templates = lex.templates[len(entities)]
    orders = list(itertools.permutations(entities))
    captions: list[str] = []
    used_templates: set[str] = set()
    for _ in range(num):
        best = None
        for _attempt in range(40):
            template = _pick(rng, templates)
            order = orders[int(rng.integers(len(orders)))]
            text = caption(lex, order, template, rng)
            if text is None:
                continue
            best = best or text
            if text not in captions and (template not in used_templates or _attempt >= 20):
                best = text
                used_templates.add(template)
                break
        captions.append(best)
    return captions
