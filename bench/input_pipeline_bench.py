"""Input pipeline throughput: batches/s and utterances/s delivered to the host.

Usage:
  python bench/input_pipeline_bench.py --synthetic
  python bench/input_pipeline_bench.py --data_dir=/tmp/tfds --dataset=spoken_shapes/tiny [--build]

The synthetic source holds 2 s (+-0.5 s, uniform) int16 utterances with 64x64 RGB images.
Default config (as configs/shapes_gru.py): global batch 32, platalea_mfcc, buckets 160..512
frames, max_frames 512. Prints one row per thread count, one row without buckets (padding
comparison), and the one-off costs (length pass, featuriser alone). Throughput is counted
from iterator creation (first batch included), so prefetching cannot inflate it.
"""
import argparse
import os
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from vgs_jax import data_sources  # noqa: E402
from vgs_jax import input_pipeline  # noqa: E402


def synthetic_source(n: int, seed: int = 0) -> list[dict]:
    """``n`` examples: 1.5-2.5 s of 16 kHz int16 noise-plus-tone and a 64x64x3 uint8 image."""
    rng = np.random.default_rng(seed)
    out = []
    for i in range(n):
        num = int(rng.integers(24000, 40001))
        t = np.arange(num) / 16000.0
        wave = 3000 * np.sin(2 * np.pi * rng.uniform(100, 400) * t) + rng.normal(0, 500, num)
        out.append({"audio": wave.astype(np.int16), "image_id": i // 5, "caption_id": i,
                    "image": rng.integers(0, 256, (64, 64, 3), dtype=np.uint8)})
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--synthetic", action="store_true", help="use an in-memory source")
    p.add_argument("--num_synthetic", type=int, default=640)
    p.add_argument("--data_dir", default=os.path.expanduser("~/tensorflow_datasets"))
    p.add_argument("--dataset", default="spoken_shapes/tiny")
    p.add_argument("--split", default="train")
    p.add_argument("--build", action="store_true", help="build the dataset if missing")
    p.add_argument("--batch", type=int, default=32)
    p.add_argument("--recipe", default="platalea_mfcc")
    p.add_argument("--buckets", default="160,224,288,384,512",
                   help="comma-separated frame boundaries; empty for none")
    p.add_argument("--max_frames", type=int, default=512)
    p.add_argument("--num_batches", type=int, default=40)
    p.add_argument("--threads", default="0,2,4")
    args = p.parse_args()

    from vgs_jax import audio_features

    if args.synthetic:
        source, what = synthetic_source(args.num_synthetic), f"synthetic x{args.num_synthetic}"
    else:
        t0 = time.perf_counter()
        source = data_sources.open_split(args.dataset, args.split, data_dir=args.data_dir,
                                           build_if_missing=args.build)
        what = f"{args.dataset}:{args.split} x{len(source)} (open {time.perf_counter() - t0:.2f}s)"
    buckets = [int(x) for x in args.buckets.split(",") if x] or None
    featurize = audio_features.Featurizer.from_recipe(args.recipe)

    featurize(source[0]["audio"])  # first call may pay numba/JIT start-up
    t0 = time.perf_counter()
    lengths = data_sources.example_lengths(source)
    t_len = time.perf_counter() - t0
    t0 = time.perf_counter()
    k = min(64, len(source))
    for i in range(k):
        featurize(source[i]["audio"])
    t_feat = (time.perf_counter() - t0) / k
    mean_s = lengths.mean() / 16000

    print(f"source: {what}; mean utterance {mean_s:.2f} s; recipe {args.recipe}; "
          f"global batch {args.batch}; buckets {buckets}; max_frames {args.max_frames}")
    print(f"length pass (example_lengths): {t_len:.3f} s for {len(source)} examples "
          f"({1e6 * t_len / len(source):.0f} us/example)")
    print(f"featurize alone, 1 thread: {1e3 * t_feat:.2f} ms/utterance = "
          f"{1 / t_feat:.0f} utt/s")
    print()
    header = (f"{'buckets':>7} | {'threads':>7} | {'first batch s':>13} | {'batches/s':>9} | "
              f"{'utt/s':>8} | "
              f"{'~audio s/s':>10} | {'padding %':>9}")
    print(header)
    print("-" * len(header))
    threads_list = [int(x) for x in args.threads.split(",")]
    runs = [(buckets, t) for t in threads_list] + [(None, threads_list[-1])]
    for bounds, threads in runs:
        it = input_pipeline.make_train_iterator(
            source, global_batch_size=args.batch, featurizer=featurize, seed=0,
            max_frames=args.max_frames, bucket_boundaries=bounds, num_threads=threads,
            prefetch_batches=2 * max(threads, 1), lengths=lengths)
        # Throughput counts from iterator creation, so a filled prefetch buffer cannot inflate it.
        t0 = time.perf_counter()
        batch = next(it)
        t_first = time.perf_counter() - t0
        valid, total = int(batch["audio_len"].sum()), batch["audio_mask"].size
        for _ in range(args.num_batches - 1):
            batch = next(it)
            valid += int(batch["audio_len"].sum())
            total += batch["audio_mask"].size
        dt = time.perf_counter() - t0
        utt_s = args.num_batches * args.batch / dt
        print(f"{'yes' if bounds else 'no':>7} | {threads:>7} | {t_first:>13.3f} | "
              f"{args.num_batches / dt:>9.2f} | {utt_s:>8.1f} | {utt_s * mean_s:>10.1f} | "
              f"{100 * (1 - valid / total):>9.1f}")


if __name__ == "__main__":
    main()
