"""Draws what a spoken_shapes 2.0 caption says about a scene (a `consistency.Meaning`).

Captions describe part of the scene: one or two entities (objects of one colour and shape), a
spatial relation between two single objects, a count (of an entity, of a shape, of a colour or
of all objects), or, for scenes of at most three entities, every entity. The first mention
always names a colour and a shape. Sizes and regions are added at random. `HELD_OUT_RELATIONS`
(subject colour, relation) are never said outside test_compositional.
"""

from __future__ import annotations

import numpy as np

from . import consistency
from . import grammar
from .consistency import Meaning, Mention, Relation

HELD_OUT_RELATIONS = frozenset({("red", "above"), ("blue", "below"), ("green", "left_of"),
                                ("yellow", "right_of"), ("white", "next_to")})
KINDS = ("describe", "relation", "count", "list")
KIND_PROBS = (0.3, 0.35, 0.2, 0.15)
SIZE_PROB = 0.4
WHERE_PROB = 0.25
EXTRA_PROB = 0.3  # A relation caption also mentions a third entity.


def _entity_mention(entity, rng, where_ok: bool = True) -> Mention:
    o = entity[0]
    sizes = {x.size for x in entity}
    size = o.size if len(sizes) == 1 and rng.random() < SIZE_PROB else None
    if len(entity) > 1:
        return Mention(o.color, o.shape, size, count=len(entity))
    where = grammar.position(o) if where_ok and rng.random() < WHERE_PROB else None
    return Mention(o.color, o.shape, size, where=where)


def relation_options(a, b, allow_held_out: bool) -> list[str]:
    """Relations a caption may state of `a` to `b` (next_to for left/right)."""
    rel = grammar.relation(a, b)
    options = [rel] + (["next_to"] if rel in ("left_of", "right_of") else [])
    return [r for r in options if allow_held_out or (a.color, r) not in HELD_OUT_RELATIONS]


def _pick(rng, items):
    return items[int(rng.integers(len(items)))]


def _relation_meaning(singles, entities, rng, allow_held_out, focus_relation=None):
    if focus_relation is not None:
        a, b, rel = focus_relation
    else:
        i, j = rng.choice(len(singles), size=2, replace=False)
        a, b = singles[int(i)][0], singles[int(j)][0]
        options = relation_options(a, b, allow_held_out)
        if not options:
            a, b = b, a
            options = relation_options(a, b, allow_held_out)
        if not options:
            return None
        rel = _pick(rng, options)
    mentions = [_entity_mention((a,), rng, where_ok=False), _entity_mention((b,), rng, False)]
    others = [e for e in entities if e != (a,) and e != (b,)]
    if others and rng.random() < EXTRA_PROB:
        mentions.append(_entity_mention(_pick(rng, others), rng))
    return Meaning(tuple(mentions), (Relation(0, rel, 1),))


def _count_meaning(objects, entities, rng, focus):
    entity = focus or _pick(rng, entities)
    o = entity[0]
    which = _pick(rng, ("entity", "shape", "color", "total"))
    if which == "entity":
        return Meaning((Mention(o.color, o.shape, count=len(entity)),))
    head = _entity_mention(entity, rng)
    if which == "shape":
        counted = Mention(shape=o.shape, count=sum(x.shape == o.shape for x in objects))
    elif which == "color":
        counted = Mention(color=o.color, count=sum(x.color == o.color for x in objects))
    else:
        counted = Mention(count=len(objects))
    return Meaning((head, counted))


def sample_meaning(objects, rng: np.random.Generator, *, allow_held_out: bool = False,
                   focus_entity=None, focus_relation=None) -> Meaning:
    """A meaning true of `objects`.

    focus_entity: an entity (tuple of objects) the caption must mention first.
    focus_relation: (a, b, relation) the caption must state first.
    allow_held_out: whether HELD_OUT_RELATIONS may be stated (test_compositional only).
    """
    entities = grammar.group_entities(objects)
    singles = [e for e in entities if len(e) == 1]
    if focus_relation is not None:
        meaning = _relation_meaning(singles, entities, rng, True, focus_relation)
    else:
        kind = KINDS[int(rng.choice(len(KINDS), p=KIND_PROBS))]
        meaning = None
        if kind == "relation" and len(singles) >= 2:
            if focus_entity is None:
                meaning = _relation_meaning(singles, entities, rng, allow_held_out)
            elif focus_entity in singles:  # A focused group falls back to "describe".
                others = [e for e in singles if e != focus_entity]
                a, b = focus_entity[0], _pick(rng, others)[0]
                options = relation_options(a, b, allow_held_out)
                if options:
                    meaning = _relation_meaning(singles, entities, rng, allow_held_out,
                                                (a, b, _pick(rng, options)))
        elif kind == "count":
            meaning = _count_meaning(objects, entities, rng, focus_entity)
        elif kind == "list" and len(entities) <= 3:
            order = [entities[int(i)] for i in rng.permutation(len(entities))]
            if focus_entity is not None:
                order = [focus_entity] + [e for e in order if e != focus_entity]
            meaning = Meaning(tuple(_entity_mention(e, rng) for e in order))
        if meaning is None:  # "describe": one or two entities.
            first = focus_entity or _pick(rng, entities)
            chosen = [first]
            rest = [e for e in entities if e != first]
            if rest and rng.random() < 0.5:
                chosen.append(_pick(rng, rest))
            meaning = Meaning(tuple(_entity_mention(e, rng) for e in chosen))
    if not consistency.satisfies(meaning, objects):
        raise AssertionError(f"Sampled meaning {meaning} is false of its scene {objects}.")
    return meaning
