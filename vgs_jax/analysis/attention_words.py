"""Where attention pooling puts its weight, by word class (after Havard et al. 2019a).

The platalea encoder pools its top layer with vectorial attention: a separate softmax over time
for every feature dimension (`models.pooling.VectorialAttentionPooling.weights`, ``[T, D]``).
The frame-level weight used here is the mean over dimensions, ``a_t = mean_d alpha_{t,d}``,
which is non-negative and sums to 1 over an utterance's valid frames (the share of the pooled
vector that frame t contributes, averaged over dimensions). `activations.extract` stores it as
`Activations.attention`.

A frame belongs to the word whose ``[start, end)`` interval holds the frame's centre; frames in no
word (leading silence) go to the pseudo-class ``"none"``. For each utterance and word class c:

* ``share``: attention mass on frames of class-c words (sum of a_t), in [0, 1];
* ``expected_share``: the fraction of the utterance's frames that are class-c frames, i.e. the
  share uniform attention (duration alone) would give;
* ``ratio`` = share / expected_share (1 = no preference, > 1 = the class draws attention);
* ``density``: per word token, mass / (frames / T), averaged over tokens (1 = uniform).

Class results are means over the utterances (or tokens) that contain the class. Word classes for
spoken_shapes come from the caption grammar (`tfds_builders.spoken_shapes.grammar`): ``shape``
(shape nouns, singular and plural), ``color``, ``size`` (all synonyms), ``number``, ``spatial``
(words of the relation/position/arrangement phrases that are not function words), ``function``
(articles, copula, pronouns, conjunctions and simple prepositions) and ``other`` (the remaining
content words such as "picture", "image"; also any word outside the lexicon). The captions of
spoken_shapes 2.0.0 in English, Hindi and Japanese have their own classes, with ``particle`` for Hindi
postpositions and Japanese particles (`vgs_jax.multilingual.word_classes`).
"""

from typing import Callable, Mapping, Sequence

import numpy as np

CLASSES = ("shape", "color", "size", "number", "spatial", "function", "particle", "other")  # particle: hi, ja
NONE = "none"
# English closed-class words of the caption grammar (everything else the grammar says is content).
FUNCTION_WORDS = frozenset({"a", "an", "the", "of", "to", "in", "on", "at", "near", "with", "and", "by",
                            "is", "are", "there", "it", "this", "i", "can", "each", "other", "one"})
_PLACEHOLDERS = frozenset({"e1", "e2", "e3", "be1", "r12", "r32", "w1", "w2", "w3", "it2"})  # template slots


def _lexicon_words(phrases) -> set[str]:
    return {w for phrase in phrases for w in phrase.split()}


def word_classes(language: str = "en") -> dict[str, str]:
    """word -> class (see module doc) for every word the spoken_shapes grammar of `language` can say."""
    from tfds_builders.spoken_shapes import grammar  # deferred: only spoken_shapes runs need it

    lex = grammar.get_lexicon(language)
    out: dict[str, str] = {}
    spatial = set()
    for table in (lex.relations, lex.positions, lex.arrangements):
        spatial |= _lexicon_words(p for phrases in table.values() for p in phrases)
    template_words = _lexicon_words(
        t.replace("{", " ").replace("}", " ") for ts in lex.templates.values() for t in ts)
    for word in template_words | spatial | set(lex.copula) | {lex.pronoun}:
        if word in FUNCTION_WORDS:
            out[word] = "function"
        elif word in spatial:
            out[word] = "spatial"
        elif word not in _PLACEHOLDERS:
            out[word] = "other"
    for word in FUNCTION_WORDS:
        out[word] = "function"
    out.update({w: "number" for w in lex.numbers.values()})
    out.update({w: "size" for syn in lex.sizes.values() for w in syn})
    out.update({w: "color" for w in lex.colors.values()})
    out.update({w: "shape" for forms in lex.shapes.values() for w in forms})
    return out


def classify(word: str, classes: Mapping[str, str]) -> str:
    """Class of `word` in `classes`, ``"other"`` for words it does not list."""
    return classes.get(word.lower(), "other")


def frame_words(times: np.ndarray, words: Sequence[tuple[str, float, float]]) -> np.ndarray:
    """Index of the word holding each frame centre (``start <= t < end``), -1 outside every word.

    Args:
      times: frame centres in seconds ``[T]``; words: ``(word, start_s, end_s)``, non-overlapping.
    Returns:
      int64 ``[T]``.
    """
    times = np.asarray(times, np.float64)
    out = np.full(times.shape, -1, np.int64)
    for k, (word, start, end) in enumerate(words):
        if end < start:
            raise ValueError(f"word {word!r} ends at {end} s before it starts at {start} s; fix the alignment.")
        inside = (times >= start) & (times < end)
        if np.any(out[inside] >= 0):
            raise ValueError(f"word {word!r} [{start}, {end}) s overlaps an earlier word; alignments must "
                             "not overlap.")
        out[inside] = k
    return out


def _check_attention(attention, times, i: int) -> np.ndarray:
    a = np.asarray(attention, np.float64)
    if a.ndim != 1 or a.shape != np.shape(times) or a.size == 0:
        raise ValueError(f"utterance {i}: attention must be [T] matching its {np.shape(times)} frame times, "
                         f"got shape {a.shape}.")
    if np.any(a < 0) or not np.isclose(a.sum(), 1.0, atol=1e-3):
        raise ValueError(f"utterance {i}: attention must be non-negative and sum to 1 over frames "
                         f"(sum {a.sum():.4f}); pass the mean over dimensions of the pooling weights.")
    return a / a.sum()


def utterance_shares(attention, times, words, classify_fn: Callable[[str], str]) -> dict:
    """One utterance: {"share": {class: mass}, "expected": {class: frame fraction},
    "tokens": [(word, class, mass, frames)]}; classes include ``"none"`` and both dicts sum to 1."""
    a = _check_attention(attention, times, 0)
    owner = frame_words(times, words)
    share, expected, tokens = {}, {}, []
    n = len(a)
    for k, (word, _, _) in enumerate(words):
        cls = classify_fn(word)
        inside = owner == k
        mass, frames = float(a[inside].sum()), int(inside.sum())
        tokens.append((word, cls, mass, frames))
        share[cls] = share.get(cls, 0.0) + mass
        expected[cls] = expected.get(cls, 0.0) + frames / n
    outside = owner < 0
    if outside.any():
        share[NONE] = float(a[outside].sum())
        expected[NONE] = float(outside.mean())
    return {"share": share, "expected": expected, "tokens": tokens}


def attention_by_class(attention: Sequence[np.ndarray], times: Sequence[np.ndarray],
                       words: Sequence[Sequence[tuple[str, float, float]]],
                       classify_fn: Callable[[str], str]) -> dict:
    """Attention share per word class over utterances (see module doc).

    Args:
      attention: per utterance ``[T_i]`` frame weights summing to 1; times: ``[T_i]`` centres (s);
      words: per utterance ``(word, start_s, end_s)``; classify_fn: word -> class name.
    Returns:
      {"classes": {class: {"share", "expected_share", "ratio", "density", "utterances", "tokens"}},
       "words": {word: {"class", "density", "tokens"}}}; a class's density is over tokens with frames.
    """
    if not (len(attention) == len(times) == len(words)) or not attention:
        raise ValueError(f"need one attention, times and words entry per utterance (non-empty), got "
                         f"{len(attention)}, {len(times)} and {len(words)}.")
    shares, expected, density, word_density = {}, {}, {}, {}
    for i, (a, t, w) in enumerate(zip(attention, times, words)):
        _check_attention(a, t, i)
        u = utterance_shares(a, t, w, classify_fn)
        for cls, value in u["share"].items():
            shares.setdefault(cls, []).append(value)
            expected.setdefault(cls, []).append(u["expected"][cls])
        n = len(t)
        for word, cls, mass, frames in u["tokens"]:
            if frames:
                density.setdefault(cls, []).append(mass / (frames / n))
                word_density.setdefault((word, cls), []).append(mass / (frames / n))
    classes = {}
    for cls in sorted(shares, key=lambda c: (CLASSES + (NONE,)).index(c) if c in CLASSES + (NONE,) else 99):
        s, e = float(np.mean(shares[cls])), float(np.mean(expected[cls]))
        classes[cls] = {"share": s, "expected_share": e, "ratio": s / e if e > 0 else float("nan"),
                        "density": float(np.mean(density[cls])) if cls in density else float("nan"),
                        "utterances": len(shares[cls]), "tokens": len(density.get(cls, []))}
    per_word = {word: {"class": cls, "density": float(np.mean(v)), "tokens": len(v)}
                for (word, cls), v in sorted(word_density.items())}
    return {"classes": classes, "words": per_word}
