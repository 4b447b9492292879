"""Synthetic spoken captions for spoken_shapes 2.0 (TTS augmentation, Ilharco et al. 2019).

The `*_tts` configs add a split `train_tts`: every train caption (in every language of the
config) spoken once more, by a *TTS voice*, with `synthetic=True` (every other split has
`synthetic=False`). A TTS voice is an espeak-ng variant in neither speaker pool of `voices.py`
(`TTS_VARIANTS`), so no synthetic voice speaks in `test` (train pool) or `test_unseen_speakers`
(held-out pool). Like a text-to-speech system, it reads every caption the same neutral way: the
speaker's centre rate and pitch, espeak's default intonation range, a falling clause end and no
per-word pitch movement. The recording conditions (`acoustics.apply`) are drawn as for real
speech. Per utterance the stream is `numpy.random.default_rng([seed, 2, image_id, k,
language index, STREAM])`; the caption id is the real (train pool) caption's plus
`CAPTION_ID_OFFSET`, and `meaning_id`, `text` and `image_id` are the real caption's.
"""

from __future__ import annotations

import functools
from typing import Sequence

import numpy as np

from . import acoustics
from . import speech
from . import voices

SPLIT = "train_tts"
STREAM = 2  # After the pool indices of voices.POOLS ("train" 0, "held_out" 1).
CAPTION_ID_OFFSET = 10 ** 9  # Real caption ids stay below 2e8 for every size (int32-safe).
# espeak-ng variants outside voices.VARIANTS without echo, whisper or robotic effects.
TTS_VARIANTS = ("Andy", "Jacky", "Lee", "marcelo", "victor")
_SPEAKER_ID_BASE = 100  # Speaker ids 1000 * language index + 100 + k: after every pool variant.


@functools.lru_cache(maxsize=None)
def speakers(language: str) -> tuple[voices.PoolSpeaker, ...]:
    """The TTS speakers of a language: one per TTS variant, base voices in turn, centred rate."""
    if language not in voices.LANGUAGES:
        raise ValueError(f"No voices for language {language!r}; choose one of "
                         f"{list(voices.LANGUAGES)}.")
    spec = voices.LANGUAGES[language]
    lang_index = list(voices.LANGUAGES).index(language)
    rate = (spec.rate[0] + spec.rate[1]) // 2
    return tuple(voices.PoolSpeaker(1000 * lang_index + _SPEAKER_ID_BASE + k, language, "tts",
                                    spec.voices[k % len(spec.voices)], variant, rate, 50)
                 for k, variant in enumerate(TTS_VARIANTS))


def tts_voice(rng: np.random.Generator, language: str) -> voices.VoiceSetting:
    """A TTS speaker drawn from `rng`, reading with neutral prosody."""
    table = speakers(language)
    s = table[int(rng.integers(len(table)))]
    return voices.VoiceSetting(speaker_id=s.speaker_id, voice=s.voice, variant=s.variant,
                               rate=s.rate, pitch=s.pitch, pitch_range=50, clause_end=".",
                               word_pitch_sd=0.0, intonation_seed=0)


def speak_texts(items: Sequence[tuple[int, str]], seed: int,
                language: str = "en") -> list[tuple[np.ndarray, int]]:
    """TTS speech of other corpora's text captions (e.g. the flickr8k_audio `*_tts` configs).

    items: (caption_id, text) pairs. Returns (int16 [n] audio at 16 kHz, speaker_id) per item,
    spoken in a forked child (`speech.run_isolated`, so the bytes depend only on the inputs);
    the voice and recording conditions of caption c come from `default_rng([seed, STREAM, c])`.
    """
    speech.get_synthesizer()  # One espeak initialisation per process; it never speaks itself.
    return speech.run_isolated(_speak, list(items), seed, language)


def _speak(items, seed, language):
    synthesizer = speech.get_synthesizer()
    out = []
    for caption_id, text in items:
        rng = np.random.default_rng([seed, STREAM, caption_id])
        voice = tts_voice(rng, language)
        wave, _ = acoustics.apply(acoustics.from_int16(synthesizer.speak(text, voice).waveform), rng)
        out.append((acoustics.to_int16(wave), voice.speaker_id))
    return out
