"""CELL's memories: short-term recurrence, long-term mutual information, the lexicon (Roy & Pentland 2002).

Input: utterances in the order heard, each with its word candidates (`cell_speech.Candidate`) and
its scene's object shape histograms (`cell_vision.shape_histogram`), all objects in one array.

* word forms match (`forms_match`) when their Levenshtein distance over phones is <= 1 and their
  normalised distance (over the longer form) is <= `form_distance`; shapes match when their
  chi-square distance is <= `shape_distance`.
* short-term memory (`promote`): a buffer of the last `stm_size` utterance-scene pairs. When an
  utterance arrives, each of its candidate forms that matches a form of a buffered utterance
  whose scene holds an object matching one of the new scene's objects is promoted, paired with
  each such object of the new scene, to long-term memory as a hypothesis (form, object); then
  the utterance enters the buffer (the oldest leaves).
* long-term memory (`lexicon`): over all utterances seen (at the end of the stream), per
  hypothesis the word-form event A (the utterance has a candidate matching the form) and the
  shape event V (its scene has an object matching the hypothesis' object) give a 2 x 2 table,
  and the mutual information I(A; V) in bits; hypotheses with I >= `mi_threshold`, a positive
  association (p(A, V) > p(A) p(V)) and >= `min_together` utterances with both are kept, the
  rest discarded. Kept hypotheses are taken by decreasing MI into the lexicon unless one already
  taken has a matching shape and its form (or a matching one) is a candidate overlapping the
  hypothesis' exemplar in time (`same_speech`: the same stretch of speech, e.g. "hɛksɐ" and "ksɐɡə");
  among equal MI the longer form goes first (the fragments of a word have its MI, the word too).
* audio-only baseline (`audio_only`): the same buffer with the visual condition dropped (a
  candidate form recurring in the buffer is promoted, paired with an object of its own scene
  drawn at random: the only visual context it has), and the same long-term memory with the
  visual event dropped: hypotheses ranked by how many utterances hold their form (|A|; ties:
  the longer form first), taken
  into the lexicon unless a taken item is the same stretch of speech (`same_speech`), up to `size`
  items (CELL's lexicon size).
"""
from __future__ import annotations

import collections
import dataclasses
import functools
import math
from collections.abc import Sequence

import numpy as np

from vgs_jax import cell_vision


@dataclasses.dataclass(frozen=True)
class Item:
    """A lexicon item: word form (phones), exemplar utterance and candidate index, object index (into
    the stream's objects) and its score (MI in bits, or the utterance count in the baseline)."""
    form: tuple
    utterance: int
    candidate: int
    obj: int
    score: float


@functools.lru_cache(maxsize=1 << 18)
def deletion_keys(form: tuple) -> frozenset:
    """The form and each form with one phone deleted: forms within Levenshtein 1 share a key."""
    return frozenset({form} | {form[:i] + form[i + 1:] for i in range(len(form))})


def within_one_edit(a: tuple, b: tuple) -> int | None:
    """Levenshtein distance of a and b when it is 0 or 1, else None."""
    if a == b:
        return 0
    if len(a) > len(b):
        a, b = b, a
    if len(b) - len(a) > 1:
        return None
    i = 0
    while i < len(a) and a[i] == b[i]:
        i += 1
    rest = a[i + 1:] if len(a) == len(b) else a[i:]  # substitution at i, or insertion into a at i
    return 1 if rest == b[i + 1:] else None


@functools.lru_cache(maxsize=1 << 20)
def forms_match(a: tuple, b: tuple, form_distance: float) -> bool:
    d = within_one_edit(a, b)
    return d is not None and d <= form_distance * max(len(a), len(b))


def same_speech(item: "Item", form: tuple, cands: Sequence[list], form_distance: float) -> bool:
    """Whether `form` (or a matching one) is a candidate of the item's exemplar utterance overlapping
    the exemplar in time: the two are the same stretch of speech."""
    ex = cands[item.utterance][item.candidate]
    return any(c.start < ex.end and ex.start < c.end and forms_match(c.phones, form, form_distance)
               for c in cands[item.utterance])


class FormIndex:
    """Deletion-key index of the candidate forms of utterances: key -> {form: [utterance ids]}."""

    def __init__(self):
        self._keys = collections.defaultdict(lambda: collections.defaultdict(list))

    def add(self, utterance: int, forms) -> None:
        for form in set(forms):
            for key in deletion_keys(form):
                self._keys[key][form].append(utterance)

    def matches(self, form: tuple, form_distance: float) -> dict:
        """{matching form: [utterance ids]} over the indexed forms."""
        out = {}
        for key in deletion_keys(form):
            for other, utts in self._keys.get(key, {}).items():
                if other not in out and forms_match(form, other, form_distance):
                    out[other] = utts
        return out

    def has_match(self, form: tuple, form_distance: float) -> bool:
        return any(forms_match(form, other, form_distance)
                   for key in deletion_keys(form) for other in self._keys.get(key, ()))

    def utterances(self, form: tuple, form_distance: float) -> set:
        return {u for utts in self.matches(form, form_distance).values() for u in utts}


def first_candidates(cands) -> dict:
    """{form: index of its first candidate} of one utterance."""
    out = {}
    for k, c in enumerate(cands):
        out.setdefault(c.phones, k)
    return out


def shape_similarity(hists: np.ndarray, shape_distance: float, chunk: int = 512) -> np.ndarray:
    """Histograms [N, D] -> bool [N, N]: chi-square distance <= shape_distance."""
    out = np.zeros((len(hists), len(hists)), bool)
    for i in range(0, len(hists), chunk):
        out[i:i + chunk] = cell_vision.chi_square(hists[i:i + chunk, None], hists[None]) <= shape_distance
    return out


def utterance_indexes(cands: Sequence[list]) -> list[FormIndex]:
    """One FormIndex per utterance, of its candidate forms."""
    out = []
    for n, cand in enumerate(cands):
        out.append(FormIndex())
        out[-1].add(n, [c.phones for c in cand])
    return out


def promote(cands: Sequence[list], indexes: Sequence[FormIndex], scene_objects: Sequence[np.ndarray],
            similar: np.ndarray | None, *, stm_size: int, form_distance: float,
            rng: np.random.Generator | None = None) -> list[tuple[tuple, int, int, int]]:
    """Short-term memory over the stream: (form, utterance, candidate index, object) per promotion.
    indexes: `utterance_indexes(cands)`; scene_objects[n]: object indices of utterance n's scene;
    similar: `shape_similarity` of all objects, or None for the audio-only buffer (then `rng` picks
    the paired object)."""
    buffer = collections.deque(maxlen=stm_size)  # (utterance, FormIndex of its candidates)
    out = []
    for n, cand in enumerate(cands):
        forms = first_candidates(cand)
        objs = np.asarray(scene_objects[n], int)
        pairs = set()
        for m, index in buffer if forms and len(objs) else ():
            seen = np.ones(len(objs), bool)
            if similar is not None:
                m_objs = np.asarray(scene_objects[m], int)
                seen = similar[np.ix_(objs, m_objs)].any(1) if len(m_objs) else ~seen
                if not seen.any():
                    continue
            pairs |= {(f, int(o)) for f in forms if index.has_match(f, form_distance) for o in objs[seen]}
        if similar is None:  # one object of the scene at random per recurring form
            recurring = sorted({f for f, _ in pairs})
            out += [(f, n, forms[f], int(objs[rng.integers(len(objs))])) for f in recurring]
        else:
            out += [(f, n, forms[f], o) for f, o in sorted(pairs)]
        buffer.append((n, indexes[n]))
    return out


def mutual_information(n11: int, n1_: int, n_1: int, n: int) -> float:
    """I(A; V) in bits of two binary events from counts: both n11, A n1_, V n_1, total n."""
    cells = ((n11, n1_, n_1), (n1_ - n11, n1_, n - n_1), (n_1 - n11, n - n1_, n_1),
             (n - n1_ - n_1 + n11, n - n1_, n - n_1))  # (count, count of its A value, count of its V value)
    return sum(c / n * math.log2(c * n / (a * v)) for c, a, v in cells if c > 0)


def scene_has(similar: np.ndarray, scene_objects: Sequence[np.ndarray]) -> np.ndarray:
    """bool [objects, utterances]: the utterance's scene has an object matching the object."""
    out = np.zeros((similar.shape[0], len(scene_objects)), bool)
    for n, objs in enumerate(scene_objects):
        if len(objs):
            out[:, n] = similar[:, np.asarray(objs, int)].any(1)
    return out


def lexicon(promoted, cands: Sequence[list], index: FormIndex, similar: np.ndarray, scene_objects, *,
            form_distance: float, mi_threshold: float, min_together: int) -> list[Item]:
    """CELL's long-term memory filter and lexicon (module docstring)."""
    has = scene_has(similar, scene_objects)
    num_utterances = len(cands)
    form_utts = {}
    kept = []
    for form, n, k, obj in promoted:
        if form not in form_utts:
            form_utts[form] = np.array(sorted(index.utterances(form, form_distance)), int)
        a = form_utts[form]
        n11, n1_, n_1 = int(has[obj, a].sum()), len(a), int(has[obj].sum())
        if n11 < min_together or n11 * num_utterances <= n1_ * n_1:
            continue
        mi = mutual_information(n11, n1_, n_1, num_utterances)
        if mi >= mi_threshold:
            kept.append(Item(form, n, k, obj, mi))
    kept.sort(key=lambda it: (-round(it.score, 9), -len(it.form), it.form, it.utterance, it.obj))
    out = []
    for item in kept:
        if not any(similar[item.obj, o.obj] and same_speech(item, o.form, cands, form_distance) for o in out):
            out.append(item)
    return out


def audio_only(promoted, cands: Sequence[list], index: FormIndex, *, form_distance: float, size: int) -> list[Item]:
    """The audio-only baseline's long-term memory (module docstring): at most `size` items."""
    counts = {}
    for form, _, _, _ in promoted:
        if form not in counts:
            counts[form] = len(index.utterances(form, form_distance))
    ranked = sorted(promoted, key=lambda p: (-counts[p[0]], -len(p[0]), p[0], p[1], p[3]))
    out = []
    for form, n, k, obj in ranked:
        if len(out) >= size:
            break
        item = Item(form, n, k, obj, float(counts[form]))
        if not any(same_speech(item, o.form, cands, form_distance) for o in out):
            out.append(item)
    return out
