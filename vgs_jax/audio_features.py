"""Waveform -> acoustic features, in NumPy (input pipeline) and JAX (on device).

Five named recipes at 16 kHz: four with a 10 ms (160-sample) hop and a 25 ms (400-sample) window, and
``raw``:

- ``platalea_mfcc`` (39-d): the MFCC recipe of platalea / Merkx et al. (Interspeech 2019), reproduced step by
  step: notch filter ``scipy.signal.iirnotch(w0=0.001, Q=3.5)`` run over the whole signal (it sits at 8 Hz and
  has unit gain at DC, so despite its name in the reference it does not remove a DC offset); 120 zeros prepended
  and the frame count floor(n / 160); log energy of the raw notched frame; per-frame pre-emphasis 0.97; symmetric
  Hamming; 512-point amplitude spectrum scaled by 2/512 with DC and Nyquist halved; 40 triangular mel filters
  (mel = 1125 ln(1 + f/700), 42 edges snapped to FFT bins, peak 1); natural log; unnormalised DCT-II of filters
  2..40, coefficients 1..12; deltas with N = 2 (edge frames replicated, divided by 10) and deltas of deltas.
  Output columns: [log energy, 12 MFCC, 13 delta, 13 delta-delta]. A log of exactly 0 becomes -50 as in the
  reference (in float32 a tiny power may round to 0 where float64 does not, so near-digital-silence frames can
  differ between :func:`compute` and :func:`compute_jax`).
- ``davenet_logmel`` (40-d): DAVEnet / ResDAVEnet: subtract the mean, pre-emphasis 0.97 on the whole signal (first
  sample kept), STFT with n_fft = window = 400, hop 160, symmetric Hamming, ``center=True`` with zero padding
  (librosa >= 0.10's default; older librosa reflected), power spectrum, Slaney mel (40 bins, 20-8000 Hz,
  Slaney-normalised), ``power_to_db(ref=max, amin=1e-10, top_db=80)``: values in [-80, 0] dB relative to the
  utterance maximum. A silent (all-zero) waveform gives all 0 dB, as librosa does. The reference pads features to
  2048 frames with 0 dB (the utterance maximum, not silence): ``pad_value("davenet_logmel") == 0.0``.
- ``mfcc`` (39-d): ``librosa.feature.mfcc(n_mfcc=13)`` with n_fft 512, win 400 (periodic Hamming centred in 512),
  hop 160, 40 Slaney mels, ``center=True``, then ``librosa.feature.delta`` orders 1 and 2 (width 9, 'interp'
  edges), so it needs at least 9 frames (1280 samples).
- ``logmel`` (40-d): ``log(librosa.feature.melspectrogram(power=2) + 1e-6)`` with the same STFT settings.
- ``raw`` (1-d): the waveform itself as float32 in [-1, 1], one "frame" per sample ([n, 1]), padded with 0 (for
  the self-supervised encoders of `vgs_jax.models.wav2vec2`, which normalise it themselves if asked);
  ``max_frames`` and ``bucket_boundaries`` then count samples.

Input scale: float samples in [-1, 1]; int16 samples are divided by 32768 by both :func:`compute` and
:func:`compute_jax`. Both share one implementation written against the array namespace: NumPy in float64 (with
``scipy.signal.lfilter`` for the notch of platalea_mfcc); JAX in float32. platalea_mfcc has no floor under its logs, so weak bins
and the faint filter ringing in silent frames count as much as speech; there the JAX path computes the notch
filter and the (pre-emphasis, window, DFT) spectrum with products exact to ~2^-39 and ~2^-31 of their terms
(:mod:`vgs_jax.exact_matmul`), so each value is rounded once, and every frame of real speech, silences included,
agrees with :func:`compute` to ~3e-4 (a plain float32 FFT and IIR filter were off by up to 3e-3 on loud frames
and 0.1 on quiet ones).
"""
import dataclasses
import functools
from typing import Callable

import jax
import jax.numpy as jnp
import numpy as np
import scipy.signal

from vgs_jax import exact_matmul

RECIPES: tuple[str, ...] = ("platalea_mfcc", "davenet_logmel", "mfcc", "logmel", "raw")
SAMPLE_RATE = 16000
HOP = 160  # samples (10 ms)
WINDOW = 400  # samples (25 ms)
LOG_FLOOR = -50.0  # platalea's replacement for log(0)
_NUM_FEATURES = {"platalea_mfcc": 39, "davenet_logmel": 40, "mfcc": 39, "logmel": 40, "raw": 1}
# platalea zero-pads batches; DAVEnet pads with 0 dB (= the utterance maximum); generic mfcc uses the zero vector;
# generic logmel pads with log(1e-6), the value digital silence gets.
_PAD_VALUES = {"platalea_mfcc": 0.0, "davenet_logmel": 0.0, "mfcc": 0.0, "logmel": float(np.log(1e-6)), "raw": 0.0}
_MIN_SAMPLES = {"platalea_mfcc": HOP, "davenet_logmel": 1, "mfcc": 8 * HOP, "logmel": 1, "raw": 1}
_NOTCH_BLOCK = 256  # block length of the JAX notch filter


def _check_recipe(recipe: str) -> None:
    if recipe not in RECIPES:
        raise ValueError(f"unknown feature recipe {recipe!r}; choose one of {RECIPES}")


def _check_rate(sample_rate: int) -> None:
    if sample_rate != SAMPLE_RATE:
        raise ValueError(
            f"sample_rate {sample_rate} Hz is not supported: every recipe is defined at 16000 Hz; resample the "
            f"waveform to 16 kHz first, e.g. librosa.resample(y, orig_sr={sample_rate}, target_sr=16000)")


def num_features(recipe: str) -> int:
    """Feature dimension D of ``recipe`` (39 for the MFCC recipes, 40 for the log-mel ones)."""
    _check_recipe(recipe)
    return _NUM_FEATURES[recipe]


def num_frames(num_samples: int, recipe: str) -> int:
    """Frames produced from ``num_samples`` 16 kHz samples: n // 160 (platalea), n (raw) or 1 + n // 160
    (centred STFT)."""
    _check_recipe(recipe)
    if num_samples < 0:
        raise ValueError(f"num_samples must be >= 0, got {num_samples}")
    if recipe == "raw":
        return num_samples
    return num_samples // HOP if recipe == "platalea_mfcc" else 1 + num_samples // HOP


def frame_seconds(recipe: str) -> float:
    """Seconds between consecutive feature frames of ``recipe``: 0.01 (hop 160), or 1 / 16000 for ``raw``."""
    _check_recipe(recipe)
    return (1 if recipe == "raw" else HOP) / SAMPLE_RATE


def pad_value(recipe: str) -> float:
    """Value used to pad a [frames, D] feature matrix of ``recipe`` along time (see module docstring)."""
    _check_recipe(recipe)
    return _PAD_VALUES[recipe]


@dataclasses.dataclass(frozen=True)
class Featurizer:
    """Waveform -> features as one object: the function, the value that pads its output along
    time, and its feature count. `Featurizer.from_recipe(recipe)` is the recipe's :func:`compute`;
    tests may wrap any ``waveform [n] -> float32 [frames, num_features]`` function.
    """

    compute: Callable[[np.ndarray], np.ndarray]
    pad_value: float
    num_features: int
    recipe: str | None = None  # the RECIPES name, None for a custom function

    @classmethod
    def from_recipe(cls, recipe: str, sample_rate: int = SAMPLE_RATE) -> "Featurizer":
        """The NumPy featurizer of `recipe` (ValueError naming the valid recipes when unknown)."""
        _check_recipe(recipe)
        _check_rate(sample_rate)
        return cls(functools.partial(compute, recipe=recipe, sample_rate=sample_rate), _PAD_VALUES[recipe],
                   _NUM_FEATURES[recipe], recipe)

    def __call__(self, waveform: np.ndarray) -> np.ndarray:
        """waveform int16 (or float in [-1, 1]) [n] -> float32 [frames, num_features]."""
        return self.compute(waveform)


# ----------------------------------------------------------------------------------------------- constants

def notch_coefficients() -> tuple[np.ndarray, np.ndarray]:
    """(b, a) float64 [3] of platalea's notch filter ``scipy.signal.iirnotch(0.001, 3.5)``."""
    return scipy.signal.iirnotch(0.001, 3.5)


def platalea_filterbank() -> np.ndarray:
    """Platalea's 40 triangular mel filters as float64 [257, 40] (peak 1, edges snapped to FFT bin frequencies)."""
    freqs = np.linspace(0.0, SAMPLE_RATE / 2, 257)
    top = 1125.0 * np.log(1.0 + (SAMPLE_RATE / 2) / 700.0)
    edges_hz = 700.0 * (np.exp(np.linspace(0.0, top, 42) / 1125.0) - 1.0)
    edges = freqs[np.argmin(np.abs(freqs[None, :] - edges_hz[:, None]), axis=1)]
    lo, mid, hi = edges[:-2, None], edges[1:-1, None], edges[2:, None]
    if np.any(mid <= lo) or np.any(hi <= mid):
        raise AssertionError("platalea mel edges collapsed onto one FFT bin; the filterbank is undefined")
    rising = (freqs - lo) / (mid - lo)
    falling = (hi - freqs) / (hi - mid)
    bank = np.where((freqs >= lo) & (freqs <= mid), rising, np.where((freqs > mid) & (freqs <= hi), falling, 0.0))
    return bank.T


@functools.cache
def _constants(recipe: str) -> dict:
    """Float64 NumPy constants of a recipe: window [400], FFT size, spectrum scale, mel matrix, DCT matrix."""
    n = np.arange(WINDOW)
    if recipe == "platalea_mfcc":
        scale = np.full(257, 2.0 / 512)
        scale[[0, -1]] /= 2
        k, m = np.arange(1, 13)[None, :], np.arange(39)[:, None]
        return dict(window=0.54 - 0.46 * np.cos(2 * np.pi * n / (WINDOW - 1)), n_fft=512, scale=scale,
                    mel=platalea_filterbank(), dct=2.0 * np.cos(np.pi * k * (2 * m + 1) / 78.0))
    import librosa  # lazy, and only for the mel matrices of the librosa-based recipes
    if recipe == "davenet_logmel":
        mel = librosa.filters.mel(sr=SAMPLE_RATE, n_fft=400, n_mels=40, fmin=20.0)
        return dict(window=scipy.signal.windows.hamming(WINDOW, sym=True), n_fft=400,
                    mel=mel.astype(np.float64).T)
    mel = librosa.filters.mel(sr=SAMPLE_RATE, n_fft=512, n_mels=40)  # float32, exactly as librosa uses it
    k, m = np.arange(13)[None, :], np.arange(40)[:, None]
    dct = np.sqrt(2.0 / 40) * np.cos(np.pi * k * (2 * m + 1) / 80.0)
    dct[:, 0] /= np.sqrt(2.0)
    return dict(window=0.54 - 0.46 * np.cos(2 * np.pi * n / WINDOW), n_fft=512, mel=mel.astype(np.float64).T,
                dct=dct, d1=scipy.signal.savgol_coeffs(9, 1, deriv=1, use="dot"),
                d2=scipy.signal.savgol_coeffs(9, 2, deriv=2, use="dot"))


@functools.cache
def _notch_block_constants() -> tuple[np.ndarray, ...]:
    """Block form of platalea's notch y = x - u, u = (1 - b0) (1 - z^-2) / A(z) x, for blocks of L = 256 samples.

    The band-pass u is realised in modal state space: with poles r exp(+-i theta), s[t+1] = F s[t] + g x[t] and
    u[t] = s[t][0] + (1 - b0) x[t], where F = r [[cos, -sin], [sin, cos]] (r times a rotation, well conditioned)
    and g is fitted to the impulse response.
    Returns float64 (output [L + 4, L]: (block input, state at the block start as a pair hi, lo) -> y;
    ends [L, 2]: block input -> state after the block; transition [2, 2] = F^L).
    """
    b, a = notch_coefficients()
    radius = np.sqrt(a[2])
    cos = -a[1] / (2 * radius)
    if not 0 < radius < 1 or abs(cos) >= 1:
        raise AssertionError(f"notch denominator {a} does not have stable complex poles")
    theta = np.arccos(cos)
    length = _NOTCH_BLOCK
    steps = np.arange(length + 1)
    # powers[k] = F^k = r^k R(k theta): [L + 1, 2, 2].
    c, s = np.cos(steps * theta), np.sin(steps * theta)
    powers = radius ** steps[:, None, None] * np.stack([np.stack([c, -s], -1), np.stack([s, c], -1)], -2)
    direct = 1.0 - b[0]  # h[0]
    impulse = scipy.signal.lfilter(direct * np.array([1.0, 0.0, -1.0]), a, [1.0, 0.0, 0.0])
    g = np.linalg.solve(powers[:2, 0, :], impulse[1:])  # h[k] = (F^(k-1) g)[0] for k = 1, 2
    h = np.concatenate([[direct], powers[:-2, 0, :] @ g])  # [L]
    lag = np.arange(length)[:, None] - np.arange(length)[None, :]
    toeplitz = np.where(lag >= 0, h[np.clip(lag, 0, None)], 0.0)
    ends = powers[length - 1::-1] @ g  # ends[j] = F^(L-1-j) g
    state_out = -powers[:-1, 0, :].T  # u[i] = (F^i s)[0] + (T x)[i]; the state comes as a pair hi + lo
    output = np.concatenate([np.eye(length) - toeplitz.T, state_out, state_out])
    return output, ends, powers[length]


@functools.cache
def _platalea_spectrum_matrix() -> np.ndarray:
    """Float64 [400, 514]: a notched frame [400] -> [Re X, Im X] of platalea's 512-point spectrum (bins 0..256).

    Folds the per-frame pre-emphasis (first sample kept) and the Hamming window into the DFT:
    X = DFT_512(window * (P y)) = y @ (P^T diag(window) DFT).
    """
    emphasis = np.eye(WINDOW) - 0.97 * np.eye(WINDOW, k=-1)  # emph[n] = y[n] - 0.97 y[n - 1]
    angle = 2 * np.pi * np.outer(np.arange(WINDOW), np.arange(257)) / 512
    dft = np.concatenate([np.cos(angle), -np.sin(angle)], axis=1)
    return emphasis.T @ (_constants("platalea_mfcc")["window"][:, None] * dft)


@functools.cache
def _split_constants() -> dict[str, exact_matmul.SplitMatrix]:
    """The constants of the JAX platalea path, split once for :mod:`vgs_jax.exact_matmul`."""
    output, ends, transition = _notch_block_constants()
    # The notch's products keep ~2^-39 (2 exact slices): the ringing after speech can be 1e-6 of the loud samples of
    # the same block, and the transition is applied once per block through seconds of silence.
    return {"spectrum": exact_matmul.split_matrix(_platalea_spectrum_matrix()),
            "notch_output": exact_matmul.split_matrix(output, count=2),
            "notch_ends": exact_matmul.split_matrix(ends, count=2),
            "notch_transition": exact_matmul.split_matrix(np.tile(transition.T, (2, 1)), count=2)}  # (hi, lo) -> F s


# ------------------------------------------------------------------------------- shared implementation

def _matmul(xp, a, b):
    if xp is np:
        return a @ b
    return jnp.matmul(a, b, precision=jax.lax.Precision.HIGHEST)  # no TF32/bf16 passes on accelerators


def _pad_last(xp, x, left, right):
    return xp.pad(x, [(0, 0)] * (x.ndim - 1) + [(left, right)])


def _frames(xp, x, left_pad: int, count: int):
    """[..., n] -> [..., count, 400]: frame t holds samples [160 t - left_pad, 160 t - left_pad + 400), zeros
    outside the signal. Built from three shifted 160-sample chunk views (no gather)."""
    total = (count + 2) * HOP
    x = _pad_last(xp, x, left_pad, total - left_pad - x.shape[-1])
    chunks = x.reshape(x.shape[:-1] + (count + 2, HOP))
    both = xp.concatenate([chunks[..., :-2, :], chunks[..., 1:-1, :], chunks[..., 2:, :]], axis=-1)
    return both[..., :WINDOW]


def _log_floor(xp, v):
    """Natural log, with log(0) replaced by -50 (platalea)."""
    positive = v > 0
    return xp.where(positive, xp.log(xp.where(positive, v, 1.0)), LOG_FLOOR)


def _platalea_deltas(xp, c):
    """Regression deltas over time (axis -2), N = 2, edge frames replicated, normaliser 10."""
    count = c.shape[-2]
    p = xp.pad(c, [(0, 0)] * (c.ndim - 2) + [(2, 2), (0, 0)], mode="edge")
    return ((p[..., 3:count + 3, :] - p[..., 1:count + 1, :])
            + 2.0 * (p[..., 4:count + 4, :] - p[..., 0:count, :])) / 10.0


def _savgol_deltas(xp, c, weights):
    """librosa.feature.delta(width=9, mode='interp') over axis -2: valid 9-tap filter, then edges replicated
    (with polyorder == deriv the interp edge fit has a constant derivative equal to the nearest valid value)."""
    count = c.shape[-2]
    valid = sum(float(w) * c[..., i:count - 8 + i, :] for i, w in enumerate(weights))
    return xp.pad(valid, [(0, 0)] * (c.ndim - 2) + [(4, 4), (0, 0)], mode="edge")


def _features(xp, x, recipe: str, notch, spectrum):
    """Shared recipe body. x: [..., n] float (float64 NumPy or float32 JAX); notch: platalea's notch filter on
    [..., n]; spectrum: notched frames [..., frames, 400] -> platalea's complex 512-point spectrum as
    (real, imag) [..., frames, 257] each. Returns [..., frames, D]."""
    if recipe == "raw":
        return x[..., None]
    const = _constants(recipe)
    dtype = x.dtype
    window = xp.asarray(const["window"], dtype=dtype)
    mel = xp.asarray(const["mel"], dtype=dtype)
    n = x.shape[-1]
    if recipe == "platalea_mfcc":
        frames = _frames(xp, notch(x), WINDOW // 2 - HOP // 2, n // HOP)
        energy = _log_floor(xp, xp.sum(frames * frames, axis=-1))
        amp = xp.hypot(*spectrum(frames)) * xp.asarray(const["scale"], dtype=dtype)
        logbank = _log_floor(xp, _matmul(xp, amp, mel))
        ceps = _matmul(xp, logbank[..., 1:], xp.asarray(const["dct"], dtype=dtype))
        static = xp.concatenate([energy[..., None], ceps], axis=-1)
        delta = _platalea_deltas(xp, static)
        return xp.concatenate([static, delta, _platalea_deltas(xp, delta)], axis=-1)
    if recipe == "davenet_logmel":
        x = x - xp.mean(x, axis=-1, keepdims=True)
        x = xp.concatenate([x[..., :1], x[..., 1:] - 0.97 * x[..., :-1]], axis=-1)
    frames = _frames(xp, x, WINDOW // 2, 1 + n // HOP)
    spec = xp.abs(xp.fft.rfft(frames * window, n=const["n_fft"])) ** 2
    power = _matmul(xp, spec, mel)
    if recipe == "logmel":
        return xp.log(power + 1e-6)
    if recipe == "davenet_logmel":  # a ratio, not a difference of logs: the maximum (and silence) give exactly 0 dB
        ref = xp.maximum(xp.max(power, axis=(-2, -1), keepdims=True), 1e-10)
        return xp.maximum(10.0 * xp.log10(xp.maximum(power, 1e-10) / ref), -80.0)
    db = 10.0 * xp.log10(xp.maximum(power, 1e-10))
    db = xp.maximum(db, xp.max(db, axis=(-2, -1), keepdims=True) - 80.0)
    ceps = _matmul(xp, db, xp.asarray(const["dct"], dtype=dtype))
    return xp.concatenate([ceps, _savgol_deltas(xp, ceps, const["d1"]), _savgol_deltas(xp, ceps, const["d2"])],
                          axis=-1)


# ------------------------------------------------------------------------------------ validation

def _check_waveform(shape, dtype, recipe: str, sample_rate: int, max_ndim: int) -> None:
    _check_recipe(recipe)
    _check_rate(sample_rate)
    if len(shape) < 1 or len(shape) > max_ndim:
        allowed = "[n]" if max_ndim == 1 else "[n] or [batch, n]"
        raise ValueError(f"waveform must have shape {allowed}, got shape {tuple(shape)}")
    if not (jnp.issubdtype(dtype, jnp.floating) or dtype == np.int16):
        raise ValueError(f"waveform dtype {dtype} is not supported: pass float samples in [-1, 1] or int16 samples")
    if shape[-1] == 0:
        raise ValueError(f"empty waveform: shape {tuple(shape)} has no samples; drop the example or pad it")
    if shape[-1] < _MIN_SAMPLES[recipe]:
        raise ValueError(
            f"waveform too short for {recipe!r}: {shape[-1]} samples, need at least {_MIN_SAMPLES[recipe]} "
            f"({_MIN_SAMPLES[recipe] / SAMPLE_RATE * 1000:g} ms); drop the example or pad it")


def _check_finite(values: np.ndarray) -> None:
    if not np.all(np.isfinite(values)):
        bad = int(np.size(values) - np.count_nonzero(np.isfinite(values)))
        raise ValueError(f"waveform has {bad} non-finite samples (NaN or inf); fix or drop the audio file")


# ------------------------------------------------------------------------------------ public entry points

def compute(waveform: np.ndarray, recipe: str, sample_rate: int = 16000) -> np.ndarray:
    """NumPy features for the input pipeline (float64 inside, like the references).

    Args:
      waveform: [n] int16 (scaled by 1/32768) or float samples in [-1, 1], 16 kHz.
      recipe: one of RECIPES.
      sample_rate: must be 16000.
    Returns:
      float32 [num_frames(n, recipe), num_features(recipe)].
    """
    waveform = np.asarray(waveform)
    _check_waveform(waveform.shape, waveform.dtype, recipe, sample_rate, max_ndim=1)
    # float64 inside: a float32 path (as librosa) was 2.5x faster for davenet_logmel but changed what a short
    # ResDAVEnet run learns (tests/learning_test.py conv_matchmap: test R@10 0.408 -> 0.234); see README.
    x = waveform.astype(np.float64)
    if waveform.dtype == np.int16:
        x /= 32768.0
    _check_finite(x)
    b, a = notch_coefficients()
    notch = functools.partial(scipy.signal.lfilter, b, a)
    return _features(np, x, recipe, notch, _platalea_spectrum_numpy).astype(np.float32)


def _platalea_spectrum_numpy(frames: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Platalea's steps literally: per-frame pre-emphasis 0.97 (first sample kept), Hamming, 512-point rfft."""
    emph = np.concatenate([frames[..., :1], frames[..., 1:] - 0.97 * frames[..., :-1]], axis=-1)
    spectrum = np.fft.rfft(emph * _constants("platalea_mfcc")["window"], n=512)
    return spectrum.real, spectrum.imag


def _notch_jax(x: jax.Array) -> jax.Array:
    """Platalea's notch filter on [..., n] float32: y = x - u, u = (1 - b0) (1 - z^-2) / A(z) x (a band-pass).

    In 256-sample blocks (see :func:`_notch_block_constants`): the state each block leaves behind, a scan over
    blocks carrying the modal state, then each block's output from its samples and incoming state. Every product
    is exact to ~2^-39 (:mod:`vgs_jax.exact_matmul`) and the state is carried as a float32 pair, so each sample
    is rounded once and only n / 256 steps are sequential. A plain float32 realisation (poles 4.5e-4 from z = 1)
    leaves errors of ~1e-7 of the loudest speech in the faint ringing of the silent frames after it, whose
    spectrum hangs on a few tiny samples: up to 0.1 in their MFCCs.
    """
    split = _split_constants()
    length, n = _NOTCH_BLOCK, x.shape[-1]
    blocks = -(-n // length)
    padded = _pad_last(jnp, x, 0, blocks * length - n).reshape(x.shape[:-1] + (blocks, length))
    ends = [jnp.moveaxis(e, -2, 0) for e in exact_matmul.matmul_pair(padded, split["notch_ends"])]  # [blocks,..,2]

    def step(state, end):  # state [..., 4]: (hi, lo) of the modal state; F (hi + lo) + end as a pair
        propagated = exact_matmul.matmul_pair(state, split["notch_transition"])
        return jnp.concatenate(exact_matmul.add_pairs(*propagated, *end), axis=-1), state

    _, states = jax.lax.scan(step, jnp.zeros(ends[0].shape[1:-1] + (4,), jnp.float32), ends)
    inputs = jnp.concatenate([padded, jnp.moveaxis(states, 0, -2)], axis=-1)  # [..., blocks, L + 4]
    return exact_matmul.matmul(inputs, split["notch_output"]).reshape(x.shape[:-1] + (blocks * length,))[..., :n]


def _platalea_spectrum_jax(frames: jax.Array) -> tuple[jax.Array, jax.Array]:
    """Same spectrum as :func:`_platalea_spectrum_numpy` by one product with the folded matrix, exact to ~2^-31:
    a plain float32 FFT errs by ~1e-7 of the frame's strongest bin, which is 1e-3 of the weak bins below ~150 Hz
    (pre-emphasis takes them 60-90 dB under the peak) and moves platalea's unfloored log filterbank by up to 1e-3."""
    spectrum = exact_matmul.matmul(frames, _split_constants()["spectrum"])
    return spectrum[..., :257], spectrum[..., 257:]


@functools.partial(jax.jit, static_argnames="recipe")
def _compute_jax_jit(x: jax.Array, recipe: str) -> jax.Array:
    if x.dtype == jnp.int16:
        x = x.astype(jnp.float32) / 32768.0
    return _features(jnp, x.astype(jnp.float32), recipe, _notch_jax, _platalea_spectrum_jax)


def compute_jax(waveform: jax.Array, recipe: str, sample_rate: int = 16000) -> jax.Array:
    """JAX features (float32), jit-able with ``recipe``/``sample_rate`` static; a leading batch axis is vectorised.

    Args:
      waveform: [n] or [batch, n] float samples in [-1, 1] (int16 is scaled by 1/32768 here too), 16 kHz. Within a
        batch every row has the same n: pad waveforms to a common length and keep each example's
        ``num_frames(true_length, recipe)`` frames (the frames past it see the padding, and for davenet_logmel
        the padding also enters the mean and the maximum).
      recipe: one of RECIPES.
      sample_rate: must be 16000.
    Returns:
      float32 [..., num_frames(n, recipe), num_features(recipe)]; agrees with :func:`compute` to float32 rounding.
    Non-finite samples raise ValueError when the input is concrete; under an outer jit values cannot be checked.
    """
    shape, dtype = jnp.shape(waveform), jnp.result_type(waveform)
    _check_waveform(shape, np.dtype(dtype), recipe, sample_rate, max_ndim=2)
    if not isinstance(waveform, jax.core.Tracer):
        _check_finite(np.asarray(waveform))
    return _compute_jax_jit(jnp.asarray(waveform), recipe)
