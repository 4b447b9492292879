"""Throughput of vgs_jax.audio_features: recipe x {numpy, jax} -> times real time (audio seconds / compute second).

    .venv/bin/python bench/audio_features_bench.py [--utterances 100] [--batch 32] [--repeats 3]

NumPy: one utterance at a time (as the input pipeline calls it), 2-5 s utterances, BLAS limited to one thread.
JAX: ``jax.jit``-compiled ``compute_jax`` on a [batch, 4 s] array on the default backend; compile time is excluded
and reported separately. Prints one table; no assertions.
"""
import argparse
import os
import sys
import time

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
os.environ.setdefault("MKL_NUM_THREADS", "1")
os.environ.setdefault("OMP_NUM_THREADS", "1")
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402

from vgs_jax import audio_features  # noqa: E402


def _utterances(count: int, rng: np.random.Generator) -> list[np.ndarray]:
    """``count`` float32 waveforms of 2-5 s: harmonic 'voice' plus noise."""
    out = []
    for _ in range(count):
        n = int(rng.uniform(2.0, 5.0) * 16000)
        t = np.arange(n) / 16000.0
        voice = sum(np.sin(2 * np.pi * k * rng.uniform(90, 220) * t) / k for k in range(1, 8))
        out.append((0.1 * voice + 0.01 * rng.standard_normal(n)).astype(np.float32))
    return out


def _best_time(fn, repeats: int) -> float:
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - start)
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--utterances", type=int, default=100)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--seconds", type=float, default=4.0, help="length of each JAX batch row")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()

    rng = np.random.default_rng(0)
    waves = _utterances(args.utterances, rng)
    audio_s = sum(w.size for w in waves) / 16000.0
    batch = jnp.asarray(rng.standard_normal((args.batch, int(args.seconds * 16000))).astype(np.float32) * 0.1)
    batch_s = batch.size / 16000.0
    compiled = jax.jit(audio_features.compute_jax, static_argnames=("recipe", "sample_rate"))

    print(f"backend={jax.default_backend()} devices={jax.device_count()} cpus={os.cpu_count()} "
          f"numpy: {args.utterances} utterances, {audio_s:.0f} s audio; jax: batch {args.batch} x {args.seconds:g} s")
    header = (f"{'recipe':<16}{'numpy x RT':>12}{'numpy ms/utt':>14}{'jax x RT':>12}{'jax ms/batch':>14}"
              f"{'compile s':>11}")
    print(header)
    print("-" * len(header))
    for recipe in audio_features.RECIPES:
        audio_features.compute(waves[0], recipe)  # build cached constants
        np_time = _best_time(lambda: [audio_features.compute(w, recipe) for w in waves], args.repeats)
        start = time.perf_counter()
        compiled(batch, recipe=recipe).block_until_ready()
        compile_s = time.perf_counter() - start
        jax_time = _best_time(lambda: compiled(batch, recipe=recipe).block_until_ready(), args.repeats)
        print(f"{recipe:<16}{audio_s / np_time:>12.0f}{1000 * np_time / len(waves):>14.2f}"
              f"{batch_s / jax_time:>12.0f}{1000 * jax_time:>14.1f}{compile_s:>11.2f}")


if __name__ == "__main__":
    main()
