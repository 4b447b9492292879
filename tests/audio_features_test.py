"""Tests of vgs_jax.audio_features against slow literal references and librosa, NumPy vs JAX."""
import json
import math
import os
import subprocess
import sys

import jax
import jax.numpy as jnp
import librosa
import numpy as np
import pytest
import scipy.signal

from vgs_jax import audio_features as af


def _speechlike(n: int, seed: int = 0, dc: float = 0.01) -> np.ndarray:
    """Float64 [n] test signal in [-1, 1]: gliding harmonic 'voice' with an envelope, plus noise and a DC offset."""
    rng = np.random.default_rng(seed)
    t = np.arange(n) / 16000.0
    f0 = 120.0 + 40.0 * np.sin(2 * np.pi * 1.5 * t)
    phase = 2 * np.pi * np.cumsum(f0) / 16000.0
    voice = sum(np.sin(k * phase) / k for k in range(1, 20))
    envelope = 0.5 + 0.5 * np.sin(2 * np.pi * 3.0 * t) ** 2
    return 0.2 * envelope * voice + 0.01 * rng.standard_normal(n) + dc


# ------------------------------------------------------------------ platalea: slow literal transcription

def _platalea_slow(x: np.ndarray) -> np.ndarray:
    """The platalea recipe written out frame by frame with explicit loops (float64)."""
    b, a = scipy.signal.iirnotch(0.001, 3.5)
    notched = list(scipy.signal.lfilter(b, a, x))
    count = len(x) // 160
    missing = 120 - len(x) % 160
    padded = [0.0] * 120 + notched + [0.0] * (int(math.ceil(missing)) if missing > 0 else 0)
    freqs = [8000.0 * i / 256 for i in range(257)]
    top = 1125.0 * math.log(1 + 8000.0 / 700)
    wanted = [700.0 * (math.exp(top * i / 41 / 1125.0) - 1) for i in range(42)]
    edges = []
    for w in wanted:  # nearest FFT bin frequency, first one on a tie
        best = 0
        for i, f in enumerate(freqs):
            if abs(f - w) < abs(freqs[best] - w):
                best = i
        edges.append(freqs[best])
    bank = []
    for j in range(40):
        lo, mid, hi = edges[j], edges[j + 1], edges[j + 2]
        row = []
        for f in freqs:
            if lo <= f <= mid:
                row.append((f - lo) / (mid - lo))
            elif mid <= f <= hi:
                row.append((hi - f) / (hi - mid))
            else:
                row.append(0.0)
        bank.append(row)
    window = [0.54 - 0.46 * math.cos(2 * math.pi * i / 399) for i in range(400)]
    static = []
    for t in range(count):
        frame = padded[160 * t:160 * t + 400]
        power = sum(s * s for s in frame)
        energy = math.log(power) if power > 0 else -50.0
        emph = [frame[0]] + [frame[i] - 0.97 * frame[i - 1] for i in range(1, 400)]
        spectrum = np.fft.fft([emph[i] * window[i] for i in range(400)] + [0.0] * 112)
        amp = [2.0 / 512 * abs(spectrum[k]) for k in range(257)]
        amp[0] /= 2
        amp[256] /= 2
        logbank = []
        for j in range(40):
            v = sum(amp[k] * bank[j][k] for k in range(257) if bank[j][k] != 0.0)
            logbank.append(math.log(v) if v > 0 else -50.0)
        ceps = [2 * sum(logbank[1 + m] * math.cos(math.pi * k * (2 * m + 1) / 78) for m in range(39))
                for k in range(1, 13)]
        static.append([energy] + ceps)

    def deltas(rows):
        out = []
        for t in range(len(rows)):
            d = []
            for c in range(len(rows[0])):
                acc = 0.0
                for n in (1, 2):
                    acc += n * (rows[min(t + n, len(rows) - 1)][c] - rows[max(t - n, 0)][c])
                d.append(acc / 10.0)
            out.append(d)
        return out

    d1 = deltas(static)
    d2 = deltas(d1)
    return np.array([s + u + v for s, u, v in zip(static, d1, d2)])


def test_platalea_matches_slow_reference():
    x = _speechlike(19744)
    got = af.compute(x, "platalea_mfcc")
    want = _platalea_slow(x)
    assert got.shape == want.shape == (123, 39)
    assert got.dtype == np.float32
    np.testing.assert_allclose(got, want, atol=1e-4, rtol=1e-5)
    # First column is the log energy of the notched, un-emphasised frame.
    b, a = scipy.signal.iirnotch(0.001, 3.5)
    padded = np.concatenate([np.zeros(120), scipy.signal.lfilter(b, a, x), np.zeros(120)])
    np.testing.assert_allclose(got[5, 0], np.log(np.sum(padded[800:1200] ** 2)), rtol=1e-6)


@pytest.mark.parametrize("n", [160, 345, 439, 440, 479, 1000])
def test_platalea_short_lengths_and_padding(n):
    # n % 160 below, at and above the 120-sample context exercise both padding branches of the reference.
    x = _speechlike(n, seed=n)
    np.testing.assert_allclose(af.compute(x, "platalea_mfcc"), _platalea_slow(x), atol=1e-4, rtol=1e-5)


def test_platalea_filterbank_facts():
    bank = af.platalea_filterbank()
    assert bank.shape == (257, 40)
    np.testing.assert_allclose(bank.max(axis=0), 1.0)
    assert bank[0, 0] == 0.0 and bank[-1, -1] == 0.0  # first filter starts at 0 Hz, last ends at Nyquist
    assert np.all(np.argmax(bank, axis=0)[1:] > np.argmax(bank, axis=0)[:-1])


# ------------------------------------------------------------------ librosa-based recipes

def test_davenet_matches_librosa_calls():
    x = _speechlike(20000, seed=1, dc=0.05)
    y = x - x.mean()
    y = np.append(y[0], y[1:] - 0.97 * y[:-1])
    stft = librosa.stft(y, n_fft=400, hop_length=160, win_length=400, window=scipy.signal.windows.hamming,
                        center=True, pad_mode="constant")
    mel = librosa.filters.mel(sr=16000, n_fft=400, n_mels=40, fmin=20)
    want = librosa.power_to_db(mel @ np.abs(stft) ** 2, ref=np.max, amin=1e-10, top_db=80.0).T
    got = af.compute(x, "davenet_logmel")
    assert got.shape == (1 + 20000 // 160, 40) == (af.num_frames(20000, "davenet_logmel"), 40)
    np.testing.assert_allclose(got, want, atol=1e-4)
    assert got.max() == 0.0 and got.min() >= -80.0


def test_generic_recipes_match_librosa_feature():
    x = _speechlike(16000, seed=2)
    kw = dict(sr=16000, n_fft=512, hop_length=160, win_length=400, window="hamming", n_mels=40, center=True)
    mel = librosa.feature.melspectrogram(y=x, power=2.0, **kw)
    np.testing.assert_allclose(af.compute(x, "logmel"), np.log(mel + 1e-6).T, atol=1e-4)
    mfcc = librosa.feature.mfcc(y=x, n_mfcc=13, **kw)
    want = np.concatenate([mfcc, librosa.feature.delta(mfcc), librosa.feature.delta(mfcc, order=2)]).T
    got = af.compute(x, "mfcc")
    assert got.shape == (101, 39)
    np.testing.assert_allclose(got, want, atol=2e-4, rtol=1e-5)
    # Shortest allowed input: exactly 9 frames, where librosa's 'interp' deltas are pure edge fits.
    short = x[:1280]
    m9 = librosa.feature.mfcc(y=short, n_mfcc=13, **kw)
    want9 = np.concatenate([m9, librosa.feature.delta(m9), librosa.feature.delta(m9, order=2)]).T
    np.testing.assert_allclose(af.compute(short, "mfcc"), want9, atol=2e-4, rtol=1e-5)


def test_int16_is_scaled():
    x = (_speechlike(4000, seed=3) * 20000).astype(np.int16)
    for recipe in af.RECIPES:
        np.testing.assert_array_equal(af.compute(x, recipe), af.compute(x / 32768.0, recipe))


# ------------------------------------------------------------------ JAX vs NumPy

# The JAX path runs in float32 (FFT, matmuls at HIGHEST precision), the NumPy path in float64. Log/dB features amplify the float32 rounding of weak bins (a bin 60 dB
# under the frame's strongest has ~1e-4 relative error), and the DCT sums 39 such logs with weight 2, so the
# comparison uses atol 1e-3. platalea_mfcc's notch and spectrum are products exact to ~2^-31 and rounded once
# (vgs_jax.exact_matmul), so it meets 1e-3 on real speech too (below).
_JAX_ATOL = {"platalea_mfcc": 1e-3, "davenet_logmel": 1e-3, "mfcc": 1e-3, "logmel": 1e-3, "raw": 1e-7}


@pytest.mark.parametrize("recipe", af.RECIPES)
def test_jax_matches_numpy_and_batches(recipe):
    batch = np.stack([_speechlike(8000, seed=s) for s in (4, 5, 6)]).astype(np.float32)
    got = np.asarray(af.compute_jax(jnp.asarray(batch), recipe))
    assert got.shape == (3, af.num_frames(8000, recipe), af.num_features(recipe)) and got.dtype == np.float32
    for i in range(3):
        want = af.compute(batch[i], recipe)
        np.testing.assert_allclose(got[i], want, atol=_JAX_ATOL[recipe])
        single = np.asarray(af.compute_jax(jnp.asarray(batch[i]), recipe))
        np.testing.assert_allclose(got[i], single, atol=1e-5)


# ------------------------------------------------------------------ real speech: espeak with silences

_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# (text, (espeak voice, variant, words per minute, pitch)); "en" is espeak's British English.
_UTTERANCES = (("a man in a red shirt rides a bicycle down the road", ("en", "m1", 140, 50)),
               ("a little girl climbing into a wooden playhouse", ("en-us", "m3", 175, 50)),
               ("the boy jumps off the rocks into the water", ("en", "m7", 185, 40)))
# Run in a fresh interpreter (fork + exec): espeak must not be forked from this process, whose JAX threads run
# (reference notes, environment.md section 13), and a fresh process makes espeak's output reproducible.
_SYNTHESIZE = """
import json, sys
import numpy as np
sys.path.insert(0, sys.argv[1])
from tfds_builders.spoken_shapes import speech
synth = speech.get_synthesizer()
waves = [synth.synthesize(text, speech.Speaker(*speaker)).waveform for text, speaker in json.loads(sys.argv[3])]
np.savez(sys.argv[2], *waves)
"""


@pytest.fixture(scope="module")
def espeak_batch(tmp_path_factory):
    """float32 [3, n]: espeak utterances (16 kHz) after 0.5 s of digital silence, padded with >= 1 s of it."""
    path = str(tmp_path_factory.mktemp("espeak") / "speech.npz")
    subprocess.run([sys.executable, "-c", _SYNTHESIZE, _ROOT, path, json.dumps(_UTTERANCES)], check=True,
                   timeout=300)
    with np.load(path) as saved:
        waves = [saved[f"arr_{i}"] for i in range(len(_UTTERANCES))]
    n = 8000 + max(w.size for w in waves) + 16000
    batch = np.zeros((len(waves), n), np.float32)
    for row, wave in zip(batch, waves):
        row[8000:8000 + wave.size] = wave / 32768.0
    return batch


def test_platalea_jax_matches_numpy_on_every_frame_of_real_speech(espeak_batch):
    # Float32 FFT and IIR filter were off by up to 0.1 here: in the silent frames after speech the notch's faint
    # ringing sets the spectrum, and in loud frames pre-emphasis leaves bins below ~150 Hz 60-90 dB under the peak.
    got = np.asarray(af.compute_jax(jnp.asarray(espeak_batch), "platalea_mfcc"))
    for row, features in zip(espeak_batch, got):
        want = af.compute(row, "platalea_mfcc")
        assert np.any(want[:, 0] > -5) and np.any(want[:, 0] == -50.0)  # loud speech and digital silence
        assert np.abs(features - want).max() <= 1e-3


def test_jax_notch_is_float32_exact_on_real_speech(espeak_batch):
    b, a = af.notch_coefficients()
    got = np.asarray(jax.jit(af._notch_jax)(jnp.asarray(espeak_batch)), np.float64)
    want = scipy.signal.lfilter(b, a, espeak_batch.astype(np.float64))
    frames = (got.shape[-1] // 160, 160)
    rms = np.sqrt(np.mean(want[:, :np.prod(frames)].reshape((3,) + frames) ** 2, axis=-1))
    error = np.sqrt(np.mean((got - want)[:, :np.prod(frames)].reshape((3,) + frames) ** 2, axis=-1))
    ringing = rms > 0  # every frame after the speech starts, down to the ringing 1.5 s into the silence
    assert ringing.sum() > 0.6 * ringing.size and np.min(rms[ringing]) < 1e-9 * np.max(rms)
    # each sample rounded once to float32 is ~3e-8 rms relative; a float32 block recurrence left up to 9e-4 here
    assert np.max(error[ringing] / rms[ringing]) < 1e-7


def test_jax_notch_is_exact_filter():
    x = _speechlike(20000, seed=7, dc=0.1)
    b, a = af.notch_coefficients()
    want = scipy.signal.lfilter(b, a, x)
    got = np.asarray(jax.jit(af._notch_jax)(jnp.asarray(x, jnp.float32)))
    np.testing.assert_allclose(got, want, atol=2e-6)  # float32 rounding of x (|x| < 1) dominates


def test_jax_under_jit_and_vmap():
    batch = jnp.asarray(np.stack([_speechlike(3200, seed=s) for s in (8, 9)]), jnp.float32)
    jitted = jax.jit(af.compute_jax, static_argnames=("recipe", "sample_rate"))
    direct = af.compute_jax(batch, "platalea_mfcc")
    np.testing.assert_allclose(jitted(batch, recipe="platalea_mfcc"), direct, atol=1e-5)
    mapped = jax.vmap(lambda w: af.compute_jax(w, "platalea_mfcc"))(batch)
    np.testing.assert_allclose(mapped, direct, atol=1e-5)
    ints = (np.asarray(batch) * 20000).astype(np.int16)
    np.testing.assert_allclose(af.compute_jax(jnp.asarray(ints), "logmel"),
                               af.compute_jax(jnp.asarray(ints / 32768.0, jnp.float32), "logmel"), atol=1e-6)


# ------------------------------------------------------------------ silence, sizes, bad input

@pytest.mark.parametrize("recipe", af.RECIPES)
def test_silence_is_finite(recipe):
    zeros = np.zeros(3200)
    for out in (af.compute(zeros, recipe), np.asarray(af.compute_jax(jnp.zeros(3200), recipe))):
        assert np.all(np.isfinite(out))
        if recipe == "platalea_mfcc":
            assert np.all(out[:, 0] == -50.0)
            np.testing.assert_allclose(out[:, 1:], 0.0, atol=1e-3)
        elif recipe == "davenet_logmel":
            assert np.all(out == 0.0)  # librosa's answer: every bin equals the (zero) maximum
        elif recipe == "logmel":
            np.testing.assert_allclose(out, np.log(1e-6), rtol=1e-6)
        elif recipe == "raw":
            assert out.shape == (3200, 1) and not np.any(out)
        else:  # mfcc: -100 dB everywhere -> only c0 non-zero
            np.testing.assert_allclose(out[:, 0], -100.0 * np.sqrt(40), rtol=1e-5)
            np.testing.assert_allclose(out[:, 1:], 0.0, atol=1e-3)


def test_leading_digital_silence_matches_reference():
    x = np.concatenate([np.zeros(1000), _speechlike(3000, seed=10)])
    np.testing.assert_allclose(af.compute(x, "platalea_mfcc"), _platalea_slow(x), atol=1e-4, rtol=1e-5)
    assert af.compute(x, "platalea_mfcc")[0, 0] == -50.0


def test_sizes_and_pad_values():
    assert af.RECIPES == ("platalea_mfcc", "davenet_logmel", "mfcc", "logmel", "raw")
    assert [af.num_features(r) for r in af.RECIPES] == [39, 40, 39, 40, 1]
    assert af.num_frames(19744, "raw") == 19744 and af.pad_value("raw") == 0.0
    np.testing.assert_array_equal(af.compute(np.array([16384, -32768], np.int16), "raw"), [[0.5], [-1.0]])
    assert af.num_frames(19744, "platalea_mfcc") == 123
    assert af.num_frames(19744, "davenet_logmel") == af.num_frames(19744, "logmel") == 124
    assert af.num_frames(159, "platalea_mfcc") == 0 and af.num_frames(0, "mfcc") == 1
    assert af.pad_value("davenet_logmel") == 0.0 and af.pad_value("platalea_mfcc") == 0.0
    assert af.pad_value("logmel") == pytest.approx(np.log(1e-6))
    with pytest.raises(ValueError, match="num_samples"):
        af.num_frames(-1, "mfcc")


@pytest.mark.parametrize("fn", [af.compute, af.compute_jax])
def test_bad_input(fn):
    x = _speechlike(3200).astype(np.float32)
    with pytest.raises(ValueError, match=r"8000.*librosa\.resample"):
        fn(x, "mfcc", sample_rate=8000)
    with pytest.raises(ValueError, match="platalea_mfcc.*davenet_logmel"):
        fn(x, "fbank")
    with pytest.raises(ValueError, match="empty waveform"):
        fn(np.zeros(0, np.float32), "logmel")
    with pytest.raises(ValueError, match="too short.*1280"):
        fn(x[:1000], "mfcc")
    with pytest.raises(ValueError, match="too short.*160"):
        fn(x[:100], "platalea_mfcc")
    with pytest.raises(ValueError, match="non-finite"):
        fn(np.where(np.arange(3200) == 7, np.nan, x), "davenet_logmel")
    with pytest.raises(ValueError, match="dtype int32"):
        fn(np.zeros(3200, np.int32), "logmel")
    with pytest.raises(ValueError, match="shape"):
        fn(np.zeros((2, 2, 3200), np.float32), "logmel")
    with pytest.raises(ValueError, match="unknown feature recipe"):
        af.num_features("nope")


def test_compute_rejects_batch():
    with pytest.raises(ValueError, match=r"shape \[n\]"):
        af.compute(np.zeros((2, 3200)), "logmel")
