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
against every scene of a split: exact, with arrays over the split's scenes (tested against
`satisfies`, the slow definition).
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


_ROWS, _COLUMNS = ("top", "middle", "bottom"), ("left", "center", "right")
_CODES = {"left_of": 0, "right_of": 1, "above": 2, "below": 3}
_MAX_JOINT = 3  # Singular mentions checked jointly with arrays; more use `satisfies`.


class SceneIndex:
    """The scenes of one split as arrays, for `consistent_images` (vectorised over scenes).

    scenes_by_id: image_id -> objects, kept in the given order. Arrays [M, K] (K = most objects
    in a scene, -1 past a scene's objects): colour, shape, size and region (3 x row + column)
    indices; relation codes [M, K, K] of object i to object j (`_CODES`, -1 on the diagonal).
    """

    def __init__(self, scenes_by_id: dict[int, Sequence[scenes.SceneObject]]):
        self.image_ids = np.asarray(list(scenes_by_id), np.int64)
        self.scenes = list(scenes_by_id.values())
        m, k = len(self.scenes), max([len(s) for s in self.scenes] + [1])
        self._attrs = {name: np.full((m, k), -1, np.int8)
                       for name in ("color", "shape", "size", "region")}
        self._relation = np.full((m, k, k), -1, np.int8)
        for r, objects in enumerate(self.scenes):
            for i, o in enumerate(objects):
                row, col = grammar.position(o)
                self._attrs["color"][r, i] = scenes.COLORS.index(o.color)
                self._attrs["shape"][r, i] = scenes.SHAPES.index(o.shape)
                self._attrs["size"][r, i] = scenes.SIZES.index(o.size)
                self._attrs["region"][r, i] = 3 * _ROWS.index(row) + _COLUMNS.index(col)
                for j, p in enumerate(objects):
                    if i != j:
                        self._relation[r, i, j] = _CODES[grammar.relation(o, p)]
        # Scenes (rows) holding each colour, shape and colour-shape pair: where a search starts.
        kind = self._attrs["color"].astype(np.int32) * len(scenes.SHAPES) + self._attrs["shape"]
        kind[self._attrs["color"] < 0] = -1
        self._rows = {}
        for name, values, codes in (("color", scenes.COLORS, self._attrs["color"]),
                                    ("shape", scenes.SHAPES, self._attrs["shape"]),
                                    ("kind", range(len(scenes.COLORS) * len(scenes.SHAPES)), kind)):
            for v in range(len(values)):
                self._rows[name, v] = np.flatnonzero((codes == v).any(1))
        self._kind = kind

    @staticmethod
    def _key(m: Mention):
        """The posting list of `_rows` a mention needs, or None (no colour or shape named)."""
        if m.color is not None and m.shape is not None:
            return "kind", scenes.COLORS.index(m.color) * len(scenes.SHAPES) + scenes.SHAPES.index(
                m.shape)
        if m.color is not None:
            return "color", scenes.COLORS.index(m.color)
        if m.shape is not None:
            return "shape", scenes.SHAPES.index(m.shape)
        return None

    def _match(self, m: Mention, rows: np.ndarray) -> np.ndarray:
        """bool [C, K]: objects of the scenes `rows` with the mention's attributes and region."""
        ok = self._attrs["color"][rows] >= 0
        for name, value, values in (("color", m.color, scenes.COLORS),
                                    ("shape", m.shape, scenes.SHAPES),
                                    ("size", m.size, scenes.SIZES)):
            if value is not None:
                ok &= self._attrs[name][rows] == values.index(value)
        if m.where is not None:
            code = 3 * _ROWS.index(m.where[0]) + _COLUMNS.index(m.where[1])
            ok &= self._attrs["region"][rows] == code
        return ok

    def consistent_images(self, meaning: Meaning) -> np.ndarray:
        """int64 [n] ids of the scenes that make `meaning` true (as `satisfies`), in order."""
        # Every mention needs an object with its colour and shape: start from the rarest.
        needs = [self._key(m) for m in meaning.mentions]
        needs = sorted((k for k in needs if k is not None), key=lambda k: len(self._rows[k]))
        rows = self._rows[needs[0]] if needs else np.arange(len(self.scenes))
        for name, v in needs[1:]:
            codes = self._kind if name == "kind" else self._attrs[name]
            rows = rows[(codes[rows] == v).any(1)]
        for m in meaning.mentions:
            if m.count is not None:
                rows = rows[self._match(m, rows).sum(1) == m.count]
        singular = [i for i, m in enumerate(meaning.mentions) if m.count is None]
        if singular and len(singular) > _MAX_JOINT:
            rows = np.array([r for r in rows if satisfies(meaning, self.scenes[r])], np.int64)
        elif singular:
            rows = rows[self._joint(meaning, singular, rows)]
        return self.image_ids[rows]

    def _joint(self, meaning: Meaning, singular: list[int], rows: np.ndarray) -> np.ndarray:
        """bool [C]: some assignment of distinct objects satisfies every singular mention and
        relation; checked over all assignments at once, an array [C, K, ..., K]."""
        n, c, k = len(singular), len(rows), self._relation.shape[1]
        if c == 0:
            return np.zeros((0,), bool)

        def along(x, axes):  # x [C, K, (K)] -> broadcastable over the assignment axes.
            shape = [x.shape[0]] + [1] * n
            for axis in axes:
                shape[1 + axis] = k
            return x.reshape(shape)

        ok = np.ones((c,) + (k,) * n, bool)
        for a, i in enumerate(singular):
            ok &= along(self._match(meaning.mentions[i], rows), [a])
        different = ~np.eye(k, dtype=bool)[None]
        for a in range(n):
            for b in range(a + 1, n):
                ok &= along(different, [a, b])
        relation = self._relation[rows]
        for r in meaning.relations:
            a, b = singular.index(r.subject), singular.index(r.reference)
            if r.relation == "next_to":
                hold = (relation == _CODES["left_of"]) | (relation == _CODES["right_of"])
            else:
                hold = relation == _CODES[r.relation]
            ok &= along(hold, [a, b]) if a < b else along(hold.transpose(0, 2, 1), [b, a])
        return ok.reshape(c, -1).any(1)
