"""Word and phone alignments from espeak-ng's synthesis events (used by `speech.py`)."""

from __future__ import annotations

import re
from typing import Mapping

import numpy as np

# espeak_EVENT_TYPE values (speak_lib.h).
EVENT_WORD = 1
EVENT_END = 5
EVENT_MSG_TERMINATED = 6
EVENT_PHONEME = 7


def alignments_from_events(events, text: str, duration: float,
                           joined_word_phones: Mapping[str, int] | None = None):
    """Turns espeak events into word and phone intervals (seconds).

    espeak reads some word pairs as one unit ("of a", "in the") and then sends one WORD event
    for both, with all phonemes tagged with the first word. Such a unit is split at a phone
    boundary: a joined word w takes the unit's last `joined_word_phones[w]` phones; for words
    not in that table the unit's phones are shared in proportion to the words' letters.

    Args:
      events: sequence of (type, text_position (1-based chars), length, audio_position_ms,
        phoneme name bytes).
      text: the synthesized text; its whitespace-separated tokens are the words returned.
      duration: audio length in seconds; every time is clipped to [0, duration].
      joined_word_phones: phone count of words that espeak may join to the previous word.
    Returns:
      (words, phones): tuples of (label, start, end); a word ends where the next word starts
      or at the END event, a phone where the next phoneme event (pauses included) starts;
      pauses (empty phoneme names) are left out of `phones`.
    """
    end_ms = None
    word_ms: dict[int, int] = {}
    marks = []  # (ipa, text_position, start_ms) of every phoneme event, pauses included.
    for kind, position, _, audio_ms, name in events:
        if kind == EVENT_WORD:
            word_ms.setdefault(position, audio_ms)
        elif kind == EVENT_PHONEME:
            marks.append((name.split(b"\0")[0].decode("utf-8", "replace"), position, audio_ms))
        elif kind in (EVENT_END, EVENT_MSG_TERMINATED) and end_ms is None:
            end_ms = audio_ms
    if end_ms is None:
        end_ms = duration * 1000.0
    phone_spans = [(ipa, pos, ms, marks[i + 1][2] if i + 1 < len(marks) else end_ms)
                   for i, (ipa, pos, ms) in enumerate(marks)]

    units: list[list] = []  # [text_position, start_ms, [words]]: what one WORD event covers.
    for match in re.finditer(r"\S+", text):
        position = match.start() + 1
        if position in word_ms or not units:
            units.append([position, word_ms.get(position, 0), [match.group()]])
        else:
            units[-1][2].append(match.group())
    starts: list[tuple[str, float]] = []
    for position, start_ms, unit_words in units:
        unit_phones = [p for p in phone_spans if p[1] == position and p[0]]
        for word, ms in zip(unit_words, _split_unit(unit_words, start_ms, unit_phones,
                                                    joined_word_phones or {})):
            starts.append((word, max(ms, starts[-1][1] if starts else 0.0)))

    def clip(ms: float) -> float:
        return min(max(ms / 1000.0, 0.0), duration)

    words = tuple((w, clip(ms), clip(max(starts[i + 1][1] if i + 1 < len(starts) else end_ms, ms)))
                  for i, (w, ms) in enumerate(starts))
    phones = tuple((ipa, clip(ms), clip(max(stop, ms))) for ipa, _, ms, stop in phone_spans
                   if ipa and ipa.strip("_:"))
    return words, phones


def _split_unit(words, start_ms, phones, joined) -> list[float]:
    """Start times (ms) of the words of one espeak unit, whose phones are `phones`."""
    if len(words) == 1:
        return [start_ms]
    index = len(phones)
    boundaries = []
    for word in reversed(words[1:]):
        index -= joined.get(word.lower(), len(phones) + 1)
        boundaries.insert(0, index)
    if boundaries[0] > 0:  # Every joined word is known and leaves the first word a phone.
        return [start_ms] + [phones[b][2] for b in boundaries]
    stop = phones[-1][3] if phones else start_ms  # Otherwise share the time by letters.
    letters = np.cumsum([len(w) for w in words])[:-1] / sum(len(w) for w in words)
    return [start_ms] + [start_ms + c * (stop - start_ms) for c in letters]
