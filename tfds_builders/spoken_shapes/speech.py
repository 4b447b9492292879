"""Speech synthesis with espeak-ng (the `espeakng-loader` wheel) through ctypes.

espeak-ng keeps its state per process (one voice at a time), so each process holds one
`Synthesizer`, created on first use by `get_synthesizer()`. That state also carries over from
one utterance to the next in ways no API call resets, so reproducible speech is synthesized
inside `run_isolated` (a fork of a process that never spoke). An utterance comes with word and
phoneme alignments from espeak's WORD and PHONEME events, and is resampled from espeak's native
22050 Hz to 16 kHz with `scipy.signal.resample_poly` (deterministic).

Two ways to speak: `Synthesizer.synthesize(text, Speaker)` with the 16 fixed speakers of
`make_speaker_table` (spoken_shapes 1.0.0, kept byte-identical), and
`Synthesizer.speak(text, VoiceSetting)` with a setting drawn per utterance by `sample_voice`
from a language's `train` or `held_out` speaker pool (2.0; see `voices.py`). Room acoustics,
noise and silence are added afterwards by `acoustics.apply`.
"""

from __future__ import annotations

import ctypes
import dataclasses
import os
import pickle
import traceback
from typing import Mapping

import numpy as np
import scipy.signal

from .alignment import EVENT_PHONEME, alignments_from_events
from .voices import (LANGUAGES, POOLS, VoiceSetting, pool_sizes, prosody_markup, sample_voice,
                     speakers)

__all__ = ["LANGUAGES", "POOLS", "VoiceSetting", "alignments_from_events", "pool_sizes",
           "sample_voice", "speakers"]

SAMPLE_RATE = 16000  # Hz, rate of the stored waveforms.
ESPEAK_SAMPLE_RATE = 22050  # Hz, what espeak-ng synthesises.
_INSTALL_HINT = "install it with `pip install espeakng-loader`"

# espeak-ng API constants (speak_lib.h).
_AUDIO_OUTPUT_SYNCHRONOUS = 2
_INIT_PHONEME_EVENTS = 0x0001
_INIT_PHONEME_IPA = 0x0002
_INIT_DONT_EXIT = 0x8000
_POS_CHARACTER = 1
_CHARS_UTF8 = 1
_RATE = 1
_PITCH = 3
_RANGE = 4
_EVENT_LIST_TERMINATED = 0
_PHONEMES_IPA = 0x02
_BUFFER_MS = 1000  # Length of the audio buffer handed to the callback.
_NOISE_SEED = 12345


class EspeakError(RuntimeError):
    """espeak-ng could not be loaded or did not produce speech."""


@dataclasses.dataclass(frozen=True)
class Speaker:
    """One synthetic speaker: espeak voice (language), variant, rate (words/min), pitch (0-99)."""

    voice: str
    variant: str
    rate: int
    pitch: int

    @property
    def voice_name(self) -> str:
        """The name given to `espeak_SetVoiceByName`, e.g. "en-us+f3"."""
        return f"{self.voice}+{self.variant}"


# Rate (wpm) and pitch (0..99) per variant; voices are supplied per language.
_VARIANT_SETTINGS = (
    ("m1", 160, 45), ("f1", 170, 55), ("m2", 145, 40), ("f2", 155, 60),
    ("m3", 175, 50), ("f3", 140, 65), ("m4", 150, 35), ("f4", 180, 50),
    ("m5", 165, 55), ("f5", 150, 45), ("m6", 135, 50), ("m7", 185, 40),
    ("m8", 155, 45), ("m1", 190, 60), ("f3", 165, 40), ("m3", 130, 60),
)


def make_speaker_table(voices: tuple[str, ...]) -> tuple[Speaker, ...]:
    """Builds the speaker table for a language: 16 speakers, voices taken in turn.

    Args:
      voices: espeak voice names of one language, e.g. ("en-us", "en").
    Returns:
      A tuple of `Speaker`; speaker id = index in the tuple.
    """
    if not voices:
        raise ValueError("make_speaker_table needs at least one espeak voice name, got none.")
    return tuple(
        Speaker(voices[i % len(voices)], variant, rate, pitch)
        for i, (variant, rate, pitch) in enumerate(_VARIANT_SETTINGS)
    )


@dataclasses.dataclass(frozen=True)
class Utterance:
    """A synthesized utterance.

    waveform: int16 [num_samples] at `SAMPLE_RATE` (16 kHz).
    words: tuple of (word, start_s, end_s); phones: tuple of (ipa_symbol, start_s, end_s).
    phonemes: IPA phoneme string of the whole text (espeak_TextToPhonemes).
    """

    waveform: np.ndarray
    words: tuple[tuple[str, float, float], ...]
    phones: tuple[tuple[str, float, float], ...]
    phonemes: str

    @property
    def duration(self) -> float:
        """Length of the waveform in seconds."""
        return self.waveform.shape[0] / SAMPLE_RATE


class _EventId(ctypes.Union):
    _fields_ = [("number", ctypes.c_int), ("name", ctypes.c_char_p), ("string", ctypes.c_char * 8)]


class _Event(ctypes.Structure):
    _fields_ = [
        ("type", ctypes.c_int),
        ("unique_identifier", ctypes.c_uint),
        ("text_position", ctypes.c_int),
        ("length", ctypes.c_int),
        ("audio_position", ctypes.c_int),
        ("sample", ctypes.c_int),
        ("user_data", ctypes.c_void_p),
        ("id", _EventId),
    ]


_CALLBACK = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.POINTER(ctypes.c_short), ctypes.c_int,
                             ctypes.POINTER(_Event))


def _library_paths() -> tuple[str, str]:
    """Returns (libespeak-ng path, espeak-ng-data path) from the espeakng-loader package."""
    try:
        import espeakng_loader  # pylint: disable=import-outside-toplevel
    except ImportError as e:
        raise EspeakError(f"The package espeakng-loader is not installed; {_INSTALL_HINT}.") from e
    try:
        return espeakng_loader.get_library_path(), espeakng_loader.get_data_path()
    except Exception as e:  # The loader raises a bare RuntimeError for missing data.
        raise EspeakError(f"espeakng-loader is broken ({e}); reinstall it with "
                          "`pip install --force-reinstall espeakng-loader`.") from e


class Synthesizer:
    """espeak-ng engine of this process (create through `get_synthesizer()`)."""

    def __init__(self, library_path: str | None = None, data_path: str | None = None):
        if library_path is None or data_path is None:
            default_lib, default_data = _library_paths()
            library_path = library_path or default_lib
            data_path = data_path or default_data
        try:
            lib = ctypes.CDLL(library_path)
        except OSError as e:
            raise EspeakError(f"Cannot load libespeak-ng from {library_path!r} ({e}); the package "
                              f"espeakng-loader looks broken: {_INSTALL_HINT}.") from e
        lib.espeak_Initialize.restype = ctypes.c_int
        lib.espeak_Initialize.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_char_p, ctypes.c_int]
        lib.espeak_SetSynthCallback.argtypes = [_CALLBACK]
        lib.espeak_SetVoiceByName.argtypes = [ctypes.c_char_p]
        lib.espeak_SetParameter.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_int]
        lib.espeak_Synth.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_uint, ctypes.c_int,
                                     ctypes.c_uint, ctypes.c_uint, ctypes.c_void_p, ctypes.c_void_p]
        lib.espeak_ng_SetRandSeed.argtypes = [ctypes.c_long]
        lib.espeak_TextToPhonemes.restype = ctypes.c_char_p
        lib.espeak_TextToPhonemes.argtypes = [ctypes.POINTER(ctypes.c_void_p), ctypes.c_int,
                                              ctypes.c_int]
        flags = _INIT_PHONEME_EVENTS | _INIT_PHONEME_IPA | _INIT_DONT_EXIT
        rate = lib.espeak_Initialize(_AUDIO_OUTPUT_SYNCHRONOUS, _BUFFER_MS, data_path.encode(),
                                     flags)
        if rate != ESPEAK_SAMPLE_RATE:
            raise EspeakError(f"espeak_Initialize with data {data_path!r} returned {rate}, "
                              f"expected {ESPEAK_SAMPLE_RATE}; the espeak-ng data looks broken: "
                              f"{_INSTALL_HINT}.")
        self._lib = lib
        self._chunks: list[np.ndarray] = []
        self._events: list[tuple[int, int, int, int, bytes]] = []
        self._callback = _CALLBACK(self._on_audio)  # Keep a reference: espeak holds the pointer.
        lib.espeak_SetSynthCallback(self._callback)
        self._voice: str | None = None

    def _on_audio(self, wav, num_samples, events) -> int:
        if num_samples > 0:
            self._chunks.append(np.ctypeslib.as_array(wav, shape=(num_samples,)).copy())
        i = 0
        while events[i].type != _EVENT_LIST_TERMINATED:
            e = events[i]
            name = bytes(e.id.string) if e.type == EVENT_PHONEME else b""
            self._events.append((e.type, e.text_position, e.length, e.audio_position, name))
            i += 1
        return 0

    def _set_speaker(self, speaker: Speaker) -> None:
        if self._voice != speaker.voice_name:
            if self._lib.espeak_SetVoiceByName(speaker.voice_name.encode()) != 0:
                raise EspeakError(f"espeak-ng has no voice {speaker.voice_name!r}; use a voice "
                                  "listed under espeak-ng-data/lang and a variant from voices/!v.")
            self._voice = speaker.voice_name
        self._lib.espeak_SetParameter(_RATE, speaker.rate, 0)
        self._lib.espeak_SetParameter(_PITCH, speaker.pitch, 0)

    def phonemize(self, text: str, speaker: Speaker, separator: str | None = None) -> str:
        """IPA phoneme string of `text` in the speaker's voice, clauses joined by spaces; with a
        one-character `separator`, espeak puts it between the phonemes of each word."""
        self._set_speaker(speaker)
        return self._phonemes(text, separator)

    def _phonemes(self, text: str, separator: str | None = None) -> str:
        """IPA of `text` in the voice already set (phonemes separated by `separator` when given)."""
        mode = _PHONEMES_IPA
        if separator is not None:
            if len(separator) != 1 or separator.isspace():
                raise ValueError(f"separator must be one non-space character; got {separator!r}.")
            mode |= ord(separator) << 8  # speak_lib.h: bits 8-23 of phonememode
        buf = ctypes.create_string_buffer(text.encode("utf-8"))
        ptr = ctypes.c_void_p(ctypes.addressof(buf))
        parts = []
        while ptr.value:
            out = self._lib.espeak_TextToPhonemes(ctypes.byref(ptr), _CHARS_UTF8, mode)
            if out:
                parts.append(out.decode("utf-8").strip())
        return " ".join(p for p in parts if p)

    def synthesize(self, text: str, speaker: Speaker,
                   joined_word_phones: Mapping[str, int] | None = None) -> Utterance:
        """Speaks `text` with `speaker`; returns 16 kHz int16 audio and alignments in seconds.

        joined_word_phones: see `alignments_from_events` (from the language's lexicon).
        """
        self._set_speaker(speaker)
        return self._utterance(text, text, joined_word_phones, speaker)

    def speak(self, text: str, setting: VoiceSetting,
              joined_word_phones: Mapping[str, int] | None = None) -> Utterance:
        """Speaks `text` with a per-utterance `VoiceSetting` (from `sample_voice`).

        Sets the voice, rate, pitch and intonation range, and speaks `text` marked up with
        per-word pitch commands and the clause end (`voices.prosody_markup`); words, phones and
        phonemes are those of `text`. Same `Utterance` as `synthesize`: int16 [n] at 16 kHz,
        alignments in seconds.
        """
        if self._lib.espeak_SetVoiceByName(setting.voice_name.encode()) != 0:
            raise EspeakError(f"espeak-ng has no voice {setting.voice_name!r}; use a voice "
                              "listed under espeak-ng-data/lang and a variant from voices/!v.")
        self._voice = setting.voice_name
        self._lib.espeak_SetParameter(_RATE, setting.rate, 0)
        self._lib.espeak_SetParameter(_PITCH, setting.pitch, 0)
        self._lib.espeak_SetParameter(_RANGE, setting.pitch_range, 0)
        spoken, position_map = prosody_markup(text, setting)
        return self._utterance(text, spoken, joined_word_phones, None, position_map)

    def _utterance(self, text: str, spoken: str, joined_word_phones, speaker,
                   position_map=None) -> Utterance:
        """Synthesizes `spoken` (`text`, or its markup) with the voice already set.

        position_map: turns event positions in `spoken` into positions in `text` (None: same).
        """
        global _SYNTHESIZED_HERE
        _SYNTHESIZED_HERE = True
        # espeak seeds its noise generator (breath, some variants) from the clock at
        # initialisation; a fixed seed per utterance makes the samples reproducible.
        self._lib.espeak_ng_SetRandSeed(_NOISE_SEED)
        self._chunks, self._events = [], []
        data = spoken.encode("utf-8")
        buf = ctypes.create_string_buffer(data)
        status = self._lib.espeak_Synth(buf, len(data) + 1, 0, _POS_CHARACTER, 0, _CHARS_UTF8,
                                        None, None)
        self._lib.espeak_Synchronize()
        if status != 0:
            raise EspeakError(f"espeak_Synth failed with status {status} for text {text!r}.")
        raw = np.concatenate(self._chunks) if self._chunks else np.zeros((0,), np.int16)
        if raw.size == 0 or not np.any(raw):
            raise EspeakError(f"espeak-ng produced no audio for text {text!r}; give text with "
                              "pronounceable words.")
        waveform = resample_to_16k(raw)
        duration = waveform.shape[0] / SAMPLE_RATE
        events = self._events
        if position_map is not None:
            events = [(kind, position_map(pos), n, ms, name) for kind, pos, n, ms, name in events]
        words, phones = alignments_from_events(events, text, duration, joined_word_phones)
        phonemes = self.phonemize(text, speaker) if speaker else self._phonemes(text)
        return Utterance(waveform, words, phones, phonemes)


_UP, _DOWN = 320, 441  # 22050 Hz * 320 / 441 = 16000 Hz.
# resample_poly's default anti-aliasing filter (Kaiser window, beta 5, half length 10 * 441),
# designed once here instead of on every call; passing it gives the same output.
_RESAMPLE_FILTER = scipy.signal.firwin(2 * 10 * _DOWN + 1, 1.0 / _DOWN, window=("kaiser", 5.0))


def resample_to_16k(raw: np.ndarray) -> np.ndarray:
    """Resamples int16 [n] audio at 22050 Hz to int16 [ceil(n*320/441)] at 16 kHz.

    Same as `scipy.signal.resample_poly(x, 320, 441)` (default filter), rounded and clipped.
    """
    y = scipy.signal.resample_poly(raw.astype(np.float64), _UP, _DOWN, window=_RESAMPLE_FILTER)
    return np.clip(np.round(y), -32768, 32767).astype(np.int16)


_SYNTHESIZER: Synthesizer | None = None
_SYNTHESIZED_HERE = False  # Whether this process has advanced espeak's hidden state.


def get_synthesizer() -> Synthesizer:
    """The process-wide `Synthesizer`, initialised on first call (one espeak init per process)."""
    global _SYNTHESIZER
    if _SYNTHESIZER is None:
        _SYNTHESIZER = Synthesizer()
    return _SYNTHESIZER


def run_isolated(fn, *args):
    """Runs `fn(*args)` in a forked child so espeak starts from this process's clean state.

    espeak-ng keeps hidden state across utterances (pitch-flutter index, glottal phase, gain
    control) that `espeak_Initialize` does not reset, so the same text and voice give different
    samples depending on what was spoken before. A child forked from a process that has never
    synthesized starts from the same state every time, which makes the output depend only on
    `fn` and `args`. Returns fn's (picklable) result; re-raises its exception here.
    """
    if _SYNTHESIZED_HERE:
        raise RuntimeError("run_isolated was called in a process that already synthesized speech, "
                           "so its espeak state is no longer clean; synthesize only inside "
                           "run_isolated (or in another process).")
    if not hasattr(os, "fork"):
        raise RuntimeError("spoken_shapes needs os.fork (Linux or macOS) to make espeak output "
                           "reproducible; this platform has none.")
    read_fd, write_fd = os.pipe()
    pid = os.fork()
    if pid == 0:  # Child: compute, send the pickled outcome, exit without cleanup handlers.
        status = 0
        try:
            os.close(read_fd)
            try:
                payload = pickle.dumps((True, fn(*args)), protocol=pickle.HIGHEST_PROTOCOL)
            except BaseException as e:  # pylint: disable=broad-except
                e.add_note("In the synthesis child process:\n" + traceback.format_exc())
                try:
                    payload = pickle.dumps((False, e), protocol=pickle.HIGHEST_PROTOCOL)
                except Exception:  # pylint: disable=broad-except
                    payload = pickle.dumps((False, RuntimeError(traceback.format_exc())))
            with os.fdopen(write_fd, "wb") as f:
                f.write(payload)
        except BaseException:  # pylint: disable=broad-except
            status = 1
        finally:
            os._exit(status)  # pylint: disable=protected-access
    os.close(write_fd)
    with os.fdopen(read_fd, "rb") as f:
        payload = f.read()
    _, wait_status = os.waitpid(pid, 0)
    if not payload:
        raise RuntimeError(f"The synthesis child process died (wait status {wait_status}) "
                           f"while running {getattr(fn, '__name__', fn)}.")
    ok, value = pickle.loads(payload)
    if not ok:
        raise value
    return value
