"""Tests of spoken_shapes.acoustics against slow, obvious re-measurements."""

import dataclasses
import math

import numpy as np
import pytest

from tfds_builders.spoken_shapes import acoustics

SR = acoustics.SAMPLE_RATE


def _speech_like(seconds=1.5, seed=0) -> np.ndarray:
    """float32 [T]: 150 ms tone bursts separated by 100 ms of exact zeros, like espeak's gaps."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(0.15 * SR)) / SR
    parts = []
    while sum(p.shape[0] for p in parts) < seconds * SR:
        f0 = rng.uniform(90, 250)
        burst = 0.3 * np.sin(2 * np.pi * f0 * t) * np.hanning(t.shape[0])
        parts += [burst, np.zeros(int(0.1 * SR))]
    return np.concatenate(parts).astype(np.float32)


def _db(x) -> float:
    return 10 * math.log10(x)


def _power(x) -> float:
    return math.fsum(float(v) ** 2 for v in x) / len(x)


def _max_zero_run(x) -> int:
    best = run = 0
    for v in x:
        run = run + 1 if v == 0 else 0
        best = max(best, run)
    return best


def test_clean_is_identity_and_draws_nothing():
    wave = _speech_like()
    rng = np.random.default_rng(3)
    state = rng.bit_generator.state
    out, lead = acoustics.apply(wave, rng, acoustics.AcousticOptions.clean())
    assert out.dtype == np.float32 and np.array_equal(out, wave) and lead == 0.0
    assert rng.bit_generator.state == state


def test_same_rng_same_bytes():
    wave = _speech_like()
    a = acoustics.apply(wave, np.random.default_rng(7))
    b = acoustics.apply(wave, np.random.default_rng(7))
    c = acoustics.apply(wave, np.random.default_rng(8))
    assert a[0].tobytes() == b[0].tobytes() and a[1] == b[1]
    assert a[0].tobytes() != c[0].tobytes()
    assert a[0].dtype == np.float32 and np.max(np.abs(a[0])) < 1.0


@pytest.mark.parametrize("snr_db", [0.0, 12.5, 30.0])
def test_mix_at_snr_measured(snr_db):
    rng = np.random.default_rng(1)
    speech = np.concatenate([np.zeros(300), rng.standard_normal(2000) * 0.1, np.zeros(200)])
    noise = acoustics.colored_noise(speech.shape[0], 1.0, rng)
    mixed = acoustics.mix_at_snr(speech, noise, snr_db, (300, 2300))
    measured = _db(_power(speech[300:2300]) / _power((mixed - speech)[300:2300]))
    assert measured == pytest.approx(snr_db, abs=1e-6)


@pytest.mark.parametrize("kind", ["colored", "babble"])
def test_apply_noise_at_drawn_snr(kind):
    """The noise in apply's output (output minus a noise-free render) has the drawn SNR."""
    wave = _speech_like()
    options = acoustics.AcousticOptions(level_dbfs=(-30.0, -30.0), dither_lsb=0.0,
                                        babble_probability=float(kind == "babble"))
    conditions = acoustics.draw_conditions(np.random.default_rng(5), options)
    assert conditions.noise == kind and conditions.snr_db is not None
    out, lead = acoustics.apply(wave, np.random.default_rng(5), options)
    # Same draws for the impulse response: rebuild the rng state after draw_conditions.
    rng = np.random.default_rng(5)
    acoustics.draw_conditions(rng, options)
    quiet = acoustics.render(wave, dataclasses.replace(conditions, snr_db=None), rng)
    start = round(lead * SR)
    span = slice(start, start + wave.shape[0])
    noise = out.astype(np.float64) - quiet
    assert _db(_power(quiet[span]) / _power(noise[span])) == pytest.approx(conditions.snr_db,
                                                                           abs=1e-3)
    assert _power(noise[:start]) > 0  # The noise also fills the leading silence.


def test_dither_leaves_no_zero_runs():
    wave = _speech_like()
    assert _max_zero_run(acoustics.to_int16(wave)) > 1000  # espeak-like exact-zero gaps.
    dither_only = dataclasses.replace(acoustics.AcousticOptions.clean(), dither_lsb=2.0)
    for options in (dither_only, acoustics.AcousticOptions()):
        out, _ = acoustics.apply(wave, np.random.default_rng(2), options)
        assert _max_zero_run(acoustics.to_int16(out)) <= 6


def test_leading_silence_is_returned_value():
    wave = _speech_like()
    silence_only = dataclasses.replace(acoustics.AcousticOptions.clean(), leading_s=(0.1, 0.4),
                                       trailing_s=(0.05, 0.2))
    out, lead = acoustics.apply(wave, np.random.default_rng(4), silence_only)
    start = round(lead * SR)
    assert lead == start / SR and 0.1 <= lead <= 0.4
    assert not np.any(out[:start]) and np.array_equal(out[start:start + wave.shape[0]], wave)
    assert 0.05 * SR <= out.shape[0] - start - wave.shape[0] <= 0.2 * SR
    # With every step on, the direct path still puts the speech at the returned offset:
    # the cross-correlation of output and input peaks at lag round(lead * SR).
    out, lead = acoustics.apply(wave, np.random.default_rng(4))
    lags = range(out.shape[0] - wave.shape[0] + 1)
    scores = [float(np.dot(out[k:k + wave.shape[0]], wave)) for k in lags]
    assert int(np.argmax(scores)) == round(lead * SR)


@pytest.mark.parametrize("rt60_s,drr_db", [(0.2, 0.0), (0.45, 6.0), (0.7, 12.0)])
def test_impulse_response_rt60_and_drr(rt60_s, drr_db):
    ir = acoustics.impulse_response(rt60_s, drr_db, np.random.default_rng(0))
    assert ir[0] == 1.0 and ir.shape[0] == round(rt60_s * SR)
    tail = ir[1:]
    assert _db(1.0 / math.fsum(float(v) ** 2 for v in tail)) == pytest.approx(drr_db, abs=1e-9)
    # Schroeder backward integration, T20 fit (-5 to -25 dB) extrapolated to 60 dB.
    energy = [float(v) ** 2 for v in tail]
    edc, acc = [0.0] * len(energy), 0.0
    for i in range(len(energy) - 1, -1, -1):
        acc += energy[i]
        edc[i] = acc
    edc_db = np.array([_db(e / edc[0]) for e in edc])
    fit = (edc_db <= -5) & (edc_db >= -25)
    slope = np.polyfit(np.arange(len(energy))[fit] / SR, edc_db[fit], 1)[0]
    assert -60.0 / slope == pytest.approx(rt60_s, rel=0.06)


@pytest.mark.parametrize("slope", [0.0, 1.0, 2.0])
def test_colored_noise_spectral_slope(slope):
    noise = acoustics.colored_noise(4 * SR, slope, np.random.default_rng(0))
    assert _power(noise) == pytest.approx(1.0)
    spectrum = np.abs(np.fft.rfft(noise)) ** 2
    f = np.fft.rfftfreq(noise.shape[0], 1 / SR)
    band = (f >= 100) & (f <= 4000)
    fitted = np.polyfit(np.log10(f[band]), np.log10(spectrum[band]), 1)[0]
    assert fitted == pytest.approx(-slope, abs=0.1)


def test_babble_is_modulated_speech_shaped_noise():
    rng = np.random.default_rng(0)
    babble = acoustics.babble_noise(4 * SR, rng)
    colored = acoustics.colored_noise(4 * SR, 1.0, rng)
    assert _power(babble) == pytest.approx(1.0)

    def envelope_spread(x):  # Relative spread of 50 ms frame levels.
        frames = x[:x.shape[0] // 800 * 800].reshape(-1, 800)
        rms = np.sqrt(np.mean(frames ** 2, axis=1))
        return np.std(rms) / np.mean(rms)

    assert envelope_spread(babble) > 2 * envelope_spread(colored)
    spectrum = np.abs(np.fft.rfft(babble)) ** 2
    f = np.fft.rfftfreq(babble.shape[0], 1 / SR)
    assert spectrum[(f > 200) & (f < 1000)].mean() > 10 * spectrum[f > 5000].mean()


def test_level_is_drawn_rms():
    wave = _speech_like()
    level_only = dataclasses.replace(acoustics.AcousticOptions.clean(), level_dbfs=(-30.0, -20.0))
    conditions = acoustics.draw_conditions(np.random.default_rng(6), level_only)
    out, _ = acoustics.apply(wave, np.random.default_rng(6), level_only)
    assert 10 * math.log10(_power(out)) == pytest.approx(conditions.level_dbfs, abs=1e-4)


def test_int16_round_trip():
    x = np.array([-32768, -1, 0, 1, 32767], np.int16)
    assert np.array_equal(acoustics.to_int16(acoustics.from_int16(x)), x)
    assert acoustics.to_int16(np.array([1.5, -1.5], np.float32)).tolist() == [32767, -32768]


def test_bad_input_errors():
    with pytest.raises(ValueError, match="float32 waveform of shape"):
        acoustics.apply(np.zeros(10, np.int16), np.random.default_rng(0))
    with pytest.raises(ValueError, match="empty waveform"):
        acoustics.apply(np.zeros(0, np.float32), np.random.default_rng(0))
    with pytest.raises(ValueError, match="snr_db must be a"):
        acoustics.AcousticOptions(snr_db=(30.0, 10.0))
    with pytest.raises(ValueError, match="reverb_probability must be in"):
        acoustics.AcousticOptions(reverb_probability=2.0)
