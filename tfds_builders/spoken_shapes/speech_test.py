"""Tests of spoken_shapes 2.0 voices (voices.py) and `Synthesizer.speak` (speech.py)."""

import hashlib
import re

import numpy as np
import pytest

from tfds_builders.spoken_shapes import speech, voices

JOINED = {"the": 2, "a": 1, "an": 2, "are": 1}
TEXTS = {
    "en": "there are two red circles to the left of a small blue square in the middle",
    "hi": "नीले वर्ग के ऊपर एक लाल वृत्त",
    "ja": "あおい しかくの うえに あかい まる",
}


def test_pools_disjoint_and_large():
    assert voices.HELD_OUT_VARIANTS <= set(voices.VARIANTS)
    all_ids = []
    for language in voices.LANGUAGES:
        train = voices.speakers(language, "train")
        held_out = voices.speakers(language, "held_out")
        assert len(train) >= 40 and len(held_out) >= 10
        assert not {s.variant for s in train} & {s.variant for s in held_out}
        assert len({(s.voice, s.variant) for s in train}) == len(train)
        all_ids += [s.speaker_id for s in train + held_out]
        assert voices.pool_sizes()[language] == {"train": len(train), "held_out": len(held_out)}
    assert len(all_ids) == len(set(all_ids))


def test_sample_voice_stays_in_pool_and_ranges():
    for language, spec in voices.LANGUAGES.items():
        for pool in voices.POOLS:
            rng = np.random.default_rng(0)
            settings = [voices.sample_voice(rng, language, pool) for _ in range(400)]
            by_id = {s.speaker_id: s for s in voices.speakers(language, pool)}
            assert {s.speaker_id for s in settings} == set(by_id)  # Every speaker gets used.
            for s in settings:
                speaker = by_id[s.speaker_id]
                assert (s.voice, s.variant) == (speaker.voice, speaker.variant)
                assert spec.rate[0] <= s.rate <= spec.rate[1] and 0 <= s.pitch <= 99
                assert spec.pitch_range[0] <= s.pitch_range <= spec.pitch_range[1]
                assert s.clause_end in ".!,?" and 0 <= s.word_pitch_sd <= 10
            # Intonation varies per utterance, not per speaker.
            assert len({(s.rate, s.pitch, s.pitch_range) for s in settings}) > 300
            again = np.random.default_rng(0)
            assert settings[:5] == [voices.sample_voice(again, language, pool) for _ in range(5)]


def test_bad_language_or_pool():
    with pytest.raises(ValueError, match="No voices for language 'xx'"):
        voices.sample_voice(np.random.default_rng(0), "xx", "train")
    with pytest.raises(ValueError, match="Unknown speaker pool 'test'"):
        voices.speakers("en", "test")


def test_word_pitches_are_ar1_offsets():
    setting = voices.VoiceSetting(0, "en-us", "m1", 160, 50, 50, ".", 6.0, 123)
    pitches = voices.word_pitches(setting, 12)
    noise = np.random.default_rng(123).normal(0.0, 1.0, 12) * 6.0
    offset, expected = 0.0, []
    for k in range(12):
        offset = 0.5 * offset + noise[k]
        expected.append(min(99, max(0, round(50 + offset))))
    assert pitches.tolist() == expected


def test_prosody_markup_maps_positions_back():
    text = "a  red circle above\tthe blue square"
    setting = voices.VoiceSetting(0, "en-us", "m1", 160, 50, 50, "?", 5.0, 7)
    spoken, position_map = voices.prosody_markup(text, setting)
    assert re.sub("\x01[0-9]+P ", "", spoken) == " ".join(text.split()) + "?"
    pitches = voices.word_pitches(setting, 7)
    for k, match in enumerate(re.finditer(r"\S+", text)):
        command = f"\x01{pitches[k]}P "
        command_at = spoken.index(command + match.group()) + 1
        assert position_map(command_at) == match.start() + 1
        for j in range(len(match.group())):  # Characters inside the word.
            assert position_map(command_at + len(command) + j) == match.start() + 1 + j


def test_prosody_markup_keeps_the_texts_own_punctuation():
    setting = voices.VoiceSetting(0, "hi", "m1", 160, 50, 50, "?", 0.0, 7)
    spoken, _ = voices.prosody_markup("लाल वृत्त।", setting)
    assert spoken == "\x0150P लाल \x0150P वृत्त।"
    assert voices.prosody_markup("a red circle", setting)[0].endswith("circle?")


def _speak_all(settings):
    synthesizer = speech.get_synthesizer()
    return [synthesizer.speak(TEXTS[lang], s, JOINED if lang == "en" else None)
            for lang, s in settings]


def test_speak_every_voice_with_alignments():
    rng = np.random.default_rng(1)
    settings = []
    for language, spec in voices.LANGUAGES.items():
        for voice in spec.voices:  # Every base voice (accent), with a drawn variant.
            s = voices.sample_voice(rng, language, "train")
            settings.append((language, voices.VoiceSetting(
                s.speaker_id, voice, s.variant, s.rate, s.pitch, s.pitch_range, s.clause_end,
                s.word_pitch_sd, s.intonation_seed)))
        settings.append((language, voices.sample_voice(rng, language, "held_out")))
    utterances = speech.run_isolated(_speak_all, settings)
    again = speech.run_isolated(_speak_all, settings[:2])
    assert [u.waveform.tobytes() for u in again] == [u.waveform.tobytes()
                                                     for u in utterances[:2]]
    for (language, _), utt in zip(settings, utterances):
        assert utt.waveform.dtype == np.int16 and np.abs(utt.waveform).max() > 1000
        assert [w[0] for w in utt.words] == TEXTS[language].split()
        starts = [w[1] for w in utt.words]
        assert starts == sorted(starts) and all(0 <= w[1] < w[2] <= utt.duration
                                                for w in utt.words)
        assert len(utt.phones) >= len(utt.words) and utt.phonemes


def _one(text, speaker_or_setting):
    synthesizer = speech.get_synthesizer()
    if isinstance(speaker_or_setting, speech.Speaker):
        return synthesizer.synthesize(text, speaker_or_setting, JOINED)
    return synthesizer.speak(text, speaker_or_setting, JOINED)


def test_speak_keeps_words_and_phones_of_plain_text():
    """The markup changes the sound, not the words, phones or phonemes."""
    text = TEXTS["en"]
    plain = speech.run_isolated(_one, text, speech.Speaker("en-us", "m3", 160, 50))
    setting = voices.VoiceSetting(0, "en-us", "m3", 160, 50, 70, "!", 9.0, 5)
    marked = speech.run_isolated(_one, text, setting)
    assert [p[0] for p in marked.phones] == [p[0] for p in plain.phones]
    assert marked.phonemes == plain.phonemes
    assert [w[0] for w in marked.words] == [w[0] for w in plain.words]
    # Same word timing up to the rate change the pitch commands bring (a few per cent).
    for a, b in zip(plain.words, marked.words):
        assert abs(a[1] - b[1]) < 0.05 + 0.05 * a[1]


def _table_digest():
    synthesizer = speech.get_synthesizer()
    digest = hashlib.sha256()
    for speaker in speech.make_speaker_table(("en-us", "en"))[:4]:
        utt = synthesizer.synthesize("a small red circle above the blue square", speaker, JOINED)
        digest.update(utt.waveform.tobytes())
        digest.update(repr((utt.words, utt.phones, utt.phonemes)).encode())
    return digest.hexdigest()


def test_synthesize_1_0_0_bytes_unchanged():
    """spoken_shapes 1.0.0's speech path gives the bytes it gave before 2.0 (espeak-ng 1.52.0
    from espeakng-loader 0.2.4); a new espeak build may change them, which this catches."""
    assert speech.run_isolated(_table_digest) == (
        "8244051ce700f260e5352648f03c6264a124f4f948363c066a6ad7c634ec5585")
