"""Feature extraction, `vgs_jax.audio_features.compute` vs librosa on the same waveforms, 1 thread each.

Both sides featurise the same 2-5 s utterances (harmonic "voice" plus noise, fixed seed), one at a
time as the input pipeline does, in their own processes (`bench/paired.py`) with every BLAS/OpenMP
pool at one thread, alternating pairs. librosa side per recipe (what each recipe reproduces):

  platalea_mfcc   librosa.feature.mfcc(n_mfcc=13, n_fft=512, win 400, hop 160, hamming, 40 mels)
                  + delta orders 1 and 2 (platalea's own recipe has no librosa form; the issue's
                  comparison)
  davenet_logmel  pre-emphasis, melspectrogram(n_fft=400, hop 160, hamming, 40 mels, fmin 20),
                  power_to_db(ref=max, top_db=80)
  mfcc            mfcc(n_mfcc=13, n_fft=512, win 400, hop 160, hamming, 40 mels) + delta 1, 2
  logmel          log(melspectrogram(n_fft=512, win 400, hop 160, hamming, 40 mels) + 1e-6)

Reported as times real time (audio seconds per compute second; higher is better).

Usage: python bench/audio_features_bench.py [--recipes platalea_mfcc,davenet_logmel] [--pairs 5]
"""
import argparse
import os

import numpy as np

from paired import Side, compare, print_table

ONE_THREAD = {k: "1" for k in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMBA_NUM_THREADS")}
RECIPES = ("platalea_mfcc", "davenet_logmel", "mfcc", "logmel")


def utterances(count: int, seed: int = 0) -> list[np.ndarray]:
    """`count` float32 waveforms of 2-5 s at 16 kHz: harmonic 'voice' plus noise."""
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(count):
        n = int(rng.uniform(2.0, 5.0) * 16000)
        t = np.arange(n) / 16000.0
        voice = sum(np.sin(2 * np.pi * k * rng.uniform(90, 220) * t) / k for k in range(1, 8))
        out.append((0.1 * voice + 0.01 * rng.standard_normal(n)).astype(np.float32))
    return out


def librosa_features(y: np.ndarray, recipe: str) -> np.ndarray:
    """The librosa computation `recipe` reproduces (see module docstring): [frames, D]."""
    import librosa
    stft = dict(sr=16000, hop_length=160, window="hamming", n_mels=40)
    if recipe == "davenet_logmel":
        y = np.append(y[0], y[1:] - 0.97 * y[:-1])
        mel = librosa.feature.melspectrogram(y=y, n_fft=400, fmin=20.0, **stft)
        return librosa.power_to_db(mel, ref=np.max, top_db=80.0).T
    if recipe == "logmel":
        return np.log(librosa.feature.melspectrogram(y=y, n_fft=512, win_length=400, **stft) + 1e-6).T
    c = librosa.feature.mfcc(y=y, n_mfcc=13, n_fft=512, win_length=400, **stft)
    return np.concatenate([c, librosa.feature.delta(c, order=1), librosa.feature.delta(c, order=2)]).T


def features_work(impl: str, recipe: str, count: int, seed: int = 0):
    """(info, run) for `bench/paired.py`: run() featurises every utterance with `impl` (vgs_jax|librosa)."""
    waves = utterances(count, seed)
    if impl == "vgs_jax":
        from vgs_jax import audio_features
        fn = lambda y: audio_features.compute(y, recipe)  # noqa: E731
    else:
        fn = lambda y: librosa_features(y, recipe)  # noqa: E731
    fn(waves[0])  # constants, numba compiles
    return {"audio_s": sum(w.size for w in waves) / 16000.0}, lambda: [fn(w) for w in waves]


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--recipes", default=",".join(RECIPES))
    parser.add_argument("--utterances", type=int, default=100)
    parser.add_argument("--pairs", type=int, default=5)
    args = parser.parse_args()
    recipes = args.recipes.split(",")
    unknown = set(recipes) - set(RECIPES)
    if unknown:
        parser.error(f"unknown --recipes {sorted(unknown)}; choose from {list(RECIPES)}")
    os.environ.update(ONE_THREAD)
    rows = []
    for recipe in recipes:
        kw = dict(recipe=recipe, count=args.utterances)
        ours = Side("vgs_jax", "audio_features_bench:features_work", dict(kw, impl="vgs_jax"), env=ONE_THREAD)
        ref = Side("librosa", "audio_features_bench:features_work", dict(kw, impl="librosa"), env=ONE_THREAD)
        row = compare(ours, ref, args.pairs)
        row.update(measure=f"`{recipe}` vs librosa, {args.utterances} utterances, 1 thread",
                   scale=ours.info["audio_s"])
        rows.append(row)
    print_table(rows, unit="x real time")


if __name__ == "__main__":
    main()
