"""What a spoken_shapes 2.0 caption means, and which scenes it is true of.

A caption's meaning (`Meaning`) is language independent: the captions of one meaning in English,
Hindi and Japanese are parallel. It is a conjunction of
* mentions (`Mention`): singular ones ("a small red circle in the top left corner") say that some
  object has the given attributes (and sits in that region); counted ones ("exactly two red
  circles", "four shapes") say that exactly `count` objects have the given attributes;
* relations between singular mentions ("... above ..."), computed from object centres exactly as
  `grammar.relation` does ("next_to" = left_of or right_of).
Singular mentions denote distinct objects, and one assignment of objects must satisfy every
singular mention and every relation at once (`satisfies`). `consistent_images` checks a meaning
against every scene of a split: exact, with an index by (colour, shape) to skip scenes early.
"""

from __future__ import annotations

import dataclasses
import itertools
from typing import Sequence

import numpy as np

from . import grammar
from . import scenes

RELATIONS = ("left_of", "right_of", "above", "below", "next_to")
CONVERSE = {"left_of": "right_of", "right_of": "left_of", "above": "below", "below": "above",
            "next_to": "next_to"}


@dataclasses.dataclass(frozen=True)
class Mention:
    """Objects with the given attributes (None = any). count None: at least one, bound to one
    object (may carry `where`, a (row, column) region of `grammar.position`); count k: exactly k
    objects have these attributes."""

    color: str | None = None
    shape: str | None = None
    size: str | None = None
    count: int | None = None
    where: tuple[str, str] | None = None

    def __post_init__(self):
        if self.count is not None and (self.count < 1 or self.where is not None):
            raise ValueError(f"Mention {self}: a counted mention needs count >= 1 and no where.")

    def matches(self, obj: scenes.SceneObject) -> bool:
        """Whether `obj` has this mention's colour, shape and size (not `where`)."""
        return ((self.color is None or obj.color == self.color)
                and (self.shape is None or obj.shape == self.shape)
                and (self.size is None or obj.size == self.size))


@dataclasses.dataclass(frozen=True)
class Relation:
    """mentions[subject] is `relation` of mentions[reference] (both singular)."""

    subject: int
    relation: str
    reference: int


@dataclasses.dataclass(frozen=True)
class Meaning:
    mentions: tuple[Mention, ...]
    relations: tuple[Relation, ...] = ()

    def __post_init__(self):
        for r in self.relations:
            if r.relation not in RELATIONS or r.subject == r.reference or any(
                    self.mentions[i].count is not None for i in (r.subject, r.reference)):
                raise ValueError(f"Relation {r} must link two different singular mentions with "
                                 f"one of {RELATIONS}.")


def holds(relation: str, a: scenes.SceneObject, b: scenes.SceneObject) -> bool:
    """Whether `a` is `relation` of `b`."""
    actual = grammar.relation(a, b)
    if relation == "next_to":
        return actual in ("left_of", "right_of")
    return actual == relation


def satisfies(meaning: Meaning, objects: Sequence[scenes.SceneObject]) -> bool:
    """Whether the scene `objects` makes the meaning true (the exact, slow definition)."""
    for m in meaning.mentions:
        if m.count is not None and sum(m.matches(o) for o in objects) != m.count:
            return False
    singular = [i for i, m in enumerate(meaning.mentions) if m.count is None]
    candidates = [[o for o in objects if meaning.mentions[i].matches(o) and (
        meaning.mentions[i].where is None or grammar.position(o) == meaning.mentions[i].where)]
        for i in singular]
    if any(not c for c in candidates):
        return False
    slot = {mention: k for k, mention in enumerate(singular)}
    for chosen in itertools.product(*candidates):
        if len({id(o) for o in chosen}) < len(chosen):
            continue  # Singular mentions denote distinct objects.
        if all(holds(r.relation, chosen[slot[r.subject]], chosen[slot[r.reference]])
               for r in meaning.relations):
            return True
    return False


class SceneIndex:
    """The scenes of one split, indexed by (colour, shape) for `consistent_images`.

    scenes_by_id: image_id -> objects. Kept in the given order.
    """

    def __init__(self, scenes_by_id: dict[int, Sequence[scenes.SceneObject]]):
        self.image_ids = np.asarray(list(scenes_by_id), np.int64)
        self.scenes = list(scenes_by_id.values())
        everything = np.arange(len(self.scenes))
        self._by_color: dict[str, set[int]] = {}
        self._by_shape: dict[str, set[int]] = {}
        for i, objects in enumerate(self.scenes):
            for o in objects:
                self._by_color.setdefault(o.color, set()).add(i)
                self._by_shape.setdefault(o.shape, set()).add(i)
        self._all = set(everything.tolist())

    def _having(self, m: Mention) -> set[int]:
        out = self._all
        if m.color is not None:
            out = out & self._by_color.get(m.color, set())
        if m.shape is not None:
            out = out & self._by_shape.get(m.shape, set())
        return out

    def consistent_images(self, meaning: Meaning) -> np.ndarray:
        """int64 [n] ids of the scenes that make `meaning` true, in index order."""
        candidates = self._all
        for m in meaning.mentions:  # Every mention needs an object with its colour and shape.
            candidates = candidates & self._having(m)
        keep = [i for i in sorted(candidates) if satisfies(meaning, self.scenes[i])]
        return self.image_ids[np.asarray(keep, np.int64)] if keep else np.zeros((0,), np.int64)
