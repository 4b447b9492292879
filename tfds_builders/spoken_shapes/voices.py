"""Voices of spoken_shapes 2.0: speaker pools and per-utterance voice settings.

A *speaker* is one espeak-ng voice variant (timbre: formants, pitch register, breathiness,
synthesis method) reading one language with one base voice, plus the speaker's own centre of
speaking rate and pitch. The 75 variants used (`VARIANTS`, all bundled in the `espeakng-loader`
wheel's `espeak-ng-data/voices/!v`; 16 of them female; the robotic, whispered, echo-only and
test variants are left out) are split once, for every language alike, into a `train` pool of 60
(13 female) and a `held_out` pool of 15 (`HELD_OUT_VARIANTS`, 3 female), so a held-out voice is
a timbre never heard in training in any language. English speakers take the accents `en-us`, `en` (British),
`en-GB-x-rp`, `en-US-nyc`, `en-GB-scotland` and `en-029` (Caribbean) in turn; Hindi and
Japanese have one base voice each (`hi`, `ja`). Rate and pitch centres are spread over the
ranges by fixed strides (the tables are constants). Speaker ids are unique across languages and
pools: `1000 * language_index + variant_index` (`speakers`, `pool_sizes`).

Each utterance draws its own `VoiceSetting` from the speaker's centre (`sample_voice`):
  rate:        centre x exp(N(0, 0.08)), clipped to the language's rate range (words/min);
  pitch:       centre + N(0, 6) on espeak's 0..99 scale (50 = the variant's own register);
  pitch_range: uniform in the language's range on espeak's 0..99 scale (50 = espeak's default
               intonation; 0 = monotone, 99 = twice the default excursion);
  clause_end:  ".", "!", "," or "?" (probabilities 0.55/0.15/0.2/0.1): the clause tune espeak
               applies (falling, emphatic, continuing, rising), appended to the spoken text only;
  word pitch:  each word's pitch is moved from `pitch` by an AR(1) offset
               (o_k = 0.5 o_(k-1) + N(0, word_pitch_sd), word_pitch_sd uniform in 0..10), drawn
               from `intonation_seed`; espeak gets it as an embedded pitch command
               ("\\x01<p>P") before the word (`prosody_markup`), so the shape of the contour
               changes, not only its level and excursion.
"""

from __future__ import annotations

import bisect
import dataclasses
import functools
import re
import unicodedata

import numpy as np

# Human-sounding espeak-ng variants, in a fixed order (index = variant index of the speaker id).
VARIANTS = (
    "m1", "m2", "m3", "m4", "m5", "m6", "m7", "m8", "f1", "f2", "f3", "f4", "f5",
    "klatt", "klatt2", "klatt3", "klatt4", "klatt5", "klatt6",
    "Alex", "Alicia", "Andrea", "Annie", "Denis", "Diogo", "Gene", "Gene2", "Henrique", "Hugo",
    "Marco", "Mario", "Michael", "Mike", "Nguyen", "Reed", "adam", "anika", "announcer",
    "antonio", "aunty", "belinda", "benjamin", "boris", "david", "ed", "edward", "edward2",
    "grandma", "grandpa", "gustave", "ian", "iven", "iven2", "iven3", "iven4", "john",
    "kaukovalta", "linda", "max", "michel", "miguel", "mike2", "norbert", "pablo", "paul", "pedro",
    "quincy", "rob", "robert", "sandro", "shelby", "steph", "steph2", "steph3", "travis",
)
POOLS = ("train", "held_out")
# The held-out pool: 15 variants across the list, 3 of them female like a fifth of the train pool.
HELD_OUT_VARIANTS = frozenset({
    "m5", "f2", "klatt2", "Alex", "Diogo", "Marco", "Reed", "aunty", "ed", "gustave", "iven4",
    "michel", "steph2", "sandro", "travis"})
_CLAUSE_ENDS = (".", "!", ",", "?")
_CLAUSE_END_P = (0.55, 0.15, 0.2, 0.1)
_RATE_LOG_SD = 0.08
_PITCH_SD = 6.0
_WORD_PITCH_SD = (0.0, 10.0)
_WORD_PITCH_AR = 0.5


@dataclasses.dataclass(frozen=True)
class LanguageVoices:
    """How one language is spoken: espeak base voices (accents) and parameter ranges.

    voices: espeak voice names, given to speakers in turn; rate: (min, max) words/min of a
    speaker's centre and of an utterance; pitch_range: (min, max) of the per-utterance intonation
    range on espeak's 0..99 scale.
    """

    voices: tuple[str, ...]
    rate: tuple[int, int] = (130, 195)
    pitch_range: tuple[int, int] = (25, 90)


# Append new languages at the end: the index is part of the speaker id.
LANGUAGES: dict[str, LanguageVoices] = {
    "en": LanguageVoices(("en-us", "en", "en-GB-x-rp", "en-US-nyc", "en-GB-scotland", "en-029")),
    "hi": LanguageVoices(("hi",), rate=(120, 180)),
    "ja": LanguageVoices(("ja",), rate=(130, 190)),
}


@dataclasses.dataclass(frozen=True)
class PoolSpeaker:
    """One speaker of a pool: id, language, base voice, variant, rate and pitch centres."""

    speaker_id: int
    language: str
    pool: str
    voice: str
    variant: str
    rate: int
    pitch: int


@dataclasses.dataclass(frozen=True)
class VoiceSetting:
    """How one utterance is spoken (what `Synthesizer.speak` takes).

    rate: words/min; pitch, pitch_range: espeak's 0..99 scales; clause_end: punctuation
    appended to the spoken text (sets the clause tune; the stored text is unchanged);
    word_pitch_sd, intonation_seed: the per-word pitch offsets (see `prosody_markup`).
    """

    speaker_id: int
    voice: str
    variant: str
    rate: int
    pitch: int
    pitch_range: int
    clause_end: str
    word_pitch_sd: float
    intonation_seed: int

    @property
    def voice_name(self) -> str:
        """The name given to `espeak_SetVoiceByName`, e.g. "en-us+m3"."""
        return f"{self.voice}+{self.variant}"


def _check(language: str, pool: str) -> LanguageVoices:
    if language not in LANGUAGES:
        raise ValueError(f"No voices for language {language!r}; choose one of {list(LANGUAGES)} "
                         "or add a LanguageVoices entry to voices.LANGUAGES.")
    if pool not in POOLS:
        raise ValueError(f"Unknown speaker pool {pool!r}; choose one of {list(POOLS)}.")
    return LANGUAGES[language]


@functools.lru_cache(maxsize=None)
def speakers(language: str, pool: str) -> tuple[PoolSpeaker, ...]:
    """The speakers of one language's pool ("train": 60, "held_out": 15), in id order."""
    spec = _check(language, pool)
    lang_index = list(LANGUAGES).index(language)
    indices = [i for i, variant in enumerate(VARIANTS)
               if (variant in HELD_OUT_VARIANTS) == (pool == "held_out")]
    lo, hi = spec.rate
    table = []
    for k, i in enumerate(indices):
        # Centres spread over the ranges by fixed strides (no RNG: the table is a constant).
        rate = lo + 8 + (i * 17) % max(1, hi - lo - 15)
        pitch = 32 + (i * 13) % 37
        table.append(PoolSpeaker(1000 * lang_index + i, language, pool,
                              spec.voices[k % len(spec.voices)], VARIANTS[i], rate, pitch))
    return tuple(table)


def pool_sizes() -> dict[str, dict[str, int]]:
    """{language: {pool: number of speakers}}, for the README's speakers-per-split table."""
    return {lang: {pool: len(speakers(lang, pool)) for pool in POOLS} for lang in LANGUAGES}


def sample_voice(rng: np.random.Generator, language: str, pool: str) -> VoiceSetting:
    """Draws a speaker of `pool` and this utterance's rate, pitch, range and intonation."""
    spec = _check(language, pool)
    table = speakers(language, pool)
    speaker = table[int(rng.integers(len(table)))]
    rate = speaker.rate * float(np.exp(rng.normal(0.0, _RATE_LOG_SD)))
    pitch = speaker.pitch + float(rng.normal(0.0, _PITCH_SD))
    pitch_range = rng.uniform(*spec.pitch_range)
    clause_end = _CLAUSE_ENDS[int(rng.choice(len(_CLAUSE_ENDS), p=_CLAUSE_END_P))]
    word_pitch_sd = round(float(rng.uniform(*_WORD_PITCH_SD)), 2)
    return VoiceSetting(
        speaker_id=speaker.speaker_id, voice=speaker.voice, variant=speaker.variant,
        rate=int(np.clip(round(rate), *spec.rate)), pitch=int(np.clip(round(pitch), 0, 99)),
        pitch_range=int(round(pitch_range)), clause_end=clause_end, word_pitch_sd=word_pitch_sd,
        intonation_seed=int(rng.integers(2 ** 31)))


def word_pitches(setting: VoiceSetting, num_words: int) -> np.ndarray:
    """int [num_words]: each word's espeak pitch (0..99), `pitch` plus the AR(1) offsets."""
    rng = np.random.default_rng(setting.intonation_seed)
    noise = rng.normal(0.0, 1.0, num_words) * setting.word_pitch_sd
    offsets = np.zeros(num_words)
    for k in range(num_words):
        offsets[k] = (_WORD_PITCH_AR * offsets[k - 1] if k else 0.0) + noise[k]
    return np.clip(np.round(setting.pitch + offsets), 0, 99).astype(int)


def prosody_markup(text: str, setting: VoiceSetting) -> tuple[str, "PositionMap"]:
    """The string espeak speaks for `text`: a pitch command before each word, the clause end
    (unless `text` already ends in punctuation).

    Returns (spoken, position_map); `position_map` turns espeak's 1-based character positions
    in `spoken` back into positions in `text`. espeak reports a word that follows a command at
    the command's position, so commands map to the position of their word.
    """
    words = list(re.finditer(r"\S+", text))
    pitches = word_pitches(setting, len(words))
    parts, starts = [], []  # starts: (command start, word start) in spoken, word start in text.
    length = 0
    for match, pitch in zip(words, pitches):
        if parts:
            parts.append(" ")
            length += 1
        command = f"\x01{pitch}P "
        starts.append((length + 1, length + 1 + len(command), match.start() + 1))
        parts.extend([command, match.group()])
        length += len(command) + len(match.group())
    ends_in_punctuation = bool(words) and unicodedata.category(words[-1].group()[-1])[0] == "P"
    if not ends_in_punctuation:  # Text that ends in punctuation keeps its own clause tune.
        parts.append(setting.clause_end)
    return "".join(parts), PositionMap(tuple(starts))


@dataclasses.dataclass(frozen=True)
class PositionMap:
    """Maps 1-based positions in the marked-up string to positions in the original text.

    starts: per word (command start, word start in the markup, word start in the text).
    """

    starts: tuple[tuple[int, int, int], ...]

    def __call__(self, position: int) -> int:
        k = bisect.bisect_right([s[0] for s in self.starts], position) - 1
        if k < 0:
            return position
        command_start, word_start, text_start = self.starts[k]
        return text_start + max(0, position - word_start)
