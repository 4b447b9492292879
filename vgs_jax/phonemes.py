"""Captions as phoneme strings: espeak-ng grapheme-to-phoneme (Gelderloos & Chrupała 2016).

`g2p(text)` asks espeak-ng (the `espeakng-loader` library that builds spoken_shapes; nothing is
downloaded) for the IPA of the whole caption in its US English voice, with a separator between the
phonemes of each word, and returns the caption's phonemes as a flat list (spaces removed: the model
reads connected speech) plus, per phoneme, whether a word ends after it. Stress marks (ˈ ˌ) are
dropped; length marks and espeak's multi-character phonemes ("aɪ", "tʃ", "ɑːɹ") stay one symbol.

Word ends are where espeak puts spaces. espeak reads some function-word pairs as one unit
("in the" -> "ɪnðə", "of a" -> "əvə"), so such a pair counts as one word here: the boundary inside
it is not marked (the analyses use espeak's units, not the text's words).
"""
from __future__ import annotations

import dataclasses
import functools
from collections.abc import Iterable, Sequence

import numpy as np

VOICE = "en-us"
SEPARATOR = "_"
STRESS_MARKS = "ˈˌ"
PAD = "<pad>"


@functools.lru_cache(maxsize=None)
def _synthesizer():
    from tfds_builders.spoken_shapes import speech  # deferred: loads the espeak-ng library

    return speech.get_synthesizer(), speech.Speaker(VOICE, "m1", 160, 45)


@functools.lru_cache(maxsize=65536)
def g2p_words(text: str) -> tuple[tuple[str, ...], ...]:
    """espeak's phonemes of `text`, one tuple per word unit (see the module docstring)."""
    synth, speaker = _synthesizer()
    ipa = synth.phonemize(text, speaker, separator=SEPARATOR)
    units = []
    for unit in ipa.split():
        phones = tuple(p for p in (q.strip(STRESS_MARKS) for q in unit.split(SEPARATOR)) if p)
        if phones:
            units.append(phones)
    return tuple(units)


def g2p(text: str | bytes) -> tuple[list[str], list[bool]]:
    """Caption -> (phonemes [L], word_end [L]: True where a word unit ends after that phoneme)."""
    text = text.decode() if isinstance(text, bytes) else str(text)
    units = g2p_words(text.strip())
    if not units:
        raise ValueError(f"espeak-ng gave no phonemes for the caption {text!r}; give a non-empty English caption.")
    phones = [p for u in units for p in u]
    ends = [i == len(u) - 1 for u in units for i in range(len(u))]
    return phones, ends


@dataclasses.dataclass(frozen=True)
class Vocabulary:
    """Phoneme symbols; id 0 is padding, unknown symbols are an error."""

    symbols: tuple[str, ...]

    @classmethod
    def build(cls, sequences: Iterable[Sequence[str]]) -> Vocabulary:
        return cls((PAD,) + tuple(sorted({p for s in sequences for p in s})))

    def __len__(self) -> int:
        return len(self.symbols)

    def encode(self, sequences: Sequence[Sequence[str]]) -> tuple[np.ndarray, np.ndarray]:
        """Phoneme lists -> (ids int32 [N, T], mask bool [N, T]), T the longest list."""
        index = {s: i for i, s in enumerate(self.symbols)}
        longest = max(len(s) for s in sequences)
        ids = np.zeros((len(sequences), longest), np.int32)
        for n, seq in enumerate(sequences):
            unknown = sorted({p for p in seq if p not in index})
            if unknown:
                raise ValueError(f"phonemes {unknown} are not in the training vocabulary ({len(self)} symbols); "
                                 "they occur only outside the training split.")
            ids[n, :len(seq)] = [index[p] for p in seq]
        return ids, ids > 0
