"""Scenes of spoken_shapes 2.0: 1-6 objects with distractors, held-out pairs, minimal pairs.

Objects are `scenes.SceneObject`s (same shapes, colours, sizes, rendering as 1.0). A later object
shares only its colour (new shape) or only its shape (new colour) with an earlier one with
probability `DISTRACTOR_PROB` each, so captions must bind colour to shape; it copies an earlier
object (colour and shape) with probability `SAME_KIND_PROB`, so counting matters.
`HELD_OUT_PAIRS` (one colour per shape) appear only in the `test_compositional` split.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from . import grammar
from . import scenes

NUM_OBJECTS_PROBS = (0.1, 0.2, 0.2, 0.2, 0.15, 0.15)  # P(1 object) .. P(6 objects).
DISTRACTOR_PROB = 0.3  # Each of: share the colour only, share the shape only.
SAME_KIND_PROB = 0.15
# Colour-shape pairs that occur only in test_compositional (one per shape, distinct colours).
HELD_OUT_PAIRS = frozenset({("red", "star"), ("blue", "triangle"), ("green", "cross"),
                            ("yellow", "hexagon"), ("purple", "circle"), ("white", "diamond"),
                            ("pink", "square")})
_GAP = scenes._GAP  # pylint: disable=protected-access
MINIMAL_EDITS = ("swap", "size", "move")  # How a minimal-pair image differs from its partner.


def _kind(rng, held_out: bool) -> tuple[str, str]:
    while True:
        kind = (scenes.SHAPES[rng.integers(len(scenes.SHAPES))],
                scenes.COLORS[rng.integers(len(scenes.COLORS))])
        if held_out or (kind[1], kind[0]) not in HELD_OUT_PAIRS:
            return kind


def _kinds(rng, num: int, allow_held_out: bool) -> list[tuple[str, str]]:
    """(shape, colour) of each object; held-out pairs only when `allow_held_out`."""
    kinds = [_kind(rng, allow_held_out)]
    while len(kinds) < num:
        u = rng.random()
        base = kinds[int(rng.integers(len(kinds)))]
        if u < SAME_KIND_PROB:
            kind = base
        elif u < SAME_KIND_PROB + DISTRACTOR_PROB:  # Same colour, another shape.
            kind = (scenes.SHAPES[rng.integers(len(scenes.SHAPES))], base[1])
        elif u < SAME_KIND_PROB + 2 * DISTRACTOR_PROB:  # Same shape, another colour.
            kind = (base[0], scenes.COLORS[rng.integers(len(scenes.COLORS))])
        else:
            kind = _kind(rng, allow_held_out)
        if allow_held_out or (kind[1], kind[0]) not in HELD_OUT_PAIRS:
            kinds.append(kind)
    return kinds


def sample_scene(rng: np.random.Generator, *, held_out_pair: tuple[str, str] | None = None,
                 allow_held_out: bool = False) -> tuple[scenes.SceneObject, ...]:
    """1-6 non-overlapping objects. held_out_pair=(colour, shape): one object has it."""
    num = int(rng.choice(len(NUM_OBJECTS_PROBS), p=NUM_OBJECTS_PROBS)) + 1
    kinds = _kinds(rng, num, allow_held_out)
    if held_out_pair is not None:
        kinds[0] = (held_out_pair[1], held_out_pair[0])
    sizes = [scenes.SIZES[rng.integers(len(scenes.SIZES))] for _ in range(num)]
    order = sorted(range(num), key=lambda i: sizes[i] != "large")  # Large ones first: they fit.
    kinds, sizes = [kinds[i] for i in order], [sizes[i] for i in order]
    objects = _place(rng, kinds, sizes)
    if objects is None:  # Could not place them: all small always fits in practice.
        objects = _place(rng, kinds, ["small"] * num)
    if objects is None:
        raise RuntimeError(f"Could not place {num} small objects without overlap.")
    return objects


_UNIT_EXTENT = {shape: (lambda u: tuple(float(v) for v in (u[:, 1].min(), u[:, 0].min(),
                                                               u[:, 1].max(), u[:, 0].max())))(
    scenes._unit_outline(shape)) for shape in scenes.SHAPES}  # pylint: disable=protected-access


def _box(obj: scenes.SceneObject) -> tuple[float, float, float, float]:
    """(ymin, xmin, ymax, xmax) of the object's outline as Python floats (fast placement)."""
    ymin, xmin, ymax, xmax = _UNIT_EXTENT[obj.shape]
    r = obj.radius
    return (ymin * r + obj.cy, xmin * r + obj.cx, ymax * r + obj.cy, xmax * r + obj.cx)


def _apart(a, b) -> bool:
    """Whether two boxes keep the gap `_GAP` on some axis (as `not scenes.boxes_overlap`)."""
    return (a[2] + _GAP <= b[0] or b[2] + _GAP <= a[0] or a[3] + _GAP <= b[1]
            or b[3] + _GAP <= a[1])


def _place(rng, kinds, sizes, restarts: int = 10, tries: int = 40):
    """Objects placed one by one, each at uniform positions until it keeps its distance
    (`scenes` margins and gaps); starts over when one does not fit; None if nothing fits."""
    for _ in range(restarts):
        objects: list[scenes.SceneObject] = []
        boxes: list[tuple] = []
        for (shape, color), size in zip(kinds, sizes):
            lo = scenes._MARGIN + scenes.DIAMETER[size] / 2  # pylint: disable=protected-access
            for _ in range(tries):
                cx, cy = rng.uniform(lo, 1.0 - lo, size=2)
                obj = scenes.SceneObject(shape, color, size, float(cx), float(cy))
                box = _box(obj)
                if all(_apart(box, b) for b in boxes):
                    boxes.append(box)
                    objects.append(obj)
                    break
            else:
                break
        if len(objects) == len(kinds):
            return tuple(objects)
    return None


def has_held_out_pair(objects) -> bool:
    return any((o.color, o.shape) in HELD_OUT_PAIRS for o in objects)


def _valid(objects) -> bool:
    """Inside the margins and apart, as placed by `_place`."""
    boxes = [_box(o) for o in objects]
    lo, hi = scenes._MARGIN - 1e-9, 1 - scenes._MARGIN + 1e-9  # pylint: disable=protected-access
    return all(lo <= v <= hi for b in boxes for v in b) and all(
        _apart(boxes[i], boxes[j]) for i in range(len(boxes)) for j in range(i))


def _relations(objects) -> list[str]:
    return [grammar.relation(a, b) for a in objects for b in objects if a is not b]


def minimal_pair(objects, rng: np.random.Generator, tries: int = 200):
    """A scene that differs from `objects` in one thing: two objects of different kinds swap
    places (a relation flips), one object changes size, or one object moves to another region.
    Returns (edit, new objects) or None when no edit fits."""
    objects = list(objects)
    for _ in range(tries):
        edit = MINIMAL_EDITS[int(rng.integers(len(MINIMAL_EDITS)))]
        new = list(objects)
        i = int(rng.integers(len(objects)))
        o = objects[i]
        if edit == "swap":
            others = [j for j, p in enumerate(objects) if (p.color, p.shape) != (o.color, o.shape)]
            if not others:
                continue
            j = others[int(rng.integers(len(others)))]
            p = objects[j]
            new[i] = dataclasses.replace(o, cx=p.cx, cy=p.cy)
            new[j] = dataclasses.replace(p, cx=o.cx, cy=o.cy)
            changed = _relations(new) != _relations(objects)
        elif edit == "size":
            other = "large" if o.size == "small" else "small"
            new[i] = dataclasses.replace(o, size=other)
            changed = True
        else:
            lo = 0.03 + o.radius
            cx, cy = rng.uniform(lo, 1 - lo, size=2)
            new[i] = dataclasses.replace(o, cx=float(cx), cy=float(cy))
            changed = grammar.position(new[i]) != grammar.position(o)
        if changed and _valid(new):
            return edit, tuple(new)
    return None
