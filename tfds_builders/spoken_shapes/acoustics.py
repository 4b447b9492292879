"""Recording conditions for spoken_shapes 2.0: room, level, background noise, silence, dither.

Synthetic speech is digitally clean: exact-zero gaps at word boundaries, no room, no noise, no
silence around the words. `apply` turns a 16 kHz utterance (float32 [T], int16 scale / 32768)
into a recording, in this order, with every random choice drawn from the given rng:

1. Reverberation (probability `reverb_probability`): convolution with an impulse response made
   of a unit direct path at lag 0 (so word times do not move) plus a tail of Gaussian noise
   decaying by 60 dB in `rt60_s` (uniform in the option's range) and scaled to a
   direct-to-reverberant ratio `drr_db`. The tail runs on into the trailing silence.
2. Level: the speech is scaled to an RMS of `level_dbfs` (uniform) and given a gain ramp, linear
   in dB, from -d/2 to +d/2 over the utterance with d uniform in +-`level_drift_db`.
3. Silence: `leading_s` and `trailing_s` seconds (uniform) are added before and after.
4. Background noise over the whole recording at `snr_db` (uniform), where SNR = 10 log10 of
   speech power over noise power, both measured over the utterance's own T samples. The noise is
   either coloured (1/f^slope power spectrum, slope uniform: 0 white, 1 pink, 2 brown) or, with
   probability `babble_probability`, babble-like: 4-8 "talkers" of speech-shaped noise (long-term
   speech spectrum up to 4 kHz, one random formant-like peak each) with syllable-rate (~4 Hz)
   envelopes (`babble_noise`).
   Everything is generated here; nothing is downloaded.
5. If the peak would exceed 0.99 full scale, the whole recording is scaled down (SNR kept).
6. Dither: Gaussian noise of `dither_lsb` int16 steps (std), so after `to_int16` no run of
   exact zeros longer than a few samples remains.

`AcousticOptions()` is the realistic default; `AcousticOptions.clean()` switches every step off
and `apply` then returns its input unchanged (spoken_shapes 1.0.0's sound).
"""

from __future__ import annotations

import dataclasses

import numpy as np
import scipy.fft
import scipy.signal

SAMPLE_RATE = 16000  # Hz.
_LN_1000 = float(np.log(1000.0))  # Amplitude decays by a factor 1000 (60 dB) in RT60.
_PEAK = 0.99
_BABBLE_TALKERS = (4, 8)
_SYLLABLE_HZ = 4.0


@dataclasses.dataclass(frozen=True)
class AcousticOptions:
    """Ranges of the recording conditions; each (lo, hi) pair is drawn uniformly per utterance.

    A range of None (or a probability of 0) switches that step off; see the module docstring.
    """

    reverb_probability: float = 0.8
    rt60_s: tuple[float, float] | None = (0.15, 0.7)
    drr_db: tuple[float, float] = (0.0, 12.0)
    level_dbfs: tuple[float, float] | None = (-32.0, -18.0)
    level_drift_db: float = 4.0
    leading_s: tuple[float, float] | None = (0.05, 0.5)
    trailing_s: tuple[float, float] | None = (0.05, 0.5)
    snr_db: tuple[float, float] | None = (10.0, 30.0)
    babble_probability: float = 0.3
    noise_slope: tuple[float, float] = (0.0, 2.0)
    dither_lsb: float = 2.0

    @classmethod
    def clean(cls) -> "AcousticOptions":
        """Every step off: `apply` returns its input (the old, synthetic sound)."""
        return cls(reverb_probability=0.0, rt60_s=None, level_dbfs=None, level_drift_db=0.0,
                   leading_s=None, trailing_s=None, snr_db=None, babble_probability=0.0,
                   dither_lsb=0.0)

    def __post_init__(self):
        for name in ("rt60_s", "drr_db", "level_dbfs", "leading_s", "trailing_s", "snr_db",
                     "noise_slope"):
            value = getattr(self, name)
            if value is not None and (len(value) != 2 or value[0] > value[1]):
                raise ValueError(f"AcousticOptions.{name} must be a (low, high) pair with "
                                 f"low <= high, or None to switch it off; got {value!r}.")
        for name in ("reverb_probability", "babble_probability"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ValueError(f"AcousticOptions.{name} must be in [0, 1], got "
                                 f"{getattr(self, name)!r}.")
        if self.rt60_s is not None and self.rt60_s[0] <= 0:
            raise ValueError(f"AcousticOptions.rt60_s must be positive, got {self.rt60_s!r}.")
        for name in ("leading_s", "trailing_s"):
            if getattr(self, name) is not None and getattr(self, name)[0] < 0:
                raise ValueError(f"AcousticOptions.{name} must be >= 0 s, got "
                                 f"{getattr(self, name)!r}.")
        if self.dither_lsb < 0 or self.level_drift_db < 0:
            raise ValueError("AcousticOptions.dither_lsb and level_drift_db must be >= 0, got "
                             f"{self.dither_lsb!r} and {self.level_drift_db!r}.")


@dataclasses.dataclass(frozen=True)
class Conditions:
    """The conditions of one recording (drawn by `draw_conditions`; None = step off).

    leading / trailing: silence in samples; noise: "colored", "babble" or None.
    """

    rt60_s: float | None
    drr_db: float
    level_dbfs: float | None
    drift_db: float
    leading: int
    trailing: int
    snr_db: float | None
    noise: str | None
    noise_slope: float
    dither_lsb: float


def draw_conditions(rng: np.random.Generator, options: AcousticOptions) -> Conditions:
    """Draws one recording's conditions from `options` (no draws for steps that are off)."""
    def uniform(pair):
        return None if pair is None else float(rng.uniform(*pair))

    reverb = options.rt60_s is not None and rng.uniform() < options.reverb_probability
    rt60 = uniform(options.rt60_s) if reverb else None
    drr = uniform(options.drr_db) if reverb else 0.0
    level = uniform(options.level_dbfs)
    drift = float(rng.uniform(-1, 1)) * options.level_drift_db if options.level_drift_db else 0.0
    leading = round(uniform(options.leading_s) * SAMPLE_RATE) if options.leading_s else 0
    trailing = round(uniform(options.trailing_s) * SAMPLE_RATE) if options.trailing_s else 0
    snr = uniform(options.snr_db)
    noise, slope = None, 0.0
    if snr is not None:
        noise = "babble" if rng.uniform() < options.babble_probability else "colored"
        slope = uniform(options.noise_slope) if noise == "colored" else 0.0
    return Conditions(rt60, drr, level, drift, int(leading), int(trailing), snr, noise, slope,
                      options.dither_lsb)


def impulse_response(rt60_s: float, drr_db: float, rng: np.random.Generator) -> np.ndarray:
    """Room impulse response float64 [round(rt60_s * 16000)]: 1 at lag 0 plus a decaying tail.

    The tail (lags >= 1) is Gaussian noise times exp(-ln(1000) t / rt60_s), scaled so that
    10 log10(1 / tail energy) = drr_db.
    """
    length = max(2, round(rt60_s * SAMPLE_RATE))
    t = np.arange(length) / SAMPLE_RATE
    tail = rng.standard_normal(length) * np.exp(-_LN_1000 * t / rt60_s)
    tail[0] = 0.0
    tail *= np.sqrt(10.0 ** (-drr_db / 10.0) / np.sum(tail ** 2))
    tail[0] = 1.0
    return tail


def colored_noise(n: int, slope: float, rng: np.random.Generator) -> np.ndarray:
    """Noise float64 [n] with power spectrum ~ 1/f^slope (flat below 20 Hz), unit RMS."""
    size = scipy.fft.next_fast_len(n, real=True)
    f = np.fft.rfftfreq(size, 1.0 / SAMPLE_RATE)
    spectrum = _white_spectrum(rng, (f.shape[0],)) * np.maximum(f, 20.0) ** (-slope / 2.0)
    return _unit_rms(np.fft.irfft(spectrum, size)[:n])


def babble_noise(n: int, rng: np.random.Generator) -> np.ndarray:
    """Babble-like noise float64 [n], unit RMS: a few talkers of modulated speech-shaped noise.

    Each talker: noise with the long-term speech spectrum (high-pass at 100 Hz, ~ -9 dB/octave
    above 500 Hz) and one formant-like peak at 300-3000 Hz, times a syllable-rate envelope
    (low-passed noise, ~4 Hz, half-wave rectified). Made at 8 kHz (band-limited to 4 kHz, where
    the speech spectrum is already 27 dB down) and upsampled to 16 kHz, which halves the cost.
    """
    low_rate = SAMPLE_RATE // 2
    size = scipy.fft.next_fast_len(n // 2 + 1, real=True)
    f = np.fft.rfftfreq(size, 1.0 / low_rate)
    ltass = (f / 100.0) ** 2 / (1.0 + (f / 100.0) ** 2) / np.sqrt(1.0 + (f / 500.0) ** 3)
    talkers = int(rng.integers(_BABBLE_TALKERS[0], _BABBLE_TALKERS[1] + 1))
    formants = rng.uniform(300.0, 3000.0, size=(talkers, 1))
    shapes = ltass * (1.0 + 3.0 * np.exp(-0.5 * ((f - formants) / (0.15 * formants)) ** 2))
    voices = np.fft.irfft(_white_spectrum(rng, shapes.shape) * shapes, size, axis=1)
    voices /= np.sqrt(np.mean(voices ** 2, axis=1, keepdims=True))
    hop = low_rate // 100  # Envelopes are drawn at 100 Hz and interpolated.
    frames = size // hop + 2
    env_filter = scipy.signal.butter(2, _SYLLABLE_HZ / 50.0, output="sos")
    envelopes = scipy.signal.sosfilt(env_filter, rng.standard_normal((talkers, frames)), axis=1)
    envelopes = np.maximum(envelopes / (np.std(envelopes, axis=1, keepdims=True) + 1e-12) + 0.5,
                           0.0)
    at = np.arange(size) / hop
    total = sum(voice * np.interp(at, np.arange(frames), env)
                for voice, env in zip(voices, envelopes))
    # irfft to twice the length zero-pads the spectrum: ideal 2x upsampling.
    return _unit_rms(np.fft.irfft(np.fft.rfft(total), 2 * size)[:n])


def _white_spectrum(rng: np.random.Generator, shape: tuple[int, ...]) -> np.ndarray:
    """complex64 [*shape]: i.i.d. complex Gaussian bins, the spectrum of white noise.

    Drawn in float32 (half the cost of float64; noise needs no more precision)."""
    return rng.standard_normal((*shape, 2), dtype=np.float32).view(np.complex64)[..., 0]


def mix_at_snr(speech: np.ndarray, noise: np.ndarray, snr_db: float,
               span: tuple[int, int]) -> np.ndarray:
    """speech + g * noise (both [N]) with g such that the SNR over speech[span] is `snr_db`."""
    lo, hi = span
    speech_power = np.mean(speech[lo:hi] ** 2)
    noise_power = np.mean(noise[lo:hi] ** 2)
    if speech_power <= 0 or noise_power <= 0:  # Nothing to scale against: leave it silent.
        return speech.copy()
    return speech + noise * np.sqrt(speech_power / (noise_power * 10.0 ** (snr_db / 10.0)))


def render(wave: np.ndarray, conditions: Conditions, rng: np.random.Generator) -> np.ndarray:
    """Applies `conditions` to float32 [T]; returns float32 [leading + T + trailing].

    `rng` supplies the noise signals (impulse-response tail, background noise, dither).
    """
    wave = _check_wave(wave)
    c = conditions
    length = wave.shape[0]
    speech = wave.astype(np.float64)
    if c.rt60_s is not None:
        ir = impulse_response(c.rt60_s, c.drr_db, rng)
        speech = scipy.signal.fftconvolve(speech, ir)[:length + c.trailing]
    if c.level_dbfs is not None:
        rms = np.sqrt(np.mean(speech[:length] ** 2))
        if rms > 0:
            speech *= 10.0 ** (c.level_dbfs / 20.0) / rms
    if c.drift_db:
        ramp_db = c.drift_db * (np.arange(speech.shape[0]) / max(1, length - 1) - 0.5)
        speech *= 10.0 ** (ramp_db / 20.0)
    out = np.zeros(c.leading + length + c.trailing)
    out[c.leading:c.leading + speech.shape[0]] = speech
    span = (c.leading, c.leading + length)
    if c.snr_db is not None:
        if c.noise == "babble":
            noise = babble_noise(out.shape[0], rng)
        else:
            noise = colored_noise(out.shape[0], c.noise_slope, rng)
        out = mix_at_snr(out, noise, c.snr_db, span)
    peak = np.max(np.abs(out))
    if peak > _PEAK:
        out *= _PEAK / peak
    if c.dither_lsb:
        out += rng.standard_normal(out.shape[0], dtype=np.float32) * (c.dither_lsb / 32768.0)
    return out.astype(np.float32)


def apply(wave: np.ndarray, rng: np.random.Generator,
          options: AcousticOptions = AcousticOptions()) -> tuple[np.ndarray, float]:
    """Records float32 [T] (16 kHz) under conditions drawn from `options` with `rng`.

    Returns (float32 [T'], leading_silence_s): shift word and phone times by the second.
    Same rng state and input -> same bytes. With `AcousticOptions.clean()` returns the input
    values unchanged and 0.0, using no draws.
    """
    conditions = draw_conditions(rng, options)
    return render(wave, conditions, rng), conditions.leading / SAMPLE_RATE


def from_int16(waveform: np.ndarray) -> np.ndarray:
    """int16 [T] -> float32 [T] in [-1, 1) (divided by 32768)."""
    return (np.asarray(waveform, np.int16).astype(np.float32) / 32768.0).astype(np.float32)


def to_int16(wave: np.ndarray) -> np.ndarray:
    """float32 [T] -> int16 [T]: times 32768, rounded, clipped to the int16 range."""
    return np.clip(np.round(np.asarray(wave, np.float64) * 32768.0), -32768, 32767).astype(
        np.int16)


def _unit_rms(x: np.ndarray) -> np.ndarray:
    rms = np.sqrt(np.mean(x ** 2)) if x.size else 0.0
    return x / rms if rms > 0 else x


def _check_wave(wave) -> np.ndarray:
    wave = np.asarray(wave)
    if wave.ndim != 1 or wave.dtype != np.float32:
        raise ValueError(f"acoustics needs a float32 waveform of shape [T] (int16 / 32768, see "
                         f"from_int16); got dtype {wave.dtype} and shape {wave.shape}.")
    if wave.shape[0] == 0:
        raise ValueError("acoustics got an empty waveform; give at least one sample.")
    if not np.all(np.isfinite(wave)):
        raise ValueError("acoustics got a waveform with NaN or inf samples.")
    return wave
